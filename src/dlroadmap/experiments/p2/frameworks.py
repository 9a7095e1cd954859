"""Phase 2, Frameworks: PyTorch (preferred) and Keras 3 (the alternative), on the same data.

  p2.frameworks.pytorch  the core of PyTorch in one place: tensors, autograd, nn.Module, an
                         optimizer and a plain training loop. The same models trained by the
                         Trainer end with bit-identical weights: the Trainer is that loop plus
                         engineering, nothing hidden.
  p2.frameworks.keras    the same MLP and small CNN written in Keras 3 on its torch backend
                         (KERAS_BACKEND=torch, no TensorFlow), trained with the same
                         hyperparameters; accuracies must agree within a stated margin.

What differs between the two (and why results are close, not equal):
  - initialisation: Keras Dense/Conv2D default to Glorot-uniform with zero bias; torch's
    nn.Linear/Conv2d use Kaiming-uniform(a = sqrt(5)) with a small uniform bias;
  - Adam's epsilon: 1e-7 in Keras, 1e-8 in torch (set explicitly to the same value here);
  - images are channels-last (N, H, W, C) in Keras, channels-first (N, C, H, W) in torch;
  - Keras' model.fit owns the loop (shuffling, batching, metrics); in torch you write it.
"""

from __future__ import annotations

import os
import time
from typing import ClassVar

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from dlroadmap.data import TensorLoader, classification_tensors
from dlroadmap.evaluate.metrics import accuracy
from dlroadmap.experiments.base import Experiment, ExperimentConfig, Result
from dlroadmap.train import Tracker, seed_everything
from dlroadmap.train.fit import fit_classifier


class Config(ExperimentConfig):
    epochs: int = Field(8, ge=1, le=500)
    batch_size: int = Field(64, ge=1, le=8192)
    lr: float = Field(1e-3, gt=0, le=1)

    QUICK: ClassVar[dict] = {}


def torch_mlp() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Dropout(0.2), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10))


