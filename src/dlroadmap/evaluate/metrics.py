"""Classification metrics, written out with NumPy.

Each accepts labels (or logits/scores where stated) as arrays or tensors. tests/test_metrics.py
checks them against sklearn.metrics.
"""

from __future__ import annotations

import numpy as np


def _np(a) -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a)


def to_labels(pred) -> np.ndarray:
    """Logits or probabilities (N, C) -> predicted class (N,); labels pass through."""
    pred = _np(pred)
    return pred.argmax(axis=1) if pred.ndim == 2 else pred


def accuracy(pred, target) -> float:
    """Fraction of predictions equal to the target. `pred` may be labels or (N, C) logits."""
    pred, target = to_labels(pred), _np(target)
    if len(target) == 0:
        return float("nan")
    return float((pred == target).mean())


def confusion_matrix(target, pred, num_classes: int | None = None) -> np.ndarray:
    """C[i, j] = number of samples of true class i predicted as class j (sklearn's convention)."""
    target, pred = _np(target).astype(np.int64), to_labels(pred).astype(np.int64)
    k = num_classes or int(max(target.max(initial=-1), pred.max(initial=-1)) + 1)
    # One pass: encode each (true, pred) pair as a single index and count.
    return np.bincount(target * k + pred, minlength=k * k).reshape(k, k)
