"""`dlr run` and `dlr tour`: run nodes (one, at several seeds, or all of them, serially or in worker processes)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, List, Optional

import typer
from rich.table import Table

from dlroadmap import __version__
from dlroadmap.cli.common import OutOpt, TrackOpt, app, default_out, parse_seeds, roadmap
from dlroadmap.cli.nodes import result_table
from dlroadmap.errors import UserError
from dlroadmap.ui import console


@app.command()
def run(
    node_id: str = typer.Argument(..., help="node id, e.g. p2.fnn.backprop (see `dlr list`)"),
    quick: bool = typer.Option(False, "--quick", "-q", help="the small preset: seconds to a minute on 2 cores"),
    set_: Optional[List[str]] = typer.Option(None, "--set", "-s", help="override a config value: --set lr=0.01 (repeatable; `dlr show ID` lists keys). The run is then 'custom': it verifies nothing"),
    track: str = TrackOpt,
    out: Optional[Path] = OutOpt,
    resume: bool = typer.Option(False, "--resume", help="continue from the latest checkpoint in <out>/<id>/checkpoints (with none there, it says so and starts from the beginning)"),
    precision: Optional[str] = typer.Option(None, "--precision", help="fp32 or bf16 (autocast)"),
    compile_: bool = typer.Option(False, "--compile", help="torch.compile the model of every training step: a one-off compile (cached in ~/.cache/dlroadmap/inductor), then faster steps"),
    device: Optional[str] = typer.Option(None, "--device", help="auto, cpu, cuda, cuda:N or mps"),
    seed: Optional[int] = typer.Option(None, "--seed", help="random seed"),
    seeds: Optional[str] = typer.Option(None, "--seeds", help="run at several seeds, e.g. 0,1,2: each metric's mean, min and max; passes only if every seed does"),
    nproc: Optional[int] = typer.Option(None, "--nproc", help="data-parallel on N processes (torchrun + DDP; gloo on CPU, nccl on GPUs): each process takes its own batch, so a step sees N x batch_size samples"),
    params: Optional[Path] = typer.Option(None, "--params", help="a YAML file whose `config:` mapping sets config values (as --set does; --set items win): DVC's params.yaml"),
) -> None:
    """Run one node's experiment, track it, check its expectations, and write <out>/<id>/result.json.

    Examples: `dlr run p2.cnn.filters --quick`, `dlr run p2.cnn.filters --quick --seeds 0,1,2`,
    `dlr run p2.fnn.backprop --set lr=0.003 --precision bf16`, `dlr run p2.fnn.backprop --quick --nproc 2`,
    `dlr run p3.nlp.transformers --compile`.
    Several machines: `torchrun --nnodes 2 --nproc-per-node N --rdzv-backend c10d --rdzv-endpoint HOST:29400 -m dlroadmap.cli run ID` on each.
    """
    from dlroadmap.report import write_report
    from dlroadmap.runner import run_id, run_seeds
    from dlroadmap.train import distributed
    from dlroadmap.train.tracking import parse_backends

    out = out or default_out()
    parse_backends(track)
    node = roadmap().get(node_id)
    if params is not None:
        set_ = params_file_sets(params) + list(set_ or [])
    seed_list = parse_seeds(seeds)
    if seed_list is not None and seed is not None:
        raise UserError("give either --seed or --seeds, not both")
    if seed_list is not None and (nproc is not None or distributed.launched()):
        raise UserError("a data-parallel run trains one seed: give --seed, not --seeds")
    if nproc is not None and not distributed.launched():
        args = ["run", node.id, "--track", track, "--out", str(out)] + (["--quick"] if quick else []) + (["--resume"] if resume else [])
        args += ["--compile"] if compile_ else []
        args += [a for item in set_ or [] for a in ("--set", item)]
        for flag, value in (("--precision", precision), ("--device", device), ("--seed", seed)):
            if value is not None:
                args += [flag, str(value)]
        import subprocess

        cmd = distributed.torchrun_command(args, nproc)
        console.print(f"[dim]{' '.join(cmd[1:4])} ... {' '.join(args)}[/]", highlight=False)
        rc = subprocess.run(cmd, env=distributed.worker_env(nproc)).returncode
        if rc != 0:
            console.print(f"[red]{node.id}: the data-parallel run stopped (torchrun exit {rc}; above: which rank failed and why). "
                          f"Add --resume to continue from its last checkpoint[/]")
        raise typer.Exit(rc)
    if not distributed.is_main():  # a torchrun worker other than rank 0: train, write nothing, print nothing
        run_id(node, out, quick=quick, sets=set_ or [], track="none", resume=resume or None, compile=compile_ or None, precision=precision, device=device, seed=seed)
        return
    if resume:
        resume_notice([out / node.id / f"seed-{s}" for s in seed_list] if seed_list is not None else [out / node.id])
    if seed_list is not None:
        summary = run_seeds(node, out, seed_list, quick=quick, sets=set_ or [], track=track, resume=resume or None, compile=compile_ or None, precision=precision, device=device)
        write_report(out)
        console.print(seeds_table([summary]))
        console.print(f"run folders: {out / node.id}/seed-*   report: {out / 'report.html'}   ({summary['seconds']:.1f}s)")
        if not summary["passed"]:
            console.print(f"[red]{node.id}: an expectation was missed at seed(s) {', '.join(str(r['seed']) for r in summary['per_seed'] if not r['passed'])}[/]")
            raise typer.Exit(1)
        return
    result = run_id(node, out, quick=quick, sets=set_ or [], track=track, resume=resume or None, compile=compile_ or None, precision=precision, device=device, seed=seed)
    write_report(out)
    console.print(result_table([result.to_json()]))
    if result.notes:
        console.print(result.notes, highlight=False)
    console.print(f"run folder: {out / node.id}   report: {out / 'report.html'}   ({result.seconds:.1f}s)")
    if result.preset == "custom":
        # Declared results belong to the declared presets: with other settings a missed one is information, not a failure
        # (a DVC stage or a script that sets its own values must not stop on it).
        console.print("[cyan]custom settings: this run is shown as 'custom' and does not verify the node"
                      + (" (the declared expectations, meant for the presets, are shown above)" if not result.passed else "") + "[/]")
        return
    if not result.passed:
        console.print(f"[red]{node.id}: an expectation was missed[/]")
        raise typer.Exit(1)


def resume_notice(run_dirs: list[Path]) -> None:
    """--resume where there is nothing to continue says so (the run then starts from the beginning)."""
    from dlroadmap.train.checkpoint import latest_checkpoint

    for run_dir in run_dirs:
        if latest_checkpoint(run_dir / "checkpoints") is None:
            console.print(f"[yellow]--resume: no checkpoint in {run_dir / 'checkpoints'}, so this run starts from the beginning[/]", highlight=False)


def seeds_table(summaries: list[dict[str, Any]]) -> Table:
    """Per node and metric with an expectation: mean, min, max over the seeds, and whether every seed passed."""
    from dlroadmap.registry import fmt_value

    t = Table("node", "metric", "mean", "min", "max", "expected", "every seed")
    for s in summaries:
        if s.get("error"):
            t.add_row(s["node"], "error", s["error"][:80], "", "", "", "[red]no[/]")
            continue
        for e in s["expectations"]:
            m = e["metric"]
            t.add_row(s["node"], m, fmt_value(s["metrics"].get(m)), fmt_value(s["metrics_min"].get(m)), fmt_value(s["metrics_max"].get(m)),
                      f"{e['op']} {fmt_value(e['value'])}", "[green]yes[/]" if e["passed"] else "[red]no[/]")
    return t


def params_file_sets(path: Path) -> list[str]:
    """A params.yaml's `config:` mapping (or the whole file when it has none) as --set items."""
    import json

    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise UserError(f"cannot read --params {path}: {str(e).splitlines()[0]}") from None
    values = data.get("config", data) if isinstance(data, dict) else None
    if not isinstance(values, dict):
        raise UserError(f"--params {path} must be a YAML mapping (key: value), under `config:` or at the top")
    return [f"{k}={json.dumps(v)}" for k, v in values.items()]


