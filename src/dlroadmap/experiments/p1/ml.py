"""Phase 1, Machine Learning Basics: experiments for dlroadmap/foundations/ml_basics.py.

  p1.ml.supervised   supervised (linear and logistic regression) vs unsupervised (k-means, PCA),
                     each from scratch and compared with sklearn
  p1.ml.splits       stratified splits, k-fold cross-validation, and how much tuning on the test
                     set overstates accuracy
  p1.ml.loss_optim   losses (MSE, MAE, Huber, cross-entropy, hinge) with gradients checked; gradient
                     descent and momentum on a 2-D surface at several learning rates
"""

from __future__ import annotations

from typing import ClassVar

import matplotlib.pyplot as plt
import numpy as np
from pydantic import Field

from dlroadmap.data import load, split
from dlroadmap.experiments.base import Experiment, ExperimentConfig, Result
from dlroadmap.foundations import calculus as C
from dlroadmap.foundations import linalg as L
from dlroadmap.foundations import ml_basics as ML
from dlroadmap.train import Tracker


class Config(ExperimentConfig):
    candidates: int = Field(60, ge=2, le=10_000, description="models compared when tuning (splits node)")
    repetitions: int = Field(20, ge=1, le=1000, description="random splits averaged (splits node)")
    folds: int = Field(5, ge=2, le=50)

    QUICK: ClassVar[dict] = {"repetitions": 10}


