"""Shared test set-up: quiet, offline, and isolated from the user's own folders."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("DLR_PROGRESS", "0")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")

ROOT = Path(__file__).resolve().parents[1]

if os.environ.get("PYTEST_XDIST_WORKER"):
    # One BLAS/OpenMP thread per xdist worker: two workers with two threads each on two cores
    # oversubscribe the CPU and make the suite several times slower.
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Each test gets its own data cache and output folder; nothing touches ~/.cache or ./runs."""
    monkeypatch.setenv("DLR_DATA_DIR", str(tmp_path / "data-cache"))
    monkeypatch.setenv("DLR_OUT", str(tmp_path / "runs"))
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def cli(capsys):
    """Run `dlr ARGS...` in-process through the real entry point; returns (exit code, stdout, stderr)."""
    from dlroadmap.cli import main

    def invoke(*args: str) -> tuple[int, str, str]:
        old = sys.argv
        sys.argv = ["dlr", *args]
        code = 0
        try:
            main()
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        finally:
            sys.argv = old
        cap = capsys.readouterr()
        return code, cap.out, cap.err

    return invoke


def dlr_env(**extra: str) -> dict[str, str]:
    """Environment for a `dlr` subprocess."""
    env = dict(os.environ)
    env.update(extra)
    return env


def pytest_collection_modifyitems(config, items):
    """Longest first: the notebooks (every node's quick run) go to the front, ordered by their nodes' seconds in
    the tour (tour_seconds.json), so xdist's workers share them out at the start (Graham's LPT rule) instead of
    one worker starting a five-minute notebook while the other runs out of tests."""
    import json
    from importlib.resources import files

    seconds = json.loads(files("dlroadmap").joinpath("tour_seconds.json").read_text())["quick"]

    from dlroadmap.notebooks import NOTEBOOKS

    phase_of = {name: phase for phase, name in NOTEBOOKS.items()}

    def cost(item) -> float:
        """A notebook's test costs the tour seconds of its phase's nodes."""
        callspec = getattr(item, "callspec", None)
        if getattr(item, "originalname", "") != "test_notebook_runs_every_node" or callspec is None:
            return 0.0
        phase = phase_of[callspec.params["name"]]
        return sum(s for node_id, s in seconds.items() if node_id.split(".")[0] == phase)

    items.sort(key=lambda item: -cost(item))   # stable: every other test keeps its collection order
