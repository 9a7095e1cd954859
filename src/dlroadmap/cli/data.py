"""`dlr data`: the datasets (embedded and downloadable), and shards for streaming (`dlr data prepare`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from dlroadmap.cli.common import app
from dlroadmap.ui import console

data_app = typer.Typer(help="Datasets: `dlr data` lists them; `dlr data prepare NAME --shards N` writes shards to stream.",
                       invoke_without_command=True, no_args_is_help=False)
app.add_typer(data_app, name="data")


@data_app.callback()
def data(ctx: typer.Context) -> None:
    """List datasets: embedded ones (always available) and downloadable ones (cache or DLR_DATA_DIR)."""
    if ctx.invoked_subcommand is not None:
        return
    from dlroadmap.data import DOWNLOADABLE, EMBEDDED, cache_dir

    t = Table("dataset", "kind", "where / what")
    for name in EMBEDDED:
        t.add_row(name, "embedded", "ships with the install")
    for name, r in DOWNLOADABLE.items():
        have = all((cache_dir() / name / f.name).is_file() for f in r.files)
        t.add_row(name, "downloadable", f"{r.about}; {'present' if have else 'not present'} in {cache_dir() / name}")
    console.print(t)


@data_app.command()
def prepare(
    name: str = typer.Argument(..., help="a dataset from `dlr data`, e.g. digits, mnist5k, mnist"),
    shards: int = typer.Option(8, "--shards", "-n", help="how many tar shards to write (any number up to the sample count)"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="folder for the shards [default: $DLR_DATA_DIR or the cache, under shards/NAME]"),
    seed: int = typer.Option(0, "--seed", help="the seed of the train/val/test split (the shards hold the training split)"),
) -> None:
    """Write a dataset's training split as WebDataset-layout tar shards plus index.json, atomically.

    Stream them with `dlroadmap.data.pipeline.ShardStream` (any number of workers and ranks, each sample
    once per epoch). Example: `dlr data prepare mnist5k --shards 8 --out shards/mnist5k`.
    """
    from dlroadmap.data import cache_dir
    from dlroadmap.data.pipeline import prepare_shards, read_index

    folder = prepare_shards(name, out or cache_dir() / "shards" / name, shards, seed=seed)
    index = read_index(folder)
    size = sum((folder / f).stat().st_size for f in index.files)
    console.print(f"{index.samples} samples of shape {tuple(index.shape)} in {len(index.files)} shards ({size / 1e6:.1f} MB): {folder}")


@data_app.command()
def verify(folder: Path = typer.Argument(..., help="a folder written by `dlr data prepare`")) -> None:
    """Check every shard in FOLDER against the sha256 recorded in its index.json."""
    from dlroadmap.data.pipeline import read_index, verify_shards

    index = read_index(folder)
    verify_shards(index)
    console.print(f"{len(index.files)} shards, {index.samples} samples: all match their checksums")
