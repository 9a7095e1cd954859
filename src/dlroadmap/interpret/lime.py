"""LIME (Ribeiro, Singh & Guestrin 2016, arXiv:1602.04938): explain one prediction by a linear model fitted
to the black box's answers on perturbed copies of the input, each weighted by its closeness to the input.

    explanation(x) = argmin_g  L(f, g, pi_x) + Omega(g)                                       (paper, eq. 1)
    L = sum_z pi_x(z) (f(z) - g(z'))^2,     pi_x(z) = exp(-D(x, z)^2 / sigma^2)             (eq. 2)

Here g is a ridge regression (Omega = alpha ||w||^2) and, as in the `lime` package, the kernel is the square
root of the paper's, sqrt(exp(-d^2 / sigma^2)), so that the weights multiply the squared residuals as
exp(-d^2/sigma^2). Two kinds of perturbation:

  tabular  z ~ N(mean, std^2) feature by feature (the training set's statistics); z' = (z - mean) / std;
           D = euclidean distance in that scaled space; sigma = 0.75 sqrt(M)
  image    z' in {0,1}^S switches superpixels on and off; an "off" superpixel is painted with a fill value;
           D = cosine distance between z' and the all-on vector; sigma = 0.25

The random draws follow `lime`'s (a numpy RandomState seeded with `seed`, the same calls in the same order),
so with the same seed our explanation and LimeTabularExplainer's / LimeImageExplainer's are the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

Predict = Callable[[np.ndarray], np.ndarray]       # a batch of inputs -> (N,) scores of the class explained


@dataclass
class LimeExplanation:
    coef: np.ndarray          # (M,) one weight per feature / superpixel
    intercept: float
    score: float              # weighted R^2 of the local model on its own samples (how linear f is there)
    local_prediction: float   # g(x): the local model at the instance


def weighted_ridge(X: np.ndarray, y: np.ndarray, w: np.ndarray, alpha: float = 1.0) -> tuple[np.ndarray, float, float]:
    """(coef, intercept, weighted R^2) of min_b,beta sum_i w_i (y_i - b - X_i beta)^2 + alpha ||beta||^2 (sklearn's
    Ridge with sample_weight). The intercept is not penalised: centre X and y on their weighted means, solve
    (Xc^T W Xc + alpha I) beta = Xc^T W yc, then b = mean(y) - mean(X) beta."""
    x_mean = (w[:, None] * X).sum(0) / w.sum()
    y_mean = (w * y).sum() / w.sum()
    Xc, yc = X - x_mean, y - y_mean
    A = Xc.T @ (w[:, None] * Xc) + alpha * np.eye(X.shape[1])
    coef = np.linalg.solve(A, Xc.T @ (w * yc))
    intercept = float(y_mean - x_mean @ coef)
    residual = y - intercept - X @ coef
    r2 = 1 - (w * residual ** 2).sum() / (w * (y - y_mean) ** 2).sum()
    return coef, intercept, float(r2)


def lime_kernel(distances: np.ndarray, width: float) -> np.ndarray:
    return np.sqrt(np.exp(-(distances ** 2) / width ** 2))


def lime_tabular(f: Predict, x: np.ndarray, mean: np.ndarray, std: np.ndarray, *, n_samples: int = 5000, seed: int = 0,
                 kernel_width: float | None = None, alpha: float = 1.0) -> LimeExplanation:
    """Explain f at x (M,) with `n_samples` Gaussian perturbations drawn from the training statistics."""
    # argmin_g L(f, g, pi_x) + Omega(g), eq. (1), @ribeiro2016lime
    x = np.asarray(x, dtype=float)
    M = len(x)
    std = np.where(np.asarray(std) == 0, 1.0, std)
    rs = np.random.RandomState(seed)
    data = rs.normal(0, 1, n_samples * M).reshape(n_samples, M) * std + mean    # (n, M) perturbed inputs
    data[0] = x                                                                 # row 0 is the instance itself
    scaled = (data - mean) / std
    distances = np.sqrt(((scaled - scaled[0]) ** 2).sum(1))
    weights = lime_kernel(distances, kernel_width if kernel_width is not None else 0.75 * np.sqrt(M))
    coef, intercept, r2 = weighted_ridge(scaled, np.asarray(f(data), dtype=float), weights, alpha)
    return LimeExplanation(coef, intercept, r2, float(intercept + scaled[0] @ coef))


def superpixels(grey: np.ndarray, n: int) -> np.ndarray:
    """SLIC superpixels (skimage.segmentation) of a grey image in [0, 1], labels 0..S-1; compactness 0.1 suits that range."""
    from skimage.segmentation import slic

    return slic(grey, n_segments=n, compactness=0.1, channel_axis=None, start_label=0)


def superpixel_images(image: np.ndarray, segments: np.ndarray, on: np.ndarray, fill: float | np.ndarray = 0.0) -> np.ndarray:
    """(N, *image.shape): image with the superpixels where on[n, s] = 0 painted with `fill`.
    segments: (H, W) ints 0..S-1; on: (N, S) 0/1."""
    keep = np.asarray(on, dtype=bool)[:, segments]                              # (N, H, W)
    if image.ndim == 3:                                                         # (H, W, C): same mask on each channel
        keep = keep[..., None]
    return np.where(keep, image[None], fill)


def spread(values: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """Per-superpixel values (S,) as a per-pixel map: each superpixel's value shared evenly by its pixels, so
    the map sums to what the superpixels sum to (SHAP's efficiency survives) and large superpixels do not
    outrank small ones with the same value per pixel."""
    return (values / np.bincount(segments.ravel(), minlength=len(values)))[segments]


def lime_image(f: Predict, image: np.ndarray, segments: np.ndarray, *, n_samples: int = 1000, seed: int = 0, fill: float = 0.0,
               kernel_width: float = 0.25, alpha: float = 1.0) -> LimeExplanation:
    """Explain f at an image with superpixels switched off at random (each on with probability 1/2)."""
    S = int(segments.max()) + 1
    rs = np.random.RandomState(seed)
    on = rs.randint(0, 2, n_samples * S).reshape(n_samples, S)                  # (n, S) which superpixels are kept
    on[0, :] = 1
    y = np.asarray(f(superpixel_images(image, segments, on, fill)), dtype=float)
    # Cosine distance to the all-on vector: 1 - |z'| / (sqrt(|z'|) sqrt(S)) = 1 - sqrt(|z'| / S).
    distances = 1 - np.sqrt(on.sum(1) / S)
    coef, intercept, r2 = weighted_ridge(on.astype(float), y, lime_kernel(distances, kernel_width), alpha)
    return LimeExplanation(coef, intercept, r2, float(intercept + coef.sum()))
