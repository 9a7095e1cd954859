"""`dlr`: the command line of dlroadmap.

    dlr list                    the roadmap as a tree, with each node's status
    dlr show ID                 one node: its bullet, files, tests, refs, expectations, last result
    dlr run ID [--quick]        run a node's experiment (tracked), check its expectations
    dlr tour [--quick]          run every implemented node, write summary.json and report.html
    dlr report                  rebuild report.html from the results already in --out
    dlr data                    the datasets: embedded and downloadable
    dlr export RUN --format F   a trained model to ONNX / TorchScript / TFLite, parity-checked, with a model card
    dlr serve MODEL_DIR         a model server: TF Serving REST + KServe v2 + Prometheus metrics (FastAPI or Flask)

User mistakes (unknown id, bad --set, missing data, unwritable --out, bad checkpoint) print one
line and exit with code 2; nothing is left half-written.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, List, Optional

import typer
from rich.table import Table
from rich.tree import Tree

from dlroadmap import __version__
from dlroadmap.errors import TrainingDiverged, UserError
from dlroadmap.registry import fmt_value
from dlroadmap.ui import console

app = typer.Typer(
    help="dlroadmap: the deep-learning roadmap as runnable, verified code. Start with `dlr list`, then `dlr show ID` and `dlr run ID --quick`.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

STATUS_STYLE = {"missing": "dim", "implemented": "yellow", "verified": "green", "failed": "red"}


def default_out() -> Path:
    return Path(os.environ.get("DLR_OUT", "runs"))


OutOpt = typer.Option(None, "--out", "-o", help="output folder for runs, tracking stores and the report [default: $DLR_OUT or ./runs]")
TrackOpt = typer.Option("mlflow", "--track", "-t", help="tracking backends, comma-separated: mlflow, tensorboard, wandb, console, or none")


def _roadmap():
    from dlroadmap import registry

    return registry.load()


# --- list / show -----------------------------------------------------------------------------


def _tree_json(out: Path) -> list[dict[str, Any]]:
    from dlroadmap.registry import read_result, status_from

    data = []
    for p in _roadmap().phases:
        topics = []
        for t in p.topics:
            nodes = []
            for n in t.nodes:
                res = read_result(out, n.id)
                nodes.append({
                    "id": n.id, "title": n.title, "status": status_from(n, res),
                    "code": list(n.code), "tests": list(n.tests), "experiment": n.experiment,
                    "expect": [str(e) for e in n.expect], "refs": list(n.refs), "notes": n.notes,
                    "last_result": None if res is None else {"metrics": res.get("metrics"), "passed": res.get("passed")},
                })
            topics.append({"id": t.id, "title": t.title, "nodes": nodes})
        data.append({"id": p.id, "title": p.title, "topics": topics})
    return data


@app.command("list")
def list_(
    as_json: bool = typer.Option(False, "--json", help="print the tree as JSON"),
    out: Optional[Path] = OutOpt,
) -> None:
    """Show the roadmap as phases > topics > bullets, with each node's status.

    Status: missing (not built yet), implemented (code, tests, experiment exist),
    verified (expectations met in the last run), failed (expectations missed in the last run).
    """
    out = out or default_out()
    data = _tree_json(out)
    if as_json:
        print(json.dumps(data, indent=2))
        return
    counts: dict[str, int] = {}
    root = Tree(f"[bold]Deep Learning Roadmap[/]  [dim](results from {out})[/]")
    for p in data:
        pt = root.add(f"[bold]{p['title']}[/]")
        for t in p["topics"]:
            tt = pt.add(t["title"])
            for n in t["nodes"]:
                counts[n["status"]] = counts.get(n["status"], 0) + 1
                style = STATUS_STYLE[n["status"]]
                tt.add(f"[{style}]{n['status']:<11}[/] [cyan]{n['id']}[/]  {n['title']}")
    from rich.console import Console

    Console().print(root)
    Console().print("  ".join(f"[{STATUS_STYLE[s]}]{s}: {counts.get(s, 0)}[/]" for s in STATUS_STYLE))


@app.command()
def show(node_id: str = typer.Argument(..., help="node id, e.g. p2.fnn.backprop"), out: Optional[Path] = OutOpt) -> None:
    """Print one node: its bullet, files, tests, experiment config, expectations, refs and last result."""
    from rich.console import Console

    from dlroadmap.experiments.base import describe_field
    from dlroadmap.registry import read_result, status_from

    out = out or default_out()
    node = _roadmap().get(node_id)
    c = Console()
    res = read_result(out, node.id)
    status = status_from(node, res)
    c.print(f"[bold]{node.title}[/]  [cyan]{node.id}[/]  [{STATUS_STYLE[status]}]{status}[/]")
    c.print(f"phase {node.phase}, topic {node.topic}")
    if node.notes:
        c.print(f"[italic]{node.notes}[/]")
    src = Path(__file__).parent
    for label, items, base in (("code", node.code, src), ("tests", node.tests, None)):
        c.print(f"[bold]{label}:[/]" + ("" if items else " (none yet)"))
        for item in items:
            path = (base / item) if base else Path(item.split("::")[0])
            c.print(f"  {path if base else item}")
    if node.experiment:
        cfg = node.load_experiment().Config
        c.print(f"[bold]experiment:[/] dlroadmap.experiments.{node.experiment}  (dlr run {node.id} --quick)")
        t = Table("key", "default", "quick", "accepts", box=None, pad_edge=False)
        for name, f in cfg.model_fields.items():
            t.add_row(name, repr(f.default), repr(cfg.QUICK[name]) if name in cfg.QUICK else "", describe_field(cfg, name))
        c.print(t)
    c.print("[bold]expect:[/] " + (", ".join(map(str, node.expect)) or "(none declared)"))
    c.print("[bold]refs:[/]" + ("" if node.refs else " (none)"))
    for r in node.refs:
        c.print(f"  {r}")
    if res is None:
        c.print(f"[bold]last result:[/] none in {out}")
    else:
        c.print(f"[bold]last result:[/] {'passed' if res.get('passed') else 'FAILED'} "
                f"({'quick' if res.get('quick') else 'full'} mode, {res.get('seconds', 0):.1f}s, {out / node.id})")
        c.print(_result_table([res]))


# --- run / tour ------------------------------------------------------------------------------


def _result_table(results: list[dict[str, Any]]) -> Table:
    t = Table("node", "metric", "value", "expected", "pass", title=None)
    for r in results:
        rows = r.get("expectations") or []
        if r.get("error"):
            t.add_row(r["node"], "error", r["error"][:80], "", "[red]no[/]")
            continue
        for e in rows:
            ok = e["passed"]
            t.add_row(r["node"], e["metric"], fmt_value(e["got"]), f"{e['op']} {fmt_value(e['value'])}",
                      "[green]yes[/]" if ok else "[red]no[/]" if ok is False else "[yellow]missing[/]")
        if not rows:
            t.add_row(r["node"], "(no expectations)", "", "", "")
    return t


def _run_one(node, out: Path, quick: bool, sets: list[str], track: str, **overrides: Any):
    from dlroadmap.experiments.base import make_config, run_node

    cfg_cls = node.load_experiment().Config
    config = make_config(cfg_cls, quick=quick, sets=sets, **overrides)
    return run_node(node, config, out, track=track, quick=quick)


@app.command()
def run(
    node_id: str = typer.Argument(..., help="node id, e.g. p2.fnn.backprop (see `dlr list`)"),
    quick: bool = typer.Option(False, "--quick", "-q", help="the small preset: seconds to a minute on 2 cores"),
    set_: Optional[List[str]] = typer.Option(None, "--set", "-s", help="override a config value: --set lr=0.01 (repeatable; `dlr show ID` lists keys)"),
    track: str = TrackOpt,
    out: Optional[Path] = OutOpt,
    resume: bool = typer.Option(False, "--resume", help="continue from the latest checkpoint in <out>/<id>/checkpoints"),
    precision: Optional[str] = typer.Option(None, "--precision", help="fp32 or bf16 (autocast)"),
    device: Optional[str] = typer.Option(None, "--device", help="auto, cpu, cuda, cuda:N or mps"),
    seed: Optional[int] = typer.Option(None, "--seed", help="random seed"),
) -> None:
    """Run one node's experiment, track it, check its expectations, and write <out>/<id>/result.json."""
    from dlroadmap.report import write_report
    from dlroadmap.train.tracking import parse_backends

    out = out or default_out()
    parse_backends(track)
    node = _roadmap().get(node_id)
    result = _run_one(node, out, quick, set_ or [], track, resume=resume or None, precision=precision, device=device, seed=seed)
    write_report(out)
    console.print(_result_table([result.to_json()]))
    if result.notes:
        console.print(result.notes, highlight=False)
    console.print(f"run folder: {out / node.id}   report: {out / 'report.html'}   ({result.seconds:.1f}s)")
    if not result.passed:
        console.print(f"[red]{node.id}: an expectation was missed[/]")
        raise typer.Exit(1)


