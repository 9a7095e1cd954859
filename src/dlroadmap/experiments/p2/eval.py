"""Phase 2, Model Evaluation: the metrics of dlroadmap/evaluate/metrics.py on real classifiers.

Two models are trained through the Trainer on embedded data: a binary classifier on
breast_cancer (malignant vs benign, 30 features) and a 10-class one on digits. Each node then
computes its metrics with our from-scratch code *and* with sklearn.metrics on the same
predictions, reports the largest disagreement (it must be ~0), and plots the result.

  p2.eval.prf        accuracy, precision, recall, F1 (binary, macro, micro, weighted)
  p2.eval.confusion  the confusion matrix, counts and row-normalised
  p2.eval.rocauc     ROC curve and ROC-AUC (binary, one-vs-rest), PR curve and average precision
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import sklearn.metrics as skm
import torch
from pydantic import Field

from dlroadmap.data import classification_tensors
from dlroadmap.evaluate import metrics as M
from dlroadmap.evaluate import plots
from dlroadmap.experiments.base import Experiment, ExperimentConfig, Result
from dlroadmap.models.mlp import MLP
from dlroadmap.train import Tracker, seed_everything
from dlroadmap.train.fit import fit_classifier


class Config(ExperimentConfig):
    hidden: int = Field(64, ge=1, le=4096)
    epochs: int = Field(40, ge=1, le=1000)
    lr: float = Field(3e-3, gt=0, le=1)
    batch_size: int = Field(32, ge=1, le=4096)

    QUICK: ClassVar[dict] = {"epochs": 20}


def train_classifier(dataset: str, config: Config, tracker: Tracker) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Train an MLP through the Trainer; return test-set class probabilities, labels and class names."""
    seed_everything(config.seed)
    data = classification_tensors(dataset, seed=config.seed, scale="feature")
    model = MLP(data.X_train.shape[1], [config.hidden], data.num_classes, dropout=0.1)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=1e-3)
    fitted = fit_classifier(model, data, opt, epochs=config.epochs, config=config, tracker=tracker, prefix=dataset,
                            batch_size=config.batch_size, description=f"mlp {dataset}")
    return torch.softmax(fitted.test_outputs, dim=1).numpy().astype(np.float64), fitted.test_targets.numpy(), data.classes


def _max_diff(pairs: list[tuple[object, object]]) -> float:
    return max(float(np.max(np.abs(np.asarray(a, dtype=float) - np.asarray(b, dtype=float)))) for a, b in pairs)


# --- p2.eval.prf --------------------------------------------------------------------------------


def run_prf(config: Config, tracker: Tracker) -> Result:
    metrics: dict[str, float] = {}
    pairs = []
    # Binary: positive class 1 (benign in sklearn's encoding).
    p, y, _ = train_classifier("breast_cancer", config, tracker)
    pred = p.argmax(1)
    prec, rec, f1 = M.precision_recall_f1(y, pred, average="binary")
    pairs += [(prec, skm.precision_score(y, pred)), (rec, skm.recall_score(y, pred)), (f1, skm.f1_score(y, pred)),
              (M.accuracy(pred, y), skm.accuracy_score(y, pred))]
    metrics.update({"breast_cancer_accuracy": M.accuracy(pred, y), "breast_cancer_precision": prec,
                    "breast_cancer_recall": rec, "breast_cancer_f1": f1})
    # Multi-class: every averaging mode.
    p, y, classes = train_classifier("digits", config, tracker)
    pred = p.argmax(1)
    for avg in ("macro", "micro", "weighted"):
        ours = M.precision_recall_f1(y, pred, average=avg)
        theirs = skm.precision_recall_fscore_support(y, pred, average=avg)[:3]
        pairs += list(zip(ours, theirs))
        metrics[f"digits_{avg}_f1"] = ours[2]
    metrics["digits_accuracy"] = M.accuracy(pred, y)
    pairs.append((metrics["digits_accuracy"], metrics["digits_micro_f1"]))  # micro-F1 = accuracy for single-label tasks
    metrics["max_abs_diff_vs_sklearn"] = _max_diff(pairs)
    report = M.classification_report(y, pred, classes)
    fig = tracker.log_figure(plots.per_class_bars(report, "digits: per-class precision, recall, F1 (test)"), "per_class_prf")
    return Result(metrics=metrics, artifacts={"per_class_prf": str(fig)})


