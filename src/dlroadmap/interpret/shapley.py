"""Shapley values of a prediction: exactly (every coalition) and by KernelSHAP (a weighted regression).

A model f and an input x with M features (or M superpixels). A coalition z in {0,1}^M keeps the features
where z = 1 and replaces the others by a background row; its value is the mean prediction over the
background rows (the "interventional" value function KernelExplainer uses):

    v(z) = E_b[ f(z * x + (1 - z) * b) ]                                       v(0) = E[f],  v(1) = f(x)

Shapley (1953): feature i's share is its marginal contribution averaged over every order of arrival,

    phi_i = sum_{S not containing i}  |S|! (M - |S| - 1)! / M!  [ v(S + i) - v(S) ]

and the shares add up to the prediction's distance from the average (efficiency): sum_i phi_i = f(x) - E[f].

Lundberg & Lee 2017 (arXiv:1705.07874, Theorem 2): the same numbers solve a weighted least squares over
coalitions, min_phi sum_z pi(z) (v(z) - phi_0 - z . phi)^2 with the Shapley kernel

    pi(z) = (M - 1) / ( C(M, |z|) |z| (M - |z|) )

(infinite at |z| = 0 and M: those two are the constraints phi_0 = E[f] and efficiency). KernelSHAP samples
coalitions from pi instead of enumerating 2^M of them, which is what makes it usable for M > ~15.
"""

from __future__ import annotations

from math import comb, factorial
from typing import Callable

import numpy as np

Predict = Callable[[np.ndarray], np.ndarray]       # (N, M) inputs -> (N,) outputs (e.g. one class's probability)


