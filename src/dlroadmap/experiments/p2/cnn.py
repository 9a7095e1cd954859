"""Phase 2, Convolutional Neural Networks.

  p2.cnn.filters        convolution / pooling / padding from scratch (models/convolution.py) vs
                        F.conv2d and F.max_pool2d on random configurations (values and gradients);
                        a CNN built from those layers trained through the Trainer; its learned
                        filters and feature maps
  p2.cnn.architectures  LeNet-5, AlexNet, VGG-11/16, ResNet-18/34/50 built in their canonical
                        ImageNet form (parameter counts = the published figures), and small-input
                        variants trained on MNIST (MNIST-5k in quick mode, full MNIST otherwise)
"""

from __future__ import annotations

from typing import ClassVar, Literal

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from dlroadmap.data import classification_tensors
from dlroadmap.deploy.bundle import save_trained
from dlroadmap.evaluate.plots import learning_curves
from dlroadmap.experiments.base import Experiment, ExperimentConfig, Result
from dlroadmap.models.families import count_parameters, small_cnn
from dlroadmap.models.vision import convolution as conv
from dlroadmap.models.vision.lenet import LeNet5
from dlroadmap.models.vision.resnet import resnet18
from dlroadmap.models.vision.zoo import CANONICAL, PUBLISHED
from dlroadmap.train import Tracker, seed_everything
from dlroadmap.train.fit import fit_classifier, one_cycle

class Config(ExperimentConfig):
    dataset: Literal["mnist5k", "mnist", "fashion-mnist", "digits"] = Field(
        "mnist", description="full MNIST needs DLR_DATA_DIR (or a download); quick mode uses the embedded MNIST-5k")
    models: list[Literal["lenet5", "alexnet", "vgg", "resnet"]] = Field(["lenet5", "resnet"], min_length=1)
    epochs: int = Field(12, ge=1, le=500)
    batch_size: int = Field(128, ge=1, le=8192)
    lr: float = Field(3e-3, gt=0, le=1)
    weight_decay: float = Field(5e-4, ge=0, le=1)
    random_checks: int = Field(40, ge=1, le=10_000, description="random conv/pool configurations compared with torch")

    QUICK: ClassVar[dict] = {"dataset": "mnist5k", "epochs": 10, "batch_size": 64, "random_checks": 25}


def adamw_one_cycle(model: nn.Module, config: Config) -> tuple[torch.optim.Optimizer, object]:
    """The CNN lessons' optimiser: AdamW with decoupled weight decay, LR on Smith & Topin's one-cycle schedule."""
    return torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay), one_cycle(config.lr)


# --- p2.cnn.filters ------------------------------------------------------------------------------


