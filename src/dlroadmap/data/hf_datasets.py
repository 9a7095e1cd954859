"""Our datasets as Hugging Face `datasets.Dataset` (Apache Arrow) and back, with identical content.

A `Dataset` here is NumPy arrays + class names + the per-sample shape. On the Arrow side each row holds
`x` (a fixed-shape float32 array: Array2D for 28x28 images, a fixed-length list for feature vectors) and
`label` (a ClassLabel that carries the class names); the name, source and per-sample shape travel in the DatasetInfo. So a
set can be saved with `save_to_disk`, shared on the Hub with `push_to_hub`, or fed to any library that
reads Arrow, and read back bit for bit.
"""

from __future__ import annotations

import json

import numpy as np

from dlroadmap.data.dataset import Dataset


def _features(ds: Dataset):
    from datasets import Array2D, Array3D, Array4D, ClassLabel, Features, List, Value

    shape = tuple(ds.X.shape[1:])
    arrays = {2: Array2D, 3: Array3D, 4: Array4D}
    if len(shape) == 1:
        x = List(Value("float32"), length=shape[0])
    elif len(shape) in arrays:
        x = arrays[len(shape)](shape=shape, dtype="float32")
    else:
        raise ValueError(f"{ds.name}: samples of shape {shape} have no Arrow array type here (1 to 4 dimensions)")
    label = ClassLabel(names=list(ds.classes)) if ds.classes else Value("int64")
    return Features({"x": x, "label": label})


def to_hf(ds: Dataset):
    """(N, *shape) float32 features and int64 labels -> a datasets.Dataset with columns x and label."""
    import datasets

    if ds.y is None:
        raise ValueError(f"{ds.name} has no labels; to_hf converts labelled sets")
    features = _features(ds)
    # description: what we know beside the arrays (source, the per-sample shape a flat row stands for), as JSON
    about = json.dumps({"source": ds.source, "shape": list(ds.shape)})
    info = datasets.DatasetInfo(dataset_name=ds.name, description=about, features=features)
    return datasets.Dataset.from_dict({"x": ds.X.astype(np.float32), "label": ds.y.astype(np.int64)}, features=features, info=info)


def from_hf(hf, name: str | None = None) -> Dataset:
    """The reverse of to_hf: any datasets.Dataset with an `x` array column and an integer `label` column."""
    missing = {"x", "label"} - set(hf.column_names)
    if missing:
        raise ValueError(f"a datasets.Dataset with columns {hf.column_names} lacks {sorted(missing)}; expected x and label")
    table = hf.with_format("numpy")
    X = np.asarray(table["x"], dtype=np.float32)
    y = np.asarray(table["label"], dtype=np.int64)
    label = hf.features["label"]
    classes = list(label.names) if hasattr(label, "names") else []
    try:
        about = json.loads(hf.info.description or "{}")
    except ValueError:
        about = {"source": hf.info.description}                      # a set written by someone else: plain text
    shape = tuple(about.get("shape") or X.shape[1:])
    return Dataset(name or hf.info.dataset_name or "hf", X, y, classes, shape, source=about.get("source", ""))
