"""`dlr tune`: every backend on a real node with a tiny budget, pruning through the Trainer, a killed optuna
study that continues, and one clear line for a bad space."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import dlr_env

# The MLP node on the embedded digits, small enough for ~1 s a trial.
FAST = ["p2.fnn.backprop", "--quick", "--set", "dataset=digits", "--set", "epochs=4", "--set", "hidden=[32]"]


def _study(out: Path, name: str) -> dict:
    return json.loads((out / "tune" / name / "study.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["grid", "random", "optuna"])
def test_tune_backends_run_real_trials(cli, tmp_path, backend):
    out = tmp_path / "runs"
    track = "mlflow" if backend == "random" else "none"                        # MLflow's parent/child runs checked once
    code, o, e = cli("tune", *FAST, "--space", "lr=loguniform(1e-3,1e-1)", "--space", "batch_size=choice(32,128)",
                     "--backend", backend, "--trials", "4", "--out", str(out), "--pruner", "none", "--track", track)
    assert code == 0, o + e
    s = _study(out, "p2.fnn.backprop")
    assert len(s["trials"]) == 4 and s["metric"] == "best_val_accuracy" and s["test_metric"] == "test_accuracy"
    values = [t["value"] for t in s["trials"]]
    assert s["best"]["value"] == max(values)                                   # selected on validation
    best = json.loads((out / "tune" / "p2.fnn.backprop" / "best_config.json").read_text())
    assert best["params"] == s["tuned"]["params"] and best["value"] == s["best"]["value"]
    # The best settings were run again (same seed: same validation value) and the defaults beside them.
    assert s["tuned"]["val"] == pytest.approx(s["best"]["value"])
    assert 0.5 < s["tuned"]["test"] <= 1 and 0.5 < s["default"]["test"] <= 1
    if backend == "grid":
        assert sorted({t["params"]["lr"] for t in s["trials"]}) == pytest.approx([1e-3, 1e-1])
    for t in s["trials"]:                                                       # each trial is a full run folder
        result = json.loads((Path(t["run_dir"]) / "result.json").read_text())
        assert result["metrics"]["best_val_accuracy"] == pytest.approx(t["value"])
        assert result["config"]["lr"] == pytest.approx(t["params"]["lr"]) and result["config"]["dataset"] == "digits"
    if track == "mlflow":
        _children_in_mlflow(out, expected=4 + 2)


def _children_in_mlflow(out: Path, expected: int) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("dlroadmap").experiment_id], max_results=200)
    parents = [r for r in runs if r.info.run_name.startswith("tune ")]
    assert len(parents) == 1
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(children) == expected


@pytest.mark.slow
def test_tune_ray_backend(cli, tmp_path):
    out = tmp_path / "runs"
    code, o, e = cli("tune", *FAST, "--space", "lr=loguniform(1e-3,1e-1)", "--backend", "ray", "--trials", "3", "--out", str(out))
    assert code == 0, o + e
    s = _study(out, "p2.fnn.backprop")
    assert len(s["trials"]) == 3 and s["backend"] == "ray"
    assert all(t["state"] in ("complete", "pruned") for t in s["trials"]) and s["best"]["value"] > 0.5
    assert (out / "tune" / "p2.fnn.backprop" / "ray_results").is_dir()
    _children_in_mlflow(out, expected=3 + 2)                                    # Ray's MLflowLoggerCallback + best + default


@pytest.mark.slow
def test_optuna_pruning_stops_trials_through_the_trainer(tmp_path):
    """A median pruner over a space where half the learning rates cannot learn: those trials stop early."""
    from dlroadmap import registry
    from dlroadmap.tune.space import parse_space
    from dlroadmap.tune.study import TuneJob, tune

    node = registry.load().get("p2.fnn.backprop")
    dims = parse_space(["lr=loguniform(1e-7,1e-1)"], node.load_experiment().Config)
    job = TuneJob(node, dims, backend="optuna", trials=8, out=tmp_path / "runs", quick=True, track="none", pruner="median",
                  sets=["dataset=digits", "epochs=6", "hidden=[32]"])
    s = tune(job)
    pruned = [t for t in s["trials"] if t["state"] == "pruned"]
    assert pruned and all(t["params"]["lr"] < 1e-3 for t in pruned)            # only hopeless rates are cut
    for t in pruned:                                                            # ... and they trained fewer epochs
        assert len(json.loads((Path(t["run_dir"]) / "result.json").read_text())["metrics"]) == 0


@pytest.mark.slow
def test_killed_optuna_study_continues(tmp_path):
    out = tmp_path / "runs"
    args = [sys.executable, "-m", "dlroadmap.cli", "tune", *FAST, "--space", "lr=loguniform(1e-3,1e-1)", "--backend", "optuna",
            "--trials", "5", "--out", str(out), "--track", "none", "--pruner", "none"]
    proc = subprocess.Popen(args, env=dlr_env(OMP_NUM_THREADS="1"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    folder = out / "tune" / "p2.fnn.backprop"
    deadline = time.time() + 180
    while not (folder / "trial_002").exists():                                  # kill -9 while the third trial runs
        assert proc.poll() is None and time.time() < deadline, proc.stdout.read().decode()[-800:] if proc.stdout else ""
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (folder / "study.json").exists()
    done = subprocess.run(args, env=dlr_env(OMP_NUM_THREADS="1"), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-800:] + done.stderr[-800:]
    assert "trial   0" not in done.stdout and "trial   1" not in done.stdout   # finished trials are not run again

    import optuna

    study = optuna.load_study(study_name="p2.fnn.backprop", storage=f"sqlite:///{folder / 'optuna.db'}")
    states = [t.state.name for t in study.trials]
    assert states.count("COMPLETE") == 5 and states.count("FAIL") == 1        # the killed trial is marked failed, not lost
    assert len(_study(out, "p2.fnn.backprop")["trials"]) == 6


@pytest.mark.parametrize("space, message", [
    ("lr=loguniform(1e-4,20)", "search space for lr reaches 20"),
    ("lr=loguniform(0,1)", "loguniform needs low > 0"),
    ("lr_=uniform(0.001,0.1)", "did you mean 'lr'"),
    ("lr=gaussian(0,1)", "unknown distribution 'gaussian'"),
])
def test_bad_space_is_one_line_exit_2(cli, tmp_path, space, message):
    code, o, e = cli("tune", "p2.fnn.backprop", "--quick", "--space", space, "--out", str(tmp_path / "runs"))
    assert code == 2 and message in (o + e).replace("\n", " ") and "Traceback" not in o + e
    assert not (tmp_path / "runs" / "tune").exists()                            # nothing ran


@pytest.mark.parametrize("args, message", [
    (["--backend", "hyperopt"], "unknown --backend 'hyperopt'"),
    (["--direction", "up"], "--direction must be max or min"),
])
def test_bad_options_are_one_line_exit_2(cli, tmp_path, args, message):
    code, o, e = cli("tune", "p2.fnn.backprop", "--quick", "--space", "lr=loguniform(1e-3,1e-1)", *args, "--out", str(tmp_path / "runs"))
    assert code == 2 and message in (o + e).replace("\n", " ")


def test_unknown_metric_is_one_line_exit_2(cli, tmp_path):
    code, o, e = cli("tune", *FAST, "--space", "lr=loguniform(1e-3,1e-1)", "--trials", "1", "--metric", "val_f1", "--track", "none",
                     "--out", str(tmp_path / "runs"))
    assert code == 2 and "reports no metric 'val_f1'" in (o + e).replace("\n", " ") and "best_val_accuracy" in o + e

