"""Phase 2, Feedforward Neural Networks.

  p2.fnn.backprop    backpropagation written out (models/mlp.py: manual_backward) compared with
                     torch.autograd on the same MLP and batch in float64; then an MLP trained through
                     the Trainer on the embedded 5,000-image MNIST subset (stratified 70/15/15 split)
                     with AdamW and a one-cycle LR schedule (Smith & Topin 2017, arXiv:1708.07120);
                     learning curves and the test confusion matrix go to the report
  p2.fnn.optimizers  gradient descent variants. From scratch: the same MLP (same initial weights,
                     same batches) trained on MNIST-5k by each optimizer of scratch/optim.py (SGD,
                     momentum, Nesterov, RMSProp, Adam, AdamW); each one's first steps are replayed
                     with torch.optim on identical weights and batches and the largest relative weight
                     difference is reported: the scratch versions are the torch algorithms, not
                     look-alikes. In PyTorch: torch.optim's versions train the same torch MLP through
                     the Trainer, same seed and batches.
"""

from __future__ import annotations

import copy
import time
from typing import ClassVar, Literal

import numpy as np
import torch
from pydantic import Field

from dlroadmap.data import TensorLoader, classification_tensors
from dlroadmap.deploy.bundle import save_trained
from dlroadmap.evaluate.metrics import accuracy, confusion_matrix
from dlroadmap.evaluate.plots import confusion_matrix_plot, learning_curves
from dlroadmap.experiments.base import Experiment, ExperimentConfig, PositiveInt, Result
from dlroadmap.models.mlp import MLP, autograd_grads, manual_backward
from dlroadmap.scratch import Tensor, nn, no_grad, optim  # the NumPy engine's nn, not torch.nn
from dlroadmap.train import EarlyStopping, LearningRateMonitor, ModelCheckpoint, Trainer, Tracker, seed_everything
from dlroadmap.train.fit import fit_classifier


# --- p2.fnn.backprop ----------------------------------------------------------------------


class BackpropConfig(ExperimentConfig):
    dataset: Literal["mnist5k", "digits", "mnist", "fashion-mnist"] = Field(
        "mnist5k", description="mnist5k/digits are embedded; mnist/fashion-mnist need DLR_DATA_DIR or a download")
    hidden: list[PositiveInt] = Field([512, 256], min_length=1, max_length=8, description="hidden layer widths")
    dropout: float = Field(0.2, ge=0.0, lt=1.0)
    epochs: int = Field(30, ge=1, le=1000)
    batch_size: int = Field(64, ge=1, le=65536)
    optimizer: Literal["adamw", "adam", "sgd", "rmsprop"] = "adamw"
    lr: float = Field(2e-3, gt=0.0, le=10.0, description="peak learning rate")
    weight_decay: float = Field(1e-4, ge=0.0, le=1.0)
    schedule: Literal["onecycle", "cosine", "constant"] = "onecycle"
    grad_clip: float | None = Field(None, gt=0.0)
    patience: int = Field(0, ge=0, description="early-stopping patience in epochs (0 = off)")
    checkpoint_every: int | None = Field(None, ge=1, description="also checkpoint every N steps (for kill/resume)")

    QUICK: ClassVar[dict] = {"epochs": 12, "hidden": [256, 128]}


def make_optimizer(name: str, params, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, weight_decay=weight_decay)
    return torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)


def make_scheduler(name: str, opt: torch.optim.Optimizer, lr: float, total_steps: int):
    if name == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total_steps)
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps)
    return None


def gradient_check(model: MLP, x: torch.Tensor, y: torch.Tensor) -> float:
    """Max |manual - autograd| over all gradients, in float64 so only the maths can differ."""
    m64 = copy.deepcopy(model).double()
    x64 = x.double()
    loss_m, manual = manual_backward(m64, x64, y)
    loss_a, auto = autograd_grads(m64, x64, y)
    diffs = [(manual[k] - auto[k]).abs().max().item() for k in auto]
    return max(diffs + [abs(loss_m.item() - loss_a.item())])


