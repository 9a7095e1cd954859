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


def test_evaluate_refuses_a_split_of_another_shape_in_one_line(cli, tmp_path):
    """digits (64 features) scored by a model that takes 28x28 images: a UserError naming both shapes, not
    ONNX Runtime's INVALID_ARGUMENT traceback; the matching split is scored."""
    import json

    import onnx
    from onnx import TensorProto, helper

    # A stand-in export: (N, 28, 28) -> (N, 10) probabilities (uniform), with the model card evaluate reads.
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 28, 28])
    y = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 10])
    flat = helper.make_node("Flatten", ["input"], ["flat"], axis=1)
    first = helper.make_node("Slice", ["flat", "zero", "ten", "one"], ["ten_px"])
    probs = helper.make_node("Softmax", ["ten_px"], ["probabilities"], axis=1)
    consts = [helper.make_tensor(n, TensorProto.INT64, [1], [v]) for n, v in (("zero", 0), ("ten", 10), ("one", 1))]
    graph = helper.make_graph([flat, first, probs], "stand_in", [x], [y], initializer=consts)
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), model_dir / "model.onnx")
    (model_dir / "model_card.json").write_text(json.dumps({"name": "stand-in", "files": {"onnx": {"file": "model.onnx"}}}))
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "digits.npz", X=rng.random((5, 64), dtype=np.float32), y=np.zeros(5, dtype=np.int64))
    np.savez(tmp_path / "mnist.npz", X=rng.random((5, 28, 28), dtype=np.float32), y=np.zeros(5, dtype=np.int64))

    code, out, err = cli("dvc", "evaluate", str(model_dir), "--data", str(tmp_path / "digits.npz"), "--out", str(tmp_path / "eval"))
    assert code == 2 and "shape (64,)" in out + err and "takes (28, 28)" in out + err and "Traceback" not in out + err
    assert not (tmp_path / "eval").exists()                                   # nothing half-written
    metrics = evaluate(model_dir, tmp_path / "mnist.npz", None, tmp_path / "eval")
    assert metrics["test_images"] == 5 and (tmp_path / "eval" / "metrics.json").is_file()


def test_prepare_writes_the_test_split_every_node_makes(tmp_path):
    from dlroadmap.data.prepare import classification_splits

    path = prepare("digits", 3, tmp_path / "data" / "test.npz")
    _, _, test = classification_splits("digits", 3)
    with np.load(path) as z:
        assert np.array_equal(z["X"], test.X.astype(np.float32)) and np.array_equal(z["y"], test.y)
    assert not [p for p in path.parent.iterdir() if p.name != "test.npz"]      # atomic: no temporary file left
