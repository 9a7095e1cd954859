"""Batch norm written out = nn.BatchNorm1d / nn.BatchNorm2d (train and eval, running stats, gradients)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dlroadmap.models.batchnorm import BatchNorm


@pytest.mark.parametrize("shape,ref_cls", [((16, 5), nn.BatchNorm1d), ((8, 3, 6, 7), nn.BatchNorm2d)])
def test_batchnorm_matches_torch(shape, ref_cls):
    torch.manual_seed(0)
    ours, ref = BatchNorm(shape[1]).double(), ref_cls(shape[1]).double()
    with torch.no_grad():
        ref.weight.uniform_(0.5, 1.5)
        ref.bias.uniform_(-0.5, 0.5)
    ours.load_state_dict(ref.state_dict())
    for step in range(3):  # a few training steps: running statistics must track identically
        x = (torch.randn(*shape, dtype=torch.float64) * 2 + 1).requires_grad_(True)
        yo, yr = ours(x), ref(x)
        torch.testing.assert_close(yo, yr)
        up = torch.randn_like(yr)
        go = torch.autograd.grad(yo, [x, ours.weight, ours.bias], up)
        gr = torch.autograd.grad(yr, [x, ref.weight, ref.bias], up)
        for a, b in zip(go, gr):
            torch.testing.assert_close(a, b)
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        torch.testing.assert_close(getattr(ours, name), getattr(ref, name))
    ours.eval(), ref.eval()
    x = torch.randn(*shape, dtype=torch.float64)
    torch.testing.assert_close(ours(x), ref(x))
