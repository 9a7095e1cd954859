"""Stopping bad trials early: Trainer callbacks that hand each epoch's validation metric to a tuner.

A tuner attaches them around a trial (`train.callbacks.attached`), so every Trainer the node builds reports
to it without the node knowing it is being tuned. Optuna's pruners (median, successive halving, Hyperband)
decide from the values reported so far whether the trial is worth finishing; Ray Tune's ASHA decides the
same from the values at its rungs (Li et al. 2018, arXiv:1810.05934) and stops the trial's worker itself.
"""

from __future__ import annotations

from typing import Any

from dlroadmap.train.callbacks import Callback


class OptunaPruning(Callback):
    """trial.report(value, step) after every epoch; raise optuna.TrialPruned when the pruner says so.
    `step` counts reports across all the Trainers of the trial (a node may train several models)."""

    def __init__(self, trial: Any, monitor: str):
        self.trial, self.monitor, self.step = trial, monitor, 0

    def on_epoch_end(self, trainer: Any, metrics: dict[str, float]) -> None:
        import optuna

        if self.monitor not in metrics:
            return
        self.trial.report(float(metrics[self.monitor]), self.step)
        self.step += 1
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned after {self.step} epochs ({self.monitor} = {metrics[self.monitor]:.4f})")


class RayReport(Callback):
    """ray.tune.report after every epoch: the objective so far under the study's metric name (the best of the
    monitored per-epoch value seen yet, which is what a 'best validation' metric will end up as), for ASHA."""

    def __init__(self, metric: str, monitor: str, direction: str):
        self.metric, self.monitor, self.direction = metric, monitor, direction
        self.best: float | None = None
        self.epochs = 0

    def on_epoch_end(self, trainer: Any, metrics: dict[str, float]) -> None:
        from ray import tune

        if self.monitor not in metrics:
            return
        v = float(metrics[self.monitor])
        self.best = v if self.best is None else (max if self.direction == "max" else min)(self.best, v)
        self.epochs += 1
        tune.report({self.metric: self.best, "epoch": self.epochs})
