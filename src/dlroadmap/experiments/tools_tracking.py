"""Recommended Tools: experiment tracking with MLflow, TensorBoard and Weights & Biases.

Each node trains the same small MLP on digits through the Trainer with a Tracker that logs to
that one tool only (train/tracking.py), then reads the run back with the tool's own reader:
  tools.mlops.mlflow        MlflowClient on the sqlite store: the run, its params, metric history, artifacts
  tools.tracking.tensorboard  EventAccumulator on the event files: the scalars per epoch
  tools.tracking.wandb      the offline run file (run-*.wandb, W&B's record log): the history rows
so what the tool holds is checked, not what we meant to send.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import Field

from dlroadmap.data import TensorLoader, classification_tensors
from dlroadmap.evaluate.metrics import accuracy
from dlroadmap.evaluate.plots import learning_curves
from dlroadmap.experiments.base import Experiment, ExperimentConfig, Result
from dlroadmap.models.mlp import MLP
from dlroadmap.train import Tracker, Trainer, seed_everything


class Config(ExperimentConfig):
    epochs: int = Field(5, ge=1, le=1000)

    QUICK: ClassVar[dict] = {}


def train_and_log(config: Config, backend: str, root) -> tuple[Tracker, list[dict]]:
    seed_everything(config.seed)
    data = classification_tensors("digits", seed=config.seed)
    model = MLP(64, [64], 10)
    with Tracker(root / "run", backend, root=root, run_name=f"{backend}-demo", tags={"node": f"{backend}-demo"}) as t:
        t.log_params({"epochs": config.epochs, "hidden": [64], "lr": 3e-3})
        trainer = Trainer(model, torch.optim.Adam(model.parameters(), lr=3e-3), max_epochs=config.epochs, device=config.device,
                          seed=config.seed, metrics={"acc": accuracy}, tracker=t)
        history = trainer.fit(TensorLoader(data.X_train, data.y_train, batch_size=64, shuffle=True, seed=config.seed),
                              TensorLoader(data.X_val, data.y_val, batch_size=500))
        t.log_figure(learning_curves(history, title=f"logged to {backend}"), "learning_curves")
    return t, history


def result(tracker: Tracker, history: list[dict], metrics: dict[str, float], tool: str, notes: str) -> Result:
    """The node's own result: the read-back checks, plus the run's curves in the report."""
    metrics["val_acc"] = history[-1]["val_acc"]
    plot = tracker.log_figure(learning_curves(history, title=f"{tool} run"), "learning_curves")
    return Result(metrics=metrics, artifacts={"learning_curves": str(plot)}, notes=notes)


def run_mlflow(config: Config, tracker: Tracker) -> Result:
    from mlflow.tracking import MlflowClient

    root = tracker.run_dir / "demo"
    t, history = train_and_log(config, "mlflow", root)
    client = MlflowClient(tracking_uri=t.backend("mlflow").tracking_uri)
    run = client.get_run(t.backend("mlflow").run_id)
    hist = client.get_metric_history(run.info.run_id, "val_acc")
    arts = [a.path for a in client.list_artifacts(run.info.run_id, "plots")]
    metrics = {"epochs_read_back": float(len(hist)), "params_read_back": float(run.data.params.get("lr") == "0.003"),
               "artifact_read_back": float("plots/learning_curves.png" in arts), "run_finished": float(run.info.status == "FINISHED"),
               "last_val_acc_matches": float(abs(hist[-1].value - history[-1]["val_acc"]) < 1e-9)}
    uri = t.backend("mlflow").tracking_uri
    return result(tracker, history, metrics, "MLflow", f"store: {uri}; browse with `mlflow ui --backend-store-uri {uri}`")


def run_tensorboard(config: Config, tracker: Tracker) -> Result:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    root = tracker.run_dir / "demo"
    t, history = train_and_log(config, "tensorboard", root)
    acc = EventAccumulator(str(t.backend("tensorboard").log_dir))
    acc.Reload()
    events = acc.Scalars("val_acc")
    metrics = {"epochs_read_back": float(len(events)), "scalar_tags": float(len(acc.Tags()["scalars"])),
               "last_val_acc_matches": float(abs(events[-1].value - history[-1]["val_acc"]) < 1e-6)}
    return result(tracker, history, metrics, "TensorBoard", f"browse with `tensorboard --logdir {root / 'tensorboard'}`")


def run_wandb(config: Config, tracker: Tracker) -> Result:
    from dlroadmap.train.wandb_reader import history as wandb_history

    root = tracker.run_dir / "demo"
    t, history = train_and_log(config, "wandb", root)
    run_dir = t.backend("wandb").dir
    rows = [r for r in wandb_history(next(run_dir.glob("run-*.wandb"))) if "val_acc" in r]
    metrics = {"epochs_read_back": float(len(rows)), "offline_run_folder": float(run_dir.name.startswith("offline-run-")),
               "last_val_acc_matches": float(abs(rows[-1]["val_acc"] - history[-1]["val_acc"]) < 1e-9)}
    return result(tracker, history, metrics, "W&B offline", f"offline run in {run_dir}; upload later with `wandb sync {run_dir}`")


mlflow = Experiment(Config, run_mlflow)
tensorboard = Experiment(Config, run_tensorboard)
wandb = Experiment(Config, run_wandb)
