"""Recommended Tools, experiment tracking: TensorBoard and Weights & Biases (MLflow: tools/mlops.py).

Each node trains the same small MLP on digits through the Trainer with a Tracker that logs to
that one tool only (train/tracking.py: demo_run), then reads the run back with the tool's own reader:
  tools.tracking.tensorboard  EventAccumulator on the event files: the scalars per epoch
  tools.tracking.wandb        the offline run file (run-*.wandb, W&B's record log): the history rows
so what the tool holds is checked, not what we meant to send.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from dlroadmap.evaluate.plots import learning_curves
from dlroadmap.experiments.base import Experiment, ExperimentConfig, Result
from dlroadmap.train import Tracker
from dlroadmap.train.tracking import demo_run


class Config(ExperimentConfig):
    epochs: int = Field(5, ge=1, le=1000)

    QUICK: ClassVar[dict] = {}


def result(tracker: Tracker, history: list[dict], metrics: dict[str, float], tool: str, notes: str) -> Result:
    """The node's own result: the read-back checks, plus the run's curves in the report."""
    metrics["val_acc"] = history[-1]["val_acc"]
    plot = tracker.log_figure(learning_curves(history, title=f"{tool} run"), "learning_curves")
    return Result(metrics=metrics, artifacts={"learning_curves": str(plot)}, notes=notes)


def run_tensorboard(config: Config, tracker: Tracker) -> Result:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    root = tracker.run_dir / "demo"
    t, history = demo_run("tensorboard", root, epochs=config.epochs, seed=config.seed, device=config.device)
    acc = EventAccumulator(str(t.backend("tensorboard").log_dir))
    acc.Reload()
    events = acc.Scalars("val_acc")
    metrics = {"epochs_read_back": float(len(events)), "scalar_tags": float(len(acc.Tags()["scalars"])),
               "last_val_acc_matches": float(abs(events[-1].value - history[-1]["val_acc"]) < 1e-6)}
    return result(tracker, history, metrics, "TensorBoard", f"browse with `tensorboard --logdir {root / 'tensorboard'}`")


def run_wandb(config: Config, tracker: Tracker) -> Result:
    from dlroadmap.train.wandb_reader import history as wandb_history

    root = tracker.run_dir / "demo"
    t, history = demo_run("wandb", root, epochs=config.epochs, seed=config.seed, device=config.device)
    run_dir = t.backend("wandb").dir
    rows = [r for r in wandb_history(next(run_dir.glob("run-*.wandb"))) if "val_acc" in r]
    metrics = {"epochs_read_back": float(len(rows)), "offline_run_folder": float(run_dir.name.startswith("offline-run-")),
               "last_val_acc_matches": float(abs(rows[-1]["val_acc"] - history[-1]["val_acc"]) < 1e-9)}
    return result(tracker, history, metrics, "W&B offline", f"offline run in {run_dir}; upload later with `wandb sync {run_dir}`")


tensorboard = Experiment(Config, run_tensorboard)
wandb = Experiment(Config, run_wandb)
