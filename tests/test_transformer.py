"""Transformer blocks = nn.TransformerEncoderLayer / DecoderLayer with copied weights; positional encodings."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from dlroadmap.models.sequence.transformer import DecoderBlock, EncoderBlock, PositionalEncoding, Seq2SeqTransformer, rope, sinusoidal_encoding


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_block_matches_torch(norm_first):
    torch.manual_seed(0)
    ref = nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, batch_first=True, norm_first=norm_first).double().eval()
    ours = EncoderBlock(16, 4, 32, dropout=0.0, norm_first=norm_first).double().eval()
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(2, 7, 16, dtype=torch.float64, requires_grad=True)
    pad = torch.zeros(2, 7, dtype=torch.bool)
    pad[1, 5:] = True
    o, r = ours(x, key_padding_mask=pad), ref(x, src_key_padding_mask=pad)
    torch.testing.assert_close(o[0], r[0])
    torch.testing.assert_close(o[1, :5], r[1, :5])  # torch's fast path may zero padded rows; compare real tokens
    up = torch.randn_like(r)
    up[1, 5:] = 0
    torch.testing.assert_close(torch.autograd.grad(o, x, up)[0], torch.autograd.grad(r, x, up)[0])


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_block_matches_torch(norm_first):
    torch.manual_seed(1)
    ref = nn.TransformerDecoderLayer(16, 4, 32, dropout=0.0, batch_first=True, norm_first=norm_first).double().eval()
    ours = DecoderBlock(16, 4, 32, dropout=0.0, norm_first=norm_first).double().eval()
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(2, 6, 16, dtype=torch.float64, requires_grad=True)
    mem = torch.randn(2, 8, 16, dtype=torch.float64, requires_grad=True)
    future = nn.Transformer.generate_square_subsequent_mask(6, dtype=torch.bool)
    o, r = ours(x, mem, tgt_mask=future), ref(x, mem, tgt_mask=future)
    torch.testing.assert_close(o, r)
    up = torch.randn_like(r)
    for a, b in zip(torch.autograd.grad(o, (x, mem), up), torch.autograd.grad(r, (x, mem), up)):
        torch.testing.assert_close(a, b)


def test_sinusoidal_encoding_formula():
    pe = sinusoidal_encoding(50, 16)
    p, i = 7, 3
    assert pe[p, 2 * i].item() == pytest.approx(math.sin(p / 10000 ** (2 * i / 16)), abs=1e-6)
    assert pe[p, 2 * i + 1].item() == pytest.approx(math.cos(p / 10000 ** (2 * i / 16)), abs=1e-6)
    assert PositionalEncoding(16, kind="learned")(torch.zeros(1, 5, 16)).shape == (1, 5, 16)
    with pytest.raises(ValueError):
        PositionalEncoding(16, kind="alibi")


def test_rope_depends_only_on_relative_position():
    torch.manual_seed(2)
    q, k = torch.randn(1, 8), torch.randn(1, 8)
    seq_q, seq_k = q.repeat(20, 1), k.repeat(20, 1)     # the same vectors at every position
    rq, rk = rope(seq_q), rope(seq_k)
    s1 = rq[5] @ rk[3]    # offset 2
    s2 = rq[12] @ rk[10]  # offset 2 again
    s3 = rq[12] @ rk[3]   # offset 9
    assert s1.item() == pytest.approx(s2.item(), abs=1e-5)
    assert abs(s1.item() - s3.item()) > 1e-3
    torch.testing.assert_close(rope(seq_q).norm(dim=-1), seq_q.norm(dim=-1))  # a rotation keeps norms


def test_seq2seq_shapes_and_causality():
    torch.manual_seed(3)
    m = Seq2SeqTransformer(12, d_model=16, nhead=2, layers=1, dim_feedforward=32).eval()
    src, tgt = torch.randint(0, 12, (2, 5)), torch.randint(0, 12, (2, 6))
    out = m(src, tgt)
    assert out.shape == (2, 6, 12)
    tgt2 = tgt.clone()
    tgt2[:, 4:] = (tgt2[:, 4:] + 1) % 12     # changing later tokens must not change earlier outputs
    torch.testing.assert_close(m(src, tgt2)[:, :4], out[:, :4])
    assert m.generate(src, bos=0, length=5).shape == (2, 5)
