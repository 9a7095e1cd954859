"""Export: ONNX / TorchScript / TFLite files equal eager PyTorch; the model card tells the truth."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from dlroadmap.deploy.bundle import find_bundle, normalisation, read_bundle, save_bundle, save_trained
from dlroadmap.deploy.export import export, run_onnx, run_torchscript, sample_inputs, tflite_python
from dlroadmap.io import file_hash
from dlroadmap.models.vision.lenet import LeNet5
from dlroadmap.models.mlp import MLP


def make_lenet_bundle(path, seed=0):
    from dlroadmap.data.prepare import classification_tensors

    torch.manual_seed(seed)
    d = classification_tensors("mnist5k")
    kwargs = {"num_classes": 10, "input_size": 28, "activation": "relu", "pool": "max"}
    return save_trained(path, LeNet5(**kwargs), d, name="lenet", family="lenet5", kwargs=kwargs, source={"node": "test"})


@pytest.fixture(scope="module")
def lenet(tmp_path_factory):
    root = tmp_path_factory.mktemp("lenet")
    bundle = read_bundle(make_lenet_bundle(root / "bundle"))
    card = export(bundle, root / "export", ["onnx", "torchscript"])
    return bundle, root / "export", card


def test_onnx_is_valid_has_dynamic_batch_and_matches_eager(lenet):
    import onnx

    bundle, out, card = lenet
    proto = onnx.load(str(out / "model.onnx"))
    onnx.checker.check_model(proto, full_check=True)
    dim0 = proto.graph.input[0].type.tensor_type.shape.dim[0]
    assert dim0.dim_param and not dim0.dim_value, "batch axis must be symbolic"
    model = bundle.serving_model()
    for batch in (1, 7, 64):  # exported with a batch of 2: other sizes prove the axis is dynamic
        x = sample_inputs(bundle, n=batch, seed=batch)
        for kind, arr in x.items():
            with torch.inference_mode():
                ref = model(torch.from_numpy(arr)).numpy()
            np.testing.assert_allclose(run_onnx(out / "model.onnx", arr), ref, atol=1e-5, rtol=0)
    assert card["files"]["onnx"]["max_abs_diff_vs_eager"]["real"] <= 1e-5


def test_real_inputs_are_real_digits(lenet):
    bundle, _, _ = lenet
    x = sample_inputs(bundle)
    assert set(x) == {"random", "real"}
    assert x["real"].shape == (64, 28, 28) and x["real"].max() > 200  # raw pixel values, not normalised


def test_torchscript_scripted_and_equal(lenet):
    bundle, out, card = lenet
    assert card["files"]["torchscript"]["method"] == "script"
    x = sample_inputs(bundle, n=16)["real"]
    with torch.inference_mode():
        ref = bundle.serving_model()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(run_torchscript(out / "model.torchscript.pt", x), ref, atol=1e-6, rtol=0)


def test_model_card(lenet):
    bundle, out, card = lenet
    saved = json.loads((out / "model_card.json").read_text())
    assert saved == card
    assert card["input"] == {**card["input"], "name": "input", "dtype": "float32", "shape": [-1, 28, 28]}
    assert card["output"]["shape"] == [-1, 10] and card["classes"] == [str(i) for i in range(10)]
    assert card["preprocessing"]["mean"] == pytest.approx(bundle.config["preprocessing"]["mean"])
    for fmt, f in card["files"].items():
        assert file_hash(out / f["file"]) == f["sha256"], fmt
    assert card["source"]["weights_sha256"] == file_hash(out / "model.safetensors")
    assert (out / "model_config.json").is_file(), "the bundle travels with the export (for --backend torch)"


def test_probabilities_include_preprocessing(lenet):
    """The served model takes raw pixels: it must equal softmax(net((x - mean) / std))."""
    bundle, out, _ = lenet
    x = sample_inputs(bundle, n=8)["real"]
    pre = bundle.config["preprocessing"]
    net = bundle.build()
    with torch.inference_mode():
        ref = torch.softmax(net((torch.from_numpy(x) - pre["mean"]) / pre["std"]), -1).numpy()
    np.testing.assert_allclose(run_onnx(out / "model.onnx", x), ref, atol=1e-5)


def test_mlp_bundle_exports_too(tmp_path):
    kwargs = {"in_features": 64, "hidden": [32], "out_features": 10}
    b = save_bundle(tmp_path / "b", MLP(**kwargs), name="mlp", family="mlp", kwargs=kwargs, input_shape=[64],
                    classes=list("0123456789"), preprocessing=normalisation([1.0] * 64, [2.0] * 64), source={})
    card = export(read_bundle(b), tmp_path / "e", ["onnx", "torchscript"])
    assert set(card["files"]) == {"onnx", "torchscript"} and "real" not in card["files"]["onnx"]["max_abs_diff_vs_eager"]


def test_find_bundle_refuses_pickle_and_explains(tmp_path):
    from dlroadmap.errors import UserError

    (tmp_path / "model.pt").write_bytes(b"\x80\x04")
    with pytest.raises(UserError, match="pickle"):
        find_bundle(tmp_path / "model.pt")
    with pytest.raises(UserError, match="no trained model"):
        find_bundle(tmp_path)
    with pytest.raises(UserError, match="does not exist"):
        find_bundle(tmp_path / "nope")


@pytest.mark.slow
def test_tflite_parity_with_litert_interpreter(tmp_path):
    """Runs in the litert-torch environment (`make tflite`, which `make test` builds)."""
    if tflite_python() is None:
        if os.environ.get("DLR_REQUIRE_TFLITE") == "1":
            pytest.fail("DLR_REQUIRE_TFLITE=1 but no .venv-tflite: run `make tflite`")
        pytest.skip("no .venv-tflite (make tflite)")
    bundle = read_bundle(make_lenet_bundle(tmp_path / "b"))
    card = export(bundle, tmp_path / "e", ["tflite"])
    f = card["files"]["tflite"]
    assert (tmp_path / "e" / "model.tflite").read_bytes()[4:8] == b"TFL3"  # the flatbuffer's file identifier
    assert max(f["max_abs_diff_vs_eager"].values()) <= 1e-4 and set(f["max_abs_diff_vs_eager"]) == {"random", "real"}


@pytest.mark.slow
def test_dlr_export_end_to_end_on_a_run(cli, tmp_path):
    """`dlr run` trains and saves a bundle; `dlr export` turns it into a served-ready folder."""
    code, out, err = cli("run", "p2.fnn.backprop", "--quick", "--set", "epochs=1", "--set", "dataset=digits", "--track", "none",
                         "--out", str(tmp_path / "runs"))
    assert code in (0, 1), out + err  # 1: one epoch misses the node's accuracy bar, which is not what is tested here
    run_dir = tmp_path / "runs" / "p2.fnn.backprop"
    assert (run_dir / "model" / "model_config.json").is_file()
    code, out, err = cli("export", str(run_dir), "--format", "onnx", "--format", "torchscript", "--out", str(tmp_path / "m"),
                         "--register", "mlp-digits", "--tracking-uri", f"sqlite:///{tmp_path / 'reg.db'}")
    assert code == 0, out + err
    assert "registered models:/mlp-digits/1" in " ".join((out + err).split())
    card = json.loads((tmp_path / "m" / "model_card.json").read_text())
    assert card["name"] == "mlp-digits" and card["input"]["shape"] == [-1, 64]
    assert card["source"]["node"] == "p2.fnn.backprop" and card["source"]["test_accuracy"] > 0.5
    # A mid-training checkpoint exports too: its weights, the run's config.
    ckpt = sorted((run_dir / "checkpoints").glob("step-*"))[-1]
    code, out, err = cli("export", str(ckpt), "--out", str(tmp_path / "ckpt"))
    assert code == 0, out + err
    ckpt_card = json.loads((tmp_path / "ckpt" / "model_card.json").read_text())
    assert ckpt_card["source"]["weights_sha256"] == file_hash(ckpt / "model.safetensors")
    assert file_hash(tmp_path / "ckpt" / "model.safetensors") == file_hash(ckpt / "model.safetensors")
    # The exported model classifies the real test digits as well as the run said.
    from dlroadmap.data.prepare import classification_splits

    _, _, test = classification_splits("digits", seed=0)
    pred = run_onnx(tmp_path / "m" / "model.onnx", test.X.astype(np.float32)).argmax(1)
    assert (pred == test.y).mean() == pytest.approx(card["source"]["test_accuracy"], abs=1e-6)
    # ... and `dlr serve` answers with the same classes.
    from dlroadmap.deploy.loadtest import serving

    with serving(tmp_path / "m") as url:
        import httpx

        r = httpx.post(f"{url}/v1/models/mlp-digits:predict", json={"instances": test.X[:50].tolist()})
        assert (np.asarray(r.json()["predictions"]).argmax(1) == pred[:50]).all()


def test_dlr_export_errors_are_one_line(cli, tmp_path):
    code, out, err = cli("export", str(tmp_path / "missing"))
    assert code == 2 and "does not exist" in out + err and "Traceback" not in out + err
    make_lenet_bundle(tmp_path / "b")
    code, out, err = cli("export", str(tmp_path / "b"), "--format", "coreml", "--out", str(tmp_path / "x"))
    assert code == 2 and "unknown export format 'coreml'" in out + err
    code, out, err = cli("export", str(tmp_path / "b"), "--name", "../evil")
    assert code == 2 and "not allowed" in out + err


def test_torchscript_falls_back_to_trace_when_script_fails(tmp_path):
    from dlroadmap.deploy.export import export_torchscript

    class VarArgs(torch.nn.Module):  # *args is not TorchScript: scripting fails, tracing records the call
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(3, 2)

        def forward(self, *xs):
            return torch.softmax(self.lin(xs[0]), -1)

    model = VarArgs().eval()
    x = torch.randn(4, 3)
    assert export_torchscript(model, x, tmp_path / "m.pt") == "trace"
    with torch.inference_mode():
        np.testing.assert_allclose(run_torchscript(tmp_path / "m.pt", x.numpy()), model(x).numpy(), atol=1e-7)
