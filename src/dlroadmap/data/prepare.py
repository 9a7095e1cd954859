"""From a dataset name to train/val/test tensors, the same way for every experiment.

Embedded sets are split with `split` (stratified, seeded). Downloadable IDX sets keep their
official test set and carve the validation set out of the training set. Features are scaled
with statistics of the training split only, so nothing about val/test leaks into training.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dlroadmap.data.download import load_idx_dataset
from dlroadmap.data.catalog import load
from dlroadmap.data.dataset import Dataset
from dlroadmap.data.splits import split


@dataclass
class Tensors:
    X_train: torch.Tensor
    y_train: torch.Tensor
    X_val: torch.Tensor
    y_val: torch.Tensor
    X_test: torch.Tensor
    y_test: torch.Tensor
    classes: list[str]
    shape: tuple[int, ...]
    mean: float | list[float]
    std: float | list[float]
    name: str

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def classification_splits(name: str, seed: int = 0, val: float = 0.15, test: float = 0.15) -> tuple[Dataset, Dataset, Dataset]:
    if name in ("mnist", "fashion-mnist"):
        train_full, test_ds = load_idx_dataset(name)
        # Keep the official test set; val is a stratified slice of the official training set.
        tr, va, _ = split(train_full, val=val, test=0.0, seed=seed)
        return tr, va, test_ds
    return split(load(name), val=val, test=test, seed=seed)


def classification_tensors(name: str, seed: int = 0, val: float = 0.15, test: float = 0.15, scale: str = "global") -> Tensors:
    """Standardised float32 tensors. scale="global": one mean/std (images share a pixel scale);
    scale="feature": per-feature mean/std (tabular data, whose columns have different units)."""
    if scale not in ("global", "feature"):
        raise ValueError("scale must be 'global' or 'feature'")
    tr, va, te = classification_splits(name, seed, val, test)
    if scale == "global":
        mean, std = float(tr.X.mean()), float(tr.X.std()) or 1.0
    else:
        mean, std = tr.X.mean(axis=0), tr.X.std(axis=0)
        std = np.where(std == 0, 1.0, std)
    t = lambda a: torch.from_numpy(((a - mean) / std).astype(np.float32))  # noqa: E731
    stat = (lambda v: v) if scale == "global" else (lambda v: v.tolist())  # noqa: E731
    return Tensors(t(tr.X), torch.from_numpy(tr.y), t(va.X), torch.from_numpy(va.y), t(te.X), torch.from_numpy(te.y),
                   tr.classes, tr.shape, stat(mean), stat(std), name)


@dataclass
class Pixels:
    """Images as generative models read them: grey levels in [0, 1], (N, 1, H, W) float32, with labels."""
    X_train: torch.Tensor
    y_train: torch.Tensor
    X_test: torch.Tensor
    y_test: torch.Tensor
    classes: list[str]
    name: str


def image_pixels(name: str, seed: int = 0, test: float = 0.15) -> Pixels:
    """mnist/fashion-mnist: the official 60k/10k split; an embedded set (mnist5k): a stratified `test` slice.
    No validation split: generative nodes select nothing on held-out data, they only report on it."""
    tr, _, te = classification_splits(name, seed, val=0.0, test=test)
    t = lambda d: torch.from_numpy((d.X / 255.0).astype(np.float32)).reshape(len(d.X), 1, *d.shape[-2:])  # noqa: E731
    return Pixels(t(tr), torch.from_numpy(tr.y).long(), t(te), torch.from_numpy(te.y).long(), tr.classes, name)
