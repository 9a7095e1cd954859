"""Recommended Tools, MLOps: MLflow, DVC and Docker.

  tools.mlops.mlflow  the same small MLP as the tracking nodes (train/tracking.py: demo_run) logged
                      to MLflow only, then read back with MlflowClient on the sqlite store: the run,
                      its params, metric history and artifacts; what the store holds is checked,
                      not what we meant to send.
  tools.mlops.dvc     p2.fnn.backprop as a DVC pipeline (deploy/dvc_pipeline.py) in a fresh git repository,
                      run by the real `dvc`: repro runs the four stages; `dvc exp run --set-param config.lr=...`
                      reruns only train -> export -> evaluate, and `dvc params diff` / `dvc metrics diff` report
                      the change; push/pull to a local remote restore every output byte for byte. The exported
                      ONNX model scores the same test split as the run.
  tools.mlops.docker  the repository's Dockerfile and compose.yaml read by parsers (dockerfile-parse, YAML), not
                      grepped: a pinned base, a multi-stage build, a non-root user, a healthcheck, the exposed
                      port the server listens on, no secret in any layer, ports published on the loopback only,
                      models mounted read-only. With podman present and `build` set (the full preset), the image
                      is built and run by `make container-test` (a prediction checked against ONNX Runtime on
                      the host, the compose pair with MLflow); without, the node says that part did not run.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import matplotlib.pyplot as plt

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


# --- tools.mlops.dvc ----------------------------------------------------------------------------------


class DVCConfig(ExperimentConfig):
    node: Literal["p2.fnn.backprop"] = Field("p2.fnn.backprop", description="the node the pipeline trains")
    epochs: int = Field(12, ge=1, le=1000, description="config.epochs in params.yaml for the first training")
    new_lr: float = Field(0.003, gt=0, le=1, description="`dvc exp run --set-param config.lr=...` (only the downstream stages rerun)")

    QUICK: ClassVar[dict] = {"epochs": 4}


def _ran(output: str) -> list[str]:
    """The stages `dvc repro` ran, in order, read from its output ("Running stage 'train':")."""
    import re

    return re.findall(r"Running stage '([^']+)'", output)


def run_dvc(config: DVCConfig, tracker: Tracker) -> Result:
    import json
    import shutil
    import subprocess

    import yaml

    from dlroadmap.deploy.dvc_pipeline import dvc, init
    from dlroadmap.io import file_hash, write_text
    from dlroadmap.registry import load

    project = tracker.run_dir / "project"
    shutil.rmtree(project, ignore_errors=True)
    project.mkdir(parents=True)
    git = lambda *a: subprocess.run(["git", *a], cwd=project, check=True, capture_output=True)  # noqa: E731
    git("init", "-q")
    git("config", "user.email", "dlr@example.invalid")
    git("config", "user.name", "dlroadmap")
    init(load().get(config.node), project, quick=True)
    params_file = project / "params.yaml"

    def set_param(key: str, value) -> None:
        params = yaml.safe_load(params_file.read_text())
        params["config"][key] = value
        write_text(params_file, yaml.safe_dump(params, sort_keys=False))

    set_param("seed", config.seed)
    set_param("epochs", config.epochs)
    metrics: dict[str, float] = {}

    # 1. First repro: every stage runs.
    first = _ran(dvc(project, "repro"))
    metrics["stages_first_run"] = float(len(first))
    ev = json.loads((project / "eval" / "metrics.json").read_text())
    metrics["onnx_test_accuracy"] = ev["onnx_test_accuracy"]
    metrics["onnx_minus_run_test_accuracy"] = abs(ev["onnx_test_accuracy"] - ev["run_test_accuracy"])
    git("add", "-A")
    git("commit", "-qm", "first training")

    # 2. An experiment with a new learning rate (`dvc exp run --set-param`): train, export and evaluate rerun;
    #    prepare, which reads only config.dataset and config.seed, does not. Then what `dvc params diff` and `dvc metrics diff`
    #    report against the commit.
    second = _ran(dvc(project, "exp", "run", "--set-param", f"config.lr={config.new_lr}"))
    metrics["stages_rerun_after_lr_change"] = float(len(second))
    metrics["prepare_skipped"] = float("prepare" not in second and second[:1] == ["train"])
    run_config = json.loads((project / "runs" / config.node / "result.json").read_text())["config"]
    metrics["exp_run_applied_param"] = float(run_config["lr"] == config.new_lr)
    params_diff = json.loads(dvc(project, "params", "diff", "--json") or "{}").get("params.yaml", {})
    metrics["params_diff_reports_lr"] = float(params_diff.get("config.lr", {}).get("new") == config.new_lr)
    new_eval = json.loads((project / "eval" / "metrics.json").read_text())
    diff = json.loads(dvc(project, "metrics", "diff", "--json") or "{}").get("eval/metrics.json", {})
    acc = diff.get("onnx_test_accuracy", {})
    metrics["metrics_diff_matches_files"] = float(acc.get("old") == ev["onnx_test_accuracy"] and acc.get("new") == new_eval["onnx_test_accuracy"])
    metrics["onnx_test_accuracy_new_lr"] = new_eval["onnx_test_accuracy"]

    # 4. push to a local remote, delete every output and the cache, pull: the same bytes come back.
    outputs = [project / "data" / "test.npz", project / "runs" / config.node / "model" / "model.safetensors"]
    before = [file_hash(p) for p in outputs]
    dvc(project, "remote", "add", "-d", "local", str(tracker.run_dir / "remote"))
    dvc(project, "push")
    for p in (project / "data", project / "models", project / "runs" / config.node / "model", project / ".dvc" / "cache"):
        shutil.rmtree(p, ignore_errors=True)
    dvc(project, "pull")
    metrics["pull_restores_identical"] = float(all(p.is_file() for p in outputs) and [file_hash(p) for p in outputs] == before)

    history = json.loads((project / "eval" / "history.json").read_text())
    fig, ax = plt.subplots(figsize=(6, 3.4))
    ax.plot([h["epoch"] for h in history], [h["val_acc"] for h in history], "o-", label=f"validation (dvc exp run: lr {config.new_lr})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy")
    ax.set_title(f"{config.node} through dvc repro / exp run: ONNX test accuracy {metrics['onnx_test_accuracy']:.3f}", fontsize=9)
    ax.legend(fontsize=8)
    plot = tracker.log_figure(fig, "dvc_history")
    return Result(metrics=metrics, artifacts={"dvc_history": str(plot), "project": str(project)},
                  notes=f"first repro ran {', '.join(first)}; dvc exp run with lr {config.new_lr}: {', '.join(second)}. "
                        f"Try it: cd {project} && dvc dag && dvc metrics show && dvc plots show")


dvc = Experiment(DVCConfig, run_dvc)


# --- tools.mlops.docker -------------------------------------------------------------------------------

class DockerConfig(ExperimentConfig):
    build: bool = Field(True, description="with podman present: build and run the image (make container-test, ~6 min)")

    QUICK: ClassVar[dict] = {"build": False}


def run_docker(config: DockerConfig, tracker: Tracker) -> Result:
    import subprocess

    from dlroadmap.deploy.container_checks import compose_checks, dockerfile_checks
    from dlroadmap.io import checkout_root, podman_available

    root = checkout_root("Dockerfile")
    metrics = dockerfile_checks((root / "Dockerfile").read_text()) | compose_checks((root / "compose.yaml").read_text())
    # The slim image (ONNX Runtime only) must pass the same Dockerfile checks.
    slim = dockerfile_checks((root / "docker" / "Dockerfile.slim").read_text())
    metrics["slim_checks_failed"] = float(sum(v != 0 if k == "secrets_in_layers" else v < 1 for k, v in slim.items()))
    podman = podman_available()
    if config.build and podman:
        proc = subprocess.run(["make", "container-test"], cwd=root, capture_output=True, text=True, timeout=3600)
        log = tracker.run_dir / "container-test.log"
        log.write_text(proc.stdout + proc.stderr)
        metrics["container_test_passed"] = float(proc.returncode == 0)
        ran = f"built and ran the image (make container-test, exit {proc.returncode}; log: {log})"
    else:
        ran = ("parsed only: " + ("the quick preset does not build (6 min); `dlr run tools.mlops.docker` or `make container-test` does"
                                  if podman else "podman is not installed here, so the image was not built or run"))
    labels = [k for k in metrics if k not in ("compose_services", "slim_checks_failed")]
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    good = [metrics[k] == 0 if k == "secrets_in_layers" else metrics[k] >= 1 for k in labels]
    ax.barh(labels, [1] * len(labels), color=["tab:green" if g else "tab:red" for g in good])
    ax.set_xticks([])
    ax.set_title("Dockerfile and compose.yaml, as parsed (green: as a serving image should be)", fontsize=9)
    fig.tight_layout()
    plot = tracker.log_figure(fig, "docker_checks")
    return Result(metrics=metrics, artifacts={"docker_checks": str(plot)}, notes=ran)


docker = Experiment(DockerConfig, run_docker)
