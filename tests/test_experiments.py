"""Experiments run end to end through run_node (every node's quick run is in tests/test_notebooks.py, on a Jupyter kernel)."""

from __future__ import annotations

import json

import pytest

from dlroadmap import registry
from dlroadmap.runner import make_config, run_node



@pytest.mark.slow
def test_fnn_backprop_quick(tmp_path):
    node = registry.load().get("p2.fnn.backprop")
    cfg = make_config(node.load_experiment().Config, quick=True)
    result = run_node(node, cfg, tmp_path, track="none", quick=True)
    assert result.metrics["test_accuracy"] >= 0.93, result.metrics
    assert result.metrics["manual_grad_max_abs_diff"] < 1e-10
    assert result.passed and all(e["passed"] for e in result.expectations)
    run_dir = tmp_path / "p2.fnn.backprop"
    assert (run_dir / "plots" / "learning_curves.png").stat().st_size > 5000
    assert (run_dir / "plots" / "confusion_matrix.png").stat().st_size > 5000
    saved = json.loads((run_dir / "result.json").read_text())
    assert saved["passed"] and saved["metrics"]["test_accuracy"] == result.metrics["test_accuracy"]
    assert registry.status_of(node, tmp_path) == "verified"
    from dlroadmap.train import load_weights

    assert "net.1.weight" in load_weights(run_dir / "model" / "model.safetensors")


def test_quick_preset_is_smaller():
    Config = registry.load().get("p2.fnn.backprop").load_experiment().Config
    q, full = Config.quick(), Config()
    assert q.epochs < full.epochs
