"""The model server's core: everything but HTTP. FastAPI (server.py) and Flask (flask_app.py) are thin
front ends that hand this core the request (method, route, body bytes, headers) and send back the
`Reply` it returns, so both speak exactly the same protocols with the same checks.

Protocols
  TensorFlow Serving REST   GET  /v1/models/{name}            model version status
                            POST /v1/models/{name}:predict    {"instances": [...]} -> {"predictions": [...]}
                                                              {"inputs": tensor}   -> {"outputs": tensor}
  Open Inference Protocol   GET  /v2, /v2/health/live, /v2/health/ready, /v2/models/{name}[/ready]
  (KServe v2)               POST /v2/models/{name}/infer      {"inputs": [{name, shape, datatype, data}]}
  https://www.tensorflow.org/tfx/serving/api_rest, https://kserve.github.io/website/latest/modelserving/data_plane/v2_protocol/

Safety: every input is checked (JSON, shape, dtype, finite, rows per request, body size) and a
mistake is a 4xx JSON {"error": "..."} that says what was wrong; models load only from ONNX or
safetensors files, whose sha256 must match the model card; a model name is only ever a key into the
models loaded at start-up, never a path; an optional API key guards all but the health probes.

Dynamic micro-batching (as in TF Serving's batching and Triton's dynamic batcher): concurrent
requests wait up to `max_wait_ms` in a queue; one worker thread stacks up to `max_batch_size` rows
into a single model call and hands each request its slice of the output.
"""

from __future__ import annotations

import hmac
import json
import math
import queue
import re
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from dlroadmap.errors import UserError
from dlroadmap.io import PICKLE_SUFFIXES

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
BACKENDS = ("onnxruntime", "torch")
PLATFORM = {"onnxruntime": "onnxruntime_onnx", "torch": "pytorch_safetensors"}
# Reachable without an API key: the probes an orchestrator calls, and the API's own description.
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/v2/health/live", "/v2/health/ready", "/docs", "/openapi.json", "/redoc"})


@dataclass
class Limits:
    max_body_bytes: int = 4 << 20      # a 256 x 784 float request is about 1.3 MB of JSON
    max_request_rows: int = 256        # rows (instances) in one request
    max_batch_size: int = 32           # rows in one micro-batched model call
    max_wait_ms: float = 2.0           # how long a request may wait for others to join its batch
    batching: bool = True


