"""`dlr tune`: hyperparameter search over any node's Config, each trial a real tracked run."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from dlroadmap.cli.common import OutOpt, TrackOpt, app, default_out, roadmap
from dlroadmap.ui import console


@app.command()
def tune(
    node_id: str = typer.Argument(..., help="node id, e.g. p2.fnn.backprop; its Config is the search space (`dlr show ID` lists keys and ranges)"),
    space: List[str] = typer.Option(..., "--space", help="a dimension: name=loguniform(a,b) | uniform(a,b) | int(a,b) | choice(v1,v2,...) (repeatable)"),
    backend: str = typer.Option("random", "--backend", "-b", help="grid, random, optuna (TPE + pruning, resumable sqlite study) or ray (Ray Tune: ASHA + OptunaSearch, 2 trials at a time)"),
    trials: int = typer.Option(10, "--trials", "-n", help="trial budget (grid: the largest even grid that fits)"),
    metric: str = typer.Option("best_val_accuracy", "--metric", "-m", help="a validation metric of the node's result to select on (never a test metric)"),
    direction: str = typer.Option("max", "--direction", help="max or min"),
    quick: bool = typer.Option(False, "--quick", "-q", help="search around the node's quick preset instead of its full one"),
    set_: Optional[List[str]] = typer.Option(None, "--set", "-s", help="fixed overrides for every trial, e.g. --set epochs=5"),
    prune_on: str = typer.Option("val_acc", "--prune-on", help="per-epoch Trainer metric the optuna pruner / Ray's ASHA watch"),
    pruner: str = typer.Option("median", "--pruner", help="optuna: median, halving (successive halving), hyperband or none"),
    test_metric: Optional[str] = typer.Option(None, "--test-metric", help="reported for the best and the default settings [default: --metric with val -> test]"),
    seed: int = typer.Option(0, "--seed", help="seed of the sampler (random, TPE); each trial keeps the node's own seed"),
    name: Optional[str] = typer.Option(None, "--name", help="study folder under <out>/tune/ [default: the node id]; an optuna study with the same name continues"),
    track: str = TrackOpt,
    out: Optional[Path] = OutOpt,
) -> None:
    """Search a node's settings; select on validation; re-run the best and the default; report both on test.

    Example: dlr tune p2.fnn.backprop --quick --space 'lr=loguniform(1e-4,1e-1)' --space 'batch_size=choice(32,64,128)'
    --backend optuna --trials 20 --metric best_val_accuracy --direction max

    Writes <out>/tune/<node>/: trial_NNN/ (each a full run folder), best_config.json, study.json,
    plots/best_so_far.png, and (optuna) optuna.db; MLflow shows the study as one parent run with a child per trial.
    """
    from dlroadmap.io import check_writable_dir
    from dlroadmap.train.tracking import parse_backends
    from dlroadmap.tune.space import parse_space
    from dlroadmap.tune.study import TuneJob, check_job
    from dlroadmap.tune.study import tune as run_study

    out = out or default_out()
    parse_backends(track)
    node = roadmap().get(node_id)
    dims = parse_space(space, node.load_experiment().Config)
    job = TuneJob(node, dims, backend=backend, trials=trials, metric=metric, direction=direction, out=out, quick=quick,
                  sets=set_ or [], seed=seed, prune_on=prune_on or None, pruner=pruner, test_metric=test_metric, track=track, name=name)
    check_job(job)
    check_writable_dir(out)

    def progress(t) -> None:
        shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in t.params.items())
        value = f"{t.value:.4f}" if t.value is not None else t.state
        console.print(f"trial {t.number:3d}  {value:>9}  {t.seconds:6.1f}s  {shown}", highlight=False)

    summary = run_study(job, progress)
    table = Table(title=f"{node.id}: {backend}, {len(summary['trials'])} trials ({summary['pruned']} pruned, {summary['failed']} failed)")
    for col in ("settings", metric, summary["test_metric"] or "test"):
        table.add_column(col)
    fmt = lambda v: "-" if v is None else f"{v:.4f}"                           # noqa: E731
    table.add_row("default", fmt(summary["default"]["val"]), fmt(summary["default"]["test"]))
    table.add_row("tuned: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in summary["tuned"]["params"].items()),
                  fmt(summary["tuned"]["val"]), fmt(summary["tuned"]["test"]))
    console.print(table)
    console.print(f"study: {job.folder}   best config: {job.folder / 'best_config.json'}   ({summary['seconds']:.1f}s)")
