"""Phase 2, Training Deep Models: fitting, regularisation, batch normalisation (MNIST-5k, MLPs).

  p2.training.fit             under- and overfitting made visible: a capacity sweep, learning curves
                              over epochs (validation loss turns up) and over training-set size
  p2.training.regularization  an ablation in a small-data regime (500 training images): L1 and L2
                              penalties written into the loss, decoupled weight decay, dropout, batch
                              norm, early stopping; L1's sparsity shown on the weights
  p2.training.batchnorm       our BatchNorm (models/batchnorm.py) = nn.BatchNorm1d; a deep MLP trained
                              with and without it at a high learning rate
"""

from __future__ import annotations

from typing import Callable, ClassVar

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from dlroadmap.data import TensorLoader, classification_tensors
from dlroadmap.data.prepare import Tensors
from dlroadmap.evaluate.metrics import accuracy
from dlroadmap.experiments.base import Experiment, ExperimentConfig, Result
from dlroadmap.models.batchnorm import BatchNorm
from dlroadmap.train import EarlyStopping, Tracker, Trainer, seed_everything
from dlroadmap.train.fit import fit_classifier


class Config(ExperimentConfig):
    n_train: int = Field(500, ge=20, le=100_000, description="training images in the small-data regime")
    epochs: int = Field(60, ge=1, le=2000)
    lr: float = Field(1e-3, gt=0, le=10)
    l1: float = Field(1e-4, ge=0, le=1, description="L1 penalty strength (sum |w|)")
    l2: float = Field(1e-3, ge=0, le=1, description="L2 penalty strength (sum w^2)")
    weight_decay: float = Field(0.05, ge=0, le=1, description="decoupled weight decay (AdamW)")
    dropout: float = Field(0.5, ge=0, lt=1, description="dropout on hidden units")
    input_dropout: float = Field(0.2, ge=0, lt=1, description="dropout on input pixels (Srivastava et al. use 0.2)")
    depth: int = Field(10, ge=2, le=100, description="hidden layers of the deep MLP (batchnorm node)")

    QUICK: ClassVar[dict] = {}


def small_data(config: Config) -> Tensors:
    """MNIST-5k with only `n_train` training images (stratified: the first n of a stratified shuffle)."""
    data = classification_tensors("mnist5k", seed=config.seed)
    n = min(config.n_train, len(data.X_train))
    data.X_train, data.y_train = data.X_train[:n], data.y_train[:n]
    return data


def mlp(hidden: list[int], dropout: float = 0.0, norm: Callable[[int], nn.Module] | None = None, act=nn.ReLU,
        input_dropout: float = 0.0) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Flatten()] + ([nn.Dropout(input_dropout)] if input_dropout else [])
    d = 784
    for h in hidden:
        layers.append(nn.Linear(d, h))
        if norm is not None:
            layers.append(norm(h))
        layers.append(act())
        if dropout:
            layers.append(nn.Dropout(dropout))
        d = h
    layers.append(nn.Linear(d, 10))
    return nn.Sequential(*layers)


def penalised_step(l1: float = 0.0, l2: float = 0.0):
    """Cross-entropy plus explicit penalties on the weight matrices (not biases):
    L1 = l1 * sum |w| pushes weights to exactly zero (its gradient is a constant l1 * sign(w));
    L2 = l2 * sum w^2 shrinks them in proportion to their size."""

    # the L1 penalty (the lasso) drives weights to exactly zero, @tibshirani1996lasso
    def step(model: nn.Module, batch):
        x, y = batch
        out = model(x)
        loss = F.cross_entropy(out, y)
        weights = [p for n, p in model.named_parameters() if n.endswith("weight") and p.ndim > 1]
        if l1:
            loss = loss + l1 * sum(w.abs().sum() for w in weights)
        if l2:
            loss = loss + l2 * sum(w.pow(2).sum() for w in weights)
        return loss, out, y

    return step


