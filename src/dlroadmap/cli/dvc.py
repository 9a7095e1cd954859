"""`dlr dvc`: a node as a DVC pipeline (prepare -> train -> export -> evaluate) and the two stages that need their own command."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from dlroadmap.cli.common import app, roadmap
from dlroadmap.ui import console

dvc_app = typer.Typer(help="DVC: `dlr dvc init NODE` writes dvc.yaml + params.yaml; then `dvc repro`, `dvc exp run`, "
                           "`dvc metrics diff`, `dvc push`.", no_args_is_help=True)
app.add_typer(dvc_app, name="dvc")


@dvc_app.command()
def init(
    node_id: str = typer.Argument(..., help="a node that trains a deployable model: p2.fnn.backprop or tools.hub.huggingface"),
    folder: Path = typer.Option(Path("."), "--dir", "-d", help="the git repository to write into"),
    full: bool = typer.Option(False, "--full", help="params.yaml from the full preset instead of the quick one"),
    format_: str = typer.Option("onnx", "--format", "-f", help="the export stage's format (evaluate reads ONNX)"),
) -> None:
    """Write dvc.yaml and params.yaml (the node's Config), and run `dvc init` if the repository has no .dvc yet.

    Example: git init demo && cd demo && dlr dvc init p2.fnn.backprop && dvc repro && dvc metrics show
    """
    from dlroadmap.deploy.dvc_pipeline import init as init_pipeline

    for path in init_pipeline(roadmap().get(node_id), folder, quick=not full, fmt=format_):
        console.print(f"wrote {path}")
    console.print("next: dvc repro   (then e.g. dvc exp run --set-param config.lr=0.003; dvc metrics diff)")


@dvc_app.command()
def prepare(
    dataset: str = typer.Argument(..., help="a dataset from `dlr data`, e.g. mnist5k"),
    seed: int = typer.Option(0, "--seed", help="the seed of the train/val/test split"),
    out: Path = typer.Option(Path("data/test.npz"), "--out", "-o", help="the .npz to write (X raw pixels, y labels)"),
) -> None:
    """The pipeline's prepare stage: the test split the evaluate stage scores on, as one .npz."""
    from dlroadmap.deploy.dvc_pipeline import prepare as prepare_split

    console.print(f"wrote {prepare_split(dataset, seed, out)}")


@dvc_app.command()
def evaluate(
    model_dir: Path = typer.Argument(..., help="a folder from `dlr export` with an ONNX file"),
    data: Path = typer.Option(Path("data/test.npz"), "--data", help="the test split from `dlr dvc prepare`"),
    run: Optional[Path] = typer.Option(None, "--run", help="the run folder whose result.json and history to include"),
    out: Path = typer.Option(Path("eval"), "--out", "-o", help="folder for metrics.json and history.json"),
) -> None:
    """The pipeline's evaluate stage: the exported model scored by ONNX Runtime; DVC metrics and plots files."""
    from dlroadmap.deploy.dvc_pipeline import evaluate as evaluate_model

    metrics = evaluate_model(model_dir, data, run, out)
    console.print(f"ONNX Runtime test accuracy {metrics['onnx_test_accuracy']:.4f} on {int(metrics['test_images'])} images -> {out}/metrics.json")
