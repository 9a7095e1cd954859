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

from dlroadmap.data import TensorLoader, classification_tensors
from dlroadmap.data.prepare import Tensors
from dlroadmap.evaluate.metrics import accuracy
from dlroadmap.experiments.base import Experiment, ExperimentConfig, Result
from dlroadmap.models.efficientnet import EfficientNet, load_state_dict_from, timm_to_ours
from dlroadmap.models.resnet import resnet18, resnet50, resnet_small
from dlroadmap.train import Tracker, Trainer, seed_everything

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


def train(model: nn.Module, data: Tensors, config: Config, epochs: int, params, lr: float | list) -> tuple[list[dict], float]:
    opt = torch.optim.AdamW(params, lr=lr if isinstance(lr, float) else 1e-3, weight_decay=1e-4)
    loader = TensorLoader(data.X_train, data.y_train, batch_size=32, shuffle=True, seed=config.seed)
    trainer = Trainer(model, opt, max_epochs=epochs, device=config.device, precision=config.precision, seed=config.seed,
                      metrics={"acc": accuracy})
    hist = trainer.fit(loader, TensorLoader(data.X_val, data.y_val, batch_size=1000))
    out, y, _ = trainer.predict(TensorLoader(data.X_test, data.y_test, batch_size=1000))
    return hist, accuracy(out, y)


def run_finetune(config: Config, tracker: Tracker) -> Result:
    source, target = split_tasks(config.seed, config.per_class)
    metrics: dict[str, float] = {}
    curves: dict[str, list[float]] = {}
    for name in config.models:
        seed_everything(config.seed)
        pre = BUILD[name](5)
        _, src_acc = train(pre, source, config, config.source_epochs, pre.parameters(), config.lr)
        metrics[f"{name}_source_test_accuracy"] = src_acc
        for strategy in ("scratch", "feature_extraction", "fine_tuning"):
            seed_everything(config.seed + 1)
            if strategy == "scratch":
                model = BUILD[name](5)
                params, lr = model.parameters(), config.lr
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
                    params, lr = new.parameters(), config.lr
                else:  # fine-tuning: everything trains, the pre-trained backbone at a 10x lower rate
                    backbone = [p for n, p in model.named_parameters() if not n.startswith(("fc.", "classifier."))]
                    params, lr = [{"params": backbone, "lr": config.lr / 10}, {"params": new.parameters(), "lr": config.lr}], config.lr
            hist, acc = train(model, target, config, config.target_epochs, params, lr)
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


def _timm_names(ours: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our (torchvision-layout) EfficientNet state dict re-keyed the way timm writes it."""
    inverse = {}
    for stage, n_blocks in ((0, 1), (1, 2), (2, 2), (3, 3), (4, 3), (5, 4), (6, 1)):
        for i in range(n_blocks):
            parts = ["conv_dw", "bn1", "se.conv_reduce", "se.conv_expand", "conv_pw", "bn2"] if stage == 0 else \
                ["conv_pw", "bn1", "conv_dw", "bn2", "se.conv_reduce", "se.conv_expand", "conv_pwl", "bn3"]
            for part in parts:
                for suffix in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
                    key = f"blocks.{stage}.{i}.{part}.{suffix}"
                    try:
                        inverse[timm_to_ours(key)] = key
                    except KeyError:
                        pass
    for a, b in (("conv_stem", "features.0.0"), ("bn1", "features.0.1"), ("conv_head", "features.8.0"), ("bn2", "features.8.1"), ("classifier", "classifier.1")):
        for suffix in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
            inverse[f"{b}.{suffix}"] = f"{a}.{suffix}"
    return {inverse[k]: v for k, v in ours.items()}


def run_pretrained(config: Config, tracker: Tracker) -> Result:
    from dlroadmap.experiments.cnn import count_parameters

    metrics: dict[str, float] = {f"params_{k}": float(count_parameters(lambda v=k: EfficientNet(v.split("_")[1]) if "efficientnet" in v else resnet50()))
                                 for k in PUBLISHED}
    metrics["params_match_published"] = float(all(metrics[f"params_{k}"] == v for k, v in PUBLISHED.items()))
    x = torch.randn(2, 3, 224, 224)
    diffs = []
    for source in ("torchvision", "timm"):
        seed_everything(config.seed)
        donor = EfficientNet("b0").eval()
        sd = donor.state_dict() if source == "torchvision" else _timm_names(donor.state_dict())
        seed_everything(config.seed + 1)
        model = EfficientNet("b0").eval()
        load_state_dict_from(model, sd, source)
        with torch.no_grad():
            diffs.append(float((model(x) - donor(x)).abs().max()))
        metrics[f"efficientnet_{source}_keys"] = float(len(sd))
    seed_everything(config.seed)
    donor = resnet18().eval()
    model = resnet18(num_classes=10).eval()
    info = load_state_dict_from(model, donor.state_dict(), "timm", skip_classifier=True)
    with torch.no_grad():
        diffs.append(float((model.forward_features(x) - donor.forward_features(x)).abs().max()))
    metrics["resnet_new_head_skipped_keys"] = float(len(info["skipped"]))
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