def train_accuracy(trainer: Trainer, data: Tensors) -> tuple[float, float]:
    out, y, loss = trainer.predict(TensorLoader(data.X_train, data.y_train, batch_size=1000))
    return accuracy(out, y), loss


# --- p2.training.fit ------------------------------------------------------------------------------


def run_fit(config: Config, tracker: Tracker) -> Result:
    data = small_data(config)
    widths = [1, 2, 4, 16, 64, 256, 1024]
    sweep = []
    for w in widths:
        seed_everything(config.seed)
        model = mlp([w])
        fitted = fit_classifier(model, data, torch.optim.Adam(model.parameters(), lr=config.lr), epochs=config.epochs, config=config,
                                tracker=tracker, prefix=f"width_{w}")
        hist = fitted.history
        tr_acc, tr_loss = train_accuracy(fitted.trainer, data)
        sweep.append((w, tr_acc, hist[-1]["val_acc"], tr_loss, hist[-1]["val_loss"]))
        tracker.log_metrics({"capacity/train_acc": tr_acc, "capacity/val_acc": hist[-1]["val_acc"]}, step=w)
    big_hist = hist  # the widest model's epoch-by-epoch curves
    sizes = [50, 100, 200, 500, 1000, 2000, len(classification_tensors("mnist5k", seed=config.seed).X_train)]
    full = classification_tensors("mnist5k", seed=config.seed)
    by_size = []
    for n in sizes:
        seed_everything(config.seed)
        sub = Tensors(full.X_train[:n], full.y_train[:n], full.X_val, full.y_val, full.X_test, full.y_test, full.classes, full.shape, full.mean, full.std, full.name)
        model = mlp([128])
        fitted = fit_classifier(model, sub, torch.optim.Adam(model.parameters(), lr=config.lr), config=config, tracker=tracker,
                                prefix=f"n_train_{n}", epochs=max(5, int(config.epochs * 500 / max(n, 500) / 2)))
        by_size.append((n, train_accuracy(fitted.trainer, sub)[0], fitted.history[-1]["val_acc"]))
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    axes[0].semilogx(widths, [s[1] for s in sweep], "o-", label="train accuracy")
    axes[0].semilogx(widths, [s[2] for s in sweep], "o-", label="validation accuracy")
    axes[0].set_xlabel("hidden units (capacity)")
    axes[0].set_title(f"capacity sweep, {len(data.X_train)} training images", fontsize=9)
    axes[0].legend(fontsize=7)
    axes[1].plot([h["epoch"] for h in big_hist], [h["train_loss"] for h in big_hist], label="train loss")
    axes[1].plot([h["epoch"] for h in big_hist], [h["val_loss"] for h in big_hist], label="validation loss")
    axes[1].set_xlabel("epoch")
    axes[1].set_title(f"width {widths[-1]}: validation loss turns up (overfitting)", fontsize=9)
    axes[1].legend(fontsize=7)
    axes[2].semilogx(sizes, [b[1] for b in by_size], "o-", label="train accuracy")
    axes[2].semilogx(sizes, [b[2] for b in by_size], "o-", label="validation accuracy")
    axes[2].set_xlabel("training images")
    axes[2].set_title("learning curve over training-set size (width 128)", fontsize=9)
    axes[2].legend(fontsize=7)
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    plot = tracker.log_figure(fig, "fitting")
    val_losses = [h["val_loss"] for h in big_hist]
    metrics = {
        "tiny_model_train_accuracy": sweep[0][1],
        "big_model_train_accuracy": sweep[-1][1],
        "big_model_generalization_gap": sweep[-1][1] - sweep[-1][2],
        "big_model_val_loss_rise": val_losses[-1] / min(val_losses),
        "val_accuracy_gain_from_more_data": by_size[-1][2] - by_size[0][2],
    }
    return Result(metrics=metrics, artifacts={"fitting": str(plot)}, history=big_hist)