class TorchCNN(nn.Module):
    """conv 32 -> pool -> conv 64 -> pool -> dropout -> dense: the same network as `keras_cnn`."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 32, 3), nn.Conv2d(32, 64, 3)
        self.drop = nn.Dropout(0.3)
        self.fc = nn.Linear(64 * 5 * 5, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.unsqueeze(1) if x.ndim == 3 else x                  # (N, 28, 28) -> (N, 1, 28, 28)
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)                # -> (N, 32, 13, 13)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)                # -> (N, 64, 5, 5)
        return self.fc(self.drop(x.flatten(1)))


def plain_loop(model: nn.Module, data, config: Config) -> list[float]:
    """A PyTorch training loop with nothing added: returns the mean training loss per epoch."""
    # PyTorch's imperative loop: forward, backward, step, @paszke2019pytorch
    seed_everything(config.seed)  # the Trainer seeds at the start of fit: do the same
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    loader = TensorLoader(data.X_train, data.y_train, batch_size=config.batch_size, shuffle=True, seed=config.seed)
    losses = []
    for epoch in range(config.epochs):
        loader.set_epoch(epoch)
        model.train()
        total, seen = 0.0, 0
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)   # forward
            opt.zero_grad(set_to_none=True)
            loss.backward()                       # autograd fills p.grad for every parameter
            opt.step()                            # p <- p - update(p.grad)
            total += loss.item() * len(x)
            seen += len(x)
        losses.append(total / seen)
    return losses


def with_trainer(model: nn.Module, data, config: Config, tracker: Tracker, prefix: str) -> list[dict]:
    """The same training through the Trainer: Adam, same batches. On the CPU in fp32, NCHW and eager, as the plain loop runs
    (left to itself the Trainer may pick channels-last for the CNN where that measures faster: other float sums)."""
    same_as_plain = config.model_copy(update={"device": "cpu", "precision": "fp32"})
    return fit_classifier(model, data, torch.optim.Adam(model.parameters(), lr=config.lr), epochs=config.epochs, config=same_as_plain,
                          tracker=tracker, prefix=prefix, batch_size=config.batch_size, memory_format="contiguous", compile=False).history


def test_accuracy(model: nn.Module, data) -> float:
    model.eval()
    with torch.no_grad():
        return accuracy(model(data.X_test), data.y_test)


def run_pytorch(config: Config, tracker: Tracker) -> Result:
    data = classification_tensors("mnist5k", seed=config.seed)
    metrics, curves = {}, {}
    for name, build in (("mlp", torch_mlp), ("cnn", TorchCNN)):
        seed_everything(config.seed)
        a = build()
        seed_everything(config.seed)
        b = build()
        plain = plain_loop(a, data, config)
        hist = with_trainer(b, data, config, tracker, name)
        diff = max(float((p - q).abs().max()) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
        metrics[f"{name}_max_weight_diff_plain_vs_trainer"] = diff
        metrics[f"{name}_test_accuracy"] = test_accuracy(b, data)
        metrics[f"{name}_parameters"] = float(sum(p.numel() for p in b.parameters()))
        curves[name] = (plain, [h["train_loss"] for h in hist])
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for name, (plain, trainer) in curves.items():
        ax.plot(range(1, len(plain) + 1), plain, "o-", label=f"{name}: plain loop")
        ax.plot(range(1, len(trainer) + 1), trainer, "x--", ms=8, label=f"{name}: Trainer")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_title("plain PyTorch loop vs Trainer: the same numbers", fontsize=9)
    ax.legend(fontsize=7)
    plot = tracker.log_figure(fig, "plain_vs_trainer")
    return Result(metrics=metrics, artifacts={"plain_vs_trainer": str(plot)})


# --- Keras 3 on the torch backend ------------------------------------------------------------------


def _keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras

    if keras.backend.backend() != "torch":
        from dlroadmap.errors import UserError

        raise UserError(f"Keras is using the {keras.backend.backend()!r} backend; set KERAS_BACKEND=torch before starting Python")
    return keras


def keras_mlp(keras):
    # the Sequential API of ch. 3, @chollet2021dlwp
    L = keras.layers
    return keras.Sequential([keras.Input((28, 28)), L.Flatten(), L.Dense(256, activation="relu"), L.Dropout(0.2),
                             L.Dense(128, activation="relu"), L.Dense(10)])


def keras_cnn(keras):
    L = keras.layers
    return keras.Sequential([keras.Input((28, 28, 1)), L.Conv2D(32, 3, activation="relu"), L.MaxPooling2D(),
                             L.Conv2D(64, 3, activation="relu"), L.MaxPooling2D(), L.Flatten(), L.Dropout(0.3), L.Dense(10)])


def run_keras(config: Config, tracker: Tracker) -> Result:
    keras = _keras()
    data = classification_tensors("mnist5k", seed=config.seed)
    np_ = lambda t: t.numpy()  # noqa: E731
    metrics: dict[str, float] = {}
    curves = {}
    for name, k_build, t_build, shape in (("mlp", keras_mlp, torch_mlp, (28, 28)), ("cnn", keras_cnn, TorchCNN, (28, 28, 1))):
        keras.utils.set_random_seed(config.seed)
        model = k_build(keras)
        model.compile(optimizer=keras.optimizers.Adam(config.lr, epsilon=1e-8),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
        t0 = time.perf_counter()
        hist = model.fit(np_(data.X_train).reshape(-1, *shape), np_(data.y_train), batch_size=config.batch_size, epochs=config.epochs,
                         validation_data=(np_(data.X_val).reshape(-1, *shape), np_(data.y_val)), verbose=0, shuffle=True)
        metrics[f"{name}_keras_seconds"] = time.perf_counter() - t0
        _, k_acc = model.evaluate(np_(data.X_test).reshape(-1, *shape), np_(data.y_test), verbose=0)
        seed_everything(config.seed)
        tm = t_build()
        t0 = time.perf_counter()
        t_hist = with_trainer(tm, data, config, tracker, f"{name}_torch")
        metrics[f"{name}_torch_seconds"] = time.perf_counter() - t0
        metrics[f"{name}_keras_test_accuracy"] = float(k_acc)
        metrics[f"{name}_torch_test_accuracy"] = test_accuracy(tm, data)
        metrics[f"{name}_accuracy_abs_diff"] = abs(metrics[f"{name}_keras_test_accuracy"] - metrics[f"{name}_torch_test_accuracy"])
        metrics[f"{name}_keras_parameters"] = float(model.count_params())
        metrics[f"{name}_torch_parameters"] = float(sum(p.numel() for p in tm.parameters()))
        curves[name] = (hist.history["val_accuracy"], [h["val_acc"] for h in t_hist])
    metrics["max_accuracy_abs_diff"] = max(metrics["mlp_accuracy_abs_diff"], metrics["cnn_accuracy_abs_diff"])
    metrics["same_parameter_counts"] = float(all(metrics[f"{n}_keras_parameters"] == metrics[f"{n}_torch_parameters"] for n in ("mlp", "cnn")))
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for name, (k, t) in curves.items():
        ax.plot(range(1, len(k) + 1), k, "o-", label=f"{name}: Keras 3 (torch backend)")
        ax.plot(range(1, len(t) + 1), t, "s--", label=f"{name}: PyTorch + Trainer")
    ax.set_xlabel("epoch")
    ax.set_title("validation accuracy, same architecture and hyperparameters", fontsize=9)
    ax.legend(fontsize=7)
    plot = tracker.log_figure(fig, "keras_vs_pytorch")
    return Result(metrics=metrics, artifacts={"keras_vs_pytorch": str(plot)},
                  notes="Differences: Glorot vs Kaiming-uniform init, channels-last vs channels-first, model.fit vs an explicit loop.")


pytorch = Experiment(Config, run_pytorch)
keras = Experiment(Config, run_keras)
