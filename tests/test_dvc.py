"""The DVC pipeline's files and its two stage commands (the node tools.mlops.dvc runs the real `dvc repro`,
`dvc exp run`, `dvc metrics diff` and push/pull: tests/test_experiments.py)."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
import yaml

from dlroadmap.deploy.dvc_pipeline import TRAINS_A_MODEL, dvc, evaluate, init, pipeline, prepare
from dlroadmap.errors import UserError
from dlroadmap.registry import load


def test_init_writes_a_pipeline_whose_stages_chain(tmp_path):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    init(load().get("p2.fnn.backprop"), tmp_path, quick=True)
    stages = yaml.safe_load((tmp_path / "dvc.yaml").read_text())["stages"]
    assert list(stages) == ["prepare", "train", "export", "evaluate"]
    outs = {name: set(s.get("outs", [])) for name, s in stages.items()}
    # each stage's inputs are another stage's outputs (or params): the DAG DVC builds
    assert set(stages["export"]["deps"]) <= outs["train"]
    assert set(stages["evaluate"]["deps"]) <= outs["export"] | outs["prepare"]
    assert stages["prepare"]["params"] == ["config.dataset", "config.seed"] and stages["train"]["params"] == ["config"]
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    from dlroadmap.runner import make_config

    quick = make_config(load().get("p2.fnn.backprop").load_experiment().Config, quick=True).model_dump(mode="json")
    assert params["config"] == quick and params["node"] == "p2.fnn.backprop"
    site = dvc(tmp_path, "config", "core.site_cache_dir").strip()
    assert site.startswith(str(tmp_path))                             # nothing in /var/tmp


def test_run_params_file_is_the_preset_it_was_written_from(cli, tmp_path):
    """`dlr run --params params.yaml` (the train stage): the quick preset written out is still the quick preset."""
    from dlroadmap.cli.runs import params_file_sets
    from dlroadmap.runner import make_config, preset_of

    cls = load().get("p2.fnn.backprop").load_experiment().Config
    _, params = pipeline("p2.fnn.backprop", make_config(cls, quick=True).model_dump(mode="json"))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    sets = params_file_sets(tmp_path / "params.yaml")
    assert preset_of(make_config(cls, quick=True, sets=sets), True) == "quick"
    assert preset_of(make_config(cls, quick=True, sets=sets + ["lr=0.01"]), True) == "custom"
    (tmp_path / "bad.yaml").write_text("- a list\n")
    code, out, err = cli("run", "p2.fnn.backprop", "--params", str(tmp_path / "bad.yaml"))
    assert code == 2 and "must be a YAML mapping" in out + err


def test_errors_are_one_line(tmp_path):
    with pytest.raises(UserError, match="not a git repository"):
        init(load().get("p2.fnn.backprop"), tmp_path)
    with pytest.raises(UserError, match="does not train a deployable model"):
        init(load().get("p2.cnn.filters"), tmp_path)
    with pytest.raises(UserError, match="has no ONNX export"):
        evaluate(tmp_path, tmp_path / "test.npz", None, tmp_path / "eval")
    assert "p2.fnn.backprop" in TRAINS_A_MODEL


def test_prepare_writes_the_test_split_every_node_makes(tmp_path):
    from dlroadmap.data.prepare import classification_splits

    path = prepare("digits", 3, tmp_path / "data" / "test.npz")
    _, _, test = classification_splits("digits", 3)
    with np.load(path) as z:
        assert np.array_equal(z["X"], test.X.astype(np.float32)) and np.array_equal(z["y"], test.y)
    assert not [p for p in path.parent.iterdir() if p.name != "test.npz"]      # atomic: no temporary file left
