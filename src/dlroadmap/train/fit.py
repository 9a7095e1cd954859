"""Train a classifier through the Trainer, then score it on the test split: the one helper the lessons share.

Each lesson still builds its own optimiser (and schedule) in plain sight and passes it in; this
helper does the rest the same way everywhere: shuffled batches that depend only on (seed, epoch),
per-epoch validation, metrics streamed to the tracker under `prefix/` while training runs (so MLflow
or TensorBoard show the curves live), and the test split scored once at the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from dlroadmap.data.loader import TensorLoader
from dlroadmap.evaluate.metrics import accuracy
from dlroadmap.train.trainer import Trainer

# (optimizer, total optimizer steps) -> an LR scheduler stepped after every batch
Schedule = Callable[[torch.optim.Optimizer, int], Any]


@dataclass
class Fitted:
    trainer: Trainer
    history: list[dict[str, float]]
    test_accuracy: float
    test_loss: float
    test_outputs: torch.Tensor   # (N, classes) float32 logits
    test_targets: torch.Tensor   # (N,)


def fit_classifier(model: nn.Module, data: Any, optimizer: torch.optim.Optimizer, *, epochs: int, config: Any,
                   tracker: Any = None, prefix: str = "", batch_size: int = 64, schedule: Schedule | None = None,
                   eval_batch_size: int = 1000, **trainer_kwargs: Any) -> Fitted:
    """Train `model` on `data` (a `dlroadmap.data.Tensors`) for `epochs`, validate each epoch, score the test split.

    `config` supplies device, precision and seed (every ExperimentConfig has them). Extra keyword
    arguments go to the Trainer (grad_clip, step, callbacks, description, ...). The model comes back in
    the default (NCHW) layout even where the Trainer measured channels-last faster and trained in it.
    """
    train = TensorLoader(data.X_train, data.y_train, batch_size=batch_size, shuffle=True, seed=config.seed)
    scheduler = schedule(optimizer, epochs * len(train)) if schedule is not None else None
    trainer_kwargs.setdefault("description", prefix or "train")
    trainer = Trainer(model, optimizer, max_epochs=epochs, scheduler=scheduler, scheduler_interval="step", device=config.device,
                      precision=config.precision, seed=config.seed, metrics={"acc": accuracy}, tracker=tracker,
                      log_prefix=prefix, **trainer_kwargs)
    history = trainer.fit(train, TensorLoader(data.X_val, data.y_val, batch_size=eval_batch_size))
    out, y, loss = trainer.predict(TensorLoader(data.X_test, data.y_test, batch_size=eval_batch_size))
    # The same weights in either layout, but a convolution sums in another order in each: a copy rebuilt from
    # the saved weights (a bundle, torch.hub, an export) must compute exactly what this model computes.
    model.to(memory_format=torch.contiguous_format)
    return Fitted(trainer, history, accuracy(out, y), loss, out, y)


def one_cycle(max_lr: float) -> Schedule:
    """Smith & Topin's one-cycle policy (arXiv:1708.07120): warm up to max_lr, then anneal far below it."""
    # the one-cycle policy, @smith2019superconvergence
    return lambda opt, total: torch.optim.lr_scheduler.OneCycleLR(opt, max_lr, total_steps=total)
