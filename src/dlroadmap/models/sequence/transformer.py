"""Transformer basics: positional encodings, encoder and decoder blocks, an encoder-decoder.

Attention is order-blind (a set operation), so position must be added:
  - sinusoidal (Vaswani et al. 2017): PE[p, 2i] = sin(p / 10000^(2i/d)), PE[p, 2i+1] = cos(...),
    a fixed code in which a shift by k is a linear map, so relative positions are easy to read;
  - learned: one trained vector per position (BERT, GPT-2);
  - RoPE (Su et al. 2021, arXiv:2104.09864): rotate each (even, odd) pair of query/key features by
    an angle proportional to the position, so q . k depends only on the *relative* offset.

Blocks: self-attention and a position-wise feed-forward network (FFN), each wrapped as
x + sublayer(x). Post-norm (the original) normalises after the residual add; pre-norm
(GPT-2, most modern models) normalises the sublayer's input and trains more stably when deep.
A decoder block adds causal self-attention and cross-attention to the encoder's output.
Parameter names follow nn.TransformerEncoderLayer / DecoderLayer so weights copy across in tests.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from dlroadmap.models.sequence.attention import MultiHeadAttention


def sinusoidal_encoding(length: int, dim: int) -> torch.Tensor:
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(-math.log(10000.0) * torch.arange(0, dim, 2, dtype=torch.float32) / dim)
    pe = torch.zeros(length, dim)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    return pe


class PositionalEncoding(nn.Module):
    """Adds sinusoidal or learned position vectors to token embeddings (N, T, D)."""

    def __init__(self, dim: int, max_len: int = 512, kind: str = "sinusoidal"):
        super().__init__()
        self.kind = kind
        if kind == "sinusoidal":
            self.register_buffer("pe", sinusoidal_encoding(max_len, dim), persistent=False)
        elif kind == "learned":
            self.pe = nn.Parameter(torch.randn(max_len, dim) * 0.02)
        elif kind != "none":
            raise ValueError("kind must be sinusoidal, learned or none")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.kind == "none" else x + self.pe[: x.shape[1]]


def rope(x: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """Rotary position embedding for (..., T, d) queries or keys (d even): feature pair (2i, 2i+1)
    at position p is rotated by angle p * base^(-2i/d)."""
    t, d = x.shape[-2], x.shape[-1]
    theta = base ** (-torch.arange(0, d, 2, dtype=torch.float32, device=x.device) / d)     # (d/2,)
    angle = torch.arange(t, dtype=torch.float32, device=x.device)[:, None] * theta         # (T, d/2)
    cos, sin = angle.cos().to(x.dtype), angle.sin().to(x.dtype)
    x1, x2 = x[..., 0::2], x[..., 1::2]
    out = torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)
    return out.flatten(-2)


class EncoderBlock(nn.Module):
    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1, norm_first: bool = False,
                 activation: str = "relu"):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, nhead, dropout)
        self.linear1, self.linear2 = nn.Linear(d_model, dim_feedforward), nn.Linear(dim_feedforward, d_model)
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.dropout, self.dropout1, self.dropout2 = nn.Dropout(dropout), nn.Dropout(dropout), nn.Dropout(dropout)
        self.norm_first = norm_first
        self.act = {"relu": F.relu, "gelu": F.gelu}[activation]

    def _sa(self, x, key_padding_mask, attn_mask, is_causal):
        return self.dropout1(self.self_attn(x, x, x, key_padding_mask=key_padding_mask, attn_mask=attn_mask,
                                            is_causal=is_causal, need_weights=False)[0])

    def _ff(self, x):
        return self.dropout2(self.linear2(self.dropout(self.act(self.linear1(x)))))

    def forward(self, x: torch.Tensor, key_padding_mask=None, attn_mask=None, is_causal: bool = False) -> torch.Tensor:
        # pre-LN (x + f(LN(x))) against post-LN (LN(x + f(x))), @xiong2020layer
        if self.norm_first:   # pre-norm: x + f(norm(x))
            x = x + self._sa(self.norm1(x), key_padding_mask, attn_mask, is_causal)
            return x + self._ff(self.norm2(x))
        x = self.norm1(x + self._sa(x, key_padding_mask, attn_mask, is_causal))   # post-norm: norm(x + f(x))
        return self.norm2(x + self._ff(x))


class DecoderBlock(nn.Module):
    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1, norm_first: bool = False,
                 activation: str = "relu"):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, nhead, dropout)
        self.multihead_attn = MultiHeadAttention(d_model, nhead, dropout)
        self.linear1, self.linear2 = nn.Linear(d_model, dim_feedforward), nn.Linear(dim_feedforward, d_model)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(d_model), nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.dropout1, self.dropout2, self.dropout3 = nn.Dropout(dropout), nn.Dropout(dropout), nn.Dropout(dropout)
        self.norm_first = norm_first
        self.act = {"relu": F.relu, "gelu": F.gelu}[activation]
        self.last_cross_attention: torch.Tensor | None = None  # kept for plots

    def _sa(self, x, mask, pad):
        return self.dropout1(self.self_attn(x, x, x, attn_mask=mask, key_padding_mask=pad, need_weights=False)[0])

    def _mha(self, x, memory, pad):
        out, w = self.multihead_attn(x, memory, memory, key_padding_mask=pad, need_weights=True)
        self.last_cross_attention = w.detach()
        return self.dropout2(out)

    def _ff(self, x):
        return self.dropout3(self.linear2(self.dropout(self.act(self.linear1(x)))))

    def forward(self, x, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None, memory_key_padding_mask=None,
                tgt_is_causal: bool = False, memory_is_causal: bool = False) -> torch.Tensor:
        if self.norm_first:
            x = x + self._sa(self.norm1(x), tgt_mask, tgt_key_padding_mask)
            x = x + self._mha(self.norm2(x), memory, memory_key_padding_mask)
            return x + self._ff(self.norm3(x))
        x = self.norm1(x + self._sa(x, tgt_mask, tgt_key_padding_mask))
        x = self.norm2(x + self._mha(x, memory, memory_key_padding_mask))
        return self.norm3(x + self._ff(x))


class Seq2SeqTransformer(nn.Module):
    """Encoder-decoder for token sequences: embed + position, N encoder blocks, N decoder blocks with
    causal self-attention and cross-attention, a linear head over the vocabulary."""

    def __init__(self, vocab: int, d_model: int = 64, nhead: int = 4, layers: int = 2, dim_feedforward: int = 128,
                 dropout: float = 0.0, max_len: int = 64, norm_first: bool = True, pos: str = "sinusoidal"):
        super().__init__()
        self.d_model = d_model
        self.embed = nn.Embedding(vocab, d_model)
        self.pos = PositionalEncoding(d_model, max_len, pos)
        self.encoder = nn.ModuleList(EncoderBlock(d_model, nhead, dim_feedforward, dropout, norm_first) for _ in range(layers))
        self.decoder = nn.ModuleList(DecoderBlock(d_model, nhead, dim_feedforward, dropout, norm_first) for _ in range(layers))
        self.norm = nn.LayerNorm(d_model) if norm_first else nn.Identity()
        self.head = nn.Linear(d_model, vocab)

    def _in(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.pos(self.embed(tokens) * math.sqrt(self.d_model))

    def encode(self, src: torch.Tensor) -> torch.Tensor:
        x = self._in(src)
        for block in self.encoder:
            x = block(x)
        return self.norm(x)

    def decode(self, tgt: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        x = self._in(tgt)
        future = ~torch.ones(tgt.shape[1], tgt.shape[1], dtype=torch.bool, device=tgt.device).tril()  # True = not allowed
        for block in self.decoder:
            x = block(x, memory, tgt_mask=future)
        return self.head(self.norm(x))

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: logits for every next token of tgt given the previous ones."""
        return self.decode(tgt_in, self.encode(src))

    @torch.no_grad()
    def generate(self, src: torch.Tensor, bos: int, length: int) -> torch.Tensor:
        """Greedy decoding, one token at a time."""
        memory = self.encode(src)
        out = torch.full((src.shape[0], 1), bos, dtype=torch.long, device=src.device)
        for _ in range(length):
            nxt = self.decode(out, memory)[:, -1].argmax(-1, keepdim=True)
            out = torch.cat([out, nxt], dim=1)
        return out[:, 1:]
