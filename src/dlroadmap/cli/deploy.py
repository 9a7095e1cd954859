"""`dlr export` and `dlr serve`: a trained model to ONNX / TorchScript / TFLite, and a model server."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from dlroadmap.cli.common import app, default_out
from dlroadmap.errors import UserError
from dlroadmap.ui import console


@app.command("export")
def export_(
    source: Path = typer.Argument(..., help="a run folder from `dlr run` (p2.fnn.backprop, p2.cnn.architectures) or a model bundle folder"),
    format_: List[str] = typer.Option(["onnx"], "--format", "-f", help="onnx, torchscript or tflite (repeatable; tflite needs `make tflite`)"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="model folder to write [default: <$DLR_OUT or ./runs>/models/<name>]"),
    name: Optional[str] = typer.Option(None, "--name", help="model name used in URLs [default: from the run, e.g. mlp-mnist5k]"),
    register: Optional[str] = typer.Option(None, "--register", help="also register the folder in MLflow's model registry under this name"),
    tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri", help="MLflow store for --register [default: sqlite <$DLR_OUT or ./runs>/mlflow.db]"),
) -> None:
    """Export a trained model; each file is loaded back by its runtime and compared with eager PyTorch.

    Writes the files, the weights (safetensors) and model_card.json (input schema, classes,
    preprocessing, source run, sha256 and parity of every file) into one folder that
    `dlr serve` takes.
    """
    from dlroadmap.deploy.bundle import find_bundle
    from dlroadmap.deploy.core import NAME_RE
    from dlroadmap.deploy.export import export
    from dlroadmap.io import check_writable_dir

    bundle = find_bundle(source)
    model_name = name or bundle.name
    if not NAME_RE.match(model_name):
        raise UserError(f"model name {model_name!r} is not allowed: use letters, digits, '.', '_' and '-'")
    target = out or default_out() / "models" / model_name
    check_writable_dir(target)
    card = export(bundle, target, list(dict.fromkeys(format_)), name=model_name)
    t = Table(title=f"exported {model_name} -> {target}")
    for col in ("format", "file", "bytes", "max |diff| vs eager", "tolerance"):
        t.add_column(col)
    for fmt, f in card["files"].items():
        t.add_row(fmt, f["file"], f"{f['bytes']:,}", f"{max(f['max_abs_diff_vs_eager'].values()):.1e}", f"{f['tolerance']:.0e}")
    console.print(t)
    if register:
        from dlroadmap.deploy.registry import default_tracking_uri, register as register_model

        uri = tracking_uri or default_tracking_uri(default_out())
        run_id, version = register_model(target, register, uri)
        console.print(f"registered models:/{register}/{version} (run {run_id}) in {uri}")
    console.print(f"serve it: dlr serve {target}")


@app.command()
def serve(
    model: str = typer.Argument(..., help="a folder from `dlr export` (or a folder of them), or models:/NAME/VERSION, runs:/RUN_ID from MLflow"),
    host: str = typer.Option("127.0.0.1", "--host", help="interface to bind; loopback by default, set an --api-key before exposing it"),
    port: int = typer.Option(8000, "--port", min=0, max=65535),
    backend: str = typer.Option("onnxruntime", "--backend", help="onnxruntime (model.onnx) or torch (model.safetensors)"),
    framework: str = typer.Option("fastapi", "--framework", help="fastapi (uvicorn, ASGI) or flask (WSGI)"),
    api_key: Optional[str] = typer.Option(None, "--api-key", envvar="DLR_API_KEY", help="require this key (Authorization: Bearer KEY or X-API-Key)"),
    batching: bool = typer.Option(True, "--batching/--no-batching", help="dynamic micro-batching of concurrent requests"),
    max_batch_size: int = typer.Option(32, "--max-batch-size", min=1, max=4096, help="rows per batched model call"),
    max_wait_ms: float = typer.Option(2.0, "--max-wait-ms", min=0.0, max=1000.0, help="how long a request waits for others to join its batch"),
    max_request_rows: int = typer.Option(256, "--max-request-rows", min=1, help="rows (instances) allowed in one request"),
    max_body_bytes: int = typer.Option(4 << 20, "--max-body-bytes", min=1024, help="largest request body accepted"),
    threads: int = typer.Option(0, "--threads", min=0, help="threads per model call (0: the runtime's default)"),
    tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri", help="MLflow store for models:/ and runs:/ [default: sqlite <$DLR_OUT or ./runs>/mlflow.db]"),
) -> None:
    """Serve models over HTTP: TensorFlow Serving REST (/v1), KServe v2 (/v2), /metrics, /docs.

    Endpoints: /healthz /readyz /metrics, GET /v1/models/NAME, POST /v1/models/NAME:predict,
    POST /v2/models/NAME/infer. Stop with Ctrl-C.
    """
    import tempfile

    from dlroadmap.deploy.core import BACKENDS, Core, Limits

    if backend not in BACKENDS:
        raise UserError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    if framework not in ("fastapi", "flask"):
        raise UserError(f"unknown framework {framework!r}; choose fastapi or flask")
    fetched: Path | None = None     # a model fetched from MLflow lives in a temporary folder for this server's life
    try:
        if model.startswith(("models:/", "runs:/")):
            from dlroadmap.deploy.registry import default_tracking_uri, fetch

            uri = tracking_uri or default_tracking_uri(default_out())
            fetched = Path(tempfile.mkdtemp(prefix="dlr-serve-"))
            root = fetch(model, uri, fetched)
        else:
            root = Path(model)
        limits = Limits(max_body_bytes=max_body_bytes, max_request_rows=max_request_rows, max_batch_size=max_batch_size,
                        max_wait_ms=max_wait_ms, batching=batching)
        core = Core(root, backend=backend, limits=limits, api_key=api_key, threads=threads, framework=framework)
        if host not in ("127.0.0.1", "localhost", "::1") and not api_key:
            console.print(f"[yellow]warning:[/] serving on {host} without an API key: anyone who can reach it can use it")
        docs = f"  docs: http://{host}:{port}/docs" if framework == "fastapi" else ""
        console.print(f"serving {', '.join(sorted(core.models))} ({backend}, {framework}) on http://{host}:{port}{docs}", highlight=False)
        if framework == "fastapi":
            from dlroadmap.deploy.server import run as run_server
        else:
            from dlroadmap.deploy.flask_app import run as run_server
        try:
            run_server(core, host, port)
        except OSError as e:
            raise UserError(f"cannot listen on {host}:{port} ({e.strerror or e}); choose another --port") from None
        finally:
            core.close()
    finally:
        if fetched is not None:
            import shutil

            shutil.rmtree(fetched, ignore_errors=True)
