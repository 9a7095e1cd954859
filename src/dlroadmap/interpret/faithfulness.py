"""Do the explanations say something true about the model? Two tests that do not trust the explanation.

Deletion and insertion (Petsiuk, Das & Saenko 2018, arXiv:1806.07421): take the pixels in the order an
attribution ranks them (most important first). Deletion paints them, a chunk at a time, with a fill value
and follows the class probability: a faithful ranking makes it fall fast (small area under the curve).
Insertion starts from the filled image and puts them back: the probability should rise fast (large area).
A random ordering is the yardstick: an explanation that does not beat it has told us nothing.

Model randomisation (Adebayo et al. 2018, arXiv:1810.03292): re-initialise the network's layers from the
top down ("cascading") and explain the same inputs again. An explanation that barely changes when the
weights it claims to explain are destroyed is describing the input (edges, the digit's shape), not the
model: a high rank correlation between the two attributions is a failed sanity check.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from scipy.stats import spearmanr
from torch import nn

Explain = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]    # (model, x (N, ...), target (N,)) -> attributions like x


def pixel_order(attribution: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Pixel indices from most to least important; ties (a superpixel's pixels, zeros) in random order."""
    flat = attribution.reshape(-1)
    return np.lexsort((rng.random(flat.size), -flat))


def deletion_insertion(prob: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, order: np.ndarray, fill: float,
                       steps: int = 28) -> tuple[np.ndarray, np.ndarray]:
    """(deletion curve, insertion curve), each (steps + 1,): the class probability after 0, 1/steps, ..., all
    of the pixels have been deleted (painted with `fill`) / inserted into the filled image, in `order`.
    x: one input (H, W) or (C, H, W); order: pixel indices of the (H, W) grid; prob: batch -> (N,) probability."""
    # the deletion and insertion curves and their areas, @petsiuk2018rise
    H, W = x.shape[-2:]
    cut = np.linspace(0, H * W, steps + 1).round().astype(int)
    rank = np.empty(H * W, dtype=int)
    rank[order] = np.arange(H * W)                                            # rank[p]: when pixel p is taken
    taken = torch.as_tensor(rank[None, :] < cut[:, None]).reshape(steps + 1, H, W)
    if x.ndim == 3:
        taken = taken[:, None].expand(-1, *x.shape)                            # same pixels on every channel
    filled = torch.full_like(x, fill)
    with torch.no_grad():
        deletion = prob(torch.where(taken, filled, x))
        insertion = prob(torch.where(taken, x, filled))
    return deletion.cpu().numpy(), insertion.cpu().numpy()


def auc(curve: np.ndarray) -> float:
    """Area under a curve sampled at evenly spaced fractions of [0, 1] (trapezoid rule)."""
    return float(((curve[1:] + curve[:-1]) / 2).mean())


def cascading_layers(model: nn.Module) -> list[str]:
    """Names of the modules with weights, from the output back to the input."""
    return [name for name, m in model.named_modules() if hasattr(m, "reset_parameters") and any(True for _ in m.parameters(recurse=False))][::-1]


def rank_correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean over the batch of Spearman's rho between the absolute attributions of each input."""
    rhos = [spearmanr(u.abs().reshape(-1).numpy(), v.abs().reshape(-1).numpy())[0] for u, v in zip(a.detach().cpu(), b.detach().cpu())]
    return float(np.nanmean(rhos))


def randomisation_test(model: nn.Module, explain: dict[str, Explain], x: torch.Tensor, target: torch.Tensor,
                       seed: int = 0) -> tuple[list[str], dict[str, list[float]]]:
    """(layers in the order they were randomised, {method: rank correlation with the trained model's
    attribution after each cumulative randomisation}). `model` is copied, never changed."""
    # cascading model randomisation (sec. 3.1), @adebayo2018sanity
    import copy

    trained = {name: fn(model, x, target) for name, fn in explain.items()}
    randomised = copy.deepcopy(model)
    modules = dict(randomised.named_modules())
    layers = cascading_layers(randomised)
    torch.manual_seed(seed)
    curves: dict[str, list[float]] = {name: [] for name in explain}
    for layer in layers:
        modules[layer].reset_parameters()                                      # this layer and all above it now random
        for name, fn in explain.items():
            curves[name].append(rank_correlation(trained[name], fn(randomised, x, target)))
    return layers, curves
