"""Attention, written out (Vaswani et al. 2017, "Attention is all you need", arXiv:1706.03762).

Scaled dot-product attention: each query q_i scores every key k_j by q_i . k_j / sqrt(d),
softmax turns the scores of a row into weights, and the output is the weighted mean of the values:
    Attention(Q, K, V) = softmax(Q K^T / sqrt(d) + mask) V
Dividing by sqrt(d) keeps the scores' variance ~1 whatever the head size, so softmax does not
saturate. Masks remove positions: a padding mask hides padding tokens, a causal mask hides the
future (position i may look at j <= i only), as a decoder needs.

Multi-head attention runs h attentions in parallel on h slices of a learned projection and
concatenates them: each head can attend to something different. Parameter layout follows
nn.MultiheadAttention (in_proj_weight (3E, E), out_proj) so weights copy across for tests.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def scaled_dot_product_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: torch.Tensor | None = None,
                                 is_causal: bool = False, dropout_p: float = 0.0, scale: float | None = None,
                                 return_weights: bool = False):
    """Same contract as F.scaled_dot_product_attention: q (..., L, d), k and v (..., S, d).
    attn_mask: boolean (True = may attend) or additive float, broadcastable to (..., L, S)."""
    # softmax(Q K^T / sqrt(d_k)) V, eq. (1), @vaswani2017attention
    # alignment weights as a softmax over scores, eq. (6) (the score here is Vaswani's scaled dot product), @bahdanau2014neural
    L, S = q.shape[-2], k.shape[-2]
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = (q @ k.transpose(-2, -1)) * scale                     # (..., L, S)
    if is_causal:
        causal = torch.ones(L, S, dtype=torch.bool, device=q.device).tril()
        scores = scores.masked_fill(~causal, float("-inf"))
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attn_mask, float("-inf"))
        else:
            scores = scores + attn_mask
    weights = torch.softmax(scores, dim=-1)
    if dropout_p > 0:
        weights = F.dropout(weights, dropout_p)
    out = weights @ v                                              # (..., L, d)
    return (out, weights) if return_weights else out


def causal_mask(n: int, device=None) -> torch.Tensor:
    """Boolean (n, n): True on and below the diagonal (position i sees 0..i)."""
    return torch.ones(n, n, dtype=torch.bool, device=device).tril()


class MultiHeadAttention(nn.Module):
    """Batch-first multi-head attention with nn.MultiheadAttention's parameters and mask conventions:
    key_padding_mask (N, S) True = ignore that key; attn_mask (L, S) boolean True = *not* allowed
    (nn.MultiheadAttention's convention, the opposite of F.scaled_dot_product_attention's)."""

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        self.embed_dim, self.num_heads, self.head_dim, self.dropout = embed_dim, num_heads, embed_dim // num_heads, dropout
        self.in_proj_weight = nn.Parameter(torch.empty(3 * embed_dim, embed_dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * embed_dim)) if bias else None
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        nn.init.xavier_uniform_(self.in_proj_weight)
        if bias:
            nn.init.zeros_(self.out_proj.bias)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, key_padding_mask: torch.Tensor | None = None,
                attn_mask: torch.Tensor | None = None, is_causal: bool = False, need_weights: bool = True,
                average_attn_weights: bool = True):
        n, L, E = query.shape
        S = key.shape[1]
        w_q, w_k, w_v = self.in_proj_weight.chunk(3)
        b_q, b_k, b_v = self.in_proj_bias.chunk(3) if self.in_proj_bias is not None else (None, None, None)

        def heads(x, w, b, length):  # (N, T, E) -> (N, h, T, d)
            return F.linear(x, w, b).view(n, length, self.num_heads, self.head_dim).transpose(1, 2)

        q, k, v = heads(query, w_q, b_q, L), heads(key, w_k, b_k, S), heads(value, w_v, b_v, S)
        allowed = torch.ones(n, 1, L, S, dtype=torch.bool, device=query.device)
        if key_padding_mask is not None:
            allowed = allowed & ~key_padding_mask.view(n, 1, 1, S)
        if attn_mask is not None:  # boolean, (L, S) or (N * heads, L, S)
            allowed = allowed & ~(attn_mask if attn_mask.dim() == 2 else attn_mask.view(n, self.num_heads, L, S))
        if is_causal:
            allowed = allowed & causal_mask(L, query.device)[:, :S]
        out, weights = scaled_dot_product_attention(q, k, v, allowed, dropout_p=self.dropout if self.training else 0.0,
                                                    return_weights=True)
        out = self.out_proj(out.transpose(1, 2).reshape(n, L, E))   # concatenate the heads, mix them
        if not need_weights:
            return out, None
        return out, weights.mean(dim=1) if average_attn_weights else weights
