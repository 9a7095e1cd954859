"""Explain one prediction of a trained model bundle: what `dlr explain` runs.

The bundle (deploy/bundle.py) gives the network, its input shape and the training set's normalisation.
The user's input is in raw units (pixel values 0-255 for the MNIST models, as the model server takes them);
it is standardised the way training data was, and the chosen method explains the logit of the target class
(the predicted one unless given). "Absent" means a black pixel / a zero raw feature: the integrated-gradients
baseline and the fill of LIME's and KernelSHAP's switched-off superpixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dlroadmap.errors import UserError

METHODS = ("ig", "saliency", "gradient_x_input", "smoothgrad", "gradient_shap", "shap", "lime")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


@dataclass
class Explanation:
    raw: np.ndarray            # the input as given, in the bundle's input shape
    attribution: np.ndarray    # same shape: each element's share of the target logit
    target: int
    probabilities: np.ndarray  # (classes,)
    method: str
    classes: list[str]


def read_input(path: Path, shape: list[int]) -> np.ndarray:
    """A .npy array or a greyscale image file, in raw units, checked against the model's input shape."""
    if not path.is_file():
        raise UserError(f"--input {path} does not exist; pass a .npy array or an image file of shape {tuple(shape)}")
    try:
        if path.suffix.lower() == ".npy":
            x = np.load(path, allow_pickle=False)
        elif path.suffix.lower() in IMAGE_SUFFIXES:
            from skimage import io

            x = io.imread(path, as_gray=True)
            x = x * 255.0 if x.max() <= 1.0 else x                               # as_gray gives [0, 1] floats
        else:
            raise UserError(f"--input {path}: unknown file type {path.suffix!r}; use .npy or one of {', '.join(IMAGE_SUFFIXES)}")
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read --input {path} ({e})") from None
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == len(shape) + 1 and x.shape[0] == 1:
        x = x[0]                                                                 # a batch of one
    if list(x.shape) != list(shape):
        raise UserError(f"--input {path} has shape {tuple(x.shape)}, but the model takes {tuple(shape)} (raw units, e.g. pixels 0-255)")
    if not np.isfinite(x).all():
        raise UserError(f"--input {path} holds NaN or infinite values")
    return x


def check_method(method: str) -> None:
    if method not in METHODS:
        raise UserError(f"unknown --method {method!r}; choose from {', '.join(METHODS)}")


def _segments(raw: np.ndarray, n: int) -> np.ndarray:
    """Superpixels of an image input (SLIC on its grey levels, rescaled to [0, 1]); one segment per feature for a vector."""
    from dlroadmap.interpret.lime import superpixels

    if raw.ndim == 1:
        return np.arange(raw.size)
    grey = raw if raw.ndim == 2 else raw.mean(0)
    span = float(grey.max() - grey.min()) or 1.0
    return superpixels((grey - grey.min()) / span, n)


def explain_bundle(bundle, raw: np.ndarray, method: str, *, target: int | None = None, samples: int = 1000, steps: int = 50,
                   superpixels: int = 40, seed: int = 0) -> Explanation:
    from dlroadmap.interpret import gradients as g
    from dlroadmap.interpret.lime import lime_image, spread
    from dlroadmap.interpret.shapley import superpixel_shap

    check_method(method)
    bundle.require_classifier()
    net = bundle.build().float()
    pre = bundle.config.get("preprocessing", {})
    mean = torch.as_tensor(pre.get("mean", 0.0), dtype=torch.float32)
    std = torch.as_tensor(pre.get("std", 1.0), dtype=torch.float32)
    x = ((torch.from_numpy(raw) - mean) / std)[None]                             # (1, *shape), standardised
    fill = (torch.zeros_like(x) - mean) / std                                    # an absent (black) input, standardised
    with torch.no_grad():
        probs = torch.softmax(net(x), -1)[0]
    classes = bundle.classes
    t = int(probs.argmax()) if target is None else target
    if not 0 <= t < len(probs):
        raise UserError(f"--target {t} is not a class of this model (0..{len(probs) - 1})")
    tt = torch.tensor([t])
    if method in ("shap", "lime"):
        segments = _segments(raw, superpixels)
        fill_value = fill[0].numpy()

        def logit(batch: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return net(torch.as_tensor(batch, dtype=torch.float32))[:, t].double().numpy()

        image = x[0].numpy()
        if method == "lime":
            coef = lime_image(logit, image, segments, n_samples=samples, seed=seed, fill=fill_value).coef
        else:
            coef = superpixel_shap(logit, image, segments, fill_value, n_samples=samples, rng=np.random.default_rng(seed))
        attribution = spread(coef, segments)
    else:
        sigma = 0.15 * float(x.max() - x.min())
        run = {"ig": lambda: g.integrated_gradients(net, x, tt, baseline=fill, steps=steps),
               "saliency": lambda: g.saliency(net, x, tt),
               "gradient_x_input": lambda: g.gradient_x_input(net, x, tt),
               "smoothgrad": lambda: g.smoothgrad(net, x, tt, samples=min(samples, 200), sigma=sigma, generator=torch.Generator().manual_seed(seed)),
               "gradient_shap": lambda: g.gradient_shap(net, x, tt, torch.cat([fill, x]), samples=min(samples, 200), sigma=sigma, seed=seed,
                                                        generator=torch.Generator().manual_seed(seed))}[method]
        attribution = run()[0].detach().numpy()
    return Explanation(raw, np.asarray(attribution, dtype=float), t, probs.numpy(), method, classes)


def figure(e: Explanation):
    """Input | attribution (red raises the target's logit, blue lowers it) | class probabilities."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
    show = lambda a: a if a.ndim == 2 else a.mean(0) if a.ndim == 3 else a.reshape(1, -1)   # noqa: E731
    axes[0].imshow(show(e.raw), cmap="gray")
    axes[0].set_title("input", fontsize=9)
    a = show(e.attribution)
    lim = float(np.abs(a).max()) or 1.0
    im = axes[1].imshow(a, cmap="bwr", vmin=-lim, vmax=lim)
    fig.colorbar(im, ax=axes[1], fraction=0.046)
    axes[1].set_title(f"{e.method}: what moves the logit of '{e.classes[e.target]}'", fontsize=9)
    for ax in axes[:2]:
        ax.set_xticks([]), ax.set_yticks([])
    axes[2].barh(range(len(e.probabilities)), e.probabilities, color=["tab:red" if i == e.target else "tab:grey" for i in range(len(e.probabilities))])
    axes[2].set_yticks(range(len(e.probabilities)), e.classes, fontsize=7)
    axes[2].invert_yaxis()
    axes[2].set_title(f"prediction: '{e.classes[int(e.probabilities.argmax())]}' ({e.probabilities.max():.3f})", fontsize=9)
    fig.tight_layout()
    return fig
