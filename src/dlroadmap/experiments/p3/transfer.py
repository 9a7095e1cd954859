"""Phase 3, Transfer Learning.

  p3.transfer.finetune    pre-train a CNN on a source task (MNIST-5k digits 0-4), then learn a small
                          target task (digits 5-9, 50 images per class) three ways: from scratch,
                          feature extraction (frozen backbone, new head) and fine-tuning (all
                          layers, lower learning rate for the backbone). Table and curves.
  p3.transfer.pretrained  EfficientNet-B0 (MBConv, squeeze-excitation, compound scaling) and ResNet in
                          their canonical forms (parameter counts = torchvision's), and loaders for
                          torchvision- and timm-format state dicts, checked by loading weights
                          written in those key layouts and comparing outputs.
"""

from __future__ import annotations

import copy
from typing import ClassVar, Literal

import matplotlib.pyplot as plt
import torch
from pydantic import Field
from torch import nn

from dlroadmap.data import classification_tensors
from dlroadmap.data.prepare import Tensors
from dlroadmap.experiments.base import Experiment, ExperimentConfig, Result
from dlroadmap.models.families import count_parameters
from dlroadmap.models.vision.efficientnet import EfficientNet, load_state_dict_from, ours_to_timm
from dlroadmap.models.vision.resnet import resnet18, resnet50, resnet_small
from dlroadmap.train import Tracker, seed_everything
from dlroadmap.train.fit import fit_classifier

BUILD = {"resnet": lambda c: resnet_small(c), "efficientnet": lambda c: EfficientNet.small(c)}
PUBLISHED = {"efficientnet_b0": 5_288_548, "efficientnet_b1": 7_794_184, "efficientnet_b2": 9_109_994,
             "efficientnet_b3": 12_233_232, "resnet50": 25_557_032}


class Config(ExperimentConfig):
    models: list[Literal["resnet", "efficientnet"]] = Field(["resnet", "efficientnet"], min_length=1)
    per_class: int = Field(50, ge=1, le=500, description="target-task training images per class")
    source_epochs: int = Field(8, ge=1, le=500)
    target_epochs: int = Field(30, ge=1, le=1000)
    lr: float = Field(3e-3, gt=0, le=1)

    QUICK: ClassVar[dict] = {"source_epochs": 4, "target_epochs": 12}


def split_tasks(seed: int, per_class: int) -> tuple[Tensors, Tensors]:
    """Source: digits 0-4 (all their images). Target: digits 5-9 relabelled 0-4, few training images."""
    data = classification_tensors("mnist5k", seed=seed)

    def subset(X, y, labels, limit=None):
        keep = torch.isin(y, torch.tensor(labels))
        X, y = X[keep], y[keep] - labels[0]
        if limit is not None:
            idx = torch.cat([torch.nonzero(y == c).flatten()[:limit] for c in range(len(labels))])
            X, y = X[idx], y[idx]
        return X, y

    src = [0, 1, 2, 3, 4]
    tgt = [5, 6, 7, 8, 9]
    source = Tensors(*subset(data.X_train, data.y_train, src), *subset(data.X_val, data.y_val, src), *subset(data.X_test, data.y_test, src),
                     [str(c) for c in src], data.shape, data.mean, data.std, "mnist5k 0-4")
    target = Tensors(*subset(data.X_train, data.y_train, tgt, per_class), *subset(data.X_val, data.y_val, tgt), *subset(data.X_test, data.y_test, tgt),
                     [str(c) for c in tgt], data.shape, data.mean, data.std, "mnist5k 5-9")
    return source, target


def head_of(model: nn.Module) -> nn.Linear:
    return model.fc if hasattr(model, "fc") else model.classifier[-1]


