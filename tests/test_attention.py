"""Attention written out = F.scaled_dot_product_attention and nn.MultiheadAttention (values and gradients)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlroadmap.models.sequence.attention import MultiHeadAttention, causal_mask, scaled_dot_product_attention


def _grads(out, inputs, up):
    return torch.autograd.grad(out, inputs, up)


@pytest.mark.parametrize("mask", ["none", "causal", "bool", "float", "padding"])
def test_sdpa_matches_torch(mask):
    torch.manual_seed(0)
    q = torch.randn(2, 3, 5, 8, dtype=torch.float64, requires_grad=True)
    k = torch.randn(2, 3, 7 if mask != "causal" else 5, 8, dtype=torch.float64, requires_grad=True)
    v = torch.randn(*k.shape, dtype=torch.float64, requires_grad=True)
    kw = {}
    if mask == "causal":
        kw["is_causal"] = True
    elif mask == "bool":
        m = torch.rand(5, 7) > 0.3
        m[:, 0] = True  # every row keeps at least one key
        kw["attn_mask"] = m
    elif mask == "float":
        kw["attn_mask"] = torch.randn(5, 7, dtype=torch.float64)
    elif mask == "padding":
        m = torch.ones(2, 1, 1, 7, dtype=torch.bool)
        m[0, ..., 5:] = False  # the last two keys of sample 0 are padding
        kw["attn_mask"] = m
    ours, ref = scaled_dot_product_attention(q, k, v, **kw), F.scaled_dot_product_attention(q, k, v, **kw)
    torch.testing.assert_close(ours, ref)
    up = torch.randn_like(ref)
    for a, b in zip(_grads(ours, (q, k, v), up), _grads(ref, (q, k, v), up)):
        torch.testing.assert_close(a, b)


def test_weights_rows_sum_to_one_and_causal_zeroes_future():
    q = k = v = torch.randn(1, 6, 4)
    _, w = scaled_dot_product_attention(q, k, v, is_causal=True, return_weights=True)
    torch.testing.assert_close(w.sum(-1), torch.ones(1, 6))
    assert torch.all(w[0].triu(1) == 0)
    assert causal_mask(3).tolist() == [[True, False, False], [True, True, False], [True, True, True]]


@pytest.mark.parametrize("masks", ["none", "padding", "causal", "both"])
def test_multihead_matches_nn_multiheadattention(masks):
    torch.manual_seed(1)
    ref = nn.MultiheadAttention(16, 4, batch_first=True).double()
    ours = MultiHeadAttention(16, 4).double()
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(3, 6, 16, dtype=torch.float64, requires_grad=True)
    mem = torch.randn(3, 6, 16, dtype=torch.float64, requires_grad=True)
    kpm = torch.zeros(3, 6, dtype=torch.bool)
    kpm[1, 4:] = True
    attn = torch.ones(6, 6, dtype=torch.bool).triu(1)  # nn.MultiheadAttention: True = not allowed
    kw = {"key_padding_mask": kpm if masks in ("padding", "both") else None, "attn_mask": attn if masks in ("causal", "both") else None}
    (o1, w1), (o2, w2) = ours(x, mem, mem, **kw), ref(x, mem, mem, **kw)
    torch.testing.assert_close(o1, o2)
    torch.testing.assert_close(w1, w2)
    up = torch.randn_like(o2)
    params_o = [x, mem, ours.in_proj_weight, ours.out_proj.weight]
    params_r = [x, mem, ref.in_proj_weight, ref.out_proj.weight]
    for a, b in zip(_grads(o1, params_o, up), _grads(o2, params_r, up)):
        torch.testing.assert_close(a, b)
    (_, w3), (_, w4) = ours(x, x, x, average_attn_weights=False, **kw), ref(x, x, x, average_attn_weights=False, **kw)
    torch.testing.assert_close(w3, w4)


def test_bad_head_count():
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(10, 3)
