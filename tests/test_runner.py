"""The runner keeps statuses honest: a crash is recorded as failed, overridden settings are 'custom',
seeds are aggregated, and `dlr tour --jobs 2` reports exactly what a serial tour reports."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from dlroadmap import registry
from dlroadmap.experiments.base import Experiment
from dlroadmap.runner import make_config, preset_of, run_id, run_node, run_seeds

NODE = registry.load().get("p1.calculus.chain_rule")   # deterministic and well under a second


def test_a_crash_after_a_verified_run_shows_failed_with_the_error(tmp_path):
    run_id(NODE, tmp_path, quick=True, track="none")
    assert registry.status_of(NODE, tmp_path) == "verified"

    real = NODE.load_experiment()

    def boom(config, tracker):
        raise RuntimeError("out of cheese\nsecond line")

    with pytest.raises(RuntimeError):
        run_node(NODE, make_config(real.Config, quick=True), tmp_path, track="none", quick=True, experiment=Experiment(real.Config, boom))
    saved = registry.read_result(tmp_path, NODE.id)
    assert saved["passed"] is False and saved["error"] == "RuntimeError: out of cheese"
    assert registry.status_of(NODE, tmp_path) == "failed"


def test_a_run_refused_for_bad_input_keeps_the_last_result_and_its_checkpoints(tmp_path):
    from dlroadmap.errors import UserError

    run_id(NODE, tmp_path, quick=True, track="none")
    before = (tmp_path / NODE.id / "result.json").read_text()
    (tmp_path / NODE.id / "checkpoints" / "step-00000001").mkdir(parents=True)   # a previous run's checkpoint
    listing = sorted(p.name for p in (tmp_path / NODE.id).iterdir())
    real = NODE.load_experiment()

    def no_data(config, tracker):
        raise UserError("dataset mnist is not here and cannot be downloaded")

    for config, experiment, error in ((make_config(real.Config, quick=True), Experiment(real.Config, no_data), "cannot be downloaded"),
                                      (make_config(real.Config, quick=True, device="cuda:7"), real, "not available|unknown device")):
        with pytest.raises(UserError, match=error):
            run_node(NODE, config, tmp_path, track="none", quick=True, experiment=experiment)
        assert (tmp_path / NODE.id / "result.json").read_text() == before
        assert sorted(p.name for p in (tmp_path / NODE.id).iterdir()) == listing      # nothing parked left behind
        assert (tmp_path / NODE.id / "checkpoints" / "step-00000001").is_dir()
    assert registry.status_of(NODE, tmp_path) == "verified"


def test_overridden_settings_are_custom_and_verify_nothing(tmp_path):
    cls = NODE.load_experiment().Config
    assert preset_of(make_config(cls, quick=True), True) == "quick"
    assert preset_of(make_config(cls, quick=True, seed=7, device="cpu"), True) == "quick"   # seed and device do not change the lesson
    assert preset_of(make_config(cls, quick=False), False) == "full"
    assert preset_of(make_config(cls, quick=True, precision="bf16"), True) == "custom"
    key = next(k for k in cls.model_fields if k not in ("seed", "device", "precision", "resume"))
    value = cls.model_fields[key].default
    assert preset_of(make_config(cls, quick=True, sets=[f"{key}={json.dumps(value)}"]), True) == "quick"  # the preset's own value
    result = run_id(NODE, tmp_path, quick=True, track="none", precision="bf16")
    assert result.passed and result.preset == "custom"
    assert registry.status_of(NODE, tmp_path) == "custom"
    assert "custom" in registry.describe_run(registry.read_result(tmp_path, NODE.id))


def test_seeds_report_mean_min_max_and_pass_only_if_every_seed_does(tmp_path):
    summary = run_seeds(NODE, tmp_path, [0, 1, 2], quick=True, track="none")
    assert summary["seeds"] == [0, 1, 2] and len(summary["per_seed"]) == 3
    for k, mean in summary["metrics"].items():
        assert summary["metrics_min"][k] <= mean <= summary["metrics_max"][k]
    assert all((tmp_path / NODE.id / f"seed-{s}" / "result.json").is_file() for s in (0, 1, 2))
    assert summary["passed"] and registry.status_of(NODE, tmp_path) == "verified"
    # One seed missing an expectation fails the node, and the table names the seed's value.
    runs = [dict(r, expectations=[dict(e) for e in r["expectations"]]) for r in summary["per_seed"]]
    runs[1]["expectations"][0].update(passed=False, got=1.0)
    from dlroadmap.runner import worst_expectations

    worst = worst_expectations(runs)
    assert worst[0]["passed"] is False and worst[0]["got"] == 1.0 and worst[1]["passed"] is True


def dlr(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from dlroadmap.cli import main; main()", *args], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "DLR_PROGRESS": "0", **(env or {})})


@pytest.mark.slow
def test_tour_jobs_2_reports_what_a_serial_tour_reports(tmp_path):
    serial = dlr("tour", "--quick", "--only", "p1.calculus", "--jobs", "1", "--track", "none", "--out", str(tmp_path / "serial"))
    parallel = dlr("tour", "--quick", "--only", "p1.calculus", "--jobs", "2", "--track", "mlflow", "--out", str(tmp_path / "jobs"))
    assert serial.returncode == 0, serial.stdout[-2000:] + serial.stderr[-2000:]
    assert parallel.returncode == 0, parallel.stdout[-2000:] + parallel.stderr[-2000:]
    a = json.loads((tmp_path / "serial" / "summary.json").read_text())
    b = json.loads((tmp_path / "jobs" / "summary.json").read_text())
    assert [n["node"] for n in a["nodes"]] == [n["node"] for n in b["nodes"]]          # in roadmap order
    assert [n["metrics"] for n in a["nodes"]] == [n["metrics"] for n in b["nodes"]]    # the same numbers
    assert set(b["node_seconds"]) == {n["node"] for n in b["nodes"]} and b["jobs"] == 2
    # the seconds come with the machine and how fast it multiplied before and after
    assert b["machine"]["cpu"] and all(b["machine"]["gemm_fp32_gflops_1_thread"][k] > 0 for k in ("start", "end"))
    # Both workers wrote to the one MLflow store.
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'jobs' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("dlroadmap").experiment_id])
    assert sorted(r.info.run_name for r in runs) == sorted(n["node"] for n in b["nodes"])


def _thread_pools():
    import threadpoolctl
    import torch

    return {i["internal_api"]: i["num_threads"] for i in threadpoolctl.threadpool_info()}, torch.get_num_threads()


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: every pool has one thread whatever the worker sets")
def test_a_tour_worker_caps_every_thread_pool_including_numpys():
    """A worker of `tour --jobs 2` gets one core: NumPy's BLAS pool, started by the imports that bring the
    initializer in, must be capped too, or two workers oversubscribe the cores."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    from dlroadmap.cli.runs import _worker_init

    with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn"), initializer=_worker_init, initargs=(1,)) as pool:
        pools, torch_threads = pool.submit(_thread_pools).result()
    assert torch_threads == 1
    assert pools.get("openblas", pools.get("mkl")) == 1, pools
    assert all(n == 1 for n in pools.values()), pools