class ScratchCNN(nn.Module):
    """A small CNN whose convolutions and pooling are ours (im2col), not torch's kernels."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.conv1 = conv.Conv2d(1, 8, 5, padding=2)
        self.conv2 = conv.Conv2d(8, 16, 3, padding=1)
        self.fc = nn.Linear(16 * 7 * 7, classes)

    def feature_maps(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a1 = F.relu(self.conv1(x.unsqueeze(1) if x.ndim == 3 else x))
        a2 = F.relu(self.conv2(conv.max_pool2d(a1, 2)))
        return a1, a2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, a2 = self.feature_maps(x)
        return self.fc(conv.max_pool2d(a2, 2).flatten(1))


def _random_checks(n: int, seed: int) -> tuple[float, float]:
    """Largest |ours - torch| over n random conv configs (values and input/weight gradients) and pool configs."""
    g = torch.Generator().manual_seed(seed)
    rint = lambda lo, hi: int(torch.randint(lo, hi + 1, (1,), generator=g))  # noqa: E731
    worst_conv = worst_pool = 0.0
    for _ in range(n):
        groups = [1, 2, 4][rint(0, 2)]
        c_in, c_out = groups * rint(1, 2), groups * rint(1, 3)
        k, s, p, d = rint(1, 3), rint(1, 3), rint(0, 2), rint(1, 2)
        size = rint(d * (k - 1) + 1, 9)
        x = torch.randn(2, c_in, size, size + 1, dtype=torch.float64, generator=g, requires_grad=True)
        w = torch.randn(c_out, c_in // groups, k, k, dtype=torch.float64, generator=g, requires_grad=True)
        ours, ref = conv.conv2d(x, w, None, s, p, d, groups), F.conv2d(x, w, None, s, p, d, groups)
        up = torch.randn(ref.shape, dtype=torch.float64, generator=g)
        go, gr = torch.autograd.grad(ours, (x, w), up), torch.autograd.grad(ref, (x, w), up)
        worst_conv = max(worst_conv, (ours - ref).abs().max().item(), *((a - b).abs().max().item() for a, b in zip(go, gr)))
        kp = rint(1, 3)
        pp = rint(0, kp // 2)
        xo = torch.randn(2, 3, 8, 7, dtype=torch.float64, generator=g, requires_grad=True)
        stride = rint(1, 2)
        mo, mr = conv.max_pool2d(xo, kp, stride, pp), F.max_pool2d(xo, kp, stride, pp)
        ao, ar = conv.avg_pool2d(xo, kp, stride, pp), F.avg_pool2d(xo, kp, stride, pp)
        worst_pool = max(worst_pool, (mo - mr).abs().max().item(), (ao - ar).abs().max().item(),
                         (torch.autograd.grad(mo.sum(), xo)[0] - torch.autograd.grad(mr.sum(), xo)[0]).abs().max().item())
    return worst_conv, worst_pool


def run_filters(config: Config, tracker: Tracker) -> Result:
    worst_conv, worst_pool = _random_checks(config.random_checks, config.seed)
    # The shape calculator against real layers (LeNet on 28x28).
    trace = conv.output_shape((1, 28, 28), [{"type": "conv", "out": 6, "kernel": 5, "padding": 2}, {"type": "pool", "kernel": 2},
                                            {"type": "conv", "out": 16, "kernel": 5}, {"type": "pool", "kernel": 2}])
    real = LeNet5(input_size=28).features(torch.zeros(1, 1, 28, 28)).shape[1:]
    seed_everything(config.seed)
    data = classification_tensors("mnist5k" if config.dataset != "digits" else "digits", seed=config.seed)
    model = ScratchCNN(data.num_classes)
    opt, schedule = adamw_one_cycle(model, config)
    fitted = fit_classifier(model, data, opt, schedule=schedule, epochs=max(3, config.epochs // 4), config=config, tracker=tracker,
                            prefix="scratch_cnn", batch_size=config.batch_size)
    history, test_acc = fitted.history, fitted.test_accuracy
    # Learned filters and the feature maps they produce on one test digit.
    model.eval()
    with torch.no_grad():
        a1, a2 = model.feature_maps(data.X_test[:1])
    fig, axes = plt.subplots(3, 8, figsize=(12, 4.8))
    filt = model.conv1.weight.detach()[:, 0]
    for i in range(8):
        axes[0, i].imshow(filt[i], cmap="coolwarm")
        axes[1, i].imshow(a1[0, i], cmap="viridis")
        axes[2, i].imshow(a2[0, i], cmap="viridis")
    for ax in axes.ravel():
        ax.axis("off")
    axes[0, 0].set_title("conv1 filters (5x5)", fontsize=8, loc="left")
    axes[1, 0].set_title("conv1 feature maps (28x28)", fontsize=8, loc="left")
    axes[2, 0].set_title("conv2 feature maps (14x14)", fontsize=8, loc="left")
    fig.suptitle(f"CNN built from our im2col convolution: test accuracy {test_acc:.3f}", fontsize=9)
    plots = {"filters_and_feature_maps": tracker.log_figure(fig, "filters_and_feature_maps"),
             "learning_curves": tracker.log_figure(learning_curves(history, title="scratch-conv CNN"), "learning_curves")}
    metrics = {"conv2d_max_abs_diff_vs_torch": worst_conv, "pool_max_abs_diff_vs_torch": worst_pool,
               "shape_calculator_matches_layers": float(trace[-1][1] == tuple(real)), "scratch_cnn_test_accuracy": test_acc}
    return Result(metrics=metrics, artifacts={k: str(v) for k, v in plots.items()}, history=history)


# --- p2.cnn.architectures -----------------------------------------------------------------------------


def run_architectures(config: Config, tracker: Tracker) -> Result:
    metrics: dict[str, float] = {}
    for name, build in CANONICAL.items():
        metrics[f"params_{name}"] = float(count_parameters(build))
    metrics["params_match_published"] = float(all(metrics[f"params_{k}"] == v for k, v in PUBLISHED.items()))
    # The ImageNet networks really run: one forward pass of ResNet-18 at 224x224.
    with torch.no_grad():
        metrics["resnet18_logits_shape_ok"] = float(resnet18().eval()(torch.zeros(1, 3, 224, 224)).shape == (1, 1000))
    data = classification_tensors(config.dataset, seed=config.seed)
    histories = {}
    for name in config.models:
        seed_everything(config.seed)
        model, family, kwargs = small_cnn(name, data.num_classes)
        opt, schedule = adamw_one_cycle(model, config)
        fitted = fit_classifier(model, data, opt, schedule=schedule, epochs=config.epochs, config=config, tracker=tracker, prefix=name,
                                batch_size=config.batch_size)
        hist, acc = fitted.history, fitted.test_accuracy
        histories[name] = hist
        metrics[f"{name}_test_accuracy"] = acc
        metrics[f"{name}_best_val_accuracy"] = max(h["val_acc"] for h in hist)   # what `dlr tune` selects on
        metrics[f"{name}_small_params"] = float(sum(p.numel() for p in model.parameters()))
        save_trained(tracker.run_dir / "models" / name, model, data, name=f"{name}-{config.dataset}", family=family,
                     kwargs=kwargs, source={"node": "p2.cnn.architectures", "run_dir": str(tracker.run_dir), "test_accuracy": acc})
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
    for name, hist in histories.items():
        axes[0].plot([h["epoch"] for h in hist], [h["val_acc"] for h in hist], marker="o", ms=3, label=f"{name} ({metrics[f'{name}_test_accuracy']:.3f} test)")
    axes[0].set_xlabel("epoch")
    axes[0].set_title(f"validation accuracy on {config.dataset}", fontsize=9)
    axes[0].legend(fontsize=7)
    axes[0].grid(alpha=0.3)
    names = list(PUBLISHED)
    axes[1].barh(names, [metrics[f"params_{n}"] for n in names])
    axes[1].set_xscale("log")
    for i, n in enumerate(names):
        axes[1].text(metrics[f"params_{n}"], i, f" {metrics[f'params_{n}'] / 1e6:.2f}M", va="center", fontsize=7)
    axes[1].set_title("parameters, canonical ImageNet configurations", fontsize=9)
    fig.tight_layout()
    plot = tracker.log_figure(fig, "architectures")
    return Result(metrics=metrics, artifacts={"architectures": str(plot)})


filters = Experiment(Config, run_filters)
architectures = Experiment(Config, run_architectures)
