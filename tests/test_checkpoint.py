"""Checkpoints: safetensors + weights_only state, atomic, verified, pickle refused."""

from __future__ import annotations

import os
import pickle

import pytest
import torch

from dlroadmap.errors import CheckpointError
from dlroadmap.train import checkpoint as ck


def state():
    return {"epoch": 1, "step": 7, "optimizer": {"state": {0: {"exp_avg": torch.ones(3)}}, "param_groups": [{"lr": 0.1}]},
            "rng": torch.get_rng_state(), "history": [{"loss": 0.5}]}


def test_roundtrip_and_latest_and_pruning(tmp_path):
    w = {"a.weight": torch.randn(3, 2), "b": torch.arange(4.0)}
    for step in (1, 2, 3):
        ck.save_checkpoint(tmp_path, w, state(), step=step, keep=2)
    assert sorted(p.name for p in tmp_path.glob("step-*")) == ["step-00000002", "step-00000003"]
    assert ck.latest_checkpoint(tmp_path).name == "step-00000003"
    weights, st = ck.load_checkpoint(ck.latest_checkpoint(tmp_path))
    assert torch.equal(weights["a.weight"], w["a.weight"]) and st["step"] == 7
    assert not list(tmp_path.glob(".step-*")), "no temporary folder may remain"


def test_shared_tensors_save(tmp_path):
    t = torch.randn(4)
    ck.save_weights({"x": t, "y": t}, tmp_path / "m.safetensors")
    assert torch.equal(ck.load_weights(tmp_path / "m.safetensors")["y"], t)


def test_corrupted_weights_refused(tmp_path):
    path = ck.save_checkpoint(tmp_path, {"w": torch.randn(8)}, state(), step=1)
    with open(path / "model.safetensors", "r+b") as f:
        f.seek(-3, os.SEEK_END)
        f.write(b"\x00\x01\x02")
    with pytest.raises(CheckpointError, match="does not match its checksum"):
        ck.load_checkpoint(path)


def test_truncated_safetensors_refused(tmp_path):
    p = tmp_path / "m.safetensors"
    ck.save_weights({"w": torch.randn(100)}, p)
    p.write_bytes(p.read_bytes()[:50])
    with pytest.raises(CheckpointError, match="not a valid safetensors file"):
        ck.load_weights(p)


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_pickle_bearing_state_refused_even_with_matching_checksum(tmp_path):
    path = ck.save_checkpoint(tmp_path, {"w": torch.randn(2)}, state(), step=1)
    with open(path / "state.pt", "wb") as f:
        torch.save({"epoch": 1, "payload": Evil()}, f)
    # An attacker who rewrites the file can rewrite meta.json too: weights_only must still refuse it.
    import json

    meta = json.loads((path / "meta.json").read_text())
    meta["sha256"]["state.pt"] = ck.sha256(path / "state.pt")
    (path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="pickled objects"):
        ck.load_checkpoint(path)


def test_pickle_model_files_refused(tmp_path):
    p = tmp_path / "model.pt"
    p.write_bytes(pickle.dumps({"w": 1}))
    with pytest.raises(CheckpointError, match="pickle"):
        ck.load_weights(p)
    with pytest.raises(CheckpointError, match="pickle"):
        ck.load_checkpoint(p)
    with pytest.raises(CheckpointError, match="not a checkpoint folder"):
        ck.load_checkpoint(tmp_path)


def test_crash_during_save_leaves_previous_checkpoint(tmp_path, monkeypatch):
    ck.save_checkpoint(tmp_path, {"w": torch.zeros(2)}, state(), step=1)

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(ck.torch, "save", boom)
    with pytest.raises(OSError):
        ck.save_checkpoint(tmp_path, {"w": torch.ones(2)}, state(), step=2)
    assert ck.latest_checkpoint(tmp_path).name == "step-00000001"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    w, _ = ck.load_checkpoint(ck.latest_checkpoint(tmp_path))
    assert torch.equal(w["w"], torch.zeros(2))
