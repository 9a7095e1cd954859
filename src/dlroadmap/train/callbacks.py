"""Callbacks: the engineering around training, kept out of the training step.

Each hook receives the Trainer. A callback that has state to survive a restart implements
`state_dict()` / `load_state_dict()`; the Trainer stores it in the checkpoint.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dlroadmap.train.trainer import Trainer


class Callback:
    def on_fit_start(self, trainer: "Trainer") -> None: ...
    def on_train_batch_end(self, trainer: "Trainer") -> None: ...
    def on_epoch_metrics(self, trainer: "Trainer", metrics: dict[str, float]) -> None:
        """Called with the epoch's metrics before they are logged: add to them here."""

    def on_epoch_end(self, trainer: "Trainer", metrics: dict[str, float]) -> None: ...
    def on_fit_end(self, trainer: "Trainer") -> None: ...

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


# Callbacks that every Trainer built inside `with attached(...)` gets besides its own: how a tuner watches any
# node's training (a pruner reading each epoch's validation metric) without the node's code knowing.
_ATTACHED: contextvars.ContextVar[tuple[Callback, ...]] = contextvars.ContextVar("dlr_attached_callbacks", default=())


@contextlib.contextmanager
def attached(*callbacks: Callback):
    token = _ATTACHED.set(_ATTACHED.get() + callbacks)
    try:
        yield
    finally:
        _ATTACHED.reset(token)


def attached_callbacks() -> tuple[Callback, ...]:
    return _ATTACHED.get()


def _better(mode: str, value: float, best: float, min_delta: float) -> bool:
    return value < best - min_delta if mode == "min" else value > best + min_delta


class EarlyStopping(Callback):
    """Stop when `monitor` has not improved by `min_delta` for `patience` epochs."""

    def __init__(self, monitor: str = "val_loss", patience: int = 5, mode: str = "min", min_delta: float = 0.0):
        if mode not in ("min", "max"):
            raise ValueError("mode must be 'min' or 'max'")
        self.monitor, self.patience, self.mode, self.min_delta = monitor, patience, mode, min_delta
        self.best = math.inf if mode == "min" else -math.inf
        self.wait = 0
        self.stopped_epoch: int | None = None

    def on_epoch_end(self, trainer: "Trainer", metrics: dict[str, float]) -> None:
        # stop after `patience` epochs without a new best validation score, @prechelt1998early
        if self.monitor not in metrics:
            return
        if _better(self.mode, metrics[self.monitor], self.best, self.min_delta):
            self.best, self.wait = metrics[self.monitor], 0
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self.stopped_epoch = trainer.epoch
                trainer.should_stop = True

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "wait": self.wait}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.wait = float(state["best"]), int(state["wait"])


class ModelCheckpoint(Callback):
    """Save a resumable checkpoint every `every_n_steps` steps and at each epoch end,
    and the best weights so far (by `monitor`) to `<dir>/best.safetensors`."""

    def __init__(self, dirpath: str | Path, every_n_steps: int | None = None, monitor: str | None = "val_loss",
                 mode: str = "min", keep: int = 2):
        self.dirpath = Path(dirpath)
        self.every_n_steps, self.monitor, self.mode, self.keep = every_n_steps, monitor, mode, keep
        self.best = math.inf if mode == "min" else -math.inf
        self.best_path = self.dirpath / "best.safetensors"

    def on_train_batch_end(self, trainer: "Trainer") -> None:
        if self.every_n_steps and trainer.global_step % self.every_n_steps == 0:
            trainer.save_checkpoint(self.dirpath, keep=self.keep)

    def on_epoch_end(self, trainer: "Trainer", metrics: dict[str, float]) -> None:
        if self.monitor and self.monitor in metrics and _better(self.mode, metrics[self.monitor], self.best, 0.0):
            from dlroadmap.io import atomic_path
            from dlroadmap.train import distributed
            from dlroadmap.train.checkpoint import save_weights

            self.best = metrics[self.monitor]
            if distributed.is_main():  # under DDP every rank holds the same weights: rank 0 writes them
                with atomic_path(self.best_path, suffix=".safetensors") as tmp:
                    save_weights(trainer.model.state_dict(), tmp, metadata={"epoch": str(trainer.epoch), self.monitor: repr(self.best)})
        # Saved after the best weights so that a resume from here also knows the best so far.
        trainer.save_checkpoint(self.dirpath, keep=self.keep)

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = float(state["best"])


class LearningRateMonitor(Callback):
    """Record the learning rate of each parameter group into the epoch metrics."""

    def on_epoch_metrics(self, trainer: "Trainer", metrics: dict[str, float]) -> None:
        groups = trainer.optimizer.param_groups
        for i, g in enumerate(groups):
            metrics["lr" if len(groups) == 1 else f"lr_group{i}"] = float(g["lr"])


class EMA(Callback):
    """An exponential moving average of the weights, updated after every optimiser step (Polyak & Juditsky
    1992; DDPM samples from it, decay 0.9999):

        shadow <- d * shadow + (1 - d) * weights,   d = min(decay, (1 + n) / (10 + n)) with warm-up, else decay

    n counts the updates so far. Without warm-up, a short run keeps decay^n of the initial weights (0.999 after
    1,000 steps: 37% of the random start); warm-up averages plainly at first and reaches `decay` later.
    `module` is a frozen copy of the model holding the average (buffers, e.g. batch-norm statistics, copied),
    the one to evaluate or sample from. The shadow is part of the checkpoint, so a resumed run averages on
    exactly. Without warm-up it equals torch.optim.swa_utils.AveragedModel with get_ema_multi_avg_fn(decay)
    started from the same initial weights (tests/test_trainer.py).
    """

    def __init__(self, decay: float = 0.999, warmup: bool = True):
        if not 0.0 < decay < 1.0:
            raise ValueError("decay must be in (0, 1)")
        self.decay, self.warmup = decay, warmup
        self.updates = 0
        self.module: Any = None
        self._saved: dict[str, Any] | None = None

    def on_fit_start(self, trainer: "Trainer") -> None:
        import copy

        if self.module is None:
            self.module = copy.deepcopy(trainer.model).eval().requires_grad_(False)
        if self._saved is not None:                  # a checkpoint was loaded before the model was copied
            self.module.load_state_dict(self._saved)
            self._saved = None

    def on_train_batch_end(self, trainer: "Trainer") -> None:
        import torch

        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates)) if self.warmup else self.decay
        with torch.no_grad():
            for avg, p in zip(self.module.parameters(), trainer.model.parameters()):
                avg.lerp_(p.detach(), 1.0 - d)       # avg + (1 - d) (p - avg) = d avg + (1 - d) p
            for avg, b in zip(self.module.buffers(), trainer.model.buffers()):
                avg.copy_(b)

    def state_dict(self) -> dict[str, Any]:
        weights = self.module.state_dict() if self.module is not None else self._saved
        return {"updates": self.updates, "weights": {k: v.detach().cpu().clone() for k, v in (weights or {}).items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.updates = int(state["updates"])
        if self.module is not None:
            self.module.load_state_dict(state["weights"])
        else:
            self._saved = state["weights"]