def run_backprop(config: BackpropConfig, tracker: Tracker) -> Result:
    seed_everything(config.seed)
    data = classification_tensors(config.dataset, seed=config.seed)
    in_features = int(torch.tensor(data.shape).prod())
    model = MLP(in_features, config.hidden, data.num_classes, dropout=config.dropout)

    # 1. Backprop by hand vs autograd on one batch.
    grad_diff = gradient_check(model, data.X_train[:128], data.y_train[:128])

    # 2. Train through the Trainer.
    train = TensorLoader(data.X_train, data.y_train, batch_size=config.batch_size, shuffle=True, seed=config.seed)
    val = TensorLoader(data.X_val, data.y_val, batch_size=1024)
    test = TensorLoader(data.X_test, data.y_test, batch_size=1024)
    opt = make_optimizer(config.optimizer, model.parameters(), config.lr, config.weight_decay)
    sched = make_scheduler(config.schedule, opt, config.lr, config.epochs * len(train))
    ckpt_dir = tracker.run_dir / "checkpoints"
    callbacks = [ModelCheckpoint(ckpt_dir, every_n_steps=config.checkpoint_every, monitor="val_acc", mode="max"), LearningRateMonitor()]
    if config.patience:
        callbacks.append(EarlyStopping("val_acc", patience=config.patience, mode="max"))
    trainer = Trainer(model, opt, max_epochs=config.epochs, scheduler=sched, scheduler_interval="step",
                      device=config.device, precision=config.precision, grad_clip=config.grad_clip,
                      callbacks=callbacks, tracker=tracker, seed=config.seed, metrics={"acc": accuracy},
                      description=f"mlp {config.dataset}")
    history = trainer.fit(train, val, resume=config.resume)

    out, y, test_loss = trainer.predict(test)
    test_acc = accuracy(out, y)
    cm = confusion_matrix(y, out, data.num_classes)

    # Final weights + what it takes to rebuild and serve the model: the bundle `dlr export` reads.
    bundle = save_trained(tracker.run_dir / "model", model, data, name=f"mlp-{config.dataset}", family="mlp",
                          kwargs={"in_features": in_features, "hidden": config.hidden, "out_features": data.num_classes, "dropout": config.dropout},
                          source={"node": "p2.fnn.backprop", "run_dir": str(tracker.run_dir), "test_accuracy": test_acc})
    tracker.log_artifact(bundle / "model.safetensors")

    plots = {
        "learning_curves": tracker.log_figure(learning_curves(history, (("train_loss", "val_loss"), ("val_acc",)), "MLP on " + config.dataset), "learning_curves"),
        "confusion_matrix": tracker.log_figure(confusion_matrix_plot(cm, data.classes, f"test confusion matrix (acc {test_acc:.3f})"), "confusion_matrix"),
    }
    metrics = {
        "test_accuracy": test_acc,
        "test_loss": test_loss,
        "best_val_accuracy": max(h["val_acc"] for h in history),
        "manual_grad_max_abs_diff": grad_diff,
        "epochs_trained": float(len(history)),
        "parameters": float(sum(p.numel() for p in model.parameters())),
    }
    return Result(metrics=metrics, artifacts={**{k: str(v) for k, v in plots.items()}, "model": str(bundle)},
                  history=history)


# --- p2.fnn.optimizers --------------------------------------------------------------------

# name -> (optimizer class name, keyword arguments): learning rates in each method's usual range.
OPTIMIZERS: dict[str, tuple[str, dict]] = {
    "sgd": ("SGD", {"lr": 0.1}),
    "momentum": ("SGD", {"lr": 0.05, "momentum": 0.9}),
    "nesterov": ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True}),
    "rmsprop": ("RMSprop", {"lr": 1e-3}),
    "adam": ("Adam", {"lr": 1e-3}),
    "adamw": ("AdamW", {"lr": 1e-3, "weight_decay": 1e-2}),
}


class OptimizersConfig(ExperimentConfig):
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


def evaluate_scratch(model: nn.Module, X: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    model.eval()
    with no_grad():
        logits = model(Tensor(X))
        loss = nn.cross_entropy(logits, y).item()
    model.train()
    return loss, accuracy(logits.data, y)


def run_optimizers(config: OptimizersConfig, tracker: Tracker) -> Result:
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
            val_loss, val_acc = evaluate_scratch(model, Xva, yva)
            curve.append((total / len(Xtr), val_loss, val_acc))
            tracker.log_metrics({f"{name}/train_loss": total / len(Xtr), f"{name}/val_loss": val_loss, f"{name}/val_acc": val_acc}, step=epoch + 1)
        curves[name] = curve
        _, test_acc = evaluate_scratch(model, Xte, yte)
        metrics[f"{name}_test_accuracy"] = test_acc
        metrics[f"{name}_seconds"] = time.perf_counter() - t0

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


def torch_optimizers(config: OptimizersConfig, data, tracker: Tracker, metrics: dict[str, float]) -> dict[str, list[tuple[float, float, float]]]:
    """The torch.optim versions, each training the same torch MLP through the Trainer."""
    curves = {}
    for name, (cls, kwargs) in TORCH_OPTIMIZERS.items():
        seed_everything(config.seed)
        model = MLP(784, [config.hidden], data.num_classes)
        opt = getattr(torch.optim, cls)(model.parameters(), **kwargs)   # e.g. torch.optim.Adam(params, lr=1e-3)
        fitted = fit_classifier(model, data, opt, epochs=config.epochs, config=config, tracker=tracker, prefix=f"torch_{name}",
                                batch_size=config.batch_size, description=f"torch {name}")
        hist = fitted.history
        metrics[f"torch_{name}_test_accuracy"] = fitted.test_accuracy
        curves[name] = [(h["train_loss"], h["val_loss"], h["val_acc"]) for h in hist]
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


backprop = Experiment(BackpropConfig, run_backprop)
optimizers = Experiment(OptimizersConfig, run_optimizers)
