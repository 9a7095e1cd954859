"""dlroadmap.data sets <-> Hugging Face datasets (Arrow): identical content, also through save_to_disk."""

from __future__ import annotations

import numpy as np
import pytest

from dlroadmap.data import load
from dlroadmap.data.hf_datasets import from_hf, to_hf


@pytest.mark.parametrize("name", ["digits", "wine", "mnist5k"])
def test_round_trip_through_arrow_on_disk(tmp_path, name):
    import datasets

    ds = load(name)
    hf = to_hf(ds)
    assert len(hf) == len(ds) and hf.features["label"].names == ds.classes
    hf.save_to_disk(str(tmp_path / name))
    back = from_hf(datasets.load_from_disk(str(tmp_path / name)))
    assert back.name == ds.name and back.classes == ds.classes and back.shape == ds.shape and back.source == ds.source
    assert back.X.dtype == np.float32 and np.array_equal(back.X, ds.X.astype(np.float32))
    assert np.array_equal(back.y, ds.y)
    # row i of the Arrow table is sample i of ours (no reordering anywhere)
    i = len(ds) // 3
    assert np.array_equal(np.asarray(hf[i]["x"], dtype=np.float32), ds.X[i]) and hf[i]["label"] == ds.y[i]


def test_errors_name_the_problem():
    import datasets

    with pytest.raises(ValueError, match="lacks \\['label'\\]"):
        from_hf(datasets.Dataset.from_dict({"x": [[1.0, 2.0]]}))
