"""Metrics used by the Trainer and the report, checked against sklearn.metrics."""

from __future__ import annotations

import numpy as np
import sklearn.metrics as skm
import torch

from dlroadmap.evaluate.metrics import accuracy, confusion_matrix


def test_accuracy_and_confusion_matrix_match_sklearn():
    rng = np.random.default_rng(0)
    for k in (2, 3, 10):
        y = rng.integers(0, k, 500)
        logits = rng.normal(size=(500, k))
        pred = logits.argmax(1)
        assert accuracy(torch.from_numpy(logits), torch.from_numpy(y)) == skm.accuracy_score(y, pred)
        assert np.array_equal(confusion_matrix(y, pred, k), skm.confusion_matrix(y, pred, labels=list(range(k))))
    # Labels absent from both arrays still get their row and column when num_classes says so.
    assert confusion_matrix([0, 0], [0, 0], 3).tolist() == [[2, 0, 0], [0, 0, 0], [0, 0, 0]]
    assert np.isnan(accuracy(np.array([]), np.array([])))
