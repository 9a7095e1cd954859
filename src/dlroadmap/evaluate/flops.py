"""Counting the arithmetic a piece of code does, operator by operator, while it runs.

    with CountFlops() as flops:
        model(x)
    flops.total                     # multiply-adds x 2 of every matmul, convolution and attention call

Wall-clock time says how long the work took on this machine, under this load; the FLOP count says how much
work there was, the same on every machine and every run. The formulas per operator are torch's own
(`torch.utils.flop_counter.flop_registry`, e.g. 2 m n k for an (m, k) x (k, n) matmul); this mode only
adds them up. torch's `FlopCounterMode` does the same and also attributes each count to the module that
made it, which costs ~4x more per call here: on a 135M-parameter model's token-by-token decoding that is
seconds; the totals are the same (tests/test_flops.py).
"""

from __future__ import annotations

from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry


class CountFlops(TorchDispatchMode):
    """A dispatch mode: every aten call inside the `with` runs as usual, and the ones torch has a FLOP
    formula for (mm, addmm, bmm, convolution, scaled dot-product attention, ...) add to `total`."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            self.total += formula(*args, **kwargs, out_val=out)     # the formulas read shapes only
        return out
