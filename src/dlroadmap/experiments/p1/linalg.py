"""Phase 1, Linear Algebra: experiments for dlroadmap/foundations/linalg.py.

  p1.linalg.tensors  broadcasting, strides, views and einsum, checked against NumPy, on digit images
  p1.linalg.matmul   naive vs blocked vs BLAS: agreement and GFLOP/s against this machine's GEMM peak
  p1.linalg.eigen    power iteration and the QR algorithm vs numpy.linalg; PCA on digits vs sklearn
"""

from __future__ import annotations

from typing import ClassVar

import matplotlib.pyplot as plt
import numpy as np
from pydantic import Field

from dlroadmap.data import load
from dlroadmap.experiments.base import Experiment, ExperimentConfig, PositiveInt, Result
from dlroadmap.foundations import linalg as L
from dlroadmap.train import Tracker


class Config(ExperimentConfig):
    sizes: list[PositiveInt] = Field([64, 128, 256, 512], min_length=1, description="matrix sizes for the matmul timings")
    naive_max: int = Field(128, ge=8, le=1024, description="largest size timed with the pure-Python loop")
    peak_size: int = Field(2048, ge=256, le=8192, description="size used to measure the BLAS GEMM peak")
    eig_sizes: list[PositiveInt] = Field([5, 10, 20, 40], min_length=1)

    QUICK: ClassVar[dict] = {"sizes": [32, 64, 128, 256], "naive_max": 64, "peak_size": 1024, "eig_sizes": [5, 10, 20]}


def run_tensors(config: Config, tracker: Tracker) -> Result:
    rng = np.random.default_rng(config.seed)
    imgs = load("digits").X.reshape(-1, 8, 8)              # (N, H, W): a batch of images is a 3-D tensor
    mean_img = imgs.mean(axis=0)                            # reduce over the batch axis -> (8, 8)
    centred = imgs - mean_img                               # (N, 8, 8) - (8, 8): broadcast over N
    per_image = (imgs - imgs.mean(axis=(1, 2), keepdims=True)) / (imgs.std(axis=(1, 2), keepdims=True) + 1e-8)
    mismatches = 0
    for _ in range(300):  # the broadcasting rule, written out, against NumPy's
        shapes = [tuple(int(d) for d in rng.choice([1, 2, 3], size=rng.integers(0, 4))) for _ in range(2)]
        try:
            ours = L.broadcast_shape(*shapes)
        except ValueError:
            ours = None
        try:
            theirs = np.broadcast_shapes(*shapes)
        except ValueError:
            theirs = None
        mismatches += ours != theirs
    t = imgs.astype(np.float32)
    views_ok = all([L.is_view(t.transpose(0, 2, 1), t), L.is_view(t[:, ::2], t), not L.is_view(t[[0, 1]], t),
                    L.strides_for(t.shape, t.itemsize) == t.strides])
    einsum_err = max(L.einsum_examples(rng).values())
    fig, axes = plt.subplots(1, 4, figsize=(10, 2.8))
    for ax, (img, title) in zip(axes, [(imgs[0], "image 0"), (mean_img, "mean over batch axis"), (centred[0], "image 0 - mean (broadcast)"),
                                       (per_image[0], "per-image standardised")]):
        ax.imshow(img, cmap="gray")
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    fig.suptitle(f"digits as a tensor of shape {imgs.shape}: reductions and broadcasting", fontsize=9)
    plot = tracker.log_figure(fig, "tensor_ops")
    metrics = {"broadcast_rule_mismatches": float(mismatches), "views_and_strides_ok": float(views_ok),
               "einsum_max_abs_err": einsum_err, "centred_mean_abs_max": float(np.abs(centred.mean(axis=0)).max())}
    return Result(metrics=metrics, artifacts={"tensor_ops": str(plot)})


