"""Text for language models: a corpus as one long array of token ids, and batches of random windows.

A batch is `batch_size` windows of `block_size + 1` consecutive tokens: the model reads the first
block_size and predicts each next one (inputs x = w[:-1], targets y = w[1:]). Window starts are
drawn from a generator seeded by (seed, epoch), so an "epoch" of `steps` batches is reproducible
and the Trainer can resume in the middle of one exactly.
"""

from __future__ import annotations

from typing import Iterator

import torch


class WindowLoader:
    def __init__(self, data: torch.Tensor, block_size: int, batch_size: int, steps: int, seed: int = 0):
        if len(data) <= block_size + 1:
            raise ValueError(f"text of {len(data)} tokens is too short for block_size {block_size}")
        self.data, self.block_size, self.batch_size, self.steps, self.seed = data, block_size, batch_size, steps, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.iter_from(0)

    def iter_from(self, start: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        starts = torch.randint(len(self.data) - self.block_size - 1, (self.steps, self.batch_size), generator=g)
        offsets = torch.arange(self.block_size + 1)
        for s in range(start, self.steps):
            w = self.data[starts[s, :, None] + offsets]          # (B, block_size + 1)
            yield w[:, :-1], w[:, 1:]


def split_text(ids: torch.Tensor, val_fraction: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """The first 90% for training, the last 10% for validation (contiguous: no window straddles both)."""
    n = int(len(ids) * (1 - val_fraction))
    return ids[:n], ids[n:]
