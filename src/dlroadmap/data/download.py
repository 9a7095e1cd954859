"""Downloadable datasets: canonical URL + checksum, atomic download into a cache.

Where files are looked for, in order:
  1. $DLR_DATA_DIR/<dataset>/<file>   a folder of files you already have (e.g. ../shared/data)
  2. <cache>/<dataset>/<file>         the cache, ~/.cache/dlroadmap (or $DLR_DATA_DIR when set)
then the file is downloaded into the cache. Every file is checked against its published md5
before use. A download goes to a temporary file that is renamed only once its checksum matches,
so the cache never holds a partial or corrupt file; a file that is already there and does not
match is reported, never deleted (it may be yours).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dlroadmap.data.dataset import Dataset
from dlroadmap.errors import DataError
from dlroadmap.io import atomic_path, file_hash, user_cache_dir


@dataclass(frozen=True)
class RemoteFile:
    name: str
    md5: str


@dataclass(frozen=True)
class Remote:
    base_url: str
    files: tuple[RemoteFile, ...]
    about: str
    loader: str = "fetch(NAME, FILE)"  # the call that loads it, for messages: "load_idx_dataset('mnist')"


_IDX = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")

DOWNLOADABLE: dict[str, Remote] = {
    # LeCun et al. 1998; the PyTorch project's mirror of the original files.
    "mnist": Remote(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        tuple(RemoteFile(n, m) for n, m in zip(_IDX, (
            "f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
            "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c")))
        , "60k+10k 28x28 handwritten digits", "load_idx_dataset('mnist')"),
    # Xiao, Rasul & Vollgraf 2017, arXiv:1708.07747.
    "fashion-mnist": Remote(
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        tuple(RemoteFile(n, m) for n, m in zip(_IDX, (
            "8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
            "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310"))),
        "60k+10k 28x28 clothing images", "load_idx_dataset('fashion-mnist')"),
    # Karpathy's char-rnn corpus, used by nanoGPT's shakespeare_char.
    "tinyshakespeare": Remote(
        "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/",
        (RemoteFile("input.txt", "6fb458f1232090904fb40fe944165e91"),),
        "1.1 MB of Shakespeare, 65 distinct characters", "load_tinyshakespeare()"),
    # Krizhevsky 2009, the python-pickle version.
    "cifar10": Remote(
        "https://www.cs.toronto.edu/~kriz/",
        (RemoteFile("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a"),),
        "50k+10k 32x32 colour images, 10 classes", "load_cifar10()"),
}

CLASSES = {
    "fashion-mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
    "cifar10": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
}


def cache_dir() -> Path:
    env = os.environ.get("DLR_DATA_DIR")
    if env:
        return Path(env).expanduser()
    return user_cache_dir()


def md5sum(path: Path) -> str:
    return file_hash(path, "md5")


def _remote(dataset: str) -> Remote:
    if dataset not in DOWNLOADABLE:
        raise DataError(f"unknown downloadable dataset {dataset!r}; known: {', '.join(DOWNLOADABLE)}")
    return DOWNLOADABLE[dataset]


def fetch(dataset: str, filename: str, timeout: float = 30.0) -> Path:
    """Return a verified local path to one file of `dataset`, downloading it if needed."""
    remote = _remote(dataset)
    spec = next((f for f in remote.files if f.name == filename), None)
    if spec is None:
        raise DataError(f"{dataset} has no file {filename!r}; files: {', '.join(f.name for f in remote.files)}")
    target = cache_dir() / dataset / filename
    if target.is_file():
        got = md5sum(target)
        if got != spec.md5:
            raise DataError(
                f"checksum mismatch for {target} (md5 {got}, expected {spec.md5}); "
                f"replace it with the published file from {remote.base_url}{filename}"
            )
        return target
    _download(remote.base_url + filename, target, spec.md5, timeout)
    return target


def _download(url: str, target: Path, md5: str, timeout: float) -> None:
    from dlroadmap.ui import progress

    try:
        with atomic_path(target) as tmp:
            h = hashlib.md5()
            with urllib.request.urlopen(url, timeout=timeout) as resp, open(tmp, "wb") as out, progress() as bar:
                total = int(resp.headers.get("Content-Length") or 0) or None
                task = bar.add_task(f"download {target.name}", total=total, info="") if bar else None
                for chunk in iter(lambda: resp.read(1 << 16), b""):
                    out.write(chunk)
                    h.update(chunk)
                    if bar:
                        bar.advance(task, len(chunk))
            if h.hexdigest() != md5:
                raise DataError(f"checksum mismatch downloading {url} (md5 {h.hexdigest()}, expected {md5}); nothing was saved")
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        reason = getattr(e, "reason", None) or e
        raise DataError(
            f"cannot download {url} ({reason}); put the file at {target} "
            f"or set DLR_DATA_DIR to a folder holding {target.parent.name}/{target.name}"
        ) from None


# --- readers -----------------------------------------------------------------------------------


def read_idx(path: Path) -> np.ndarray:
    """Read a gzipped IDX file (LeCun's MNIST format): magic, dims, then uint8 data."""
    raw = gzip.open(path).read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DataError(f"{path} is truncated: header says {dims}, found {data.size} values")
    return data.reshape(dims)


def load_idx_dataset(dataset: str = "mnist") -> tuple[Dataset, Dataset]:
    """(train, test) for `mnist` or `fashion-mnist`, pixel values 0..255 as float32."""
    if dataset not in ("mnist", "fashion-mnist"):
        raise DataError(f"{dataset!r} is not an IDX dataset; use 'mnist' or 'fashion-mnist'")
    arrays = [read_idx(fetch(dataset, name)) for name in _IDX]
    classes = CLASSES.get(dataset, [str(i) for i in range(10)])
    mk = lambda X, y, split: Dataset(f"{dataset}-{split}", X.astype(np.float32), y.astype(np.int64), classes, (28, 28), DOWNLOADABLE[dataset].base_url)  # noqa: E731
    return mk(arrays[0], arrays[1], "train"), mk(arrays[2], arrays[3], "test")


def load_tinyshakespeare() -> str:
    return fetch("tinyshakespeare", "input.txt").read_text(encoding="utf-8")


class _ArrayUnpickler(pickle.Unpickler):
    """CIFAR-10 batches are pickled dicts of NumPy arrays; allow exactly that and nothing else."""

    ALLOWED = {
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR batch")


def read_cifar10_archive(path: Path) -> tuple[Dataset, Dataset]:
    """Parse `cifar-10-python.tar.gz`: data_batch_1..5 (train) and test_batch, images as (N, 32, 32, 3)."""
    train_X, train_y, test = [], [], None
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in sorted(tar.getmembers(), key=lambda m: m.name):
                base = os.path.basename(member.name)
                if not (base.startswith("data_batch_") or base == "test_batch"):
                    continue
                batch = _ArrayUnpickler(tar.extractfile(member), encoding="bytes").load()
                X = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
                y = np.asarray(batch[b"labels"], dtype=np.int64)
                if base == "test_batch":
                    test = (X, y)
                else:
                    train_X.append(X)
                    train_y.append(y)
    except (tarfile.TarError, pickle.UnpicklingError, KeyError, EOFError, ValueError) as e:
        raise DataError(f"{path} is not a valid CIFAR-10 python archive ({e})") from None
    if not train_X or test is None:
        raise DataError(f"{path} has no data_batch_* or test_batch members; is it cifar-10-python.tar.gz?")
    mk = lambda X, y, s: Dataset(f"cifar10-{s}", X.astype(np.float32), y, CLASSES["cifar10"], (32, 32, 3), "cifar10")  # noqa: E731
    return mk(np.concatenate(train_X), np.concatenate(train_y), "train"), mk(*test, "test")


def load_cifar10() -> tuple[Dataset, Dataset]:
    return read_cifar10_archive(fetch("cifar10", "cifar-10-python.tar.gz"))
