"""Datasets by name: the embedded ones load here; a downloadable one gets a message that says how to load it."""

from __future__ import annotations

from dlroadmap.data.dataset import Dataset
from dlroadmap.data.download import DOWNLOADABLE
from dlroadmap.data.embedded import EMBEDDED
from dlroadmap.errors import DataError


def load(name: str, **kwargs) -> Dataset:
    """Load an embedded dataset by name (`digits`, `mnist5k`, `xor`, ...)."""
    if name in EMBEDDED:
        return EMBEDDED[name](**kwargs)
    if name in DOWNLOADABLE:
        raise DataError(f"{name!r} is downloadable, not embedded: load it with dlroadmap.data.{DOWNLOADABLE[name].loader} "
                        f"(it reads the cache or DLR_DATA_DIR; `dlr data` shows where), or pick an embedded dataset: {', '.join(EMBEDDED)}")
    raise DataError(f"unknown dataset {name!r}; embedded datasets: {', '.join(EMBEDDED)}; downloadable: {', '.join(DOWNLOADABLE)}")
