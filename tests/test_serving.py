"""The model server, started for real on 127.0.0.1 in a subprocess (`dlr serve`), over both front ends."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import httpx
import numpy as np
import pytest
import torch

from dlroadmap.deploy.bundle import read_bundle
from dlroadmap.deploy.core import Batcher, Core, Limits
from dlroadmap.deploy.export import export
from dlroadmap.deploy.loadtest import load_run, serving
from test_export import make_lenet_bundle

pytestmark = pytest.mark.slow
NAME = "lenet"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    bundle = read_bundle(make_lenet_bundle(root / "bundle", seed=3))
    export(bundle, root / "models" / NAME, ["onnx"])
    return root / "models" / NAME


@pytest.fixture(scope="module")
def digits(model_dir):
    """Real raw MNIST test digits and the eager PyTorch probabilities for them."""
    from dlroadmap.data.prepare import classification_splits

    _, _, test = classification_splits("mnist5k", seed=0)
    x = np.asarray(test.X[:8], np.float32).reshape(-1, 28, 28)
    with torch.inference_mode():
        ref = read_bundle(model_dir).serving_model()(torch.from_numpy(x)).numpy()
    return x, ref


@pytest.fixture(scope="module", params=["fastapi", "flask"])
def server(request, model_dir):
    with serving(model_dir, "--framework", request.param, "--max-body-bytes", "65536") as url:
        yield url


def v1(url, body, **kw):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(f"{url}/v1/models/{NAME}:predict", content=data, headers={"content-type": "application/json"}, **kw)


def v2_body(x, **over):
    return {"id": "r1", "inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32", "data": x.reshape(-1).tolist(), **over}]}


def test_v1_predictions_equal_eager(server, digits):
    x, ref = digits
    r = v1(server, {"instances": x.tolist()})
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(np.array(r.json()["predictions"]), ref, atol=1e-5)
    r = v1(server, {"inputs": x[:3].tolist()})  # columnar format
    np.testing.assert_allclose(np.array(r.json()["outputs"]), ref[:3], atol=1e-5)


def test_v2_infer_equals_eager(server, digits):
    x, ref = digits
    r = httpx.post(f"{server}/v2/models/{NAME}/infer", json=v2_body(x))
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["model_name"] == NAME and out["id"] == "r1"
    (o,) = out["outputs"]
    assert o["name"] == "probabilities" and o["datatype"] == "FP32" and o["shape"] == [8, 10]
    np.testing.assert_allclose(np.array(o["data"]).reshape(o["shape"]), ref, atol=1e-5)


def test_status_and_metadata(server):
    assert httpx.get(f"{server}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{server}/readyz").json()["models"] == [NAME]
    st = httpx.get(f"{server}/v1/models/{NAME}").json()
    assert st["model_version_status"][0]["state"] == "AVAILABLE"
    meta = httpx.get(f"{server}/v2/models/{NAME}").json()
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 28, 28]}]
    assert httpx.get(f"{server}/v2/models/{NAME}/ready").json()["ready"] is True
    card = httpx.get(f"{server}/v1/models/{NAME}/metadata").json()["metadata"]["card"]
    assert card["classes"] == [str(i) for i in range(10)] and "source" not in card  # no server paths leak
    assert httpx.get(f"{server}/v2/health/ready").status_code == 200


BAD = {
    "malformed JSON": (b'{"instances": [', 400, "not valid JSON"),
    "not an object": (b"[1, 2]", 400, "must be an object"),
    "no instances": ({"rows": []}, 400, '"instances"'),
    "wrong shape": ({"instances": [[0.0] * 784]}, 422, "shape [28, 28]"),
    "ragged": ({"instances": [[[0.0] * 28] * 28, [[0.0] * 27] * 28]}, 422, "non-ragged"),
    "wrong dtype": ({"instances": [[["1"] * 28] * 28]}, 422, "numbers only"),
    "null values": ({"instances": [[[None] * 28] * 28]}, 422, "numbers only"),
    "NaN": (b'{"instances": [' + json.dumps([[0.0] * 28] * 28).replace("0.0", "NaN", 1).encode() + b"]}", 422, "NaN"),
    "overflow": ({"instances": [[[1e39] * 28] * 28]}, 422, "beyond float32"),
    "empty": ({"instances": []}, 422, "shape"),
    "too many rows": ({"instances": [[[0.0] * 28] * 28] * 300}, 413, "limit"),
    "oversized body": (b" " * 70_000 + b"{}", 413, "limit"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_requests_get_4xx_and_server_keeps_answering(server, digits, case):
    body, code, words = BAD[case]
    r = v1(server, body)
    assert r.status_code == code, (case, r.status_code, r.text)
    assert words in r.json()["error"], r.json()
    x, ref = digits
    ok = v1(server, {"instances": x[:1].tolist()})
    assert ok.status_code == 200 and np.allclose(ok.json()["predictions"], ref[:1], atol=1e-5)


@pytest.mark.parametrize("over, code, words", [
    ({"datatype": "INT64"}, 400, "FP32"),
    ({"name": "pixels"}, 400, "named 'input'"),
    ({"shape": [8, 784]}, 422, "expected [N, 28, 28]"),
    ({"shape": [9, 28, 28]}, 422, "holds 7056 values"),
    ({"shape": "8x28x28"}, 400, "non-negative integers"),
    ({"data": ["x"] * 6272}, 422, "numbers only"),
])
def test_v2_bad_tensors(server, digits, over, code, words):
    x, _ = digits
    r = httpx.post(f"{server}/v2/models/{NAME}/infer", json=v2_body(x, **over))
    assert r.status_code == code and words in r.json()["error"], r.text


def test_unknown_model_and_path_escape(server, digits):
    x, _ = digits
    for name in ("nope", "..%2F..%2Fetc%2Fpasswd", "..", "lenet%00"):
        r = httpx.post(f"{server}/v1/models/{name}:predict", json={"instances": x[:1].tolist()})
        assert r.status_code in (404, 405), (name, r.status_code)
        assert "error" in r.json()
    assert httpx.get(f"{server}/v2/models/nope").status_code == 404


def test_metrics_count_requests_latency_and_batches(server, digits):
    x, _ = digits
    v1(server, {"instances": x[:2].tolist()})
    # its own unknown-model request: under xdist the test that sends others may run on the other worker's server
    assert httpx.post(f"{server}/v1/models/nope:predict", json={"instances": x[:1].tolist()}).status_code == 404
    text = httpx.get(f"{server}/metrics").text
    assert f'dlr_requests_total{{code="200",model="{NAME}",route="v1_predict"}}' in text
    assert "dlr_request_latency_seconds_bucket" in text and "dlr_batch_size_bucket" in text
    assert 'dlr_requests_total{code="404",model="_unknown",route="v1_predict"}' in text  # unknown names share one label


def test_load_run_has_zero_errors(server, digits):
    x, _ = digits
    result = load_run(f"{server}/v1/models/{NAME}:predict", json.dumps({"instances": x[:1].tolist()}).encode(), n=2000, concurrency=16)
    assert result["errors"] == 0, result["error_examples"]
    assert result["requests_per_s"] > 50


def test_openapi_fuzzed_by_schemathesis_without_5xx(model_dir, tmp_path):
    with serving(model_dir) as url:
        doc = httpx.get(f"{url}/openapi.json").json()
        assert "/v1/models/{name}:predict" in doc["paths"] and "/v2/models/{name}/infer" in doc["paths"]
        body = doc["paths"]["/v1/models/{name}:predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
        instance = body["properties"]["instances"]["items"]["anyOf"][0]
        assert instance["minItems"] == instance["items"]["maxItems"] == 28 and instance["items"]["items"]["type"] == "number"
        st = os.path.join(os.path.dirname(sys.executable), "st")
        proc = subprocess.run([st, "run", f"{url}/openapi.json", "--checks", "not_a_server_error", "-n", "20", "--seed", "7",
                               "--generation-database", "none", "-w", "1", "--report-junit-path", str(tmp_path / "st.xml")],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout[-3000:]
        assert "passed" in proc.stdout
        assert httpx.get(f"{url}/healthz").status_code == 200
        # The schema is exact enough that fuzzed bodies reach the model, not only the validators.
        assert f'dlr_requests_total{{code="200",model="{NAME}",route="v1_predict"}}' in httpx.get(f"{url}/metrics").text


def test_api_key(model_dir, digits):
    x, _ = digits
    with serving(model_dir, env={"DLR_API_KEY": "s3cret"}) as url:
        body = {"instances": x[:1].tolist()}
        assert httpx.post(f"{url}/v1/models/{NAME}:predict", json=body).status_code == 401
        r = httpx.post(f"{url}/v1/models/{NAME}:predict", json=body, headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 401 and "API key" in r.json()["error"]
        assert httpx.post(f"{url}/v1/models/{NAME}:predict", json=body, headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert httpx.post(f"{url}/v2/models/{NAME}/infer", json=v2_body(x), headers={"X-API-Key": "s3cret"}).status_code == 200
        assert httpx.get(f"{url}/metrics").status_code == 401
        assert httpx.get(f"{url}/healthz").status_code == 200  # probes stay open


def test_torch_backend_equals_onnxruntime(model_dir, digits):
    x, ref = digits
    with serving(model_dir, "--backend", "torch", "--no-batching") as url:
        r = v1(url, {"instances": x.tolist()})
        np.testing.assert_allclose(np.array(r.json()["predictions"]), ref, atol=1e-6)
        assert httpx.get(f"{url}/v2/models/{NAME}").json()["platform"] == "pytorch_safetensors"


def test_serve_from_mlflow_registry(cli, model_dir, digits, tmp_path):
    from dlroadmap.deploy.registry import register

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_id, version = register(model_dir, "digits-cnn", uri)
    assert version == "1"
    from mlflow.tracking import MlflowClient

    mv = MlflowClient(tracking_uri=uri, registry_uri=uri).get_model_version("digits-cnn", "1")
    assert mv.run_id == run_id
    x, ref = digits
    for source in ("models:/digits-cnn/1", "models:/digits-cnn/latest", f"runs:/{run_id}"):
        with serving(source, "--tracking-uri", uri) as url:
            r = v1(url, {"instances": x.tolist()})
            np.testing.assert_allclose(np.array(r.json()["predictions"]), ref, atol=1e-5)


def test_serve_errors_are_one_line(cli, tmp_path, model_dir, monkeypatch):
    import tempfile

    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))     # where a models:/ fetch would go
    code, out, err = cli("serve", str(tmp_path / "nothing"))
    assert code == 2 and "not a folder" in out + err
    (tmp_path / "pickled").mkdir()
    (tmp_path / "pickled" / "model.pkl").write_bytes(b"\x80\x04N.")
    code, out, err = cli("serve", str(tmp_path / "pickled"))
    assert code == 2 and "refusing pickle" in out + err and "Traceback" not in out + err
    code, out, err = cli("serve", str(model_dir), "--backend", "tensorrt")
    assert code == 2 and "unknown backend" in out + err
    code, out, err = cli("serve", "models:/absent/1", "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}")
    assert code == 2 and "cannot fetch" in out + err
    assert not list((tmp_path / "tmp").iterdir())                         # the failed fetch left no folder behind


def test_tampered_model_is_refused(tmp_path, model_dir):
    import shutil

    from dlroadmap.errors import UserError

    shutil.copytree(model_dir, tmp_path / "m")
    with open(tmp_path / "m" / "model.onnx", "r+b") as f:
        f.seek(-8, 2)
        f.write(b"\x00" * 8)
    with pytest.raises(UserError, match="sha256"):
        Core(tmp_path / "m")


def test_symlink_out_of_the_model_folder_is_refused(tmp_path, model_dir):
    from dlroadmap.errors import UserError

    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "sneaky").symlink_to(model_dir)
    with pytest.raises(UserError, match="outside"):
        Core(tmp_path / "repo")


def test_batcher_merges_concurrent_requests_and_splits_results():
    calls = []

    def run(x):
        calls.append(len(x))
        return x * 2

    b = Batcher(run, max_batch_size=64, max_wait_ms=50)
    results = {}

    def client(i):
        results[i] = b.submit(np.full((2, 3), i, np.float32))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    b.close()
    assert all(np.array_equal(results[i], np.full((2, 3), 2 * i)) for i in range(16))
    assert sum(calls) == 32 and max(calls) > 2, calls  # several requests shared a model call


def test_batcher_passes_errors_to_every_waiting_request():
    def run(x):
        raise RuntimeError("model failed")

    b = Batcher(run, max_batch_size=8, max_wait_ms=1)
    with pytest.raises(RuntimeError, match="model failed"):
        b.submit(np.zeros((1, 2), np.float32))
    b.close()


def test_core_without_http(model_dir, digits):
    """The core answers the protocols by itself: what both front ends delegate to."""
    x, ref = digits
    core = Core(model_dir, limits=Limits(batching=False))
    try:
        r = core.predict_v1(NAME, json.dumps({"instances": x.tolist()}).encode())
        assert r.status == 200 and np.allclose(r.body["predictions"], ref, atol=1e-5)
        assert core.predict_v1("other", b"{}").status == 404
        assert core.authorized("/v1/models/x", {}) is True
    finally:
        core.close()


def test_onnx_serving_needs_neither_torch_nor_mlflow(model_dir, digits, tmp_path):
    """What the slim image relies on: `dlr serve` with ONNX Runtime answers correctly where importing torch,
    MLflow or Flask fails (stub modules that raise ImportError stand first on the path)."""
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    for name in ("torch", "mlflow", "flask"):
        (blocked / f"{name}.py").write_text(f"raise ImportError('{name} is not installed (simulated slim image)')\n")
    env = {"PYTHONPATH": os.pathsep.join([str(blocked), *filter(None, [os.environ.get("PYTHONPATH")])])}
    x, ref = digits
    with serving(model_dir, env=env) as url:
        r = v1(url, {"instances": x.tolist()})
    assert r.status_code == 200, r.text
    assert np.abs(np.array(r.json()["predictions"]) - ref).max() < 1e-5
