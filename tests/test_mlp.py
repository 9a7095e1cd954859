"""Backprop by hand equals torch.autograd (float64, random shapes)."""

from __future__ import annotations

import pytest
import torch

from dlroadmap.models.mlp import MLP, autograd_grads, manual_backward


@pytest.mark.parametrize("shape", [(5, 7, [4], 3), (16, 20, [32, 16], 10), (1, 3, [8, 8, 8], 2)])
def test_manual_backward_matches_autograd(shape):
    n, d, hidden, c = shape
    torch.manual_seed(sum(hidden))
    model = MLP(d, hidden, c).double()
    x, y = torch.randn(n, d, dtype=torch.float64), torch.randint(0, c, (n,))
    loss_m, manual = manual_backward(model, x, y)
    loss_a, auto = autograd_grads(model, x, y)
    assert set(manual) == set(auto)
    torch.testing.assert_close(loss_m, loss_a, rtol=0, atol=1e-12)
    for k in auto:
        torch.testing.assert_close(manual[k], auto[k], rtol=1e-10, atol=1e-12, msg=k)


def test_mlp_flattens_images_and_counts_parameters():
    m = MLP(784, [256, 128], 10, dropout=0.2)
    assert m(torch.randn(3, 28, 28)).shape == (3, 10)
    assert sum(p.numel() for p in m.parameters()) == 784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10
