"""A minimal batch iterator for datasets that fit in memory.

torch's DataLoader is built for per-sample I/O; for tensors already in memory, slicing a shuffled
index is simpler and faster. The shuffle order depends only on (seed, epoch), which is what makes
exact resume possible: after a restart the Trainer asks for epoch e again and skips the batches
it has already seen, and gets exactly the same batches as the uninterrupted run.
"""

from __future__ import annotations

import itertools
from typing import Any, Callable, Iterable, Iterator, Protocol, Sequence, runtime_checkable

import torch


@runtime_checkable
class ResumableLoader(Protocol):
    """What the Trainer needs of a loader to resume exactly: the batches of epoch e depend only on
    (seed, e), and an epoch can be entered at any batch. TensorLoader, text.WindowLoader, NoData and
    Replay satisfy it."""

    def set_epoch(self, epoch: int) -> None: ...

    def __len__(self) -> int: ...

    def iter_from(self, start_batch: int) -> Iterator[Sequence[Any]]: ...


class NoData:
    """For training by step budget with no dataset (RL, diffusion): each "batch" is an empty tuple and
    the step makes its own data from the seeded RNGs. `steps` batches make one round (an "epoch":
    where the Trainer validates, logs and checkpoints)."""

    def __init__(self, steps: int):
        self.steps = steps

    def set_epoch(self, epoch: int) -> None:
        pass

    def __len__(self) -> int:
        return self.steps

    def iter_from(self, start_batch: int) -> Iterator[tuple[()]]:
        return (() for _ in range(start_batch, self.steps))


class SampledBatches:
    """Batches drawn fresh at every step, for data that is generated rather than stored (regression tasks,
    interleaved image-caption sequences): batch i of epoch e is `make(generator, step)` with step =
    e * steps + i and a generator seeded by (seed, step), so a resumed run draws the very same batches
    and `make` can follow a curriculum by the global step."""

    def __init__(self, make: Callable[[torch.Generator, int], tuple], steps: int, seed: int = 0):
        self.make, self.steps, self.seed, self.epoch = make, steps, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[tuple]:
        return self.iter_from(0)

    def iter_from(self, start_batch: int) -> Iterator[tuple]:
        for i in range(start_batch, self.steps):
            step = self.epoch * self.steps + i
            yield self.make(torch.Generator().manual_seed((self.seed * 1_000_003 + step) % 2**63), step)


class Replay:
    """Any re-iterable loader (e.g. torch's DataLoader with a seeded sampler) made resumable by replaying
    an epoch and skipping the batches already trained on: correct only when iteration is deterministic."""

    def __init__(self, loader: Iterable):
        self.loader = loader
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if hasattr(self.loader, "set_epoch"):
            self.loader.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.loader)  # type: ignore[arg-type]

    def iter_from(self, start_batch: int) -> Iterator[Sequence[Any]]:
        return itertools.islice(iter(self.loader), start_batch, None)


def resumable(loader: Iterable) -> ResumableLoader:
    return loader if isinstance(loader, ResumableLoader) else Replay(loader)


class TensorLoader:
    """Batches of in-memory tensors; the order of epoch e depends only on (seed, e).

    Sharded for data-parallel training (`shard(rank, world)`, which the Trainer calls under DDP): each
    step's global batch is the next `batch_size * world` indices of the epoch's permutation, and rank r
    takes every world-th of them starting at r, the same assignment as torch's DistributedSampler. So
    the union of the ranks' batches at each step is exactly one process's batch of `batch_size * world`.
    """

    def __init__(self, *tensors: torch.Tensor, batch_size: int = 64, shuffle: bool = False, seed: int = 0, drop_last: bool = False,
                 rank: int = 0, world: int = 1):
        if not tensors or any(len(t) != len(tensors[0]) for t in tensors):
            raise ValueError("TensorLoader needs one or more tensors of the same length")
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} outside world size {world}")
        self.tensors = tensors
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.rank, self.world = rank, world
        self.epoch = 0

    def shard(self, rank: int, world: int) -> "TensorLoader":
        return TensorLoader(*self.tensors, batch_size=self.batch_size, shuffle=self.shuffle, seed=self.seed,
                            drop_last=self.drop_last, rank=rank, world=world)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        n, step = len(self.tensors[0]), self.batch_size * self.world
        if self.drop_last:
            return n // step
        # A last global batch smaller than the world would leave some rank an empty batch: it is dropped.
        return n // step + (1 if n % step >= self.world else 0)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        return self.iter_from(0)

    def iter_from(self, start_batch: int) -> Iterator[tuple[torch.Tensor, ...]]:
        """Batches of the current epoch, beginning at batch `start_batch` (used when resuming)."""
        n, step = len(self.tensors[0]), self.batch_size * self.world
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(n, generator=g)
        else:
            order = None
        for b in range(start_batch, len(self)):
            lo, hi = b * step, min((b + 1) * step, n)
            if order is None and self.world == 1:
                yield tuple(t[lo:hi] for t in self.tensors)
                continue
            idx = (order[lo:hi] if order is not None else torch.arange(lo, hi))[self.rank::self.world]
            yield tuple(t[idx] for t in self.tensors)
