"""Tracking backends, read back with each tool's own reader."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest

from dlroadmap.errors import UserError
from dlroadmap.train.tracking import Tracker, parse_backends


def log_a_run(root: Path, backends: str) -> Tracker:
    with Tracker(root / "node", backends, root=root, run_name="node", tags={"node": "p0.test.node"}) as t:
        t.log_params({"lr": 0.01, "model": {"hidden": [8, 4]}})
        for step in range(1, 4):
            t.log_metrics({"train_loss": 1.0 / step, "val_acc": 0.5 + 0.1 * step}, step=step)
        fig, ax = plt.subplots()
        ax.plot([1, 2, 3])
        t.log_figure(fig, "curve")
        (root / "node" / "result.json").write_text("{}")
        t.log_artifact(root / "node" / "result.json")
    return t


def test_parse_backends():
    assert parse_backends("mlflow, tensorboard") == ["mlflow", "tensorboard"]
    assert parse_backends("none") == [] and parse_backends("") == []
    with pytest.raises(UserError, match="unknown tracking backend 'comet'"):
        parse_backends("mlflow,comet")


@pytest.mark.slow
def test_mlflow_sqlite_store_holds_run_params_metrics_artifacts(tmp_path):
    t = log_a_run(tmp_path, "mlflow")
    assert (tmp_path / "mlflow.db").is_file()
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("dlroadmap")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert run.info.run_id == t.backend("mlflow").run_id and run.info.status == "FINISHED"
    assert run.data.params["lr"] == "0.01" and run.data.params["model.hidden"] == "[8, 4]"
    assert run.data.tags["node"] == "p0.test.node"
    hist = client.get_metric_history(run.info.run_id, "train_loss")
    assert [(m.step, round(m.value, 6)) for m in hist] == [(1, 1.0), (2, 0.5), (3, round(1 / 3, 6))]
    arts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert "result.json" in arts and "plots" in arts
    assert [a.path for a in client.list_artifacts(run.info.run_id, "plots")] == ["plots/curve.png"]
    local = client.download_artifacts(run.info.run_id, "plots/curve.png", str(tmp_path / "dl"))
    assert Path(local).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert str(tmp_path / "mlartifacts") in exp.artifact_location or (tmp_path / "mlartifacts").is_dir()


def _open_mlflow_run(root: str, name: str, barrier) -> None:
    from dlroadmap.train.tracking import MLflowBackend

    barrier.wait()                                     # all three processes reach the empty store together
    MLflowBackend(Path(root), "dlroadmap", name, {}).close("FINISHED")


@pytest.mark.slow
def test_two_processes_creating_one_mlflow_store_both_get_their_run(tmp_path):
    """Two `dlr run` commands started together on a new folder: without the lock, both ran the store's
    migrations and one died ("Online migration expected to match one row ... 0 found")."""
    import multiprocessing as mp

    import mlflow.tracking  # noqa: F401  (imported before the fork, so the children start at once)
    from mlflow.tracking import MlflowClient

    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(3)
    procs = [ctx.Process(target=_open_mlflow_run, args=(str(tmp_path), f"run{i}", barrier)) for i in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("dlroadmap")
    assert sorted(r.info.run_name for r in client.search_runs([exp.experiment_id])) == ["run0", "run1", "run2"]


@pytest.mark.slow
def test_mlflow_rows_are_buffered_and_all_land(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    from dlroadmap.train.tracking import MLflowBackend

    monkeypatch.setattr(MLflowBackend, "FLUSH_SECONDS", 3600.0)
    with Tracker(tmp_path / "node", "mlflow", root=tmp_path, run_name="node") as t:
        b = t.backend("mlflow")
        client = MlflowClient(tracking_uri=b.tracking_uri)
        for step in range(1, 600):                       # 2 metrics a step: a full batch of 1000 is written at step 500
            t.log_metrics({"a": float(step), "b": -float(step)}, step=step)
            if step == 499:
                assert client.get_metric_history(b.run_id, "a") == []       # still buffered: no transaction yet
        assert len(client.get_metric_history(b.run_id, "a")) == 500
    hist = client.get_metric_history(b.run_id, "b")                          # the rest landed when the run closed
    assert sorted(m.step for m in hist) == list(range(1, 600)) and min(m.value for m in hist) == -599.0


@pytest.mark.slow
def test_tensorboard_event_files_hold_scalars(tmp_path):
    log_a_run(tmp_path, "tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tmp_path / "tensorboard" / "node"))
    acc.Reload()
    assert {"train_loss", "val_acc"} <= set(acc.Tags()["scalars"])
    events = acc.Scalars("val_acc")
    assert [e.step for e in events] == [1, 2, 3]
    assert [round(e.value, 5) for e in events] == [0.6, 0.7, 0.8]


@pytest.mark.slow
def test_wandb_offline_run_folder_has_history(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    t = log_a_run(tmp_path, "wandb")
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and t.backend("wandb").dir == runs[0]
    from dlroadmap.train.wandb_reader import history

    rows = history(next(runs[0].glob("run-*.wandb")))
    assert [r["_step"] for r in rows] == [1, 2, 3]
    assert [round(r["val_acc"], 5) for r in rows] == [0.6, 0.7, 0.8]
    assert (runs[0] / "files" / "plots" / "curve.png").is_file()


@pytest.mark.slow
def test_several_backends_at_once_and_console(tmp_path, capsys):
    t = log_a_run(tmp_path, "mlflow,tensorboard,console")
    assert t.backend_names == ["mlflow", "tensorboard", "console"]
    assert (tmp_path / "mlflow.db").is_file() and (tmp_path / "tensorboard" / "node").is_dir()
    assert "val_acc=0.8" in capsys.readouterr().err
    assert t.series("train_loss")[0] == (1, 1.0)
    assert (tmp_path / "node" / "plots" / "curve.png").is_file()


@pytest.mark.slow
def test_wandb_keeps_rows_of_sub_runs_that_restart_their_steps(tmp_path, monkeypatch):
    """fit_classifier streams each sub-run (e.g. one per optimiser) from epoch 1: no row may be dropped."""
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    from dlroadmap.train import Tracker
    from dlroadmap.train.wandb_reader import history

    with Tracker(tmp_path / "node", "wandb", root=tmp_path, run_name="node") as t:
        for prefix in ("sgd", "adam"):
            for step in (1, 2, 3):
                t.log_metrics({f"{prefix}/val_acc": step / 10}, step=step)
    rows = history(next(next((tmp_path / "wandb").glob("offline-run-*")).glob("run-*.wandb")))
    assert [r.get("sgd/val_acc", r.get("adam/val_acc")) for r in rows] == [0.1, 0.2, 0.3] * 2
    assert [r["_step"] for r in rows] == [1, 2, 3, 4, 5, 6] and [r.get("step") for r in rows[3:]] == [1, 2, 3]


@pytest.mark.slow
def test_wandb_reader_checks_every_record_checksum(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    from dlroadmap.train.wandb_reader import history, records

    log_a_run(tmp_path, "wandb")
    f = next((tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(records(f)) > 3
    data = bytearray(f.read_bytes())
    data[7 + 7 + 6] ^= 0xFF               # one flipped byte inside the first record (file header 7, chunk header 7)
    bad = tmp_path / "bad.wandb"
    bad.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="damaged record"):
        history(bad)


def test_tool_node_rerun_into_the_same_folder_reads_back_only_its_own_run(tmp_path):
    """TensorBoard's reader merges every event file in a folder: a rerun must start from a clean demo folder
    (it read back 10 epochs of a 5-epoch run before the fix)."""
    from dlroadmap import registry
    from dlroadmap.runner import run_id

    node = registry.load().get("tools.tracking.tensorboard")
    for _ in range(2):
        result = run_id(node, tmp_path, quick=True, track="none", epochs=2)
    assert result.metrics["epochs_read_back"] == 2.0