@app.command()
def tour(
    quick: bool = typer.Option(False, "--quick", "-q", help="run every node in its quick preset"),
    only: Optional[str] = typer.Option(None, "--only", help="only nodes whose id starts with this prefix, e.g. p2 or p2.fnn"),
    track: str = TrackOpt,
    out: Optional[Path] = OutOpt,
) -> None:
    """Run every implemented node, then write <out>/summary.json and <out>/report.html.

    Exits with code 1 when any node misses an expectation or fails.
    """
    from dlroadmap.io import check_writable_dir, write_json
    from dlroadmap.report import write_report
    from dlroadmap.train.tracking import parse_backends
    from dlroadmap.ui import progress

    out = check_writable_dir(out or default_out())
    parse_backends(track)
    nodes = [n for n in _roadmap().select(only) if n.implemented]
    if not nodes:
        raise UserError(f"no implemented node matches --only {only!r}; see `dlr list`")
    results: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    with progress() as bar:
        task = bar.add_task("tour", total=len(nodes), info="") if bar else None
        for i, node in enumerate(nodes):
            if bar is not None:
                bar.update(task, info=node.id)
            else:
                console.print(f"[{i + 1}/{len(nodes)}] {node.id} ...", highlight=False)
            try:
                results.append(_run_one(node, out, quick, [], track).to_json())
            except (UserError, TrainingDiverged) as e:
                results.append({"node": node.id, "title": node.title, "passed": False, "error": str(e), "expectations": []})
            except Exception as e:  # a bug in one node must not hide the others' results
                results.append({"node": node.id, "title": node.title, "passed": False, "error": f"{type(e).__name__}: {e}", "expectations": []})
            if bar is not None:
                bar.advance(task)
    summary = {
        "version": __version__, "quick": quick, "only": only, "seconds": time.perf_counter() - t0,
        "passed": all(r["passed"] for r in results), "nodes": results,
    }
    write_json(out / "summary.json", summary)
    write_report(out)
    console.print(_result_table(results))
    n_ok = sum(r["passed"] for r in results)
    console.print(f"{n_ok}/{len(results)} nodes passed in {summary['seconds']:.1f}s   summary: {out / 'summary.json'}   report: {out / 'report.html'}")
    if not summary["passed"]:
        raise typer.Exit(1)


