"""The one container every dataset loader returns: NumPy arrays plus a little metadata, so experiments
can split, standardise and batch any dataset the same way."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Dataset:
    name: str
    X: np.ndarray
    y: np.ndarray | None
    classes: list[str] = field(default_factory=list)
    shape: tuple[int, ...] = ()  # per-sample shape, e.g. (28, 28) for images
    source: str = ""

    def __len__(self) -> int:
        return len(self.X)