def run_finetune(config: Config, tracker: Tracker) -> Result:
    source, target = split_tasks(config.seed, config.per_class)
    metrics: dict[str, float] = {}
    curves: dict[str, list[float]] = {}
    for name in config.models:
        seed_everything(config.seed)
        pre = BUILD[name](5)
        src_acc = fit_classifier(pre, source, torch.optim.AdamW(pre.parameters(), lr=config.lr, weight_decay=1e-4), epochs=config.source_epochs,
                                 config=config, tracker=tracker, prefix=f"{name}/source", batch_size=32).test_accuracy
        metrics[f"{name}_source_test_accuracy"] = src_acc
        for strategy in ("scratch", "feature_extraction", "fine_tuning"):
            seed_everything(config.seed + 1)
            if strategy == "scratch":
                model = BUILD[name](5)
                params = model.parameters()
            else:
                model = copy.deepcopy(pre)
                old = head_of(model)
                new = nn.Linear(old.in_features, 5)
                if hasattr(model, "fc"):
                    model.fc = new
                else:
                    model.classifier[-1] = new
                if strategy == "feature_extraction":
                    for p in model.parameters():
                        p.requires_grad_(False)
                    for p in new.parameters():
                        p.requires_grad_(True)
                    params = new.parameters()
                else:  # fine-tuning: everything trains, the pre-trained backbone at a 10x lower rate
                    backbone = [p for n, p in model.named_parameters() if not n.startswith(("fc.", "classifier."))]
                    params = [{"params": backbone, "lr": config.lr / 10}, {"params": new.parameters(), "lr": config.lr}]
            fitted = fit_classifier(model, target, torch.optim.AdamW(params, lr=config.lr, weight_decay=1e-4), epochs=config.target_epochs,
                                    config=config, tracker=tracker, prefix=f"{name}/{strategy}", batch_size=32)
            hist, acc = fitted.history, fitted.test_accuracy
            metrics[f"{name}_{strategy}_test_accuracy"] = acc
            curves[f"{name} {strategy}"] = [h["val_acc"] for h in hist]
            tracker.log_metrics({f"{name}/{strategy}_test_acc": acc}, step=config.target_epochs)
        metrics[f"{name}_transfer_gain"] = max(metrics[f"{name}_fine_tuning_test_accuracy"], metrics[f"{name}_feature_extraction_test_accuracy"]) - metrics[f"{name}_scratch_test_accuracy"]
    metrics["best_transfer_gain"] = max(metrics[f"{n}_transfer_gain"] for n in config.models)
    fig, axes = plt.subplots(1, 2, figsize=(13, 3.8))
    for label, c in curves.items():
        axes[0].plot(range(1, len(c) + 1), c, label=label, ls="-" if "fine" in label else "--" if "feature" in label else ":")
    axes[0].set_xlabel("epoch")
    axes[0].set_title(f"target task (digits 5-9, {config.per_class} images per class): validation accuracy", fontsize=9)
    axes[0].legend(fontsize=6)
    names = [f"{m}_{s}" for m in config.models for s in ("scratch", "feature_extraction", "fine_tuning")]
    axes[1].barh(names, [metrics[f"{n}_test_accuracy"] for n in names])
    for i, n in enumerate(names):
        axes[1].text(metrics[f"{n}_test_accuracy"], i, f" {metrics[f'{n}_test_accuracy']:.3f}", va="center", fontsize=7)
    axes[1].set_xlim(0.5, 1.02)
    axes[1].set_title("target test accuracy", fontsize=9)
    fig.tight_layout()
    plot = tracker.log_figure(fig, "transfer")
    return Result(metrics=metrics, artifacts={"transfer": str(plot)})


def run_pretrained(config: Config, tracker: Tracker) -> Result:
    metrics: dict[str, float] = {f"params_{k}": float(count_parameters(lambda v=k: EfficientNet(v.split("_")[1]) if "efficientnet" in v else resnet50()))
                                 for k in PUBLISHED}
    metrics["params_match_published"] = float(all(metrics[f"params_{k}"] == v for k, v in PUBLISHED.items()))
    x = torch.randn(2, 3, 224, 224)
    diffs = []
    for source in ("torchvision", "timm"):
        seed_everything(config.seed)
        donor = EfficientNet("b0").eval()
        sd = donor.state_dict() if source == "torchvision" else ours_to_timm(donor.state_dict())
        seed_everything(config.seed + 1)
        model = EfficientNet("b0").eval()
        load_state_dict_from(model, sd, source)
        with torch.no_grad():
            diffs.append(float((model(x) - donor(x)).abs().max()))
        metrics[f"efficientnet_{source}_keys"] = float(len(sd))
    seed_everything(config.seed)
    donor = resnet18().eval()
    model = resnet18(num_classes=10).eval()
    new_head = {k: v.clone() for k, v in model.fc.state_dict().items()}
    info = load_state_dict_from(model, donor.state_dict(), "timm", skip_classifier=True)
    with torch.no_grad():
        diffs.append(float((model.forward_features(x) - donor.forward_features(x)).abs().max()))
    # A new 10-class head on a 1000-class backbone: the loader must skip the old head and leave the new one as initialised.
    metrics["resnet_new_head_untouched"] = float(sorted(info["skipped"]) == ["fc.bias", "fc.weight"]
                                                 and all(torch.equal(v, model.fc.state_dict()[k]) for k, v in new_head.items()))
    metrics["loaded_output_max_abs_diff"] = max(diffs)
    fig, ax = plt.subplots(figsize=(6, 3.4))
    names = list(PUBLISHED)
    ax.barh(names, [metrics[f"params_{n}"] / 1e6 for n in names])
    for i, n in enumerate(names):
        ax.text(metrics[f"params_{n}"] / 1e6, i, f" {metrics[f'params_{n}'] / 1e6:.2f}M", va="center", fontsize=7)
    ax.set_title("compound scaling: EfficientNet-B0..B3 vs ResNet-50 (parameters, millions)", fontsize=9)
    fig.tight_layout()
    plot = tracker.log_figure(fig, "pretrained_models")
    return Result(metrics=metrics, artifacts={"pretrained_models": str(plot)})


finetune = Experiment(Config, run_finetune)
pretrained = Experiment(Config, run_pretrained)
