"""Plots the report shows: learning curves and the confusion matrix."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # no display needed; figures go to PNG files
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def learning_curves(history: list[dict[str, float]], keys: tuple[tuple[str, ...], ...] = (("train_loss", "val_loss"), ("val_acc",)), title: str = ""):
    """One panel per group of keys, x = epoch."""
    groups = [tuple(k for k in g if any(k in h for h in history)) for g in keys]
    groups = [g for g in groups if g]
    fig, axes = plt.subplots(1, len(groups), figsize=(4.2 * len(groups), 3.2), squeeze=False)
    for ax, group in zip(axes[0], groups):
        for k in group:
            pts = [(h["epoch"], h[k]) for h in history if k in h]
            ax.plot(*zip(*pts), marker="o", ms=3, label=k)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def confusion_matrix_plot(cm: np.ndarray, classes: list[str] | None = None, title: str = "confusion matrix", normalize: bool = False):
    """Heatmap with counts (or row-normalised rates) written in each cell."""
    cm = np.asarray(cm)
    shown = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1) if normalize else cm
    k = cm.shape[0]
    classes = classes or [str(i) for i in range(k)]
    fig, ax = plt.subplots(figsize=(0.45 * k + 2.2, 0.45 * k + 1.8))
    im = ax.imshow(shown, cmap="Blues")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(k), classes, rotation=45 if max(map(len, classes)) > 2 else 0)
    ax.set_yticks(range(k), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    hi = shown.max() if shown.size else 0
    for i in range(k):
        for j in range(k):
            v = shown[i, j]
            ax.text(j, i, f"{v:.2f}" if normalize else str(int(v)), ha="center", va="center", fontsize=7,
                    color="white" if v > hi / 2 else "black")
    fig.tight_layout()
    return fig


def roc_curves_plot(curves: dict[str, tuple[np.ndarray, np.ndarray, float]], title: str = "ROC curves"):
    """curves: label -> (fpr, tpr, auc). The diagonal is a classifier that guesses."""
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    for label, (fpr, tpr, area) in curves.items():
        ax.plot(fpr, tpr, lw=1.4, label=f"{label} (AUC {area:.3f})")
    ax.plot([0, 1], [0, 1], "k--", lw=0.8, label="chance")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def pr_curves_plot(curves: dict[str, tuple[np.ndarray, np.ndarray, float]], title: str = "precision-recall curves"):
    """curves: label -> (precision, recall, average precision)."""
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    for label, (prec, rec, ap) in curves.items():
        ax.step(rec, prec, where="post", lw=1.4, label=f"{label} (AP {ap:.3f})")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    ax.legend(fontsize=7, loc="lower left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def per_class_bars(report: dict[str, dict[str, float]], title: str = "per-class precision, recall, F1"):
    """Grouped bars from evaluate.metrics.classification_report."""
    classes = [k for k in report if k not in ("macro avg", "weighted avg", "accuracy")]
    x = np.arange(len(classes))
    fig, ax = plt.subplots(figsize=(max(5, 0.6 * len(classes) + 2), 3.4))
    for i, key in enumerate(("precision", "recall", "f1")):
        ax.bar(x + (i - 1) * 0.27, [report[c][key] for c in classes], width=0.27, label=key)
    ax.set_xticks(x, classes)
    lo = min(report[c][k] for c in classes for k in ("precision", "recall", "f1"))
    ax.set_ylim(max(0.0, lo - 0.05), 1.0)
    ax.set_title(title)
    ax.legend(fontsize=8, ncol=3, loc="lower right")
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return fig
