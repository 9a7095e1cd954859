"""`dlr notebooks`: build the .ipynb files from their jupytext sources, check them, run one on a kernel."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from dlroadmap.cli.common import app, default_out
from dlroadmap.ui import console

nb_app = typer.Typer(help="The notebooks in notebooks/: `build` writes each .ipynb (and its Kaggle metadata) from the .py "
                          "source, `check` says whether they agree, `run NAME` executes one on a Jupyter kernel.",
                     no_args_is_help=True)
app.add_typer(nb_app, name="notebooks")


def _names(name: Optional[str]) -> list[str]:
    from dlroadmap.errors import UserError
    from dlroadmap.notebooks import NOTEBOOKS

    if name is None:
        return list(NOTEBOOKS.values())
    if name not in NOTEBOOKS.values():
        raise UserError(f"unknown notebook {name!r}; the notebooks: {', '.join(NOTEBOOKS.values())}")
    return [name]


@nb_app.command()
def build(name: Optional[str] = typer.Argument(None, help="one notebook (p1_foundations, ..., tools) [default: all]")) -> None:
    """Write notebooks/NAME.ipynb from notebooks/NAME.py (jupytext, outputs empty) and notebooks/kaggle/NAME/kernel-metadata.json."""
    from dlroadmap.io import write_json
    from dlroadmap.notebooks.execute import write_ipynb
    from dlroadmap.notebooks.platforms import kaggle_folder, kernel_metadata

    for n in _names(name):
        write_ipynb(n)
        write_json(kaggle_folder(n) / "kernel-metadata.json", kernel_metadata(n))
        console.print(f"built notebooks/{n}.ipynb and notebooks/kaggle/{n}/kernel-metadata.json")


@nb_app.command()
def check() -> None:
    """Exit 1 when a committed .ipynb or kernel-metadata.json differs from what `dlr notebooks build` writes."""
    from dlroadmap.notebooks.execute import out_of_sync
    from dlroadmap.notebooks.platforms import kernel_metadata, read_metadata

    problems = [p for n in _names(None) for p in out_of_sync(n)]
    problems += [f"{n}: kernel-metadata.json differs" for n in _names(None) if read_metadata(n) != kernel_metadata(n)]
    for p in problems:
        console.print(f"[red]{p}[/red]")
    if problems:
        console.print("run `dlr notebooks build` and commit the result")
        raise typer.Exit(1)
    console.print("notebooks agree with their sources")


@nb_app.command("run")
def run_notebook(
    name: str = typer.Argument(..., help="p1_foundations, p2_core_deep_learning, p3_advanced_concepts, p4_research_and_deployment or tools"),
    full: bool = typer.Option(False, "--full", help="the nodes' full presets (QUICK = False; hours, full datasets via DLR_DATA_DIR)"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="runs and the executed notebook [default: <$DLR_OUT or ./runs>/notebooks]"),
) -> None:
    """Execute a notebook on a Jupyter kernel (nbclient), every cell, and save it with its outputs as OUT/NAME.ipynb."""
    import nbformat

    from dlroadmap.io import atomic_path, check_writable_dir
    from dlroadmap.notebooks.execute import errors, execute, inject, read_source

    (name,) = _names(name)
    out = check_writable_dir(out or default_out() / "notebooks")
    nb = inject(read_source(name), QUICK=not full)
    with console.status(f"running {name} on a Jupyter kernel"):
        execute(nb, cwd=out, env={"DLR_OUT": str(out.resolve())}, allow_errors=True)
    target = out / f"{name}.ipynb"
    with atomic_path(target) as tmp:
        nbformat.write(nb, tmp)
    failed = errors(nb)
    for e in failed:
        console.print(f"[red]{e}[/red]")
    console.print(f"wrote {target} ({len(failed)} failing cells); runs in {out}, see them with `dlr list --out {out}`")
    if failed:
        raise typer.Exit(1)
