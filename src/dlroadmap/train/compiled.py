"""torch.compile for the Trainer: `Trainer(compile=True)`, `dlr run ID --compile`.

torch.compile (TorchDynamo captures the Python forward as a graph, AOTAutograd derives its backward,
Inductor generates fused C++/OpenMP kernels on the CPU, Triton kernels on GPUs) trades a one-off
compile for faster steps. Three things make that trade a good one here:

  - the compile is paid once per machine and model shape: Inductor's caches (FX graph, AOTAutograd)
    live under the user's cache folder, ~/.cache/dlroadmap/inductor, not in a temp folder that a
    reboot empties; a warm start loads the generated kernels instead of compiling again;
  - random ops (dropout) draw from torch's own generator as in eager mode (Inductor's
    `fallback_random`), so a compiled run sees the same masks as an eager one and the RNG state a
    checkpoint saves is the one that resumes it;
  - a model that cannot compile (no C++ compiler, an op the backend lacks) trains on eagerly after
    one warning line instead of stopping the run.

Every Trainer built inside `with compiling(True):` compiles unless told otherwise: that is how
`dlr run --compile` reaches every experiment without each one passing a flag.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from pathlib import Path
from typing import Iterator

import torch
from torch import nn

from dlroadmap.io import user_cache_dir

_COMPILE: contextvars.ContextVar[bool] = contextvars.ContextVar("dlr_compile", default=False)


@contextlib.contextmanager
def compiling(enabled: bool = True) -> Iterator[None]:
    """Trainers built inside compile their model by default (the runner wraps a run in this for --compile)."""
    token = _COMPILE.set(enabled)
    try:
        yield
    finally:
        _COMPILE.reset(token)


def compile_by_default() -> bool:
    return _COMPILE.get()


def cache_dir() -> Path:
    """Where Inductor keeps what it compiled: $TORCHINDUCTOR_CACHE_DIR if the user set it, else ~/.cache/dlroadmap/inductor."""
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    env = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if env and env != default_cache_dir():   # importing torch._dynamo fills in torch's own default (a temp folder)
        return Path(env)
    return user_cache_dir() / "inductor"


def compile_model(model: nn.Module) -> nn.Module:
    """torch.compile(model) with the cache and RNG settings above. Compilation itself happens at the first call."""
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(cache_dir())   # read by Inductor when it compiles
    import torch._inductor.config as inductor

    inductor.fallback_random = True
    return torch.compile(model)


def compile_errors() -> tuple[type[BaseException], ...]:
    """What a failed compile raises (at the first call, forward or backward): Dynamo's errors and the C++ compiler's."""
    from torch._dynamo.exc import TorchDynamoException
    from torch._inductor.exc import CppCompileError

    return TorchDynamoException, CppCompileError


def uncompiled(module: nn.Module) -> nn.Module:
    """The module torch.compile wrapped (itself when it is not a compiled wrapper)."""
    return getattr(module, "_orig_mod", module)
