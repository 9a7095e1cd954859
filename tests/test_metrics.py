"""Metrics written from scratch agree with sklearn.metrics, edge cases included."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import sklearn.metrics as skm
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dlroadmap.evaluate import metrics as M


def test_accuracy_and_confusion_matrix_match_sklearn():
    rng = np.random.default_rng(0)
    for k in (2, 3, 10):
        y = rng.integers(0, k, 500)
        logits = rng.normal(size=(500, k))
        pred = logits.argmax(1)
        assert M.accuracy(torch.from_numpy(logits), torch.from_numpy(y)) == skm.accuracy_score(y, pred)
        assert np.array_equal(M.confusion_matrix(y, pred, k), skm.confusion_matrix(y, pred, labels=list(range(k))))
    # Labels absent from both arrays still get their row and column when num_classes says so.
    assert M.confusion_matrix([0, 0], [0, 0], 3).tolist() == [[2, 0, 0], [0, 0, 0], [0, 0, 0]]
    assert np.isnan(M.accuracy(np.array([]), np.array([])))


def both(ours, theirs):
    """Call both: the same value (also when both warn, e.g. precision with no predicted positives), the same
    warn-or-not, or both refuse with ValueError."""
    results = []
    for fn in (ours, theirs):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                results.append(("value", fn(), bool(caught)))
            except ValueError as e:
                results.append(("raised", type(e).__name__, False))
    (k1, v1, w1), (k2, v2, w2) = results
    assert k1 == k2, f"ours {results[0]} vs sklearn {results[1]}"
    assert w1 == w2, f"warned: ours {w1}, sklearn {w2}"
    if k1 == "value":
        if isinstance(v1, tuple):  # curves: compare each array
            assert len(v1) == len(v2)
            for a, b in zip(v1, v2):
                np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
        else:
            np.testing.assert_allclose(v1, v2, rtol=1e-12, atol=1e-12)


labels = st.lists(st.integers(0, 3), min_size=1, max_size=60)


@settings(max_examples=80, deadline=None)
@given(labels, st.data())
def test_prf_match_sklearn_on_random_labels(y_true, data):
    y_pred = data.draw(st.lists(st.integers(0, 3), min_size=len(y_true), max_size=len(y_true)))
    y_true, y_pred = np.array(y_true), np.array(y_pred)
    for average in ("macro", "micro", "weighted", None):
        for ours, theirs in ((M.precision, skm.precision_score), (M.recall, skm.recall_score), (M.f1_score, skm.f1_score)):
            both(lambda: ours(y_true, y_pred, average=average), lambda: theirs(y_true, y_pred, average=average))
    if len(np.unique(np.r_[y_true, y_pred])) <= 2 and set(np.r_[y_true, y_pred]) <= {0, 1}:
        for ours, theirs in ((M.precision, skm.precision_score), (M.recall, skm.recall_score), (M.f1_score, skm.f1_score)):
            both(lambda: ours(y_true, y_pred), lambda: theirs(y_true, y_pred))


@pytest.mark.parametrize("y_true,y_pred", [
    ([0, 0, 0, 0], [0, 0, 0, 0]),         # one class only
    ([1, 1, 1], [1, 1, 1]),
    ([0, 1, 0, 1], [1, 0, 1, 0]),         # all wrong
    ([0, 0, 1, 1], [0, 0, 0, 0]),         # no positive predictions
    ([0, 1, 2, 2], [2, 2, 2, 2]),
])
def test_prf_edge_cases(y_true, y_pred):
    y_true, y_pred = np.array(y_true), np.array(y_pred)
    averages = ["macro", "micro", "weighted"] + (["binary"] if set(np.r_[y_true, y_pred]) <= {0, 1} else [])
    for average in averages:
        for ours, theirs in ((M.precision, skm.precision_score), (M.recall, skm.recall_score), (M.f1_score, skm.f1_score)):
            both(lambda: ours(y_true, y_pred, average=average), lambda: theirs(y_true, y_pred, average=average))
    with pytest.raises(ValueError):
        M.precision([0, 1, 2], [0, 1, 2], average="binary")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 6)), min_size=2, max_size=50))
def test_roc_and_pr_curves_match_sklearn_with_ties(pairs):
    y = np.array([p[0] for p in pairs])
    s = np.array([p[1] for p in pairs]) / 6.0  # few distinct scores: many ties
    both(lambda: M.roc_curve(y, s), lambda: skm.roc_curve(y, s, drop_intermediate=False))
    both(lambda: M.precision_recall_curve(y, s), lambda: skm.precision_recall_curve(y, s))
    both(lambda: M.roc_auc_score(y, s), lambda: skm.roc_auc_score(y, s))
    both(lambda: M.average_precision_score(y, s), lambda: skm.average_precision_score(y, s))


def test_multiclass_ovr_auc_and_ap():
    rng = np.random.default_rng(1)
    for k in (3, 5):
        y = np.r_[np.arange(k), rng.integers(0, k, 300)]
        logits = rng.normal(size=(len(y), k)) + 1.5 * np.eye(k)[y]
        p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        for avg in ("macro", "weighted"):
            assert M.roc_auc_score(y, p, average=avg) == pytest.approx(skm.roc_auc_score(y, p, multi_class="ovr", average=avg), abs=1e-12)
            Y = np.eye(k)[y]
            assert M.average_precision_score(y, p, average=avg) == pytest.approx(skm.average_precision_score(Y, p, average=avg), abs=1e-12)
    with pytest.raises(ValueError, match="sum to 1"):
        M.roc_auc_score(y, logits)


def test_classification_report_matches_sklearn():
    rng = np.random.default_rng(2)
    y, pred = rng.integers(0, 3, 200), rng.integers(0, 3, 200)
    ours = M.classification_report(y, pred, ["a", "b", "c"])
    theirs = skm.classification_report(y, pred, target_names=["a", "b", "c"], output_dict=True)
    for c in ("a", "b", "c"):
        assert ours[c]["precision"] == pytest.approx(theirs[c]["precision"])
        assert ours[c]["f1"] == pytest.approx(theirs[c]["f1-score"]) and ours[c]["support"] == theirs[c]["support"]
    assert ours["weighted avg"]["recall"] == pytest.approx(theirs["weighted avg"]["recall"])
