"""p2.fnn.optimizers: gradient descent variants, from scratch and in PyTorch.

1. From scratch: the same MLP (same initial weights, same batches) is trained on MNIST-5k by each
   optimizer of dlroadmap/scratch/optim.py: SGD, SGD + momentum, SGD + Nesterov momentum, RMSProp,
   Adam, AdamW. Before training, each optimizer's first steps are replayed with torch.optim on
   identical weights and batches, and the largest relative difference in the weights is
   reported: the scratch versions are the torch algorithms, not look-alikes.
2. In PyTorch: torch.optim's SGD, SGD + momentum, RMSprop, Adam and AdamW train the same torch
   MLP through the Trainer, same seed and batches. Each family's curves share one plot.
"""

from __future__ import annotations

import time
from typing import ClassVar

import numpy as np
from pydantic import Field

from dlroadmap.data import classification_tensors
from dlroadmap.evaluate.metrics import accuracy
from dlroadmap.experiments.base import ExperimentConfig, Result
from dlroadmap.scratch import Tensor, nn, no_grad, optim
from dlroadmap.train import Tracker

# name -> (optimizer class name, keyword arguments): learning rates in each method's usual range.
OPTIMIZERS: dict[str, tuple[str, dict]] = {
    "sgd": ("SGD", {"lr": 0.1}),
    "momentum": ("SGD", {"lr": 0.05, "momentum": 0.9}),
    "nesterov": ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True}),
    "rmsprop": ("RMSprop", {"lr": 1e-3}),
    "adam": ("Adam", {"lr": 1e-3}),
    "adamw": ("AdamW", {"lr": 1e-3, "weight_decay": 1e-2}),
}


class Config(ExperimentConfig):
    dataset: str = Field("mnist5k", pattern="^(mnist5k|digits|mnist|fashion-mnist)$")
    hidden: int = Field(256, ge=1, le=4096)
    epochs: int = Field(30, ge=1, le=500)
    batch_size: int = Field(64, ge=1, le=8192)
    optimizers: list[str] = Field(list(OPTIMIZERS), min_length=1, description=f"subset of {', '.join(OPTIMIZERS)}")
    check_steps: int = Field(10, ge=1, le=1000, description="steps replayed against torch.optim")

    QUICK: ClassVar[dict] = {"epochs": 12}


def build(in_features: int, hidden: int, classes: int, seed: int, dtype=np.float32) -> nn.Sequential:
    rng = np.random.default_rng(seed)
    return nn.Sequential(nn.Linear(in_features, hidden, rng=rng, dtype=dtype), nn.ReLU(), nn.Linear(hidden, classes, rng=rng, dtype=dtype))


def torch_agreement(name: str, X: np.ndarray, y: np.ndarray, hidden: int, steps: int, seed: int) -> float:
    """Max relative weight difference between scratch and torch.optim after `steps` identical steps
    (in float64, so what remains is the algorithm, not rounding)."""
    import torch
    import torch.nn.functional as F

    cls, kwargs = OPTIMIZERS[name]
    X = X.astype(np.float64)
    ours = build(X.shape[1], hidden, int(y.max()) + 1, seed, dtype=np.float64)
    theirs = torch.nn.Sequential(torch.nn.Linear(X.shape[1], hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, int(y.max()) + 1)).double()
    with torch.no_grad():
        for (_, p), tp in zip(ours.named_parameters(), theirs.parameters()):
            tp.copy_(torch.from_numpy(p.data))
    o_opt, t_opt = getattr(optim, cls)(ours.parameters(), **kwargs), getattr(torch.optim, cls)(theirs.parameters(), **kwargs)
    for s in range(steps):
        xb, yb = X[s * 32:(s + 1) * 32], y[s * 32:(s + 1) * 32]
        o_opt.zero_grad()
        nn.cross_entropy(ours(Tensor(xb)), yb).backward()
        o_opt.step()
        t_opt.zero_grad()
        F.cross_entropy(theirs(torch.from_numpy(xb)), torch.from_numpy(yb)).backward()
        t_opt.step()
    worst = 0.0
    for p, tp in zip(ours.parameters(), theirs.parameters()):
        t = tp.detach().numpy()
        worst = max(worst, float(np.max(np.abs(p.data - t) / (np.abs(t) + 1e-6))))
    return worst


