"""Learning-rate schedules as multipliers of the base rate, for torch.optim.lr_scheduler.LambdaLR."""

from __future__ import annotations

import math
from typing import Callable


def warmup_cosine(warmup: int, total: int, floor: float = 0.1) -> Callable[[int], float]:
    """Linear warm-up over `warmup` steps, then cosine decay to `floor` x the base rate at `total` (nanoGPT's schedule;
    the cosine part is Loshchilov & Hutter 2016, arXiv:1608.03983, without restarts)."""
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return floor + 0.5 * (1 + math.cos(math.pi * progress)) * (1 - floor)
    return f
