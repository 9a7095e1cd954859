"""A bounded load run against a model server, and a helper that starts one in a subprocess.

`load_run` sends `n` requests from `concurrency` threads (each with its own keep-alive HTTP
connection) and reports requests/s, latency percentiles and the errors it saw: the figures of
`benchmarks/serving.py`, the serving node and the tests. The client shares the machine with the
server, so on 2 cores the numbers are a lower bound of what the server alone could do.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, timeout: float, *, proc: subprocess.Popen | None = None, what: str | None = None) -> None:
    """Poll `url` until it answers 200; fail early if `proc` (the server's process) exits first."""
    import httpx

    what = what or url
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} before it was ready")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} was not ready after {timeout:.0f}s")
        time.sleep(0.2)


@contextlib.contextmanager
def serving(model: str | Path, *args: str, port: int | None = None, env: dict[str, str] | None = None,
            timeout: float = 90.0) -> Iterator[str]:
    """`dlr serve MODEL ARGS` in a subprocess on 127.0.0.1; yields its base URL once /readyz answers 200."""
    port = port or free_port()
    cmd = [sys.executable, "-m", "dlroadmap.cli", "serve", str(model), "--port", str(port), *args]
    log = open(os.devnull, "wb") if os.environ.get("DLR_SERVE_LOG") is None else open(os.environ["DLR_SERVE_LOG"], "ab")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url + "/readyz", timeout, proc=proc, what=f"`{' '.join(cmd)}`")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def load_run(url: str, body: bytes, n: int = 2000, concurrency: int = 16, headers: dict[str, str] | None = None,
             warmup: int = 20) -> dict[str, Any]:
    """POST `body` to `url` n times from `concurrency` threads; requests/s, p50/p99 latency (ms), errors."""
    import httpx

    hdrs = {"content-type": "application/json", **(headers or {})}
    with httpx.Client(timeout=30) as c:
        for _ in range(warmup):
            c.post(url, content=body, headers=hdrs)
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    counter = iter(range(n))

    def worker() -> None:
        local, bad = [], []
        with httpx.Client(timeout=30) as c:
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    break
                t0 = time.perf_counter()
                try:
                    r = c.post(url, content=body, headers=hdrs)
                    if r.status_code != 200:
                        bad.append(f"HTTP {r.status_code}: {r.text[:100]}")
                except httpx.HTTPError as e:
                    bad.append(type(e).__name__)
                local.append(time.perf_counter() - t0)
        with lock:
            latencies.extend(local)
            errors.extend(bad)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    lat = np.asarray(latencies) * 1000
    return {"requests": n, "concurrency": concurrency, "seconds": wall, "requests_per_s": n / wall,
            "p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99)),
            "errors": len(errors), "error_examples": sorted(set(errors))[:5]}


def serving_benchmark(model_dir: str | Path, name: str, body: bytes, *, n: int = 2000, n_latency: int = 500,
                      concurrency: int = 16, backends: tuple[str, ...] = ("onnxruntime", "torch"),
                      progress: Any = None) -> dict[str, Any]:
    """The same model served by each backend, micro-batching off and on: throughput at `concurrency`
    clients and latency with one client at a time. Every request carries one instance (batch 1)."""
    runs: dict[str, Any] = {}
    for backend in backends:
        for batching in (False, True):
            key = f"{backend}_{'batched' if batching else 'batch1'}"
            with serving(model_dir, "--backend", backend, "--batching" if batching else "--no-batching") as url:
                target = f"{url}/v1/models/{name}:predict"
                runs[key] = {"throughput": load_run(target, body, n=n, concurrency=concurrency),
                             "latency": load_run(target, body, n=n_latency, concurrency=1)}
            if progress:
                progress(key, runs[key])
    summary = {k: {"requests_per_s": v["throughput"]["requests_per_s"], "p50_ms": v["throughput"]["p50_ms"], "p99_ms": v["throughput"]["p99_ms"],
                   "single_client_p50_ms": v["latency"]["p50_ms"], "single_client_p99_ms": v["latency"]["p99_ms"],
                   "errors": v["throughput"]["errors"] + v["latency"]["errors"]} for k, v in runs.items()}
    out: dict[str, Any] = {"runs": runs, "summary": summary, "errors": sum(s["errors"] for s in summary.values())}
    if "onnxruntime_batch1" in summary and "torch_batch1" in summary:
        out["onnxruntime_vs_torch_batch1"] = summary["onnxruntime_batch1"]["requests_per_s"] / summary["torch_batch1"]["requests_per_s"]
    for b in backends:
        out[f"batching_gain_{b}"] = summary[f"{b}_batched"]["requests_per_s"] / summary[f"{b}_batch1"]["requests_per_s"]
    return out