def coalition_values(f: Predict, x: np.ndarray, background: np.ndarray, masks: np.ndarray, batch: int = 200_000) -> np.ndarray:
    """v(z) for each row of `masks` (C, M) bool: x where z = 1, each background row where z = 0, averaged."""
    x, background = np.asarray(x, dtype=float), np.atleast_2d(np.asarray(background, dtype=float))
    K = len(background)
    out = np.empty(len(masks))
    per = max(1, batch // K)
    for start in range(0, len(masks), per):
        m = masks[start:start + per, None, :]                                  # (c, 1, M)
        inputs = np.where(m, x[None, None, :], background[None, :, :])         # (c, K, M)
        out[start:start + per] = np.asarray(f(inputs.reshape(-1, x.shape[-1]))).reshape(-1, K).mean(1)
    return out


def all_masks(M: int) -> np.ndarray:
    """Every coalition as a row of bools: row k is the binary expansion of k (feature j = bit j)."""
    return (np.arange(2 ** M)[:, None] >> np.arange(M)[None, :]) & 1 == 1


def exact_shapley_from_values(values: np.ndarray, M: int) -> np.ndarray:
    """Shapley's formula over all 2^M coalition values (values[k] = v(coalition with bits of k))."""
    k = np.arange(2 ** M)
    size = np.array([bin(i).count("1") for i in k])
    weight = np.array([factorial(s) * factorial(M - s - 1) / factorial(M) for s in range(M)])
    phi = np.empty(M)
    for i in range(M):
        without = k[(k >> i) & 1 == 0]                                         # coalitions S not containing i
        phi[i] = (weight[size[without]] * (values[without | (1 << i)] - values[without])).sum()
    return phi


def exact_shapley(f: Predict, x: np.ndarray, background: np.ndarray) -> tuple[np.ndarray, float]:
    """(phi (M,), E[f]) by enumerating every coalition: 2^M * len(background) model evaluations."""
    M = len(x)
    if M > 20:
        raise ValueError(f"exact Shapley values enumerate 2^M coalitions; M = {M} is too many (use kernel_shap)")
    values = coalition_values(f, x, background, all_masks(M))
    return exact_shapley_from_values(values, M), float(values[0])


def shapley_kernel(M: int, size: np.ndarray) -> np.ndarray:
    """pi(z) of Theorem 2 for coalitions of the given sizes (1 .. M-1)."""
    # the Shapley kernel, Theorem 2, @lundberg2017shap
    size = np.asarray(size)
    return (M - 1) / (np.array([comb(M, int(s)) for s in size.ravel()]).reshape(size.shape) * size * (M - size))


def sample_coalitions(M: int, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(masks (C, M), weights (C,)) for at most n coalitions, weights summing to 1.

    pi puts most of its mass on the smallest and largest coalitions, so those sizes are enumerated first,
    in pairs (s and M - s), each coalition weighted by its exact share of the kernel, while they fit in the
    budget (what shap's KernelExplainer does too). The rest of the budget is drawn from the sizes left:
    a size with probability ~ its kernel mass, a uniform subset of that size, and its complement beside it
    (paired sampling), each drawn coalition carrying an equal share of the mass left. With n >= 2^M - 2
    every coalition is enumerated and the regression returns the exact Shapley values."""
    sizes = np.arange(1, M)
    mass = (M - 1) / (sizes * (M - sizes))                                     # kernel mass of all coalitions of size s
    mass = mass / mass.sum()
    masks, weights, left, budget = [], [], list(sizes), n
    for s in range(1, M // 2 + 1):
        pair = [s] if s == M - s else [s, M - s]
        count = sum(comb(M, t) for t in pair)
        if count > budget:
            break
        for t in pair:
            subsets = _subsets(M, t)
            masks.append(subsets)
            weights.append(np.full(len(subsets), mass[t - 1] / comb(M, t)))
            left.remove(t)
        budget -= count
    if left and budget >= 2:
        p = mass[np.array(left) - 1]
        drawn = rng.choice(left, size=budget // 2, p=p / p.sum())
        sampled = np.zeros((len(drawn), M), dtype=bool)
        for row, s in enumerate(drawn):
            sampled[row, rng.permutation(M)[:s]] = True
        sampled = np.concatenate([sampled, ~sampled])                          # z and its complement
        masks.append(sampled)
        weights.append(np.full(len(sampled), p.sum() / len(sampled)))
    return np.concatenate(masks), np.concatenate(weights)


def _subsets(M: int, size: int) -> np.ndarray:
    """Every coalition of `size` features, one per row."""
    from itertools import combinations

    out = np.zeros((comb(M, size), M), dtype=bool)
    for row, idx in enumerate(combinations(range(M), size)):
        out[row, list(idx)] = True
    return out


def kernel_shap_from_values(masks: np.ndarray, weights: np.ndarray, values: np.ndarray, f_empty: float, f_full: float) -> np.ndarray:
    """The constrained weighted regression of Theorem 2. Efficiency (sum phi = f(x) - E[f]) is imposed by
    eliminating the last feature: phi_M = delta - sum_{j<M} phi_j, so
        v(z) - phi_0 - z_M delta = sum_{j<M} (z_j - z_M) phi_j."""
    z = masks.astype(float)
    delta = f_full - f_empty
    y = values - f_empty - z[:, -1] * delta                                    # (C,)
    X = z[:, :-1] - z[:, -1:]                                                  # (C, M-1)
    Xw = X * weights[:, None]
    # Normal equations (X^T W X) phi = X^T W y; lstsq copes with a rank-deficient design (too few samples).
    phi_head = np.linalg.lstsq(X.T @ Xw, Xw.T @ y, rcond=None)[0]
    return np.append(phi_head, delta - phi_head.sum())


def kernel_shap(f: Predict, x: np.ndarray, background: np.ndarray, n_samples: int = 2048,
                rng: np.random.Generator | None = None) -> tuple[np.ndarray, float]:
    """(phi (M,), E[f]) from `n_samples` coalitions (all of them when 2^M - 2 <= n_samples: then exact)."""
    rng = rng if rng is not None else np.random.default_rng(0)
    M = len(x)
    masks, weights = sample_coalitions(M, n_samples, rng)
    ends = coalition_values(f, x, background, np.array([[False] * M, [True] * M]))
    values = coalition_values(f, x, background, masks)
    return kernel_shap_from_values(masks, weights, values, ends[0], ends[1]), float(ends[0])


def superpixel_shap(f: Predict, image: np.ndarray, segments: np.ndarray, fill: float | np.ndarray, n_samples: int = 1000,
                    rng: np.random.Generator | None = None) -> np.ndarray:
    """KernelSHAP over superpixels: (S,) shares of f(image) - f(image filled everywhere). A coalition keeps its
    superpixels and paints the others with `fill`, so the features are the on/off switches (x = all on,
    one background row = all off). f: a batch of images -> (N,) scores."""
    from dlroadmap.interpret.lime import superpixel_images

    S = int(segments.max()) + 1
    return kernel_shap(lambda on: f(superpixel_images(image, segments, on, fill)), np.ones(S), np.zeros((1, S)), n_samples=n_samples,
                       rng=rng)[0]
