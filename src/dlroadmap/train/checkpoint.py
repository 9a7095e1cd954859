"""Checkpoints that survive kill -9 and never run untrusted code.

A checkpoint is a folder:
    step-00000120/
        model.safetensors   the weights (safetensors: raw tensors, no code)
        state.pt            optimizer, scheduler, RNG states, counters: torch.save of plain
                            containers, read back with torch.load(weights_only=True)
        meta.json           sha256 of both files, step, epoch
It is written into a hidden temporary folder and renamed into place only when complete; then the
pointer file `latest` is replaced atomically. A crash at any moment leaves the previous
checkpoint intact and never a half-written one that `latest` points to.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from dlroadmap.errors import CheckpointError
from dlroadmap.io import PICKLE_SUFFIXES, atomic_dir, file_hash, plain_mode, write_json, write_text  # noqa: F401  (PICKLE_SUFFIXES: also read from here)

MODEL_FILE, STATE_FILE, META_FILE, LATEST = "model.safetensors", "state.pt", "meta.json", "latest"


def sha256(path: Path) -> str:
    return file_hash(path, "sha256")


def save_weights(state_dict: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> None:
    """Weights to safetensors. Tensors are copied contiguous so tied/shared weights also save."""
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items()}
    mode = plain_mode(Path(path))
    save_file(tensors, str(path), metadata=metadata)
    os.chmod(path, mode)        # safetensors writes through a temporary file of its own: 0600, readable by no one else


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """Load weights from safetensors only; pickle-based formats are refused (they can run code)."""
    path = Path(path)
    if path.suffix in PICKLE_SUFFIXES:
        raise CheckpointError(f"refusing to load {path}: pickle-based model files can run arbitrary code; convert it to .safetensors")
    if not path.is_file():
        raise CheckpointError(f"no weights file at {path}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path} is not a valid safetensors file ({e}); it may be corrupted") from None


def save_checkpoint(ckpt_dir: str | Path, model_state: dict[str, torch.Tensor], state: dict[str, Any], *, step: int, keep: int = 2) -> Path:
    """Write checkpoint `step-<step>` atomically, point `latest` at it, keep the newest `keep`."""
    ckpt_dir = Path(ckpt_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    name = f"step-{step:08d}"
    final = ckpt_dir / name
    with atomic_dir(final) as tmp:          # the same step saved twice (end of epoch and every n steps) replaces it
        save_weights(model_state, tmp / MODEL_FILE)
        torch.save(state, tmp / STATE_FILE)
        for f in (MODEL_FILE, STATE_FILE):
            with open(tmp / f, "rb") as fh:
                os.fsync(fh.fileno())
        meta = {"step": step, "epoch": state.get("epoch"), "sha256": {f: sha256(tmp / f) for f in (MODEL_FILE, STATE_FILE)}}
        write_json(tmp / META_FILE, meta)
    write_text(ckpt_dir / LATEST, name + "\n")
    _prune(ckpt_dir, keep)
    return final


def _prune(ckpt_dir: Path, keep: int) -> None:
    steps = sorted(p for p in ckpt_dir.glob("step-*") if p.is_dir())
    for old in steps[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    for stale in ckpt_dir.glob(".step-*"):  # temporary folders left by a killed process
        shutil.rmtree(stale, ignore_errors=True)


def latest_checkpoint(ckpt_dir: str | Path) -> Path | None:
    pointer = Path(ckpt_dir) / LATEST
    if not pointer.is_file():
        return None
    path = Path(ckpt_dir) / pointer.read_text().strip()
    return path if path.is_dir() else None


def load_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(model weights, trainer state) from a checkpoint folder, verified against its checksums."""
    path = Path(path)
    if path.is_file() and path.suffix in PICKLE_SUFFIXES:
        raise CheckpointError(f"refusing to load {path}: pickle checkpoints can run arbitrary code; use a dlroadmap checkpoint folder")
    if not path.is_dir() or not (path / META_FILE).is_file():
        raise CheckpointError(f"{path} is not a checkpoint folder (expected {MODEL_FILE}, {STATE_FILE} and {META_FILE})")
    try:
        meta = json.loads((path / META_FILE).read_text())
        expected = meta["sha256"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise CheckpointError(f"checkpoint {path} has an unreadable {META_FILE} ({e}); it is corrupted") from None
    for f in (MODEL_FILE, STATE_FILE):
        if not (path / f).is_file():
            raise CheckpointError(f"checkpoint {path} is missing {f}")
        if sha256(path / f) != expected.get(f):
            raise CheckpointError(f"checkpoint {path}/{f} does not match its checksum; it is corrupted or was modified")
    weights = load_weights(path / MODEL_FILE)
    try:
        state = torch.load(path / STATE_FILE, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"refusing {path}/{STATE_FILE}: it holds pickled objects beyond plain tensors and values ({first})") from None
    except (RuntimeError, EOFError, OSError) as e:
        raise CheckpointError(f"checkpoint {path}/{STATE_FILE} is unreadable ({e}); it is corrupted") from None
    return weights, state