class RequestError(Exception):
    """A client mistake: becomes a 4xx JSON reply {"error": message}."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Reply:
    status: int
    body: dict[str, Any] | bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    def json_bytes(self) -> bytes:
        return self.body if isinstance(self.body, bytes) else json.dumps(self.body, separators=(",", ":")).encode()


# --- models --------------------------------------------------------------------------------------


class Runner:
    """One loaded model: float32 array (n, *input_shape) -> probabilities (n, classes)."""

    def __init__(self, model_dir: Path, backend: str, threads: int = 0):
        from dlroadmap.deploy.runtime import FILES, read_card

        self.card = read_card(model_dir)
        self.backend = backend
        self.input_shape = [int(s) for s in self.card["input"]["shape"][1:]]
        self.classes = list(self.card["classes"])
        if backend == "onnxruntime":
            path = model_dir / FILES["onnx"]
            if not path.is_file():
                raise UserError(f"{model_dir} has no {FILES['onnx']}; run `dlr export ... --format onnx --out {model_dir}` or serve with --backend torch")
            self._verify(path, self.card.get("files", {}).get("onnx", {}).get("sha256"))
            from dlroadmap.deploy.runtime import onnx_session

            self.session = onnx_session(path, threads)
            self.input_name = self.session.get_inputs()[0].name
            self._run: Callable[[np.ndarray], np.ndarray] = lambda x: self.session.run(None, {self.input_name: x})[0]
        elif backend == "torch":
            import torch

            from dlroadmap.deploy.bundle import read_bundle

            self._verify(model_dir / "model.safetensors", self.card.get("source", {}).get("weights_sha256"))
            model = read_bundle(model_dir).serving_model()
            if threads:
                torch.set_num_threads(threads)

            def run(x: np.ndarray) -> np.ndarray:
                with torch.inference_mode():
                    return model(torch.from_numpy(x)).numpy()

            self._run = run
        else:
            raise UserError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
        self(np.zeros([1, *self.input_shape], np.float32))  # warm-up: the first call allocates

    @staticmethod
    def _verify(path: Path, expected: str | None) -> None:
        from dlroadmap.io import file_hash

        if expected and file_hash(path) != expected:
            raise UserError(f"{path} does not match the sha256 in its model card; the file was changed or corrupted, export it again")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self._run(x)


class Batcher:
    """Dynamic micro-batching: one worker thread turns concurrent requests into batched model calls."""

    def __init__(self, run: Callable[[np.ndarray], np.ndarray], max_batch_size: int, max_wait_ms: float,
                 on_batch: Callable[[int], None] = lambda n: None):
        self.run, self.max_batch, self.max_wait = run, max_batch_size, max_wait_ms / 1000
        self.on_batch = on_batch
        self.queue: queue.Queue[tuple[np.ndarray, Future] | None] = queue.Queue()
        self.thread = threading.Thread(target=self._loop, name="dlr-batcher", daemon=True)
        self.thread.start()

    def submit(self, x: np.ndarray) -> np.ndarray:
        fut: Future = Future()
        self.queue.put((x, fut))
        return fut.result()

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join(timeout=5)

    def _loop(self) -> None:
        while True:
            first = self.queue.get()
            if first is None:
                return
            items, rows = [first], len(first[0])
            deadline = time.perf_counter() + self.max_wait
            while rows < self.max_batch:
                timeout = deadline - time.perf_counter()
                try:
                    item = self.queue.get(timeout=timeout) if timeout > 0 else self.queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self.queue.put(None)  # finish this batch, then stop
                    break
                items.append(item)
                rows += len(item[0])
            self._execute(items)

    def _execute(self, items: list[tuple[np.ndarray, Future]]) -> None:
        try:
            out = self.run(np.concatenate([x for x, _ in items]) if len(items) > 1 else items[0][0])
            self.on_batch(sum(len(x) for x, _ in items))
        except Exception as e:  # noqa: BLE001 - the error belongs to the requests, not to the worker
            for _, fut in items:
                fut.set_exception(e)
            return
        start = 0
        for x, fut in items:
            fut.set_result(out[start:start + len(x)])
            start += len(x)


class Model:
    def __init__(self, name: str, runner: Runner, limits: Limits, on_batch: Callable[[str, int], None]):
        self.name, self.runner = name, runner
        self.batcher = Batcher(runner, limits.max_batch_size, limits.max_wait_ms, lambda n: on_batch(name, n)) if limits.batching else None
        self._on_batch = on_batch

    def predict(self, x: np.ndarray) -> np.ndarray:
        if self.batcher is not None:
            return self.batcher.submit(x)
        out = self.runner(x)
        self._on_batch(self.name, len(x))
        return out


def discover(root: Path) -> dict[str, Path]:
    """A model folder (it has model_card.json), or a folder of model folders (TF Serving's model base path)."""
    from dlroadmap.deploy.runtime import CARD, read_card

    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root} is not a folder; pass a folder written by `dlr export` (or a folder of them)")
    dirs = [root] if (root / CARD).is_file() else sorted(p for p in root.iterdir() if p.is_dir() and (p / CARD).is_file())
    if not dirs:
        pickles = [p.name for p in root.iterdir() if p.suffix in PICKLE_SUFFIXES]
        hint = f"; refusing pickle files ({', '.join(pickles)}): they can run arbitrary code" if pickles else ""
        raise UserError(f"no model in {root}: expected model_card.json from `dlr export`{hint}")
    found: dict[str, Path] = {}
    real_root = root.resolve()
    for d in dirs:
        if not d.resolve().is_relative_to(real_root):
            raise UserError(f"{d} points outside {root} (a symlink?); copy the model into the folder instead")
        name = read_card(d).get("name") or d.name
        if not NAME_RE.match(name):
            raise UserError(f"model name {name!r} in {d} is not allowed: use letters, digits, '.', '_' and '-' (at most 128)")
        if name in found:
            raise UserError(f"two models are named {name!r} ({found[name]} and {d}); rename one in its model_card.json")
        found[name] = d
    return found


# --- the core ------------------------------------------------------------------------------------