@app.command()
def report(out: Optional[Path] = OutOpt) -> None:
    """Rebuild <out>/report.html from the results already in the output folder."""
    from dlroadmap.report import write_report

    path = write_report(out or default_out())
    console.print(f"report: {path}")


@app.command()
def data() -> None:
    """List datasets: embedded ones (always available) and downloadable ones (cache or DLR_DATA_DIR)."""
    from rich.console import Console

    from dlroadmap.data import DOWNLOADABLE, EMBEDDED, cache_dir

    t = Table("dataset", "kind", "where / what")
    for name in EMBEDDED:
        t.add_row(name, "embedded", "ships with the install")
    for name, r in DOWNLOADABLE.items():
        have = all((cache_dir() / name / f.name).is_file() for f in r.files)
        t.add_row(name, "downloadable", f"{r.about}; {'present' if have else 'not present'} in {cache_dir() / name}")
    Console().print(t)



# --- export / serve ----------------------------------------------------------------------------


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
    root: Path
    if model.startswith(("models:/", "runs:/")):
        from dlroadmap.deploy.registry import default_tracking_uri, fetch

        uri = tracking_uri or default_tracking_uri(default_out())
        root = fetch(model, uri, Path(tempfile.mkdtemp(prefix="dlr-serve-")))
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


def version_callback(value: bool) -> None:
    if value:
        print(f"dlroadmap {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(version: bool = typer.Option(False, "--version", callback=version_callback, is_eager=True, help="print the version")) -> None:
    pass


def main() -> None:
    """Entry point: user errors become one line on stderr and exit code 2."""
    try:
        rc = app(standalone_mode=False)
        if isinstance(rc, int) and rc:
            sys.exit(rc)
    except UserError as e:
        console.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except TrainingDiverged as e:
        console.print(f"[bold red]diverged:[/] {e}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        console.print("aborted")
        sys.exit(130)
    except Exception as e:  # click's usage errors (unknown option, missing argument)
        import click

        if isinstance(e, click.ClickException):
            e.show()
            sys.exit(e.exit_code)
        raise


if __name__ == "__main__":
    main()
