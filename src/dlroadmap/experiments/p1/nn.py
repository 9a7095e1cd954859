"""Phase 1, Intro to Neural Networks: experiments for dlroadmap/foundations/neural.py.

  p1.nn.perceptron   Rosenblatt's rule converges on separable data (within Novikoff's bound, same
                     weights as sklearn's Perceptron), never on XOR; a hidden layer solves XOR
  p1.nn.activations  sigmoid, tanh, ReLU, leaky ReLU, GELU and their derivatives vs torch;
                     saturation, and how much gradient survives 20 layers of each
  p1.nn.cost         MSE vs cross-entropy on a saturated sigmoid neuron: which one learns
"""

from __future__ import annotations

from typing import ClassVar

import matplotlib.pyplot as plt
import numpy as np
import torch
from pydantic import Field

from dlroadmap.experiments.base import Experiment, ExperimentConfig, Result
from dlroadmap.foundations import neural as N
from dlroadmap.train import Tracker


class Config(ExperimentConfig):
    points: int = Field(200, ge=10, le=100_000, description="points in the separable set")
    margin: float = Field(0.3, gt=0, le=2)
    depth: int = Field(20, ge=1, le=200, description="layers for the gradient-through-depth measurement")

    QUICK: ClassVar[dict] = {}


def run_perceptron(config: Config, tracker: Tracker) -> Result:
    from sklearn.linear_model import Perceptron as SkPerceptron

    X, y, w_star, b_star = N.linearly_separable(config.points, config.margin, config.seed)
    p = N.Perceptron(epochs=1000).fit(X, y)
    bound = N.novikoff_bound(X, y, w_star, b_star)
    one = N.Perceptron(epochs=1).fit(X, y)
    sk = SkPerceptron(eta0=1.0, shuffle=False, max_iter=1, tol=None, penalty=None).fit(X, y)
    sk_diff = float(max(np.abs(one.w - sk.coef_[0]).max(), abs(one.b - sk.intercept_[0])))
    Xx, yx = N.xor_data()
    px = N.Perceptron(epochs=1000).fit(Xx, yx)
    xor_loss, xor_pred = N.train_xor_mlp(seed=config.seed)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    axes[0].scatter(X[:, 0], X[:, 1], c=y, cmap="coolwarm", s=8)
    xs = np.linspace(-3, 3, 10)
    axes[0].plot(xs, -(p.w[0] * xs + p.b) / p.w[1], "k", label="learned boundary")
    axes[0].set_ylim(-3, 3)
    axes[0].set_title(f"separable: converged after {p.total_updates} updates (bound {bound:.0f})", fontsize=9)
    axes[0].legend(fontsize=7)
    axes[1].plot(p.mistakes_per_epoch, "o-", label="separable")
    axes[1].plot(px.mistakes_per_epoch[:50], ".-", label="XOR (never 0)")
    axes[1].set_xlabel("epoch")
    axes[1].set_ylabel("mistakes")
    axes[1].set_title("perceptron mistakes per epoch", fontsize=9)
    axes[1].legend(fontsize=7)
    gx, gy = np.meshgrid(np.linspace(-0.5, 1.5, 150), np.linspace(-0.5, 1.5, 150))
    grid = np.c_[gx.ravel(), gy.ravel()]
    axes[2].contourf(gx, gy, px.predict(grid).reshape(gx.shape), alpha=0.3, cmap="coolwarm")
    axes[2].scatter(Xx[:, 0], Xx[:, 1], c=yx, cmap="coolwarm", s=80, edgecolor="k")
    axes[2].set_title(f"XOR: any line misclassifies a point; an MLP gets {int((xor_pred == yx).sum())}/4", fontsize=9)
    fig.tight_layout()
    plot = tracker.log_figure(fig, "perceptron")
    metrics = {"separable_train_accuracy": float((p.predict(X) == y).mean()), "updates": float(p.total_updates),
               "novikoff_bound": bound, "updates_within_bound": float(p.total_updates <= bound),
               "one_epoch_max_abs_diff_vs_sklearn": sk_diff, "xor_perceptron_min_mistakes": float(min(px.mistakes_per_epoch)),
               "xor_mlp_accuracy": float((xor_pred == yx).mean()), "xor_mlp_loss": xor_loss}
    return Result(metrics=metrics, artifacts={"perceptron": str(plot)})


