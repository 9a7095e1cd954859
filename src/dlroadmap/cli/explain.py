"""`dlr explain`: which parts of one input a trained model's prediction rests on, as a figure."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import typer

from dlroadmap.cli.common import app
from dlroadmap.errors import UserError
from dlroadmap.ui import console


@app.command()
def explain(
    source: Path = typer.Argument(..., help="a run folder with a trained model (e.g. runs/p4.interpret.shap_lime, runs/p2.cnn.architectures/models/lenet5) or a model bundle"),
    input_: Path = typer.Option(..., "--input", "-i", help="the input to explain, in raw units: a .npy array or a greyscale image (e.g. <run>/examples/digit_0.npy)"),
    method: str = typer.Option("ig", "--method", "-m", help="ig (integrated gradients), saliency, gradient_x_input, smoothgrad, gradient_shap, shap (KernelSHAP on superpixels) or lime"),
    target: Optional[int] = typer.Option(None, "--target", help="class index to explain [default: the predicted class]"),
    samples: int = typer.Option(1000, "--samples", min=10, max=100_000, help="coalitions (shap), perturbations (lime) or noisy copies (smoothgrad, gradient_shap; at most 200)"),
    steps: int = typer.Option(50, "--steps", min=2, max=10_000, help="integrated-gradients quadrature points"),
    superpixels: int = typer.Option(40, "--superpixels", min=2, max=1000, help="SLIC superpixels for shap and lime on images"),
    seed: int = typer.Option(0, "--seed", min=0, help="seed of the random methods (shap, lime, smoothgrad, gradient_shap)"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="PNG to write [default: explain_<method>_<input name>.png beside the input]"),
) -> None:
    """Explain one prediction: the attribution of each input element (or superpixel) to the target logit.

    Example: dlr run p4.interpret.shap_lime --quick, then
    dlr explain runs/p4.interpret.shap_lime --input runs/p4.interpret.shap_lime/examples/digit_0.npy --method ig
    """
    from dlroadmap.deploy.bundle import find_bundle
    from dlroadmap.interpret.explain import check_method, explain_bundle, figure, read_input
    from dlroadmap.io import atomic_path

    check_method(method)                                                         # before the model is even read
    bundle = find_bundle(source)
    raw = read_input(input_, bundle.input_shape)
    target_png = out or input_.with_name(f"explain_{method}_{input_.stem}.png")
    if target_png.suffix.lower() != ".png":
        raise UserError(f"--out {target_png} must end in .png")
    e = explain_bundle(bundle, raw, method, target=target, samples=samples, steps=steps, superpixels=superpixels, seed=seed)
    fig = figure(e)
    try:
        target_png.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target_png, suffix=".png") as tmp:
            fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    except OSError as err:
        raise UserError(f"cannot write {target_png} ({err.strerror or err})") from None
    top = [tuple(int(i) for i in np.unravel_index(k, e.attribution.shape)) for k in np.argsort(-np.abs(e.attribution).ravel())[:3]]
    console.print(f"{bundle.name}: predicted '{e.classes[int(e.probabilities.argmax())]}' ({e.probabilities.max():.3f}); "
                  f"explained '{e.classes[e.target]}' with {method}; sum of attributions {e.attribution.sum():+.4f}; "
                  f"largest at {', '.join(map(str, top))}")
    console.print(f"wrote {target_png}")