# --- p2.eval.confusion ---------------------------------------------------------------------------


def run_confusion(config: Config, tracker: Tracker) -> Result:
    p, y, classes = train_classifier("digits", config, tracker)
    pred = p.argmax(1)
    cm = M.confusion_matrix(y, pred, len(classes))
    theirs = skm.confusion_matrix(y, pred, labels=list(range(len(classes))))
    off = cm.copy()
    np.fill_diagonal(off, 0)
    i, j = np.unravel_index(off.argmax(), off.shape)
    metrics = {
        "test_accuracy": float(np.trace(cm) / cm.sum()),
        "max_abs_diff_vs_sklearn": float(np.abs(cm - theirs).max()),
        "most_confused_count": float(off[i, j]),
    }
    a = tracker.log_figure(plots.confusion_matrix_plot(cm, classes, "digits test: counts"), "confusion_counts")
    b = tracker.log_figure(plots.confusion_matrix_plot(cm, classes, "digits test: row-normalised (recall per class)", normalize=True), "confusion_normalized")
    return Result(metrics=metrics, artifacts={"confusion_counts": str(a), "confusion_normalized": str(b)},
                  notes=f"most confused: true {classes[i]} predicted as {classes[j]} ({off[i, j]} times)")


# --- p2.eval.rocauc ---------------------------------------------------------------------------------


def run_rocauc(config: Config, tracker: Tracker) -> Result:
    metrics: dict[str, float] = {}
    pairs = []
    p, y, _ = train_classifier("breast_cancer", config, tracker)
    score = p[:, 1]
    fpr, tpr, thr = M.roc_curve(y, score)
    s_fpr, s_tpr, s_thr = skm.roc_curve(y, score, drop_intermediate=False)
    pairs += [(fpr, s_fpr), (tpr, s_tpr), (thr[1:], s_thr[1:])]
    prec, rec, _ = M.precision_recall_curve(y, score)
    s_prec, s_rec, _ = skm.precision_recall_curve(y, score)
    pairs += [(prec, s_prec), (rec, s_rec)]
    metrics["breast_cancer_roc_auc"] = M.roc_auc_score(y, score)
    metrics["breast_cancer_average_precision"] = M.average_precision_score(y, score)
    pairs += [(metrics["breast_cancer_roc_auc"], skm.roc_auc_score(y, score)),
              (metrics["breast_cancer_average_precision"], skm.average_precision_score(y, score))]
    roc_curves = {"breast cancer": (fpr, tpr, metrics["breast_cancer_roc_auc"])}
    pr_curves = {"breast cancer": (prec, rec, metrics["breast_cancer_average_precision"])}

    p, y, classes = train_classifier("digits", config, tracker)
    for avg in ("macro", "weighted"):
        metrics[f"digits_ovr_roc_auc_{avg}"] = M.roc_auc_score(y, p, average=avg)
        pairs.append((metrics[f"digits_ovr_roc_auc_{avg}"], skm.roc_auc_score(y, p, multi_class="ovr", average=avg)))
    metrics["digits_average_precision_macro"] = M.average_precision_score(y, p)
    pairs.append((metrics["digits_average_precision_macro"], skm.average_precision_score(np.eye(len(classes))[y], p)))
    for c in (3, 8, 9):  # a few classes: one curve each (one-vs-rest)
        yc = (y == c).astype(int)
        f, t, _ = M.roc_curve(yc, p[:, c])
        roc_curves[f"digit {c} vs rest"] = (f, t, M.roc_auc_score(yc, p[:, c]))
        pr, rc, _ = M.precision_recall_curve(yc, p[:, c])
        pr_curves[f"digit {c} vs rest"] = (pr, rc, M.average_precision_score(yc, p[:, c]))
    metrics["max_abs_diff_vs_sklearn"] = _max_diff(pairs)
    a = tracker.log_figure(plots.roc_curves_plot(roc_curves), "roc_curves")
    b = tracker.log_figure(plots.pr_curves_plot(pr_curves), "pr_curves")
    return Result(metrics=metrics, artifacts={"roc_curves": str(a), "pr_curves": str(b)})


prf = Experiment(Config, run_prf)
confusion = Experiment(Config, run_confusion)
rocauc = Experiment(Config, run_rocauc)
