"""Gradient attributions of a differentiable model: which input pixels move the class score, and how much.

f_t(x) is the score of class t (a logit or a probability; the caller's model decides). x: (N, ...) a batch.

  saliency              |d f_t / d x|                                  Simonyan, Vedaldi & Zisserman 2013 (arXiv:1312.6034)
  gradient x input      x * d f_t / d x                                 Shrikumar et al. 2016 (arXiv:1605.01713)
  integrated gradients  (x - x') * int_0^1 d f_t(x' + a (x - x')) / d x da       Sundararajan et al. 2017 (arXiv:1703.01365), eq. 1
  SmoothGrad            mean over x + N(0, sigma^2) noise of an attribution       Smilkov et al. 2017 (arXiv:1706.03825)
  GradientSHAP          E over baselines b, noise e, a ~ U(0,1) of (x + e - b) * grad f_t(b + a (x + e - b))
                        (expected gradients: Lundberg & Lee 2017's SHAP with gradients, as captum computes it)

Integrated gradients satisfy completeness (Sundararajan et al., Proposition 1): sum_i IG_i = f_t(x) - f_t(x');
the quadrature's error is what `completeness_gap` measures. The random draws follow captum's: GradientSHAP
picks baselines and interpolation points from a numpy RandomState, SmoothGrad and GradientSHAP draw their
noise from a torch Generator, in captum's order, so with the same seeds the numbers are captum's.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

Attribution = Callable[..., torch.Tensor]


def _targets(target: int | torch.Tensor, n: int) -> torch.Tensor:
    return torch.full((n,), target, dtype=torch.long) if isinstance(target, int) else torch.as_tensor(target).reshape(n)


def gradient(model: nn.Module, x: torch.Tensor, target: int | torch.Tensor) -> torch.Tensor:
    """d f_t / d x for each sample of the batch (samples do not interact, so one backward of the sum)."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        scores = model(x).gather(1, _targets(target, len(x)).to(x.device)[:, None])   # (N, 1): each sample's class score
        (grad,) = torch.autograd.grad(scores.sum(), x)
    return grad


def saliency(model: nn.Module, x: torch.Tensor, target: int | torch.Tensor) -> torch.Tensor:
    # the saliency map |dS_c / dx| (sec. 3.1), @simonyan2013saliency
    return gradient(model, x, target).abs()


def gradient_x_input(model: nn.Module, x: torch.Tensor, target: int | torch.Tensor) -> torch.Tensor:
    return x * gradient(model, x, target)


def _quadrature(steps: int, method: str) -> tuple[np.ndarray, np.ndarray]:
    """Points a_k in [0, 1] and weights w_k with int_0^1 g(a) da ~ sum_k w_k g(a_k)."""
    if method == "gausslegendre":                                             # exact for polynomials of degree < 2 steps
        nodes, weights = np.polynomial.legendre.leggauss(steps)               # on [-1, 1]
        return 0.5 * (nodes + 1), 0.5 * weights
    if method == "riemann_trapezoid":                                         # (captum's weights every step 1/n instead)
        return np.linspace(0, 1, steps), np.r_[0.5, np.ones(steps - 2), 0.5] / (steps - 1)
    raise ValueError(f"unknown quadrature {method!r}: gausslegendre or riemann_trapezoid")


def integrated_gradients(model: nn.Module, x: torch.Tensor, target: int | torch.Tensor, baseline: torch.Tensor | float = 0.0,
                         steps: int = 50, method: str = "gausslegendre") -> torch.Tensor:
    # integrated gradients, eq. (1), by a Riemann sum, @sundararajan2017axiomatic
    alphas, weights = _quadrature(steps, method)
    baseline = torch.as_tensor(baseline, dtype=x.dtype).expand_as(x)
    n = len(x)
    # All steps in one batch: (steps * N, ...), step-major.
    path = torch.cat([baseline + float(a) * (x - baseline) for a in alphas])
    grads = gradient(model, path, _targets(target, n).repeat(steps)).reshape(steps, *x.shape)
    w = torch.as_tensor(weights, dtype=x.dtype).reshape(steps, *([1] * x.ndim))
    return (x - baseline) * (w * grads).sum(0)


def completeness_gap(model: nn.Module, x: torch.Tensor, target: int | torch.Tensor, attributions: torch.Tensor,
                     baseline: torch.Tensor | float = 0.0) -> torch.Tensor:
    """(N,) sum_i IG_i - (f_t(x) - f_t(x')): zero for exact integrated gradients."""
    baseline = torch.as_tensor(baseline, dtype=x.dtype).expand_as(x)
    t = _targets(target, len(x))[:, None]
    with torch.no_grad():
        delta = model(x).gather(1, t) - model(baseline).gather(1, t)
    return attributions.reshape(len(x), -1).sum(1) - delta[:, 0]


def smoothgrad(model: nn.Module, x: torch.Tensor, target: int | torch.Tensor, *, samples: int = 50, sigma: float = 0.15,
               method: Attribution = saliency, generator: torch.Generator | None = None) -> torch.Tensor:
    """Mean of `method` over `samples` noisy copies of each input. sigma is absolute (in the input's units):
    Smilkov et al. suggest 10-20% of the input's range."""
    # the mean attribution over noisy copies of the input, @smilkov2017smoothgrad
    n = len(x)
    noisy = x.repeat_interleave(samples, dim=0)                               # (N * samples, ...), sample-major per input
    noisy = noisy + torch.normal(0.0, torch.full(noisy.shape, float(sigma)), generator=generator)
    attr = method(model, noisy, _targets(target, n).repeat_interleave(samples))
    return attr.reshape(n, samples, *x.shape[1:]).mean(1)


def gradient_shap(model: nn.Module, x: torch.Tensor, target: int | torch.Tensor, baselines: torch.Tensor, *, samples: int = 50,
                  sigma: float = 0.0, seed: int = 0, generator: torch.Generator | None = None) -> torch.Tensor:
    """Expected gradients over a baseline distribution (rows of `baselines`), with optional input noise."""
    n = len(x)
    rs = np.random.RandomState(seed)
    picked = baselines[torch.as_tensor(rs.choice(len(baselines), samples * n))]          # a random baseline per draw
    noisy = x.repeat_interleave(samples, dim=0)
    noisy = noisy + torch.normal(0.0, torch.full(noisy.shape, float(sigma)), generator=generator)
    a = torch.as_tensor(rs.uniform(0.0, 1.0, samples * n), dtype=x.dtype).reshape(-1, *([1] * (x.ndim - 1)))
    point = a * noisy + (1 - a) * picked                                     # a random point on the straight path b -> x + e
    grads = gradient(model, point, _targets(target, n).repeat_interleave(samples))
    return ((noisy - picked) * grads).reshape(n, samples, *x.shape[1:]).mean(1)