def tour_node(node_id: str, out: str, quick: bool, track: str, seeds: list[int] | None) -> dict[str, Any]:
    """One node of the tour, as JSON: its result (or the seeds summary), or the error that stopped it."""
    from dlroadmap.runner import error_line, run_id, run_seeds

    node = roadmap().get(node_id)
    try:
        if seeds is not None:
            return run_seeds(node, out, seeds, quick=quick, track=track)
        return run_id(node, out, quick=quick, track=track).to_json()
    except Exception as e:  # a bug in one node must not hide the others' results
        return {"node": node.id, "title": node.title, "passed": False, "error": error_line(e), "expectations": []}


def _worker_init(threads: int) -> None:
    """Each tour worker gets its share of the cores: the environment for thread pools that start later, and
    a limit on those already running. NumPy's OpenBLAS is one of them: unpickling this function imported
    this module and with it NumPy, whose pool read the environment before it was set. Left at one thread per
    core, two workers ran NumPy-heavy nodes (the scratch engine, the data pipelines) ~2.5x slower than a serial tour."""
    import os

    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    os.environ["DLR_PROGRESS"] = "0"  # workers never draw progress bars; the parent reports each node
    import torch
    from threadpoolctl import threadpool_limits

    threadpool_limits(threads)
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)


def default_jobs() -> int:
    """One worker per core, but at most 4 (the nodes are small: more workers add memory, not speed) and one per
    2 GB of memory (a worker grows to ~1.5 GB over a quick tour)."""
    import os

    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return max(1, min(os.cpu_count() or 1, 4, int(memory_gb // 2)))


def expected_seconds(out: Path, quick: bool) -> dict[str, float]:
    """Each node's seconds in an earlier tour, to start the longest first: the last summary in `out` when it
    was a tour of the same preset, else the quick-tour figures shipped with the package (tour_seconds.json)."""
    import json
    from importlib.resources import files

    try:
        last = json.loads((out / "summary.json").read_text())
        if last.get("quick") == quick and last.get("node_seconds"):
            return {k: float(v) for k, v in last["node_seconds"].items() if v is not None}
    except (OSError, ValueError):
        pass
    shipped = json.loads(files("dlroadmap").joinpath("tour_seconds.json").read_text())
    return {k: float(v) for k, v in shipped["quick"].items()}  # full presets: only the order matters, and it is similar


def tour_order(nodes: list, seconds: dict[str, float]) -> list[int]:
    """Exclusive nodes first (while the other workers are young and small), then the rest longest first
    (Graham's LPT rule: the last node to finish is a short one, so no core idles long at the end)."""
    known = sorted(seconds.values())
    typical = known[len(known) // 2] if known else 0.0
    rest = sorted((i for i, n in enumerate(nodes) if not n.exclusive), key=lambda i: -seconds.get(nodes[i].id, typical))
    return [i for i, n in enumerate(nodes) if n.exclusive] + rest


def _warm_up(out: str, quick: bool, track: str, seeds: list[int] | None) -> None:
    """A worker's imports, done while the parent prepares the tour (rather than inside the first node's seconds);
    it takes tour_node's arguments (less the node) so both are submitted with the same `args`."""
    import matplotlib.pyplot  # noqa: F401

    import dlroadmap.runner  # noqa: F401
    if "mlflow" in track:
        import mlflow  # noqa: F401


def run_parallel(nodes: list, jobs: int, seconds: dict[str, float], args: tuple, done, prepare=None) -> None:
    """Run `nodes` on `jobs` cores: at most `jobs` nodes at once, each worker with its share of the cores.

    Ordinary nodes go to one pool of reused workers. A node that starts processes of its own (torchrun
    ranks, a Ray cluster) runs in a fresh process, one such node at a time, taking one of the `jobs` slots:
    its children mostly wait on start-up and rendezvous, so the other slot keeps the cores busy. `prepare`
    (the MLflow tables) runs in the parent while the workers start and import: neither waits for the other."""
    import multiprocessing as mp
    import os
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    ctx = mp.get_context("spawn")
    threads = max(1, (os.cpu_count() or 1) // jobs)
    queue = tour_order(nodes, seconds)
    running: dict[Any, tuple[int, Any]] = {}   # future -> (node index, its own executor or None)
    with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_worker_init, initargs=(threads,)) as pool:
        warming = [pool.submit(_warm_up, *args) for _ in range(jobs)]
        if prepare is not None:
            prepare()
        wait(warming)
        while queue or running:
            while len(running) < jobs:
                # one exclusive node at a time: two side by side would double the peak memory
                alone = any(own is not None for _, own in running.values())
                i = next((i for i in queue if not (alone and nodes[i].exclusive)), None)
                if i is None:
                    break
                queue.remove(i)
                if nodes[i].exclusive:
                    own = ProcessPoolExecutor(1, mp_context=ctx, initializer=_worker_init, initargs=(threads,))
                    running[own.submit(tour_node, nodes[i].id, *args)] = (i, own)
                else:
                    running[pool.submit(tour_node, nodes[i].id, *args)] = (i, None)
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for f in finished:
                i, own = running.pop(f)
                if own is not None:
                    own.shutdown()
                done(i, f.result())


@app.command()
def tour(
    quick: bool = typer.Option(False, "--quick", "-q", help="every node's quick preset (embedded data; minutes for the whole roadmap)"),
    full: bool = typer.Option(False, "--full", help="every node's full preset (full datasets through DLR_DATA_DIR; the default when --quick is absent)"),
    only: Optional[str] = typer.Option(None, "--only", help="only nodes whose id starts with this prefix, e.g. p2 or p2.fnn"),
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", min=1, max=64, show_default="one per core, at most 4 and one per 2 GB of memory", help="run nodes in N worker processes, each with its share of the cores; the same nodes, checks and summary as a serial tour; a kernel's sums split differently over fewer threads, and training can grow that last-digit difference (the quick GAN's FLD: 82 with 2 workers, 88 serially), while each --jobs value gives the same numbers run after run; 1 runs the nodes one after another in this process"),
    seeds: Optional[str] = typer.Option(None, "--seeds", help="run every node at each seed, e.g. 0,1,2; a node passes only when every seed does"),
    track: str = TrackOpt,
    out: Optional[Path] = OutOpt,
) -> None:
    """Run every implemented node, then write <out>/summary.json (with per-node seconds) and <out>/report.html.

    Exits with code 1 when any node misses an expectation or fails.
    """

    from dlroadmap.environment import gemm_peak, machine
    from dlroadmap.io import check_writable_dir, write_json
    from dlroadmap.report import write_report
    from dlroadmap.train.tracking import MLflowBackend, parse_backends
    from dlroadmap.ui import progress

    if quick and full:
        raise UserError("choose --quick or --full, not both")
    out = check_writable_dir(out or default_out())
    backends = parse_backends(track)
    seed_list = parse_seeds(seeds)
    nodes = [n for n in roadmap().select(only) if n.implemented]
    if not nodes:
        raise UserError(f"no implemented node matches --only {only!r}; see `dlr list`")
    jobs = min(jobs or default_jobs(), len(nodes))
    results: list[dict[str, Any] | None] = [None] * len(nodes)
    # How fast this machine multiplies, before and after: the tour's seconds compare across machines (and
    # across the hours of one shared VM) only beside it.
    gemm = {"start": gemm_peak(n=1024, threads=1)}
    t0 = time.perf_counter()
    with progress() as bar:
        task = bar.add_task("tour", total=len(nodes), info="") if bar else None

        def done(i: int, r: dict[str, Any]) -> None:
            results[i] = r
            mark = "ok" if r["passed"] else "FAILED"
            if bar is not None:
                bar.update(task, advance=1, info=f"{nodes[i].id} {mark}")
            else:
                console.print(f"[{sum(x is not None for x in results)}/{len(nodes)}] {nodes[i].id} {mark} ({r.get('seconds', 0):.1f}s)", highlight=False)

        if jobs == 1:
            for i, node in enumerate(nodes):
                if bar is not None:
                    bar.update(task, info=node.id)
                done(i, tour_node(node.id, str(out), quick, track, seed_list))
        else:
            # the MLflow tables and experiment are made once, before the workers write rows
            prepare = (lambda: MLflowBackend.prepare(out)) if "mlflow" in backends else None
            run_parallel(nodes, jobs, expected_seconds(out, quick), (str(out), quick, track, seed_list), done, prepare)
    final = [r for r in results if r is not None]
    seconds = time.perf_counter() - t0
    gemm["end"] = gemm_peak(n=1024, threads=1)
    summary = {
        "version": __version__, "quick": quick, "only": only, "jobs": jobs, "seeds": seed_list, "seconds": seconds,
        "machine": {**machine(), "gemm_fp32_gflops_1_thread": {k: round(v, 1) for k, v in gemm.items()}},
        "passed": all(r["passed"] for r in final), "node_seconds": {r["node"]: r.get("seconds") for r in final}, "nodes": final,
    }
    write_json(out / "summary.json", summary)
    write_report(out)
    console.print(seeds_table(final) if seed_list else result_table(final))
    n_ok = sum(r["passed"] for r in final)
    slowest = sorted(final, key=lambda r: -(r.get("seconds") or 0))[:5]
    console.print("slowest: " + ", ".join(f"{r['node']} {r.get('seconds') or 0:.0f}s" for r in slowest), highlight=False)
    console.print(f"{n_ok}/{len(final)} nodes passed in {seconds:.1f}s on {jobs} worker(s); this machine multiplied fp32 at "
                  f"{gemm['start']:.0f} GFLOP/s on one thread before the tour, {gemm['end']:.0f} after   summary: {out / 'summary.json'}   "
                  f"report: {out / 'report.html'}", highlight=False)
    if not summary["passed"]:
        raise typer.Exit(1)
