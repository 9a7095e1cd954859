"""Phase 1, Calculus: experiments for dlroadmap/foundations/calculus.py.

  p1.calculus.derivatives  finite differences: error vs step size (O(h) vs O(h^2), then rounding)
  p1.calculus.chain_rule   a composed function's gradient by hand = product of Jacobians = autograd
  p1.calculus.partials     gradient, Jacobian, Hessian numerically vs analytic vs torch.autograd.functional
"""

from __future__ import annotations

from typing import ClassVar

import matplotlib.pyplot as plt
import numpy as np
import torch
from pydantic import Field

from dlroadmap.experiments.base import Experiment, ExperimentConfig, Result
from dlroadmap.foundations import calculus as C
from dlroadmap.train import Tracker


class Config(ExperimentConfig):
    x0: float = Field(0.7, description="point at which derivatives are taken")
    trials: int = Field(200, ge=1, le=100_000, description="random points for the gradient checks")

    QUICK: ClassVar[dict] = {"trials": 50}


def run_derivatives(config: Config, tracker: Tracker) -> Result:
    hs = np.logspace(-12, -1, 45)
    errs = C.finite_difference_errors(np.sin, np.cos, config.x0, hs)
    best_h = float(hs[np.argmin(errs["central"])])
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for k, v in errs.items():
        ax.loglog(hs, v + 1e-18, marker=".", label=f"{k} difference")
    ax.loglog(hs, hs / 2, "k:", lw=0.8, label="O(h)")
    ax.loglog(hs, hs**2 / 6, "k--", lw=0.8, label="O(h^2)")
    ax.set_xlabel("step h")
    ax.set_ylabel("|error| of d/dx sin(x) at x0")
    ax.set_title("truncation error falls with h, rounding error rises")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    plot = tracker.log_figure(fig, "finite_differences")
    rng = np.random.default_rng(config.seed)
    worst = max(C.grad_check(C.rosenbrock, C.rosenbrock_grad, rng.uniform(-2, 2, 2)) for _ in range(config.trials))
    metrics = {"central_best_abs_err": float(errs["central"].min()), "forward_best_abs_err": float(errs["forward"].min()),
               "central_best_h": best_h, "rosenbrock_grad_check_rel_err": worst}
    return Result(metrics=metrics, artifacts={"finite_differences": str(plot)})


def run_chain_rule(config: Config, tracker: Tracker) -> Result:
    rng = np.random.default_rng(config.seed)
    worst_hand, worst_jac = 0.0, 0.0
    for _ in range(config.trials):
        W, b, x = rng.normal(size=(5, 3)), rng.normal(size=5), rng.normal(size=3)
        f, grad = C.composed(W, b)
        xt = torch.tensor(x, requires_grad=True)
        torch.sum(torch.tanh(torch.tensor(W) @ xt + torch.tensor(b)) ** 2).backward()
        worst_hand = max(worst_hand, float(np.abs(grad(x) - xt.grad.numpy()).max()))
        worst_jac = max(worst_jac, float(np.abs(C.chain_rule_jacobians(W, b, x)["J_total"][0] - xt.grad.numpy()).max()))
    J = C.chain_rule_jacobians(W, b, x)
    fig, axes = plt.subplots(1, 4, figsize=(11, 3), gridspec_kw={"width_ratios": [5, 3, 5, 3]})
    for ax, key in zip(axes, ("J_square_sum", "J_tanh", "J_affine", "J_total")):
        ax.imshow(J[key], cmap="coolwarm")
        ax.set_title(f"{key} {J[key].shape}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("chain rule: J_total = J_square_sum @ J_tanh @ J_affine (applied right to left)", fontsize=9)
    plot = tracker.log_figure(fig, "chain_rule_jacobians")
    return Result(metrics={"hand_vs_autograd_max_abs_diff": worst_hand, "jacobian_product_vs_autograd_max_abs_diff": worst_jac},
                  artifacts={"chain_rule_jacobians": str(plot)})


def run_partials(config: Config, tracker: Tracker) -> Result:
    rng = np.random.default_rng(config.seed)
    g_err = h_err = j_err = t_err = 0.0
    for _ in range(config.trials):
        p = rng.uniform(-1.5, 1.5, 2)
        g_err = max(g_err, float(np.abs(C.gradient(C.rosenbrock, p) - C.rosenbrock_grad(p)).max() / (1 + np.abs(C.rosenbrock_grad(p)).max())))
        h_err = max(h_err, float(np.abs(C.hessian(C.rosenbrock, p) - C.rosenbrock_hessian(p)).max() / (1 + np.abs(C.rosenbrock_hessian(p)).max())))
        q = np.array([rng.uniform(0.5, 3), rng.uniform(-3, 3)])
        j_err = max(j_err, float(np.abs(C.jacobian(C.polar_to_cartesian, q) - C.polar_jacobian(q)).max()))
        H_t = torch.autograd.functional.hessian(lambda t: (1 - t[0]) ** 2 + 100 * (t[1] - t[0] ** 2) ** 2, torch.tensor(p))
        t_err = max(t_err, float(np.abs(H_t.numpy() - C.rosenbrock_hessian(p)).max()))
    xs, ys = np.meshgrid(np.linspace(-2, 2, 120), np.linspace(-1, 3, 120))
    Z = (1 - xs) ** 2 + 100 * (ys - xs**2) ** 2
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    ax.contour(xs, ys, np.log10(Z + 1e-3), levels=25, cmap="viridis")
    gx, gy = np.meshgrid(np.linspace(-1.8, 1.8, 12), np.linspace(-0.8, 2.8, 12))
    G = np.array([C.rosenbrock_grad(np.array([a, b])) for a, b in zip(gx.ravel(), gy.ravel())])
    norm = np.linalg.norm(G, axis=1, keepdims=True) + 1e-12
    ax.quiver(gx.ravel(), gy.ravel(), -G[:, 0] / norm[:, 0], -G[:, 1] / norm[:, 0], color="crimson", width=0.004)
    ax.plot(1, 1, "k*", ms=12)
    ax.set_title("Rosenbrock: contours and negative gradient directions\n(partial derivatives d/dx, d/dy)", fontsize=9)
    plot = tracker.log_figure(fig, "partials_gradient_field")
    metrics = {"gradient_max_rel_err": g_err, "hessian_max_rel_err": h_err, "jacobian_max_abs_err": j_err,
               "hessian_vs_torch_max_abs_diff": t_err}
    return Result(metrics=metrics, artifacts={"partials_gradient_field": str(plot)})


derivatives = Experiment(Config, run_derivatives)
chain_rule = Experiment(Config, run_chain_rule)
partials = Experiment(Config, run_partials)
