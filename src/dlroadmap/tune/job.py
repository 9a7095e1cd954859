"""What a tuning study is and how one trial runs: shared by the search loops (study.py) and Ray's workers
(ray_search.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlroadmap.errors import UserError
from dlroadmap.registry import Node
from dlroadmap.tune.space import Dimension

BACKENDS = ("grid", "random", "optuna", "ray")
PRUNERS = ("median", "halving", "hyperband", "none")


@dataclass
class Trial:
    number: int
    params: dict[str, Any]
    value: float | None = None          # the metric, for complete trials
    state: str = "complete"             # complete, pruned or failed
    seconds: float = 0.0
    run_dir: str = ""
    note: str = ""


@dataclass
class TuneJob:
    node: Node
    dims: list[Dimension]
    backend: str = "random"
    trials: int = 10
    metric: str = "best_val_accuracy"
    direction: str = "max"
    out: Path = Path("runs")
    quick: bool = True
    sets: list[str] = field(default_factory=list)
    seed: int = 0
    prune_on: str | None = "val_acc"    # the per-epoch Trainer metric the pruners watch (None: no pruning)
    pruner: str = "median"
    test_metric: str | None = None      # default: the metric's name with val -> test
    track: str = "mlflow"
    name: str | None = None             # the study's folder name under <out>/tune/ [default: the node id]

    @property
    def folder(self) -> Path:
        return self.out / "tune" / (self.name or self.node.id)

    def trial_dir(self, number: int) -> Path:
        return self.folder / f"trial_{number:03d}"

    def better(self, a: float, b: float | None) -> bool:
        return b is None or (a > b if self.direction == "max" else a < b)


def check_job(job: TuneJob) -> None:
    if job.backend not in BACKENDS:
        raise UserError(f"unknown --backend {job.backend!r}; choose from {', '.join(BACKENDS)}")
    if job.direction not in ("max", "min"):
        raise UserError(f"--direction must be max or min, not {job.direction!r}")
    if job.pruner not in PRUNERS:
        raise UserError(f"unknown --pruner {job.pruner!r}; choose from {', '.join(PRUNERS)}")
    if job.trials < 1:
        raise UserError("--trials must be at least 1")


def test_metric_of(job: TuneJob, metrics: dict[str, float]) -> str | None:
    if job.test_metric:
        return job.test_metric
    for guess in (job.metric.replace("best_val", "test"), job.metric.replace("val", "test")):
        if guess != job.metric and guess in metrics:
            return guess
    return None


def metric_of(job: TuneJob, metrics: dict[str, float]) -> float:
    if job.metric not in metrics:
        shown = ", ".join(sorted(k for k in metrics if "val" in k) or sorted(metrics)[:20])
        raise UserError(f"{job.node.id} reports no metric {job.metric!r}; choose --metric from: {shown}")
    return float(metrics[job.metric])


def run_config(job: TuneJob, params: dict[str, Any], run_dir: Path, *, parent: str | None = None, label: str = "",
               callbacks: tuple = ()):
    """One real run of the node with `params` over the preset (+ --set), in `run_dir`."""
    from dlroadmap.runner import make_config, run_node
    from dlroadmap.train.callbacks import attached

    experiment = job.node.load_experiment()
    config = make_config(experiment.Config, quick=job.quick, sets=job.sets, **params)
    tags = {"tune_study": job.name or job.node.id, "tune_backend": job.backend, **({"mlflow.parentRunId": parent} if parent else {})}
    with attached(*callbacks):
        return run_node(job.node, config, job.out, track=job.track, quick=job.quick,
                        experiment=experiment, run_dir=run_dir, tags=tags, run_name=f"{job.node.id} {label}".strip())