TORCH = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu,
         "leaky_relu": torch.nn.functional.leaky_relu, "gelu": torch.nn.functional.gelu}


def run_activations(config: Config, tracker: Tracker) -> Result:
    z = np.linspace(-6, 6, 601)
    z = z[np.abs(z) > 1e-9]
    worst = 0.0
    for name, (f, df) in N.ACTIVATIONS.items():
        zt = torch.tensor(z, requires_grad=True)
        out = TORCH[name](zt)
        out.sum().backward()
        worst = max(worst, float(np.abs(f(z) - out.detach().numpy()).max()), float(np.abs(df(z) - zt.grad.numpy()).max()))
    depth_grad = {name: N.gradient_through_depth(name, config.depth, seed=config.seed) for name in N.ACTIVATIONS}
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    for name, (f, df) in N.ACTIVATIONS.items():
        axes[0].plot(z, f(z), label=name)
        axes[1].plot(z, df(z), label=name)
    axes[0].set_ylim(-1.5, 3)
    axes[0].set_title("activations", fontsize=9)
    axes[1].set_title("derivatives: sigmoid/tanh saturate (-> 0) for large |z|", fontsize=9)
    axes[0].legend(fontsize=7)
    depths = np.arange(1, config.depth + 1)
    for name in N.ACTIVATIONS:
        axes[2].semilogy(depths, [N.gradient_through_depth(name, d, seed=config.seed) for d in depths], label=name)
    axes[2].set_xlabel("layers")
    axes[2].set_title("norm of d(output)/d(input) through random layers", fontsize=9)
    axes[2].legend(fontsize=7)
    fig.tight_layout()
    plot = tracker.log_figure(fig, "activations")
    metrics = {"max_abs_diff_vs_torch": worst, "max_sigmoid_derivative": float(N.d_sigmoid(0.0)),
               **{f"grad_norm_depth{config.depth}_{k}": v for k, v in depth_grad.items()}}
    return Result(metrics=metrics, artifacts={"activations": str(plot)})


def run_cost(config: Config, tracker: Tracker) -> Result:
    ce, mse = N.train_single_neuron("cross_entropy"), N.train_single_neuron("mse")

    def epochs_to(outputs, level=0.1):
        return next((i for i, a in enumerate(outputs) if a < level), len(outputs))

    a = np.linspace(0.001, 0.999, 300)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    axes[0].plot(ce, label="cross-entropy")
    axes[0].plot(mse, label="MSE")
    axes[0].set_xlabel("epoch")
    axes[0].set_ylabel("output a (target 0)")
    axes[0].set_title("a saturated, wrong sigmoid neuron: which cost lets it learn?", fontsize=9)
    axes[0].legend(fontsize=7)
    axes[1].plot(a, -np.log(1 - a), label="cross-entropy cost, target 0")
    axes[1].plot(a, a**2 / 2, label="MSE cost, target 0")
    axes[1].set_xlabel("output a")
    axes[1].set_title("costs: cross-entropy grows without bound as a -> 1", fontsize=9)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    plot = tracker.log_figure(fig, "cost_functions")
    t_ce, t_mse = epochs_to(ce), epochs_to(mse)
    bce = N.binary_cross_entropy(np.array([0.9, 0.2, 0.6]), np.array([1, 0, 1]))
    ref = torch.nn.functional.binary_cross_entropy(torch.tensor([0.9, 0.2, 0.6], dtype=torch.float64), torch.tensor([1.0, 0, 1], dtype=torch.float64)).item()
    metrics = {"epochs_to_output_below_0.1_cross_entropy": float(t_ce), "epochs_to_output_below_0.1_mse": float(t_mse),
               "mse_over_ce_epochs": t_mse / max(t_ce, 1), "bce_abs_diff_vs_torch": abs(bce - ref)}
    return Result(metrics=metrics, artifacts={"cost_functions": str(plot)})


perceptron = Experiment(Config, run_perceptron)
activations = Experiment(Config, run_activations)
cost = Experiment(Config, run_cost)
