"""p2.fnn.backprop: backpropagation, checked by hand, then used to train an MLP on MNIST.

Two parts:
 1. Backprop written out (dlroadmap/models/mlp.py: manual_backward) is compared with torch.autograd
    on the same MLP and batch in float64: the largest absolute gradient difference is reported.
 2. An MLP is trained through the Trainer on the embedded 5,000-image MNIST subset
    (stratified 70/15/15 split), with AdamW and a one-cycle LR schedule (Smith & Topin 2017,
    arXiv:1708.07120); learning curves and the test confusion matrix go to the report.
"""

from __future__ import annotations

import copy
from typing import ClassVar, Literal

import torch
from pydantic import Field

from dlroadmap.data import TensorLoader, classification_tensors
from dlroadmap.evaluate.metrics import accuracy, confusion_matrix
from dlroadmap.evaluate.plots import confusion_matrix_plot, learning_curves
from dlroadmap.deploy.bundle import save_trained
from dlroadmap.experiments.base import ExperimentConfig, Result
from dlroadmap.models.mlp import MLP, autograd_grads, manual_backward
from dlroadmap.train import EarlyStopping, LearningRateMonitor, ModelCheckpoint, Trainer, Tracker, seed_everything


class Config(ExperimentConfig):
    dataset: Literal["mnist5k", "digits", "mnist", "fashion-mnist"] = Field(
        "mnist5k", description="mnist5k/digits are embedded; mnist/fashion-mnist need DLR_DATA_DIR or a download")
    hidden: list[int] = Field([512, 256], min_length=1, max_length=8, description="hidden layer widths")
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


def run(config: Config, tracker: Tracker) -> Result:
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