def run_matmul(config: Config, tracker: Tracker) -> Result:
    rng = np.random.default_rng(config.seed)
    A, B = rng.normal(size=(48, 40)), rng.normal(size=(40, 56))
    agree = max(np.abs(L.matmul_naive(A, B) - A @ B).max(), np.abs(L.matmul_blocked(A, B, 16) - A @ B).max())
    peak = L.time_matmul(L.matmul_blas, config.peak_size, np.float64, repeats=3)
    rows: dict[str, list[tuple[int, float]]] = {"naive (Python loops)": [], "blocked (tiles + rank-1 updates)": [], "BLAS (numpy @)": []}
    for n in config.sizes:
        if n <= config.naive_max:
            rows["naive (Python loops)"].append((n, L.time_matmul(L.matmul_naive, n, repeats=1)))
        rows["blocked (tiles + rank-1 updates)"].append((n, L.time_matmul(L.matmul_blocked, n, repeats=2)))
        rows["BLAS (numpy @)"].append((n, L.time_matmul(L.matmul_blas, n, repeats=5)))
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for label, pts in rows.items():
        ax.plot(*zip(*pts), marker="o", label=label)
    ax.axhline(peak, color="k", ls="--", lw=0.8, label=f"measured GEMM peak ({peak:.0f} GFLOP/s, n={config.peak_size})")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("n (n x n matrices, float64)")
    ax.set_ylabel("GFLOP/s")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, which="both")
    ax.set_title("Matrix multiplication three ways")
    plot = tracker.log_figure(fig, "matmul_gflops")
    best = {k: max(v for _, v in pts) for k, pts in rows.items()}
    metrics = {
        "max_abs_diff_vs_numpy": float(agree),
        "peak_gflops": peak,
        "naive_gflops": best["naive (Python loops)"],
        "blocked_gflops": best["blocked (tiles + rank-1 updates)"],
        "blas_gflops": best["BLAS (numpy @)"],
        "blas_over_naive": best["BLAS (numpy @)"] / best["naive (Python loops)"],
    }
    return Result(metrics=metrics, artifacts={"matmul_gflops": str(plot)})


def run_eigen(config: Config, tracker: Tracker) -> Result:
    rng = np.random.default_rng(config.seed)
    sym_err, gen_err, vec_err = 0.0, 0.0, 0.0
    for n in config.eig_sizes:
        M = rng.normal(size=(n, n))
        S = M + M.T
        vals, vecs = L.eig_symmetric(S)
        ref_vals, ref_vecs = np.linalg.eigh(S)
        sym_err = max(sym_err, np.abs(vals - ref_vals).max())
        vec_err = max(vec_err, np.abs(np.abs(vecs.T @ ref_vecs) - np.eye(n)).max())
        gvals, _ = L.qr_algorithm(M)
        ref = np.linalg.eig(M)[0]
        gen_err = max(gen_err, max(np.min(np.abs(ref - lam)) for lam in gvals))
    # Power iteration converges at the rate |lambda2 / lambda1|.
    Q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    spectrum = np.array([4.0, 3.0, 1.0, 0.5, 0.2, -0.1, 0.05, 0.01])
    A = Q @ np.diag(spectrum) @ Q.T
    lam, _, est = L.power_iteration(A, iters=200, tol=0)
    err = np.abs(np.array(est) - 4.0)
    ks = np.arange(1, len(err) + 1)
    # PCA on digits, from our own eigendecomposition of the covariance.
    digits = load("digits")
    Z, comps, var = L.pca(digits.X.astype(np.float64), 10)
    from sklearn.decomposition import PCA

    ref = PCA(10).fit(digits.X.astype(np.float64))
    pca_err = float(np.abs(var - ref.explained_variance_).max())
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    axes[0].semilogy(ks, err + 1e-17, label="|Rayleigh quotient - lambda_1|")
    axes[0].semilogy(ks, err[0] * (3 / 4) ** (2 * (ks - 1)), "k--", lw=0.8, label="(lambda_2/lambda_1)^(2k)")
    axes[0].set_xlabel("iteration")
    axes[0].set_title("power iteration")
    axes[0].legend(fontsize=7)
    sc = axes[1].scatter(Z[:, 0], Z[:, 1], c=digits.y, cmap="tab10", s=5)
    axes[1].set_title("digits projected on the first 2 principal components")
    fig.colorbar(sc, ax=axes[1], fraction=0.046)
    total = np.trace(np.cov(digits.X.T))
    axes[2].bar(range(1, 11), var / total)
    axes[2].plot(range(1, 11), np.cumsum(var) / total, "k.-", label="cumulative")
    axes[2].set_title("explained variance ratio")
    axes[2].legend(fontsize=7)
    fig.tight_layout()
    plot = tracker.log_figure(fig, "eigen_pca")
    metrics = {"symmetric_eigvals_max_abs_err": float(sym_err), "symmetric_eigvecs_max_err": float(vec_err),
               "general_eigvals_max_abs_err": float(gen_err), "power_iteration_lambda1_err": abs(lam - 4.0),
               "pca_explained_variance_max_abs_err": pca_err}
    return Result(metrics=metrics, artifacts={"eigen_pca": str(plot)})


tensors = Experiment(Config, run_tensors)
matmul = Experiment(Config, run_matmul)
eigen = Experiment(Config, run_eigen)