# --- p2.training.regularization ----------------------------------------------------------------------


def run_regularization(config: Config, tracker: Tracker) -> Result:
    data = small_data(config)
    hidden = [512, 512]
    variants: dict[str, dict] = {
        "none": {},
        "L1": {"step": penalised_step(l1=config.l1)},
        "L2": {"step": penalised_step(l2=config.l2)},
        "weight decay (AdamW)": {"opt": lambda m: torch.optim.AdamW(m.parameters(), lr=config.lr, weight_decay=config.weight_decay)},
        "dropout": {"dropout": config.dropout, "input_dropout": config.input_dropout},
        "batch norm": {"norm": nn.BatchNorm1d},
        "batch norm + dropout": {"norm": nn.BatchNorm1d, "dropout": config.dropout, "input_dropout": config.input_dropout},
        "early stopping": {"early": True},
    }
    rows, weights = {}, {}
    for name, v in variants.items():
        seed_everything(config.seed)
        model = mlp(hidden, dropout=v.get("dropout", 0.0), norm=v.get("norm"), input_dropout=v.get("input_dropout", 0.0))
        opt = v["opt"](model) if "opt" in v else torch.optim.Adam(model.parameters(), lr=config.lr)
        cbs = [EarlyStopping("val_loss", patience=5)] if v.get("early") else []
        fitted = fit_classifier(model, data, opt, epochs=config.epochs, config=config, tracker=tracker, prefix=name, step=v.get("step"),
                                callbacks=cbs)
        hist = fitted.history
        rows[name] = {"val_acc": hist[-1]["val_acc"], "val_loss": hist[-1]["val_loss"], "test_acc": fitted.test_accuracy,
                      "test_loss": fitted.test_loss, "train_acc": train_accuracy(fitted.trainer, data)[0], "epochs": len(hist)}
        first = next(m for m in model if isinstance(m, nn.Linear))
        weights[name] = first.weight.detach().abs().flatten().numpy()
        tracker.log_metrics({f"{name}/val_acc": rows[name]["val_acc"]}, step=len(hist))
    base = rows["none"]["val_acc"]
    fig, axes = plt.subplots(1, 2, figsize=(13, 3.8))
    names = list(rows)
    x = np.arange(len(names))
    axes[0].bar(x - 0.2, [rows[n]["train_acc"] for n in names], 0.4, label="train")
    axes[0].bar(x + 0.2, [rows[n]["val_acc"] for n in names], 0.4, label="validation")
    axes[0].set_xticks(x, names, rotation=30, ha="right", fontsize=7)
    axes[0].set_ylim(0.7, 1.01)
    axes[0].set_title(f"regularisation ablation, {len(data.X_train)} training images", fontsize=9)
    axes[0].legend(fontsize=7)
    for name in ("none", "L1", "L2", "weight decay (AdamW)"):
        axes[1].hist(np.log10(weights[name] + 1e-12), bins=80, histtype="step", label=name)
    axes[1].set_xlabel("log10 |w| (first layer)")
    axes[1].set_title("L1 drives many weights to ~0; L2 and decay shrink them", fontsize=9)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    plot = tracker.log_figure(fig, "regularization")
    frac_zero = {n: float((weights[n] < 1e-3).mean()) for n in ("none", "L1")}
    # Each regulariser against none, on the test split (its strength is fixed in the config, never picked on these numbers).
    key = lambda n: n.split(" (")[0].replace(" + ", "_").replace(" ", "_")  # noqa: E731
    metrics: dict[str, float] = {}
    for n, r in rows.items():
        metrics[f"test_acc_{key(n)}"], metrics[f"test_loss_{key(n)}"] = r["test_acc"], r["test_loss"]
        if n != "none":
            metrics[f"test_acc_gain_{key(n)}"] = r["test_acc"] - rows["none"]["test_acc"]
            metrics[f"test_loss_reduction_{key(n)}"] = (rows["none"]["test_loss"] - r["test_loss"]) / rows["none"]["test_loss"]
    metrics.update({"l1_near_zero_weight_fraction": frac_zero["L1"], "none_near_zero_weight_fraction": frac_zero["none"],
                    "early_stopping_epochs": float(rows["early stopping"]["epochs"]),
                    "unregularized_generalization_gap": rows["none"]["train_acc"] - base})
    table = "; ".join(f"{n}: test acc {r['test_acc']:.3f}, test loss {r['test_loss']:.3f}" for n, r in rows.items())
    return Result(metrics=metrics, artifacts={"regularization": str(plot)},
                  notes=f"Each regulariser at its configured strength vs none, on the test split. {table}")


