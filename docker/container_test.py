"""Container test (run by `make container-test`, which .ci/run calls after `make test`).

1. The image: `podman run` the model server on 127.0.0.1 with an exported CNN mounted read-only,
   wait for /readyz, check a prediction against ONNX Runtime on the host, run the image's
   HEALTHCHECK, check the process is not root, stop it. The slim image (--slim-image): the same, plus its
   size (<= 400 MB) and that torch and MLflow cannot be imported in it.
2. compose.yaml: `podman-compose up` the model server and the MLflow server, get a prediction and
   MLflow's /health, register the model in that MLflow server over HTTP, serve it on the host
   from `models:/...` through the server, then `podman-compose down`.

    python docker/container_test.py [--image dlroadmap-serve:latest] [--engine podman]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

# The exported model is shared with the container's user: the usual umask, set before dlroadmap.io reads it.
os.umask(0o022)

from dlroadmap.deploy.loadtest import free_port, wait_ready  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def sh(*cmd: str, check: bool = True, env: dict | None = None, capture: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=capture, text=True, env={**os.environ, **(env or {})}, cwd=ROOT)
    if check and proc.returncode != 0:
        raise SystemExit(f"container test: `{' '.join(cmd)}` failed ({proc.returncode}): {(proc.stderr or proc.stdout)[-2000:]}")
    return proc


def make_model(models: Path) -> tuple[str, np.ndarray, np.ndarray]:
    """An exported LeNet-5 (seeded weights) and its expected outputs on real digits, from the host."""
    import torch

    from dlroadmap.data.prepare import classification_splits, classification_tensors
    from dlroadmap.deploy.bundle import read_bundle, save_trained
    from dlroadmap.deploy.export import export, run_onnx
    from dlroadmap.models.vision.lenet import LeNet5

    torch.manual_seed(0)
    d = classification_tensors("mnist5k")
    kwargs = {"num_classes": 10, "input_size": 28, "activation": "relu", "pool": "max"}
    b = save_trained(models.parent / "bundle", LeNet5(**kwargs), d, name="lenet", family="lenet5", kwargs=kwargs, source={"test": "container"})
    export(read_bundle(b), models / "lenet", ["onnx"])
    x = np.asarray(classification_splits("mnist5k")[2].X[:4], np.float32).reshape(-1, 28, 28)
    # No chmod: the container runs as uid 10001 and must be able to read what `dlr export` wrote, as it is.
    return "lenet", x, run_onnx(models / "lenet" / "model.onnx", x)


def predict(url: str, name: str, x: np.ndarray, ref: np.ndarray) -> None:
    r = httpx.post(f"{url}/v1/models/{name}:predict", json={"instances": x.tolist()}, timeout=30)
    if r.status_code != 200:
        raise SystemExit(f"container test: predict answered {r.status_code}: {r.text[:300]}")
    diff = float(np.abs(np.asarray(r.json()["predictions"]) - ref).max())
    if diff > 1e-5:
        raise SystemExit(f"container test: served predictions differ from the host's by {diff:.2e}")
    print(f"  prediction ok (max |diff| {diff:.1e})")


def test_image(engine: str, image: str, models: Path, name: str, x: np.ndarray, ref: np.ndarray) -> None:
    port = free_port()
    cname = f"dlr-container-test-{os.getpid()}"
    print(f"image: {engine} run {image} on 127.0.0.1:{port}")
    sh(engine, "run", "-d", "--name", cname, "-p", f"127.0.0.1:{port}:8000", "-v", f"{models}:/models:ro", image)
    try:
        wait_ready(f"http://127.0.0.1:{port}/readyz", timeout=120)
        predict(f"http://127.0.0.1:{port}", name, x, ref)
        uid = sh(engine, "exec", cname, "id", "-u").stdout.strip()
        if uid == "0":
            raise SystemExit("container test: the server runs as root")
        print(f"  runs as uid {uid}")
        if engine == "podman":
            sh(engine, "healthcheck", "run", cname)
            print("  HEALTHCHECK passed")
    finally:
        sh(engine, "rm", "-f", cname, check=False)


def size_of(engine: str, image: str) -> float:
    """An image's size in MB as the engine reports it."""
    return int(sh(engine, "image", "inspect", "--format", "{{.Size}}", image).stdout.strip()) / 1e6


