"""Convolution, pooling and padding from scratch = F.conv2d / F.max_pool2d / F.avg_pool2d (values and gradients)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from dlroadmap.models.vision import convolution as conv


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 2), st.sampled_from([(2, 4, 1), (4, 4, 2), (4, 6, 2), (3, 6, 3), (4, 4, 4)]),
       st.integers(5, 10), st.integers(5, 10), st.integers(1, 3), st.integers(1, 3), st.integers(0, 2), st.integers(1, 2), st.booleans())
def test_conv2d_matches_torch(n, channels, h, w, k, stride, padding, dilation, bias):
    c_in, c_out, groups = channels
    if h + 2 * padding < dilation * (k - 1) + 1 or w + 2 * padding < dilation * (k - 1) + 1:
        return
    torch.manual_seed(h * w + k)
    x = torch.randn(n, c_in, h, w, dtype=torch.float64, requires_grad=True)
    wt = torch.randn(c_out, c_in // groups, k, k, dtype=torch.float64, requires_grad=True)
    b = torch.randn(c_out, dtype=torch.float64, requires_grad=True) if bias else None
    ours = conv.conv2d(x, wt, b, stride, padding, dilation, groups)
    ref = F.conv2d(x, wt, b, stride, padding, dilation, groups)
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-10)
    g = torch.randn_like(ref)
    grads_ours = torch.autograd.grad(ours, [x, wt] + ([b] if bias else []), g)
    grads_ref = torch.autograd.grad(ref, [x, wt] + ([b] if bias else []), g)
    for a, r in zip(grads_ours, grads_ref):
        torch.testing.assert_close(a, r, rtol=1e-10, atol=1e-10)


@settings(max_examples=40, deadline=None)
@given(st.integers(4, 9), st.integers(4, 9), st.integers(1, 3), st.integers(1, 3), st.integers(0, 1), st.integers(1, 2))
def test_pooling_matches_torch(h, w, k, stride, padding, dilation):
    if padding > k // 2 or h + 2 * padding < dilation * (k - 1) + 1 or w + 2 * padding < dilation * (k - 1) + 1:
        return
    torch.manual_seed(h + 10 * w)
    x = torch.randn(2, 3, h, w, dtype=torch.float64, requires_grad=True)
    ours = conv.max_pool2d(x, k, stride, padding, dilation)
    ref = F.max_pool2d(x, k, stride, padding, dilation)
    torch.testing.assert_close(ours, ref)
    g = torch.randn_like(ref)
    torch.testing.assert_close(torch.autograd.grad(ours, x, g)[0], torch.autograd.grad(ref, x, g)[0])
    if dilation == 1:
        ours = conv.avg_pool2d(x, k, stride, padding)
        ref = F.avg_pool2d(x, k, stride, padding)
        torch.testing.assert_close(ours, ref)
        torch.testing.assert_close(torch.autograd.grad(ours, x, g)[0], torch.autograd.grad(ref, x, g)[0])


def test_padding_and_output_shapes():
    x = torch.arange(4.0).reshape(1, 1, 2, 2)
    torch.testing.assert_close(conv.pad2d(x, (1, 2)), F.pad(x, (2, 2, 1, 1)))
    assert conv.conv_output_size(28, 5, 1, 2) == 28 and conv.conv_output_size(224, 11, 4, 2) == 55
    assert conv.conv_output_size(7, 3, 2, 1, 2) == 3
    with pytest.raises(ValueError, match="too small"):
        conv.conv_output_size(3, 5)
    trace = conv.output_shape((1, 28, 28), [{"type": "conv", "out": 6, "kernel": 5, "padding": 2}, {"type": "pool", "kernel": 2},
                                            {"type": "conv", "out": 16, "kernel": 5}, {"type": "pool", "kernel": 2},
                                            {"type": "flatten"}, {"type": "linear", "out": 120}])
    assert [s for _, s in trace] == [(6, 28, 28), (6, 14, 14), (16, 10, 10), (16, 5, 5), (400,), (120,)]
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 6, 5, padding=2), torch.nn.MaxPool2d(2), torch.nn.Conv2d(6, 16, 5), torch.nn.MaxPool2d(2))
    assert tuple(net(torch.zeros(1, 1, 28, 28)).shape[1:]) == trace[3][1]


def test_conv_layer_initialisation_like_torch():
    torch.manual_seed(0)
    ours = conv.Conv2d(3, 8, 3, padding=1)
    ref = torch.nn.Conv2d(3, 8, 3, padding=1)
    assert ours.weight.shape == ref.weight.shape
    assert abs(ours.weight.std().item() - ref.weight.std().item()) < 0.03
    x = torch.randn(2, 3, 6, 6)
    ref.load_state_dict(ours.state_dict())
    torch.testing.assert_close(ours(x), ref(x), rtol=1e-5, atol=1e-5)
