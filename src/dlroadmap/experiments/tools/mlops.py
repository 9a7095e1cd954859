"""Recommended Tools, MLOps: MLflow.

  tools.mlops.mlflow  the same small MLP as the tracking nodes (train/tracking.py: demo_run) logged
                      to MLflow only, then read back with MlflowClient on the sqlite store: the run,
                      its params, metric history and artifacts; what the store holds is checked,
                      not what we meant to send.
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


def run_mlflow(config: Config, tracker: Tracker) -> Result:
    from mlflow.tracking import MlflowClient

    root = tracker.run_dir / "demo"
    t, history = demo_run("mlflow", root, epochs=config.epochs, seed=config.seed, device=config.device)
    client = MlflowClient(tracking_uri=t.backend("mlflow").tracking_uri)
    run = client.get_run(t.backend("mlflow").run_id)
    hist = client.get_metric_history(run.info.run_id, "val_acc")
    arts = [a.path for a in client.list_artifacts(run.info.run_id, "plots")]
    metrics = {"epochs_read_back": float(len(hist)), "params_read_back": float(run.data.params.get("lr") == "0.003"),
               "artifact_read_back": float("plots/learning_curves.png" in arts), "run_finished": float(run.info.status == "FINISHED"),
               "last_val_acc_matches": float(abs(hist[-1].value - history[-1]["val_acc"]) < 1e-9)}
    uri = t.backend("mlflow").tracking_uri
    metrics["val_acc"] = history[-1]["val_acc"]
    plot = tracker.log_figure(learning_curves(history, title="MLflow run"), "learning_curves")
    return Result(metrics=metrics, artifacts={"learning_curves": str(plot)}, notes=f"store: {uri}; browse with `mlflow ui --backend-store-uri {uri}`")


mlflow = Experiment(Config, run_mlflow)