# --- p2.training.batchnorm ----------------------------------------------------------------------------


def run_batchnorm(config: Config, tracker: Tracker) -> Result:
    # 1. Ours vs torch's, on a batch, in training and evaluation mode.
    # batch norm judged by what it does to training, not by 'covariate shift', @santurkar2018batchnorm
    torch.manual_seed(config.seed)
    ours, ref = BatchNorm(32).double(), nn.BatchNorm1d(32).double()
    x = torch.randn(64, 32, dtype=torch.float64, requires_grad=True) * 3 + 2
    diff = float((ours(x) - ref(x)).detach().abs().max())
    g_o, g_r = torch.autograd.grad(ours(x).pow(2).sum(), x), torch.autograd.grad(ref(x).pow(2).sum(), x)
    diff = max(diff, float((g_o[0] - g_r[0]).abs().max()), float((ours.running_var - ref.running_var).abs().max()))
    ours.eval(), ref.eval()
    diff = max(diff, float((ours(x) - ref(x)).detach().abs().max()))
    # 2. A deep sigmoid MLP with and without batch norm, plain SGD at a high learning rate.
    data = classification_tensors("mnist5k", seed=config.seed)
    hidden = [128] * config.depth
    epochs = max(3, config.epochs // 8)
    curves, stds = {}, {}
    for name, norm in (("no batch norm", None), ("batch norm (ours)", BatchNorm)):
        seed_everything(config.seed)
        model = mlp(hidden, norm=norm, act=nn.Sigmoid)
        with torch.no_grad():  # spread of the activations through the depth, at initialisation
            h, per_layer = data.X_train[:512].flatten(1), []
            model.train()
            for layer in model[1:]:
                h = layer(h)
                if isinstance(layer, nn.Sigmoid):
                    per_layer.append(float(h.std()))
            stds[name] = per_layer
        opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
        curves[name] = fit_classifier(model, data, opt, epochs=epochs, config=config, tracker=tracker, prefix=name).history
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for name, hist in curves.items():
        axes[0].plot([h["epoch"] for h in hist], [h["val_acc"] for h in hist], "o-", label=name)
        axes[1].plot(range(1, len(stds[name]) + 1), stds[name], "o-", label=name)
    axes[0].set_title(f"{config.depth}-layer sigmoid MLP, SGD lr 0.5: validation accuracy", fontsize=9)
    axes[0].set_xlabel("epoch")
    axes[0].legend(fontsize=7)
    axes[1].set_title("std of activations per layer at initialisation", fontsize=9)
    axes[1].set_xlabel("layer")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    plot = tracker.log_figure(fig, "batchnorm")
    metrics = {"max_abs_diff_vs_torch": diff, "val_acc_with_bn": curves["batch norm (ours)"][-1]["val_acc"],
               "val_acc_without_bn": curves["no batch norm"][-1]["val_acc"]}
    metrics["bn_val_acc_gain"] = metrics["val_acc_with_bn"] - metrics["val_acc_without_bn"]
    return Result(metrics=metrics, artifacts={"batchnorm": str(plot)})


fit = Experiment(Config, run_fit)
regularization = Experiment(Config, run_regularization)
batchnorm = Experiment(Config, run_batchnorm)