def _standardise(tr: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    mu, sd = tr.mean(0), tr.std(0)
    sd = np.where(sd == 0, 1, sd)
    return [(a - mu) / sd for a in (tr, *others)]


def run_supervised(config: Config, tracker: Tracker) -> Result:
    from sklearn.cluster import KMeans
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.metrics import adjusted_rand_score

    X, y = load_diabetes(return_X_y=True)
    w, b = ML.linear_regression_normal_equations(X, y)
    lin_err = float(np.abs(w - LinearRegression().fit(X, y).coef_).max())
    bc = load("breast_cancer")
    tr, _, te = split(bc, val=0.0, test=0.25, seed=config.seed)
    Xtr, Xte = _standardise(tr.X.astype(float), te.X.astype(float))
    wl, bl = ML.logistic_regression_newton(Xtr, tr.y)
    sk = LogisticRegression(tol=1e-12, max_iter=10_000).fit(Xtr, tr.y)
    log_err = float(max(np.abs(wl - sk.coef_[0]).max(), abs(bl - sk.intercept_[0])))
    log_acc = float(((Xte @ wl + bl > 0).astype(int) == te.y).mean())
    # Unsupervised: digits without their labels.
    digits = load("digits")
    Z, _, _ = L.pca(digits.X.astype(float), 2)
    Xd = digits.X.astype(float)
    init = ML.kmeans_plus_plus(Xd, 10, np.random.default_rng(config.seed))
    labels, _, inertia = ML.kmeans(Xd, 10, init=init)
    ref = KMeans(10, init=init, n_init=1, tol=0, algorithm="lloyd").fit(Xd)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    axes[0].scatter(Z[:, 0], Z[:, 1], c=digits.y, cmap="tab10", s=5)
    axes[0].set_title("supervised view: PCA of digits, coloured by true label", fontsize=9)
    axes[1].scatter(Z[:, 0], Z[:, 1], c=labels, cmap="tab10", s=5)
    axes[1].set_title(f"unsupervised view: k-means clusters (ARI vs labels {adjusted_rand_score(digits.y, labels):.2f})", fontsize=9)
    fig.tight_layout()
    plot = tracker.log_figure(fig, "supervised_vs_unsupervised")
    metrics = {"linear_regression_coef_max_abs_diff_vs_sklearn": lin_err, "logistic_regression_param_max_abs_diff_vs_sklearn": log_err,
               "logistic_regression_test_accuracy": log_acc, "kmeans_inertia_rel_diff_vs_sklearn": abs(inertia - ref.inertia_) / ref.inertia_,
               "kmeans_ari_vs_sklearn": float(adjusted_rand_score(labels, ref.labels_)),
               "kmeans_ari_vs_true_labels": float(adjusted_rand_score(digits.y, labels))}
    return Result(metrics=metrics, artifacts={"supervised_vs_unsupervised": str(plot)})


def _knn_predict(k: int, feats: np.ndarray):
    """A k-nearest-neighbour classifier on a feature subset: a cheap, varied family of models to tune."""

    def fit_predict(Xtr, ytr, Xev):
        d = ((Xev[:, None, feats] - Xtr[None, :, feats]) ** 2).sum(-1)
        nn = np.argsort(d, axis=1)[:, :k]
        votes = ytr[nn]
        return np.array([np.bincount(v, minlength=10).argmax() for v in votes])

    return fit_predict


def run_splits(config: Config, tracker: Tracker) -> Result:
    from sklearn.model_selection import StratifiedKFold  # noqa: F401  (the reference our folds mirror)

    digits = load("digits")
    X, y = digits.X.astype(float), digits.y
    folds = ML.kfold_indices(y, config.folds, seed=config.seed)
    balance = max(np.abs(np.bincount(y[va], minlength=10) / len(va) - np.bincount(y) / len(y)).max() for _, va in folds)
    cv = ML.cross_val_score(_knn_predict(3, np.arange(64)), X, y, k=config.folds, seed=config.seed)
    # Tuning on the test set: pick the best of many weak models (kNN on random 6-pixel subsets)
    # by their score on the test set B and report that score; the truth is the score on fresh data C.
    # The honest protocol chooses on a validation set A and reports on B: no optimism on average.
    optimism, honest = [], []
    rng = np.random.default_rng(config.seed)
    for rep in range(config.repetitions):
        idx = rng.permutation(len(y))[:600]
        tr, A, B, Cf = idx[:200], idx[200:300], idx[300:450], idx[450:600]
        cands = [_knn_predict(int(rng.integers(1, 8)), rng.choice(64, 6, replace=False)) for _ in range(config.candidates)]
        score = lambda c, part: float(np.mean(c(X[tr], y[tr], X[part]) == y[part]))  # noqa: E731
        on_B = [score(c, B) for c in cands]
        cheat = int(np.argmax(on_B))
        optimism.append(on_B[cheat] - score(cands[cheat], Cf))
        chosen = int(np.argmax([score(c, A) for c in cands]))
        honest.append(on_B[chosen] - score(cands[chosen], Cf))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    axes[0].bar(range(1, config.folds + 1), cv)
    axes[0].axhline(cv.mean(), color="k", ls="--", label=f"mean {cv.mean():.3f} +- {cv.std():.3f}")
    axes[0].set_ylim(max(0, cv.min() - 0.05), 1)
    axes[0].set_title(f"{config.folds}-fold stratified CV, 3-NN on digits", fontsize=9)
    axes[0].legend(fontsize=7)
    axes[1].hist(optimism, bins=10, alpha=0.6, label=f"chosen on test: reported - true (mean {np.mean(optimism):+.3f})")
    axes[1].hist(honest, bins=10, alpha=0.6, label=f"chosen on validation: reported - true (mean {np.mean(honest):+.3f})")
    axes[1].axvline(0, color="k", lw=0.8)
    axes[1].set_title("selecting the best of many models on the test set overstates accuracy", fontsize=9)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    plot = tracker.log_figure(fig, "splits_and_cv")
    s = split(digits, val=0.15, test=0.15, seed=config.seed)
    strat = max(np.abs(np.bincount(part.y, minlength=10) / len(part.y) - np.bincount(y) / len(y)).max() for part in s)
    metrics = {"kfold_max_class_share_diff": float(balance), "split_max_class_share_diff": float(strat),
               "cv_mean_accuracy": float(cv.mean()), "cv_std": float(cv.std()),
               "test_tuning_optimism": float(np.mean(optimism)), "honest_protocol_optimism": float(np.mean(honest)),
               "optimism_excess": float(np.mean(optimism) - np.mean(honest))}
    return Result(metrics=metrics, artifacts={"splits_and_cv": str(plot)})


def run_loss_optim(config: Config, tracker: Tracker) -> Result:
    rng = np.random.default_rng(config.seed)
    pred = rng.normal(size=(10, 4))
    yr, yc = rng.normal(size=(10, 4)), rng.integers(0, 4, 10)
    checks = {
        "mse": C.grad_check(lambda p: ML.mse(p, yr)[0], lambda p: ML.mse(p, yr)[1], pred),
        "mae": C.grad_check(lambda p: ML.mae(p, yr)[0], lambda p: ML.mae(p, yr)[1], pred),
        "huber": C.grad_check(lambda p: ML.huber(p, yr)[0], lambda p: ML.huber(p, yr)[1], pred),
        "cross_entropy": C.grad_check(lambda p: ML.cross_entropy(p, yc)[0], lambda p: ML.cross_entropy(p, yc)[1], pred),
        "hinge": C.grad_check(lambda p: ML.hinge(p, yc)[0], lambda p: ML.hinge(p, yc)[1], pred),
    }
    f, g = ML.quadratic(1.0, 20.0)
    x0 = np.array([-1.8, 0.9])
    runs = {"lr 0.01 (too small)": (0.01, 0.0), "lr 0.09 (good)": (0.09, 0.0), "lr 0.105 (> 2/L: diverges)": (0.105, 0.0),
            "lr 0.01 + momentum 0.9": (0.01, 0.9)}
    paths = {k: ML.gradient_descent(g, x0, lr, 3000, momentum=m) for k, (lr, m) in runs.items()}
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    r = np.linspace(-1, 1, 200)
    axes[0].plot(r, r**2, label="MSE")
    axes[0].plot(r, np.abs(r), label="MAE")
    axes[0].plot(r, np.where(np.abs(r) <= 0.5, 0.5 * r**2, 0.5 * (np.abs(r) - 0.25)), label="Huber (delta 0.5)")
    axes[0].plot(r, np.maximum(0, 1 - (r + 0.5)), label="hinge (margin 1, score s_y - s_j = r + 0.5)")
    axes[0].set_xlabel("residual r")
    axes[0].set_title("losses", fontsize=9)
    axes[0].legend(fontsize=6)
    xs, ys = np.meshgrid(np.linspace(-2, 2, 200), np.linspace(-1.2, 1.2, 200))
    axes[1].contour(xs, ys, 0.5 * (xs**2 + 20 * ys**2), levels=20, cmap="Greys", linewidths=0.5)
    for k, pth in paths.items():
        pth = pth[:200][np.all(np.abs(pth[:200]) < 3, axis=1)]
        axes[1].plot(pth[:, 0], pth[:, 1], ".-", ms=2, lw=0.8, label=k)
    axes[1].set_xlim(-2, 2)
    axes[1].set_ylim(-1.2, 1.2)
    axes[1].set_title("gradient descent on f = (x^2 + 20 y^2) / 2", fontsize=9)
    axes[1].legend(fontsize=6)
    for k, pth in paths.items():
        axes[2].semilogy([max(f(p), 1e-16) for p in pth[:1200]], label=k)
    axes[2].set_xlabel("step")
    axes[2].set_title("loss per step", fontsize=9)
    axes[2].set_ylim(1e-12, 1e4)
    axes[2].legend(fontsize=6)
    fig.tight_layout()
    plot = tracker.log_figure(fig, "losses_and_gd")
    steps = {k: ML.steps_to_converge(f, p, 1e-8) for k, p in paths.items()}
    # The stability limit, found by experiment: bisect on lr for the largest rate at which our gradient
    # descent still shrinks the loss. Theory (the Hessian's largest eigenvalue L = 20): lr < 2/L = 0.1.
    lo, hi = 0.01, 0.5
    for _ in range(30):
        mid = (lo + hi) / 2
        path = ML.gradient_descent(g, x0, mid, 2000)
        lo, hi = (mid, hi) if f(path[-1]) < f(x0) else (lo, mid)
    metrics = {"max_grad_check_rel_err": float(max(checks.values())),
               "steps_lr_good": float(steps["lr 0.09 (good)"] or 1e9),
               "steps_lr_small": float(steps["lr 0.01 (too small)"] or 1e9),
               "steps_momentum": float(steps["lr 0.01 + momentum 0.9"] or 1e9),
               "diverged_final_loss": float(f(paths["lr 0.105 (> 2/L: diverges)"][-1])),
               "stable_lr_limit": lo, "stable_lr_limit_rel_err_vs_2_over_L": abs(lo - 2 / 20) / (2 / 20)}
    return Result(metrics=metrics, artifacts={"losses_and_gd": str(plot)})


supervised = Experiment(Config, run_supervised)
splits = Experiment(Config, run_splits)
loss_optim = Experiment(Config, run_loss_optim)
