"""Channels-last for conv nets, picked by measurement on this machine, not assumed.

A batch of images (N, C, H, W) is stored "contiguous" (NCHW: each channel a plane) or "channels
last" (NHWC: the C values of a pixel side by side). oneDNN's convolutions on CPUs (and cuDNN's
tensor-core kernels on GPUs) are often faster in NHWC, but not always: for small images and few
channels the reorders can cost more than they save. So the Trainer times both on the first batch,
a few forward + backward passes each on a copy of the model, and keeps channels-last only when it
is clearly faster. The decision is cached per machine, torch version, model and input shape
(~/.cache/dlroadmap/memory_format.json), so every later run of the same model on this machine makes
the same choice: the numbers of a run, and of its resumption, do not depend on a timing's noise.
(The layout changes a run's numbers a little: convolutions sum in another order, and dropout's
random draws land on other elements of an NHWC tensor; either run is as valid as the other.)

Trainer(memory_format="contiguous" or "channels_last") fixes the layout (a lesson that compares the
Trainer with a plain loop bit for bit does); otherwise DLR_MEMORY_FORMAT=contiguous or channels_last
overrides the measurement (auto is the default).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn

from dlroadmap.errors import UserError
from dlroadmap.io import user_cache_dir, write_json

FORMATS = ("auto", "contiguous", "channels_last")
MARGIN = 0.9          # channels-last must take <= 90% of the contiguous time to be chosen


def has_conv(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def requested() -> str:
    value = os.environ.get("DLR_MEMORY_FORMAT", "auto")
    if value not in FORMATS:
        raise UserError(f"DLR_MEMORY_FORMAT={value!r}; use one of {', '.join(FORMATS)}")
    return value


def cache_file() -> Path:
    return user_cache_dir() / "memory_format.json"


def cache_key(model: nn.Module, batch: Sequence[torch.Tensor], device: torch.device, precision: str) -> str:
    """What the decision depends on: machine, torch, device, precision, the model's layers and the batch's shape.
    The machine is its CPU's name, torch's kernel level and the bf16 units (AMX, AVX512-BF16): a VM keeps its CPU
    name and "AVX512" when it moves to a host with AMX, where the layouts compare differently."""
    from dlroadmap.environment import bf16_units, cpu_model

    layers = [(name, type(m).__name__, tuple(getattr(m, "weight").shape) if getattr(m, "weight", None) is not None else ())
              for name, m in model.named_modules()]
    digest = hashlib.sha1(repr(layers).encode()).hexdigest()[:12]
    shapes = [tuple(t.shape) for t in batch if isinstance(t, torch.Tensor)]
    units = "".join(f"+{name}" for name, present in bf16_units().items() if present)
    return f"{cpu_model()}|{torch.backends.cpu.get_cpu_capability()}{units}|torch {torch.__version__}|{device}|{precision}|{type(model).__name__}:{digest}|{shapes}"


def to_format(batch: Sequence[torch.Tensor], fmt: torch.memory_format) -> tuple[torch.Tensor, ...]:
    """4-d float tensors (image batches) in `fmt`; everything else as it is."""
    return tuple(t.contiguous(memory_format=fmt) if isinstance(t, torch.Tensor) and t.dim() == 4 and t.is_floating_point() else t
                 for t in batch)


def measure(model: nn.Module, batch: Sequence[torch.Tensor], loss_of: Callable[[nn.Module, Sequence[torch.Tensor]], torch.Tensor],
            autocast: Callable[[], Any], repeats: int = 3) -> dict[str, float]:
    """Median seconds of a forward + backward pass in each format, on a copy of the model (the model, its
    gradients and the random number generators are left as they were)."""
    times: dict[str, list[float]] = {"contiguous": [], "channels_last": []}
    with torch.random.fork_rng(devices=[]):
        copies = {name: copy.deepcopy(model).to(memory_format=fmt)
                  for name, fmt in (("contiguous", torch.contiguous_format), ("channels_last", torch.channels_last))}
        for i in range(repeats + 1):           # the first round warms up (oneDNN builds its kernels)
            for name, m in copies.items():
                b = to_format(batch, torch.channels_last if name == "channels_last" else torch.contiguous_format)
                t0 = time.perf_counter()
                with autocast():
                    loss = loss_of(m, b)
                loss.backward()
                m.zero_grad(set_to_none=True)
                if i:
                    times[name].append(time.perf_counter() - t0)
    return {name: sorted(v)[len(v) // 2] for name, v in times.items()}


def choose(seconds: dict[str, float]) -> str:
    """The decision from `measure`'s timings: channels-last only when clearly faster."""
    return "channels_last" if seconds["channels_last"] <= MARGIN * seconds["contiguous"] else "contiguous"


def pick(model: nn.Module, batch: Sequence[torch.Tensor], loss_of: Callable, autocast: Callable[[], Any],
         device: torch.device, precision: str, want: str = "auto") -> torch.memory_format:
    """The memory format to train `model` in: the one asked for (the Trainer's argument, else DLR_MEMORY_FORMAT),
    else the cached decision, else measured now."""
    want = requested() if want == "auto" else want
    if want != "auto":
        return torch.channels_last if want == "channels_last" else torch.contiguous_format
    if not has_conv(model):
        return torch.contiguous_format
    key = cache_key(model, batch, device, precision)
    path = cache_file()
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError):
        cache = {}
    if key not in cache.get("decisions", {}):
        try:
            seconds = measure(model, batch, loss_of, autocast)
        except (RuntimeError, TypeError, copy.Error):   # a model that cannot be copied or run in NHWC: keep NCHW
            return torch.contiguous_format
        cache.setdefault("decisions", {})[key] = {"choice": choose(seconds), **{f"{k}_ms": round(1e3 * v, 3) for k, v in seconds.items()}}
        try:
            write_json(path, cache)
        except OSError:
            pass   # a read-only home: decide again next time
    return torch.channels_last if cache["decisions"][key]["choice"] == "channels_last" else torch.contiguous_format
