"""`dlr`: the command line of dlroadmap.

    dlr list                    the roadmap as a tree, with each node's status
    dlr show ID                 one node: its bullet, files, tests, refs, expectations, last result
    dlr run ID [--quick]        run a node's experiment (tracked), check its expectations
    dlr tour [--quick]          run every implemented node, write summary.json and report.html
    dlr report                  rebuild report.html from the results already in --out
    dlr data [prepare NAME]     the datasets: embedded and downloadable; shards to stream them
    dlr export RUN --format F   a trained model to ONNX / TorchScript / TFLite, parity-checked, with a model card
    dlr serve MODEL_DIR         a model server: TF Serving REST + KServe v2 + Prometheus metrics (FastAPI or Flask)
    dlr explain RUN --input F   which parts of one input a trained model's prediction rests on (IG, SHAP, LIME, ...)
    dlr tune ID --space S       hyperparameter search over a node's Config: grid, random, optuna or ray
    dlr hub save|push RUN       a trained model in the Hugging Face Hub layout; uploaded with --repo USER/NAME
    dlr dvc init NODE           a node as a DVC pipeline (prepare -> train -> export -> evaluate) for `dvc repro`
    dlr notebooks build|run     the notebooks: .ipynb from their jupytext sources; one run on a Jupyter kernel
    dlr papers / dlr paper KEY  the papers the nodes cite, and the code lines that compute their equations
    dlr publish RUN             a post about one run: Markdown + standalone HTML, with how to reproduce it
    dlr replicate [--only IDS]  published numbers rerun: full presets at 3 seeds, mean against the paper

User mistakes (unknown id, bad --set, missing data, unwritable --out, bad checkpoint) print one
line and exit with code 2; nothing is left half-written.
"""

from __future__ import annotations

import sys

import typer

from dlroadmap import __version__
from dlroadmap.cli import data, deploy, dvc, explain, hub, nodes, notebooks, research, runs, tune  # noqa: F401  (each module registers its commands on `app`)
from dlroadmap.cli.common import app, default_out
from dlroadmap.errors import TrainingDiverged, UserError
from dlroadmap.ui import console

__all__ = ["app", "default_out", "main"]


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
        _main()
    finally:
        if "torch.distributed" in sys.modules:  # a torchrun worker leaves its process group cleanly
            from dlroadmap.train.distributed import cleanup

            cleanup()


def _main() -> None:
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
    except Exception as e:  # usage errors (unknown option, extra argument): click's, or the copy of click typer >= 0.29 vendors
        import click

        if isinstance(e, click.ClickException) or (callable(getattr(e, "show", None)) and isinstance(getattr(e, "exit_code", None), int)):
            e.show()
            sys.exit(e.exit_code)
        raise


if __name__ == "__main__":
    main()
