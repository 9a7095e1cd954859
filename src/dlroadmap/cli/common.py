"""What every `dlr` command shares: the typer app, common options, the output folder, status colours."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from dlroadmap.errors import UserError

app = typer.Typer(
    help="dlroadmap: the deep-learning roadmap as runnable, verified code. Start with `dlr list`, then `dlr show ID` and `dlr run ID --quick`.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

STATUS_STYLE = {"missing": "dim", "implemented": "yellow", "verified": "green", "custom": "cyan", "failed": "red"}


def default_out() -> Path:
    return Path(os.environ.get("DLR_OUT", "runs"))


OutOpt = typer.Option(None, "--out", "-o", help="output folder for runs, tracking stores and the report [default: $DLR_OUT or ./runs]")
TrackOpt = typer.Option("mlflow", "--track", "-t", help="tracking backends, comma-separated: mlflow, tensorboard, wandb, console, or none")


def roadmap():
    from dlroadmap import registry

    return registry.load()


def parse_seeds(raw: str | None) -> list[int] | None:
    """'0,1,2' -> [0, 1, 2]; a clear error for anything else."""
    if raw is None:
        return None
    try:
        seeds = [int(s) for s in raw.split(",") if s.strip()]
    except ValueError:
        raise UserError(f"--seeds expects comma-separated integers such as 0,1,2, got {raw!r}") from None
    if not seeds or any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds expects distinct non-negative integers such as 0,1,2, got {raw!r}")
    return seeds
