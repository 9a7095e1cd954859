"""Classification metrics written out with NumPy, following sklearn.metrics' definitions.

Every function takes arrays or tensors. tests/test_metrics.py checks each against sklearn on
random data and on the edge cases (one class only, ties in scores, all-wrong predictions), where
both give the same value or both warn (`UndefinedMetricWarning`) when a metric is undefined.

Counting is the whole idea. For one class c treated as "positive":
    TP = predicted c and truly c     FP = predicted c, truly not     FN = truly c, predicted not
    precision = TP / (TP + FP)       recall = TP / (TP + FN)         F1 = 2 TP / (2 TP + FP + FN)
Multi-class averages: macro = mean over classes; weighted = mean weighted by each class's
support (its true count); micro = pool the counts of all classes first, then divide.
"""

from __future__ import annotations

import warnings

import numpy as np


class UndefinedMetricWarning(UserWarning):
    """A metric's denominator is zero (e.g. precision with no positive predictions); 0 is returned."""


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


# --- precision, recall, F1 ---------------------------------------------------------------------


def _divide(num: np.ndarray, den: np.ndarray, what: str) -> np.ndarray:
    """num / den, with 0 and a warning where den == 0 (sklearn's zero_division='warn')."""
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    out = np.zeros_like(num)
    ok = den != 0
    out[ok] = num[ok] / den[ok]
    if not ok.all():
        warnings.warn(f"{what} is ill-defined and being set to 0.0 where its denominator is 0", UndefinedMetricWarning, stacklevel=3)
    return out


def _counts(y_true, y_pred, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-label TP, FP, FN."""
    y_true, y_pred = _np(y_true), to_labels(y_pred)
    tp = np.array([np.sum((y_pred == c) & (y_true == c)) for c in labels])
    fp = np.array([np.sum((y_pred == c) & (y_true != c)) for c in labels])
    fn = np.array([np.sum((y_pred != c) & (y_true == c)) for c in labels])
    return tp, fp, fn


def _labels_for(y_true, y_pred, average: str | None, pos_label) -> np.ndarray:
    labels = np.unique(np.concatenate([_np(y_true).ravel(), to_labels(y_pred).ravel()]))
    if average == "binary":
        if len(labels) > 2:
            raise ValueError(f"target is multiclass ({len(labels)} labels) but average='binary'; choose macro, micro or weighted")
        return np.array([pos_label])
    return labels


def _average(values: np.ndarray, support: np.ndarray, average: str | None) -> float | np.ndarray:
    if average is None:
        return values
    if average == "weighted":
        if support.sum() == 0:
            return 0.0
        return float(np.average(values, weights=support))
    return float(values.mean()) if average in ("macro", "binary") else float(values[0])


def _pooled_counts(y_true, y_pred, average: str | None, pos_label) -> tuple[np.ndarray, ...]:
    """TP, FP, FN per label (pooled into one entry for average="micro") and each label's support."""
    if average not in ("binary", "macro", "micro", "weighted", None):
        raise ValueError(f"unknown average {average!r}")
    tp, fp, fn = _counts(y_true, y_pred, _labels_for(y_true, y_pred, average, pos_label))
    support = tp + fn
    if average == "micro":
        tp, fp, fn = tp.sum(keepdims=True), fp.sum(keepdims=True), fn.sum(keepdims=True)
    return tp, fp, fn, support


def precision_recall_f1(y_true, y_pred, average: str | None = "binary", pos_label=1) -> tuple:
    """(precision, recall, f1) with average in binary | macro | micro | weighted | None (per class)."""
    # macro averaging (per class, then the mean) and micro averaging (pooled counts), @sokolova2009systematic
    tp, fp, fn, support = _pooled_counts(y_true, y_pred, average, pos_label)
    p = _divide(tp, tp + fp, "precision")
    r = _divide(tp, tp + fn, "recall")
    f = _divide(2 * tp, 2 * tp + fp + fn, "F-score")
    return tuple(_average(v, support, average) for v in (p, r, f))


# Each single metric warns only about its own undefined case, as sklearn's precision_score etc. do.
def precision(y_true, y_pred, average: str | None = "binary", pos_label=1):
    tp, fp, fn, support = _pooled_counts(y_true, y_pred, average, pos_label)
    return _average(_divide(tp, tp + fp, "precision"), support, average)


def recall(y_true, y_pred, average: str | None = "binary", pos_label=1):
    tp, fp, fn, support = _pooled_counts(y_true, y_pred, average, pos_label)
    return _average(_divide(tp, tp + fn, "recall"), support, average)


def f1_score(y_true, y_pred, average: str | None = "binary", pos_label=1):
    tp, fp, fn, support = _pooled_counts(y_true, y_pred, average, pos_label)
    return _average(_divide(2 * tp, 2 * tp + fp + fn, "F-score"), support, average)


# --- curves: ROC and precision-recall ----------------------------------------------------------


def _threshold_counts(y_true, scores, pos_label=1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cumulative FP and TP counts when the threshold steps down through each distinct score."""
    y = (_np(y_true) == pos_label).astype(np.int64)
    s = _np(scores).astype(np.float64)
    order = np.argsort(s, kind="mergesort")[::-1]     # highest score first
    s, y = s[order], y[order]
    # Tied scores form one step: keep only the last index of each run of equal scores.
    last_of_run = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tps = np.cumsum(y)[last_of_run]
    fps = (last_of_run + 1) - tps
    return fps.astype(float), tps.astype(float), s[last_of_run]


def roc_curve(y_true, scores, pos_label=1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds) at every distinct score; the first threshold is +inf (nothing predicted positive)."""
    # ROC points from one pass over the scores sorted once (Algorithm 1), @fawcett2006roc
    fps, tps, thr = _threshold_counts(y_true, scores, pos_label)
    fps, tps = np.r_[0.0, fps], np.r_[0.0, tps]
    thr = np.r_[np.inf, thr]
    if fps[-1] <= 0:
        warnings.warn("No negative samples in y_true, false positive value should be meaningless", UndefinedMetricWarning, stacklevel=2)
        fpr = np.full(fps.shape, np.nan)
    else:
        fpr = fps / fps[-1]
    if tps[-1] <= 0:
        warnings.warn("No positive samples in y_true, true positive value should be meaningless", UndefinedMetricWarning, stacklevel=2)
        tpr = np.full(tps.shape, np.nan)
    else:
        tpr = tps / tps[-1]
    return fpr, tpr, thr


def auc(x, y) -> float:
    """Area under a curve by the trapezoidal rule (x monotonic)."""
    x, y = _np(x), _np(y)
    area = float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2))
    return -area if len(x) > 1 and x[-1] < x[0] else area


