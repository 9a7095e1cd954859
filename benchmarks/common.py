"""Helpers shared by the benchmarks: timing, machine info, atomic JSON results."""

from __future__ import annotations

import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import torch

from dlroadmap.io import write_json

RESULTS = Path(__file__).parent / "results"


def cpu_model() -> str:
    """The CPU's marketing name (Linux), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """Recorded beside every figure: speed depends on the CPU and its vector units (AMX makes bf16 ~8x fp32)."""
    return {
        "python": platform.python_version(), "torch": torch.__version__, "cpu": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
    }


def median_time(fn: Callable[[], Any], repeats: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def save(name: str, result: dict[str, Any]) -> Path:
    result = {"benchmark": name, "machine": machine(), **result}
    return write_json(RESULTS / f"{name}.json", result)
