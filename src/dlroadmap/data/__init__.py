"""Data: embedded datasets (no network), downloadable ones (checksummed cache), splits, batching."""

from dlroadmap.data.download import DOWNLOADABLE, cache_dir, fetch, load_cifar10, load_idx_dataset, load_tinyshakespeare, read_cifar10_archive, read_idx
from dlroadmap.data.catalog import load
from dlroadmap.data.dataset import Dataset
from dlroadmap.data.embedded import EMBEDDED, text_corpus
from dlroadmap.data.loader import NoData, Replay, ResumableLoader, SampledBatches, TensorLoader
from dlroadmap.data.prepare import Tensors, classification_splits, classification_tensors
from dlroadmap.data.splits import Split, split, split_indices

__all__ = [
    "Tensors", "classification_splits", "classification_tensors",
    "DOWNLOADABLE", "EMBEDDED", "Dataset", "NoData", "Replay", "SampledBatches", "ResumableLoader", "Split", "TensorLoader", "cache_dir", "fetch", "load", "load_cifar10",
    "load_idx_dataset", "load_tinyshakespeare", "read_cifar10_archive", "read_idx", "split", "split_indices", "text_corpus",
]