def evaluate(model: nn.Module, X: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    model.eval()
    with no_grad():
        logits = model(Tensor(X))
        loss = nn.cross_entropy(logits, y).item()
    model.train()
    return loss, accuracy(logits.data, y)


def run(config: Config, tracker: Tracker) -> Result:
    unknown = set(config.optimizers) - set(OPTIMIZERS)
    if unknown:
        from dlroadmap.errors import UserError

        raise UserError(f"unknown optimizer(s) {sorted(unknown)}; choose from {', '.join(OPTIMIZERS)}")
    data = classification_tensors(config.dataset, seed=config.seed)
    flat = lambda t: t.reshape(len(t), -1).numpy().astype(np.float32)  # noqa: E731
    Xtr, ytr = flat(data.X_train), data.y_train.numpy()
    Xva, yva = flat(data.X_val), data.y_val.numpy()
    Xte, yte = flat(data.X_test), data.y_test.numpy()
    n_batches = -(-len(Xtr) // config.batch_size)

    metrics: dict[str, float] = {}
    curves: dict[str, list[tuple[float, float, float]]] = {}
    agreement = []
    for name in config.optimizers:
        agreement.append(torch_agreement(name, Xtr, ytr, 32, config.check_steps, config.seed))
        model = build(Xtr.shape[1], config.hidden, data.num_classes, config.seed)  # same start for every optimizer
        cls, kwargs = OPTIMIZERS[name]
        opt = getattr(optim, cls)(model.parameters(), **kwargs)
        t0 = time.perf_counter()
        curve = []
        for epoch in range(config.epochs):
            order = np.random.default_rng(config.seed * 1000 + epoch).permutation(len(Xtr))  # same batches for all
            total = 0.0
            for b in range(n_batches):
                idx = order[b * config.batch_size:(b + 1) * config.batch_size]
                loss = nn.cross_entropy(model(Tensor(Xtr[idx])), ytr[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += loss.item() * len(idx)
            val_loss, val_acc = evaluate(model, Xva, yva)
            curve.append((total / len(Xtr), val_loss, val_acc))
            tracker.log_metrics({f"{name}/train_loss": total / len(Xtr), f"{name}/val_loss": val_loss, f"{name}/val_acc": val_acc}, step=epoch + 1)
        curves[name] = curve
        _, test_acc = evaluate(model, Xte, yte)
        metrics[f"{name}_test_accuracy"] = test_acc
        metrics[f"{name}_seconds"] = time.perf_counter() - t0

    metrics["best_test_accuracy"] = max(metrics[f"{n}_test_accuracy"] for n in config.optimizers)
    metrics["max_rel_diff_vs_torch_optim"] = max(agreement)
    plot = tracker.log_figure(_curves_plot(curves, "Gradient descent variants on the scratch engine (same init, same batches)"), "optimizer_curves")
    torch_curves = torch_optimizers(config, data, tracker, metrics)
    plot_t = tracker.log_figure(_curves_plot(torch_curves, "torch.optim through the Trainer (same init, same batches)"), "optimizer_curves_torch")
    return Result(metrics=metrics, artifacts={"optimizer_curves": str(plot), "optimizer_curves_torch": str(plot_t)},
                  history=[{"epoch": float(e + 1), **{f"{n}_val_acc": c[e][2] for n, c in curves.items()}} for e in range(config.epochs)])


TORCH_OPTIMIZERS: dict[str, tuple[str, dict]] = {
    "sgd": ("SGD", {"lr": 0.1}),
    "momentum": ("SGD", {"lr": 0.05, "momentum": 0.9}),
    "rmsprop": ("RMSprop", {"lr": 1e-3}),
    "adam": ("Adam", {"lr": 1e-3}),
    "adamw": ("AdamW", {"lr": 1e-3, "weight_decay": 1e-2}),
}


def torch_optimizers(config: Config, data, tracker: Tracker, metrics: dict[str, float]) -> dict[str, list[tuple[float, float, float]]]:
    """The torch.optim versions, each training the same torch MLP through the Trainer."""
    import torch

    from dlroadmap.data import TensorLoader
    from dlroadmap.models.mlp import MLP
    from dlroadmap.train import Trainer, seed_everything

    curves = {}
    for name, (cls, kwargs) in TORCH_OPTIMIZERS.items():
        seed_everything(config.seed)
        model = MLP(784, [config.hidden], data.num_classes)
        opt = getattr(torch.optim, cls)(model.parameters(), **kwargs)
        trainer = Trainer(model, opt, max_epochs=config.epochs, device=config.device, precision=config.precision, seed=config.seed,
                          metrics={"acc": accuracy}, description=f"torch {name}")
        hist = trainer.fit(TensorLoader(data.X_train, data.y_train, batch_size=config.batch_size, shuffle=True, seed=config.seed),
                           TensorLoader(data.X_val, data.y_val, batch_size=1000))
        for h in hist:
            tracker.log_metrics({f"torch_{name}/val_acc": h["val_acc"], f"torch_{name}/train_loss": h["train_loss"]}, step=int(h["epoch"]))
        out, y, _ = trainer.predict(TensorLoader(data.X_test, data.y_test, batch_size=1000))
        metrics[f"torch_{name}_test_accuracy"] = accuracy(out, y)
        curves[name] = [(h["train_loss"], h["val_loss"], h["val_acc"]) for h in hist]
    metrics["torch_best_test_accuracy"] = max(metrics[f"torch_{n}_test_accuracy"] for n in TORCH_OPTIMIZERS)
    return curves


def _curves_plot(curves: dict[str, list[tuple[float, float, float]]], title: str):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for name, curve in curves.items():
        epochs = np.arange(1, len(curve) + 1)
        for ax, i in zip(axes, range(3)):
            ax.plot(epochs, [c[i] for c in curve], marker="o", ms=3, label=name)
    for ax, title in zip(axes, ("train loss", "validation loss", "validation accuracy")):
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].set_yscale("log")
    axes[2].legend()
    fig.suptitle(title)
    fig.tight_layout()
    return fig
