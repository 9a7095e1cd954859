"""What a number was measured on: the machine, the packages and the code's commit.

Every run's result.json carries `environment()` (runner.run_node), every benchmark JSON carries `machine()`,
and a published post prints both: speed depends on the CPU's vector units (AMX makes bf16 ~8x fp32), results
on the versions of torch and friends, and a rerun needs the commit.
"""

from __future__ import annotations

import os
import platform
import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

# The packages whose versions decide what a run computes, as pip names them.
PACKAGES = ("torch", "numpy", "scipy", "scikit-learn", "dlroadmap")


def cpu_model() -> str:
    """The CPU's marketing name (Linux), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def bf16_units() -> dict[str, bool]:
    """Whether the CPU multiplies bfloat16 in hardware: AMX tiles (bf16 GEMMs ~3x fp32 on 2 cores here) or
    AVX512-BF16. `get_cpu_capability()` says "AVX512" either way: the same 2-core VM, moved to another host
    between two sessions, had AMX in one and not in the other, and only these flags told."""
    import torch

    return {"amx": torch.cpu._is_amx_tile_supported(), "avx512_bf16": torch.cpu._is_avx512_bf16_supported()}


def machine() -> dict[str, Any]:
    import torch

    return {
        "python": platform.python_version(), "torch": torch.__version__, "cpu": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(), **bf16_units(), "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(), "cuda": torch.cuda.is_available(),
    }


def gemm_peak(dtype=None, n: int = 2048, threads: int | None = None) -> float:
    """This machine's matmul rate in GFLOP/s: the best of 3 n x n products in `dtype` (float32 by default), on
    `threads` torch threads (None: as they are). Seconds mean little without it: the same 2-core VM multiplied
    fp32 at 104 to 135 GFLOP/s on one thread within one day, and its quick tour took 528 to 839 s on different days."""
    import time

    import torch

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        a = torch.randn(n, n, dtype=dtype or torch.float32)
        a @ a                                                    # first call: allocation and kernel choice
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            a @ a
            best = min(best, time.perf_counter() - t0)
    finally:
        torch.set_num_threads(before)
    return 2 * n ** 3 / best / 1e9


@lru_cache(maxsize=1)
def git_state() -> dict[str, Any]:
    """The checkout's commit and whether files differ from it; {} outside a git checkout."""
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True,
                               timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"commit": commit, "dirty": bool(dirty)}


def packages() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def environment() -> dict[str, Any]:
    """machine() + package versions + the git commit: what result.json records beside a run's numbers."""
    return {**machine(), "packages": packages(), **git_state()}