class Core:
    """All the server's logic. `handle(method, path, body, headers)` -> Reply; the front ends only route."""

    def __init__(self, model_root: str | Path, *, backend: str = "onnxruntime", limits: Limits | None = None,
                 api_key: str | None = None, threads: int = 0, framework: str = "fastapi"):
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.limits = limits or Limits()
        self.api_key = api_key or None
        self.backend, self.framework = backend, framework
        self.registry = CollectorRegistry()  # one per server: tests start many in one process
        self.requests = Counter("dlr_requests", "Requests by route, model and status code", ["route", "model", "code"], registry=self.registry)
        self.latency = Histogram("dlr_request_latency_seconds", "Time to answer a prediction request", ["route", "model"], registry=self.registry,
                                 buckets=(.0005, .001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 2, 5))
        self.batch_sizes = Histogram("dlr_batch_size", "Rows per model call (after micro-batching)", ["model"], registry=self.registry,
                                     buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512))
        self.models: dict[str, Model] = {}
        self.ready = False
        for name, d in discover(Path(model_root)).items():
            self.models[name] = Model(name, Runner(d, backend, threads), self.limits, self._observe_batch)
        self.ready = True

    def _observe_batch(self, name: str, n: int) -> None:
        self.batch_sizes.labels(name).observe(n)

    def close(self) -> None:
        for m in self.models.values():
            if m.batcher:
                m.batcher.close()

    # -- auth ---------------------------------------------------------------------------------
    def authorized(self, path: str, headers: dict[str, str]) -> bool:
        if not self.api_key or path in PUBLIC_PATHS:
            return True
        h = {k.lower(): v for k, v in headers.items()}
        given = h.get("x-api-key") or (h.get("authorization", "")[7:] if h.get("authorization", "").lower().startswith("bearer ") else "")
        return hmac.compare_digest(given.encode(), self.api_key.encode())

    def unauthorized(self) -> Reply:
        return Reply(401, {"error": "missing or wrong API key; send it as 'Authorization: Bearer KEY' or 'X-API-Key: KEY'"},
                     headers={"WWW-Authenticate": "Bearer"})

    # -- routes -------------------------------------------------------------------------------
    def health(self) -> Reply:
        return Reply(200, {"status": "ok"})

    def readiness(self) -> Reply:
        return Reply(200, {"status": "ready", "models": sorted(self.models)}) if self.ready else Reply(503, {"status": "loading"})

    def model(self, name: str) -> Model:
        if name not in self.models:
            raise RequestError(404, f"unknown model {name!r}; this server has: {', '.join(sorted(self.models))}")
        return self.models[name]

    def v1_status(self, name: str) -> Reply:
        self.model(name)
        return Reply(200, {"model_version_status": [{"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]})

    def v1_metadata(self, name: str) -> Reply:
        m = self.model(name)
        # The card without its source: that names folders on the server, which clients have no business seeing.
        card = {k: v for k, v in m.runner.card.items() if k != "source"}
        return Reply(200, {"model_spec": {"name": name, "version": "1"}, "metadata": {"card": card}})

    def v2_server(self) -> Reply:
        from dlroadmap import __version__

        return Reply(200, {"name": "dlroadmap", "version": __version__, "extensions": []})

    def v2_metadata(self, name: str) -> Reply:
        m = self.model(name)
        card = m.runner.card
        return Reply(200, {
            "name": name, "versions": ["1"], "platform": PLATFORM[self.backend],
            "inputs": [{"name": card["input"]["name"], "datatype": "FP32", "shape": card["input"]["shape"]}],
            "outputs": [{"name": card["output"]["name"], "datatype": "FP32", "shape": card["output"]["shape"]}],
        })

    def v2_ready(self, name: str) -> Reply:
        self.model(name)
        return Reply(200, {"name": name, "ready": True})

    def metrics(self) -> Reply:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Reply(200, generate_latest(self.registry), CONTENT_TYPE_LATEST)

    def predict_v1(self, name: str, body: bytes) -> Reply:
        return self._timed("v1_predict", name, lambda: self._predict_v1(name, body))

    def infer_v2(self, name: str, body: bytes) -> Reply:
        return self._timed("v2_infer", name, lambda: self._infer_v2(name, body))

    def _timed(self, route: str, name: str, fn: Callable[[], Reply]) -> Reply:
        t0 = time.perf_counter()
        label = name if name in self.models else "_unknown"  # unknown names must not grow the label set
        try:
            reply = fn()
        except RequestError as e:
            reply = Reply(e.status, {"error": e.message})
        self.requests.labels(route, label, str(reply.status)).inc()
        if reply.status == 200:
            self.latency.labels(route, label).observe(time.perf_counter() - t0)
        return reply

    # -- the two protocols --------------------------------------------------------------------
    def _predict_v1(self, name: str, body: bytes) -> Reply:
        m = self.model(name)
        req = self._json(body)
        if "instances" in req and "inputs" in req:
            raise RequestError(400, 'send either "instances" (row format) or "inputs" (columnar format), not both')
        key = "instances" if "instances" in req else "inputs" if "inputs" in req else None
        if key is None:
            raise RequestError(400, 'the request needs "instances": a list with one input per row (TensorFlow Serving predict format)')
        x = self._tensor(req[key], m.runner.input_shape, key)
        out = m.predict(x).tolist()
        return Reply(200, {"predictions": out} if key == "instances" else {"outputs": out})

    def _infer_v2(self, name: str, body: bytes) -> Reply:
        m = self.model(name)
        req = self._json(body)
        inputs = req.get("inputs")
        if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
            raise RequestError(400, '"inputs" must be a list with one tensor {"name", "shape", "datatype", "data"}: this model has one input')
        t = inputs[0]
        card = m.runner.card
        if t.get("name") != card["input"]["name"]:
            raise RequestError(400, f"unknown input {t.get('name')!r}; the input is named {card['input']['name']!r}")
        if t.get("datatype") != "FP32":
            raise RequestError(400, f"datatype {t.get('datatype')!r} is not accepted; this model takes FP32")
        shape = t.get("shape")
        if not isinstance(shape, list) or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape):
            raise RequestError(400, '"shape" must be a list of non-negative integers, e.g. [1, ' + ", ".join(map(str, m.runner.input_shape)) + "]")
        if shape[1:] != m.runner.input_shape or len(shape) != 1 + len(m.runner.input_shape):
            raise RequestError(422, f"shape {shape} does not fit this model; expected [N, {', '.join(map(str, m.runner.input_shape))}]")
        if "data" not in t:
            raise RequestError(400, 'the input tensor has no "data"')
        flat = self._numbers(t["data"], "data").reshape(-1)
        if flat.size != math.prod(shape):
            raise RequestError(422, f"shape {shape} holds {math.prod(shape)} values but data has {flat.size}")
        x = self._checked(flat.reshape(shape), "data")
        requested = req.get("outputs")
        if requested is not None and (not isinstance(requested, list)
                                      or any(not isinstance(o, dict) or o.get("name") != card["output"]["name"] for o in requested)):
            raise RequestError(400, f'"outputs" may only name {card["output"]["name"]!r}')
        out = m.predict(x)
        reply = {"model_name": name, "model_version": "1",
                 "outputs": [{"name": card["output"]["name"], "shape": list(out.shape), "datatype": "FP32", "data": out.reshape(-1).tolist()}]}
        if isinstance(req.get("id"), str):
            reply["id"] = req["id"]
        return Reply(200, reply)

    # -- validation ---------------------------------------------------------------------------
    def _json(self, body: bytes) -> dict[str, Any]:
        if len(body) > self.limits.max_body_bytes:
            raise RequestError(413, f"request body is {len(body)} bytes; the limit is {self.limits.max_body_bytes}")
        try:
            req = json.loads(body)
        except (ValueError, RecursionError) as e:
            raise RequestError(400, f"body is not valid JSON ({str(e).split(':')[0]})") from None
        if not isinstance(req, dict):
            raise RequestError(400, "the JSON body must be an object")
        return req

    def _numbers(self, value: Any, what: str) -> np.ndarray:
        try:
            arr = np.asarray(value)
        except (ValueError, OverflowError):  # ragged nesting, integers past 64 bits
            raise RequestError(422, f'"{what}" must be a regular (non-ragged) nested list of numbers') from None
        if arr.dtype.kind not in "iuf":
            raise RequestError(422, f'"{what}" must hold numbers only (found {_kind(arr)}); this model takes float32')
        return arr

    def _checked(self, arr: np.ndarray, what: str) -> np.ndarray:
        if arr.shape[0] == 0:
            raise RequestError(422, f'"{what}" is empty; send at least one row')
        if arr.shape[0] > self.limits.max_request_rows:
            raise RequestError(413, f"{arr.shape[0]} rows in one request; the limit is {self.limits.max_request_rows}")
        x = arr.astype(np.float32)
        if not np.isfinite(x).all():
            raise RequestError(422, f'"{what}" holds NaN, Infinity or values beyond float32; send finite numbers')
        return np.ascontiguousarray(x)

    def _tensor(self, value: Any, input_shape: list[int], what: str) -> np.ndarray:
        if not isinstance(value, list):
            raise RequestError(400, f'"{what}" must be a list with one input per row')
        arr = self._numbers(value, what)
        if list(arr.shape[1:]) != input_shape:
            got = list(arr.shape[1:]) if arr.ndim > 1 else "scalars"
            raise RequestError(422, f"each instance must have shape {input_shape}; got {got}")
        return self._checked(arr, what)


def _kind(arr: np.ndarray) -> str:
    return {"b": "booleans", "U": "strings", "S": "strings", "O": "nulls, mixed types or integers beyond 64 bits"}.get(arr.dtype.kind, str(arr.dtype))