SLIM_MAX_MB = 400   # the slim image's size budget (the full image, with torch and MLflow, is ~2 GB)


def test_slim_image(engine: str, image: str, models: Path, name: str, x: np.ndarray, ref: np.ndarray) -> None:
    """The slim image: the same checks as the full one, plus its size and that torch and MLflow are absent."""
    size_mb = size_of(engine, image)
    print(f"slim image: {image}, {size_mb:.0f} MB")
    if size_mb > SLIM_MAX_MB:
        raise SystemExit(f"container test: the slim image is {size_mb:.0f} MB, over its {SLIM_MAX_MB} MB budget")
    for module in ("torch", "mlflow"):
        if sh(engine, "run", "--rm", "--entrypoint", "python3", image, "-c", f"import {module}", check=False).returncode == 0:
            raise SystemExit(f"container test: {module} is importable in the slim image")
    print("  torch and mlflow are not installed")
    test_image(engine, image, models, name, x, ref)


def test_compose(compose: list[str], models: Path, name: str, x: np.ndarray, ref: np.ndarray) -> None:
    port, mlflow_port = free_port(), free_port()
    env = {"DLR_MODEL_DIR": str(models), "DLR_PORT": str(port), "MLFLOW_PORT": str(mlflow_port), "DLR_API_KEY": ""}
    project = ["-p", f"dlrtest{os.getpid()}"]
    print(f"compose: {' '.join(compose)} up (model server :{port}, MLflow :{mlflow_port})")
    sh(*compose, *project, "-f", "compose.yaml", "up", "-d", env=env)
    try:
        wait_ready(f"http://127.0.0.1:{port}/readyz", timeout=120)
        predict(f"http://127.0.0.1:{port}", name, x, ref)
        wait_ready(f"http://127.0.0.1:{mlflow_port}/health", timeout=120)
        print("  MLflow server healthy")
        # The registry path through the compose MLflow server: register over HTTP, serve from models:/.
        from dlroadmap.deploy.loadtest import serving
        from dlroadmap.deploy.registry import register

        uri = f"http://127.0.0.1:{mlflow_port}"
        _, version = register(models / name, "lenet-compose", uri)
        with serving(f"models:/lenet-compose/{version}", "--tracking-uri", uri) as url:
            predict(url, name, x, ref)
        print(f"  served models:/lenet-compose/{version} from the compose MLflow server")
    finally:
        sh(*compose, *project, "-f", "compose.yaml", "down", "-v", check=False, env=env)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image", default="dlroadmap-serve:latest")
    ap.add_argument("--engine", default="podman")
    ap.add_argument("--slim-image", default=None, help="also check the slim image (ONNX Runtime only): size, no torch, the same API")
    ap.add_argument("--skip-compose", action="store_true")
    args = ap.parse_args()
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="dlr-ct-") as tmp:
        os.chmod(tmp, 0o755)
        models = Path(tmp) / "models"
        name, x, ref = make_model(models)
        test_image(args.engine, args.image, models, name, x, ref)
        if args.slim_image:
            test_slim_image(args.engine, args.slim_image, models, name, x, ref)
            full_mb = size_of(args.engine, args.image)
            print(f"  image sizes: {args.image} {full_mb:.0f} MB, {args.slim_image} (slim) smaller by {full_mb / max(1.0, size_of(args.engine, args.slim_image)):.1f}x")
        if not args.skip_compose:
            compose = [c for c in (["podman-compose"], ["docker", "compose"]) if shutil.which(c[0])]
            if not compose:
                raise SystemExit("container test: no podman-compose or docker compose on PATH")
            test_compose(compose[0], models, name, x, ref)
    print(f"container test passed in {time.time() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