def test_tour_starts_exclusive_nodes_then_the_longest_first(tmp_path):
    from types import SimpleNamespace

    from dlroadmap.cli.runs import default_jobs, expected_seconds, tour_order

    nodes = [SimpleNamespace(id=i, exclusive=i.startswith("x")) for i in ("a", "b", "x1", "c", "x2", "d")]
    # LPT: longest first; "d" has no figure and is placed as a typical (median) node.
    assert [nodes[i].id for i in tour_order(nodes, {"a": 1.0, "b": 30.0, "c": 10.0, "x1": 5.0})] == ["x1", "x2", "b", "c", "d", "a"]
    # The last summary of the same preset in the output folder wins over the shipped figures.
    shipped = expected_seconds(tmp_path, quick=True)
    assert shipped["p3.ssl.contrastive"] > shipped["p1.calculus.partials"] > 0
    (tmp_path / "summary.json").write_text(json.dumps({"quick": True, "node_seconds": {"p1.calculus.partials": 99.0}}))
    assert expected_seconds(tmp_path, quick=True) == {"p1.calculus.partials": 99.0}
    assert expected_seconds(tmp_path, quick=False) == shipped
    assert 1 <= default_jobs() <= 4


def test_seeds_flag_is_checked():
    r = dlr("run", NODE.id, "--quick", "--seeds", "0,x", "--track", "none")
    assert r.returncode == 2 and "--seeds expects" in r.stdout + r.stderr
    r = dlr("run", NODE.id, "--quick", "--seeds", "0,1", "--seed", "3", "--track", "none")
    assert r.returncode == 2 and "either --seed or --seeds" in r.stdout + r.stderr
