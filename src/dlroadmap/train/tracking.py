"""One `Tracker`, several backends: MLflow, TensorBoard, Weights & Biases, console.

Experiments log through the Tracker only (params, metrics, artifacts, figures). The Tracker fans
each call out to the backends chosen with `--track` and also keeps a local copy (the run folder
and an in-memory history), so `dlr run`, the tour, the report, notebooks and tests see the same.

  MLflow       a real tracking store: sqlite file <out>/mlflow.db, artifacts under <out>/mlartifacts
               (and <out>/mlflow.db.lock, which two processes opening a new store take in turn)
  TensorBoard  event files under <out>/tensorboard/<run name>
  W&B          offline mode (a run folder under <out>/wandb) unless WANDB_API_KEY is set
  console      one line per logged metrics dict
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path
from typing import Any, Iterable, Protocol

from dlroadmap.errors import UserError
from dlroadmap.io import file_lock

BACKENDS = ("mlflow", "tensorboard", "wandb", "console")


class Backend(Protocol):
    def log_params(self, params: dict[str, Any]) -> None: ...
    def log_metrics(self, metrics: dict[str, float], step: int) -> None: ...
    def log_artifact(self, path: Path, subdir: str | None) -> None: ...
    def close(self, status: str) -> None: ...


def _flat(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in params.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


class MLflowBackend:
    """MLflow through its client API: no global state, no server needed."""

    def __init__(self, root: Path, experiment: str, run_name: str, tags: dict[str, str]):
        self.client, exp_id = self.open_store(root, experiment)
        self.tracking_uri = self.client.tracking_uri
        self.run_id = self.client.create_run(exp_id, run_name=run_name, tags=tags).info.run_id
        self._pending: list[Any] = []
        self._flushed = time.monotonic()

    @staticmethod
    def open_store(root: Path, experiment: str) -> tuple[Any, str]:
        """A client of <root>/mlflow.db and the experiment's id, creating the store's tables and the experiment
        on first use. The first client creates the tables, so two processes opening a new store take the lock
        in turn; worker processes of `dlr tour --jobs` find both made by the parent (`prepare`)."""
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        from mlflow.tracking import MlflowClient

        root = Path(root)
        with file_lock(root / "mlflow.db.lock"):
            client = MlflowClient(tracking_uri=f"sqlite:///{(root / 'mlflow.db').resolve()}")
            exp = client.get_experiment_by_name(experiment)
            if exp is not None:
                return client, exp.experiment_id
            return client, client.create_experiment(experiment, artifact_location=(root / "mlartifacts").resolve().as_uri())

    @classmethod
    def prepare(cls, root: Path, experiment: str = "dlroadmap") -> None:
        cls.open_store(root, experiment)

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:6000]) for k, v in _flat(params).items()]
        for i in range(0, len(items), 100):  # MLflow accepts at most 100 params per batch
            self.client.log_batch(self.run_id, params=items[i:i + 100])

    # Each log_batch is one sqlite transaction (~8 ms here): a run that logs every step would spend more time
    # in the database than in training. Rows wait in a buffer, written at most every FLUSH_SECONDS (so a live
    # `mlflow ui` lags by that much, and a killed run loses at most that much) or when a batch is full.
    FLUSH_SECONDS = 5.0
    BATCH = 1000  # MLflow's limit of metrics per log_batch

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        self._pending.extend(Metric(_mlflow_key(k), float(v), ts, step) for k, v in metrics.items())
        if len(self._pending) >= self.BATCH or time.monotonic() - self._flushed >= self.FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        for i in range(0, len(self._pending), self.BATCH):
            self.client.log_batch(self.run_id, metrics=self._pending[i:i + self.BATCH])
        self._pending, self._flushed = [], time.monotonic()

    def log_artifact(self, path: Path, subdir: str | None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path=subdir)

    def close(self, status: str) -> None:
        self.flush()
        self.client.set_terminated(self.run_id, status="FINISHED" if status == "ok" else "FAILED")


def _mlflow_key(k: str) -> str:
    return re.sub(r"[^\w\-. /]", "_", k)


class TensorBoardBackend:
    def __init__(self, root: Path, run_name: str):
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir = root / "tensorboard" / run_name
        self.writer = SummaryWriter(log_dir=str(self.log_dir))

    def log_params(self, params: dict[str, Any]) -> None:
        table = "| param | value |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in _flat(params).items())
        self.writer.add_text("params", table, 0)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        for k, v in metrics.items():
            self.writer.add_scalar(k, float(v), step)

    def log_artifact(self, path: Path, subdir: str | None) -> None:
        pass  # TensorBoard has no artifact store; plots are in the run folder and in MLflow

    def close(self, status: str) -> None:
        self.writer.flush()
        self.writer.close()


class WandbBackend:
    """W&B in offline mode unless an API key is configured; `wandb sync` uploads later."""

    def __init__(self, root: Path, experiment: str, run_name: str, tags: dict[str, str]):
        os.environ.setdefault("WANDB_SILENT", "true")
        os.environ.setdefault("WANDB_CONSOLE", "off")
        import wandb

        mode = "online" if os.environ.get("WANDB_API_KEY") and os.environ.get("WANDB_MODE") != "offline" else "offline"
        self.run = wandb.init(project=experiment, name=run_name, dir=str(root), mode=mode, tags=list(tags.values()),
                              settings=wandb.Settings(console="off", x_disable_stats=True))
        self.dir = Path(self.run.dir).parent
        self.offline = mode == "offline"
        self._row = -1

    def log_params(self, params: dict[str, Any]) -> None:
        self.run.config.update(_flat(params), allow_val_change=True)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        # W&B drops a row whose step is not above the last one; an experiment with several sub-runs
        # (each counting epochs from 1) would lose all but the first. W&B's step follows ours while it
        # grows and otherwise just continues; our own step then travels in the row as "step".
        row = {k: float(v) for k, v in metrics.items()}
        self._row = max(self._row + 1, step)
        if self._row != step:
            row["step"] = float(step)
        self.run.log(row, step=self._row)

    def log_artifact(self, path: Path, subdir: str | None) -> None:
        self.run.save(str(path), base_path=str(path.parent if subdir is None else path.parent.parent), policy="now")

    def close(self, status: str) -> None:
        self.run.finish(exit_code=0 if status == "ok" else 1)
        if self.offline:  # readers (and `wandb sync`) need the complete file
            from dlroadmap.train.wandb_reader import wait_complete

            wait_complete(self.dir)


class ConsoleBackend:
    def __init__(self, run_name: str):
        from dlroadmap.ui import console

        self.console = console
        self.run_name = run_name

    def log_params(self, params: dict[str, Any]) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        body = "  ".join(f"{k}={v:.4g}" for k, v in metrics.items())
        self.console.print(f"[dim]{self.run_name}[/] step {step}: {body}", highlight=False)

    def log_artifact(self, path: Path, subdir: str | None) -> None:
        pass

    def close(self, status: str) -> None:
        pass


def parse_backends(spec: str | Iterable[str] | None) -> list[str]:
    """'mlflow,tensorboard' -> ['mlflow', 'tensorboard']; 'none' or '' -> []."""
    if spec is None:
        return ["mlflow"]
    names = [s.strip().lower() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    if names in ([], ["none"]):
        return []
    bad = [n for n in names if n not in BACKENDS]
    if bad:
        raise UserError(f"unknown tracking backend {bad[0]!r}; choose from {', '.join(BACKENDS)} or 'none'")
    return list(dict.fromkeys(names))


class Tracker:
    """Logs a run to every chosen backend and keeps it in `run_dir` (artifacts, plots) and memory."""

    def __init__(self, run_dir: str | Path, backends: str | Iterable[str] | None = None, *, root: str | Path | None = None,
                 run_name: str | None = None, experiment: str = "dlroadmap", tags: dict[str, str] | None = None):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.root = Path(root) if root is not None else self.run_dir.parent
        self.run_name = run_name or self.run_dir.name
        self.params: dict[str, Any] = {}
        self.history: list[tuple[int, dict[str, float]]] = []
        self.artifacts: list[Path] = []
        self.backend_names = parse_backends(backends)
        self.backends: list[Any] = []
        tags = tags or {}
        for name in self.backend_names:
            if name == "mlflow":
                self.backends.append(MLflowBackend(self.root, experiment, self.run_name, tags))
            elif name == "tensorboard":
                self.backends.append(TensorBoardBackend(self.root, self.run_name))
            elif name == "wandb":
                self.backends.append(WandbBackend(self.root, experiment, self.run_name, tags))
            elif name == "console":
                self.backends.append(ConsoleBackend(self.run_name))
        self._closed = False

    def backend(self, name: str):
        return self.backends[self.backend_names.index(name)] if name in self.backend_names else None

    def log_params(self, params: dict[str, Any]) -> None:
        self.params.update(params)
        for b in self.backends:
            b.log_params(params)

    def log_metrics(self, metrics: dict[str, float], step: int = 0) -> None:
        metrics = {k: float(v) for k, v in metrics.items()}
        self.history.append((step, metrics))
        for b in self.backends:
            b.log_metrics(metrics, step)

    def log_artifact(self, path: str | Path) -> Path:
        path = Path(path)
        self.artifacts.append(path)
        try:
            rel = path.resolve().parent.relative_to(self.run_dir.resolve()).as_posix()
        except ValueError:
            rel = "."
        subdir = None if rel == "." else rel
        for b in self.backends:
            b.log_artifact(path, subdir)
        return path

    def log_figure(self, fig, name: str) -> Path:
        """Save a matplotlib figure as PNG under <run_dir>/plots/ (atomically) and log it."""
        import matplotlib.pyplot as plt

        from dlroadmap.io import atomic_path

        path = self.run_dir / "plots" / f"{name}.png"
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        return self.log_artifact(path)

    def series(self, key: str) -> list[tuple[int, float]]:
        return [(s, m[key]) for s, m in self.history if key in m]

    def close(self, status: str = "ok") -> None:
        if self._closed:
            return
        self._closed = True
        for b in self.backends:
            b.close(status)

    def __enter__(self) -> "Tracker":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close("ok" if exc_type is None else "failed")


def demo_run(backend: str, root: Path, *, epochs: int, seed: int = 0, device: str = "auto") -> tuple["Tracker", list[dict]]:
    """A small MLP trained on digits through the Trainer, logged to one backend only: what the Tools
    nodes read back with each tool's own reader (MlflowClient, EventAccumulator, wandb's reader)."""
    import torch

    from dlroadmap.data import TensorLoader, classification_tensors
    from dlroadmap.evaluate.metrics import accuracy
    from dlroadmap.evaluate.plots import learning_curves
    from dlroadmap.models.mlp import MLP
    from dlroadmap.train.trainer import Trainer, seed_everything

    # The demo folder belongs to this run: a rerun into the same run folder must not read back the last
    # run's event files too (TensorBoard's reader merges every event file in the folder).
    shutil.rmtree(root, ignore_errors=True)
    seed_everything(seed)
    data = classification_tensors("digits", seed=seed)
    model = MLP(64, [64], 10)
    with Tracker(root / "run", backend, root=root, run_name=f"{backend}-demo", tags={"node": f"{backend}-demo"}) as t:
        t.log_params({"epochs": epochs, "hidden": [64], "lr": 3e-3})
        trainer = Trainer(model, torch.optim.Adam(model.parameters(), lr=3e-3), max_epochs=epochs, device=device,
                          seed=seed, metrics={"acc": accuracy}, tracker=t)
        history = trainer.fit(TensorLoader(data.X_train, data.y_train, batch_size=64, shuffle=True, seed=seed),
                              TensorLoader(data.X_val, data.y_val, batch_size=500))
        t.log_figure(learning_curves(history, title=f"logged to {backend}"), "learning_curves")
    return t, history