def _binarize(y_true, n_classes: int) -> np.ndarray:
    y = _np(y_true).astype(np.int64)
    out = np.zeros((len(y), n_classes), dtype=np.int64)
    out[np.arange(len(y)), y] = 1
    return out


def roc_auc_score(y_true, scores, average: str = "macro") -> float:
    """Binary: area under the ROC curve. Multi-class (scores (N, C)): one-vs-rest, macro or weighted."""
    y, s = _np(y_true), _np(scores)
    if s.ndim == 1 or (s.ndim == 2 and s.shape[1] == 1):
        if len(np.unique(y)) != 2:  # as scikit-learn >= 1.8: undefined, so NaN with a warning (it used to raise)
            warnings.warn("Only one class is present in y_true. ROC AUC score is not defined in that case.", UndefinedMetricWarning, stacklevel=2)
            return float("nan")
        fpr, tpr, _ = roc_curve(y, s.ravel())
        return auc(fpr, tpr)
    # multi-class AUC: Hand & Till average over pairs of classes; this is the one-vs-rest form (sklearn's default), @hand2001auc
    k = s.shape[1]
    if len(np.unique(y)) != k:
        raise ValueError(f"one-vs-rest ROC AUC needs every class present in y_true: found {len(np.unique(y))} of {k}")
    if not np.allclose(s.sum(axis=1), 1.0):
        raise ValueError("multi-class ROC AUC expects probabilities that sum to 1 over classes (apply softmax first)")
    Y = _binarize(y, k)
    per_class = np.array([roc_auc_score(Y[:, c], s[:, c]) for c in range(k)])
    return _average(per_class, Y.sum(axis=0), average)


def precision_recall_curve(y_true, scores, pos_label=1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(precision, recall, thresholds), recall decreasing; the last point is (recall 0, precision 1)."""
    fps, tps, thr = _threshold_counts(y_true, scores, pos_label)
    ps = tps + fps
    prec = np.where(ps != 0, tps / np.where(ps == 0, 1, ps), 0.0)
    if tps[-1] == 0:
        warnings.warn("No positive class found in y_true, recall is set to one for all thresholds.", UserWarning, stacklevel=2)
        rec = np.ones_like(tps)
    else:
        rec = tps / tps[-1]
    return np.r_[prec[::-1], 1.0], np.r_[rec[::-1], 0.0], thr[::-1]


def average_precision_score(y_true, scores, average: str = "macro") -> float:
    """AP = sum_n (R_n - R_{n-1}) P_n: the step-wise area under the PR curve (no interpolation)."""
    y, s = _np(y_true), _np(scores)
    if s.ndim == 1:
        p, r, _ = precision_recall_curve(y, s)
        return float(-np.sum(np.diff(r) * p[:-1]))
    Y = _binarize(y, s.shape[1])
    per_class = np.array([average_precision_score(Y[:, c], s[:, c]) for c in range(s.shape[1])])
    return _average(per_class, Y.sum(axis=0), average)


def classification_report(y_true, y_pred, class_names: list[str] | None = None) -> dict[str, dict[str, float]]:
    """Per-class precision/recall/F1/support plus macro and weighted averages, as a dict."""
    labels = np.unique(np.concatenate([_np(y_true), to_labels(y_pred)]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        p, r, f = precision_recall_f1(y_true, y_pred, average=None)
        macro = precision_recall_f1(y_true, y_pred, average="macro")
        weighted = precision_recall_f1(y_true, y_pred, average="weighted")
    tp, fp, fn = _counts(y_true, y_pred, labels)
    names = [class_names[int(c)] if class_names else str(c) for c in labels]
    rep = {n: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(tp[i] + fn[i])} for i, n in enumerate(names)}
    rep["macro avg"] = dict(zip(("precision", "recall", "f1"), macro))
    rep["weighted avg"] = dict(zip(("precision", "recall", "f1"), weighted))
    rep["accuracy"] = {"accuracy": accuracy(y_pred, y_true)}
    return rep
