"""Llama: the decoder-only architecture of most open foundation models, written out to run a real one.

SmolLM2-135M (Allal et al. 2025, arXiv:2502.02737) is a Llama (Touvron et al. 2023, arXiv:2302.13971)
with 30 blocks of width 576. Against GPT-2 (gpt.py) four things change:

    LayerNorm        -> RMSNorm: x / sqrt(mean(x^2) + eps) * g, no mean, no bias     (Zhang & Sennrich 2019)
    learned positions -> rotary embeddings: q and k rotated by an angle that grows    (Su et al. 2021,
                        with the position, so q.k depends only on their distance        arXiv:2104.09864)
    GELU MLP         -> SwiGLU: down(silu(gate(x)) * up(x))                          (Shazeer 2020, arXiv:2002.05202)
    one k, v a head  -> grouped-query attention: 9 query heads share 3 key/value heads (Ainslie et al. 2023,
                        (a 3x smaller KV cache)                                        arXiv:2305.13245)

Generation feeds one token at a time; without a cache every step would recompute the keys and values of
the whole prefix (O(T^2) work for T tokens). `KVCache` keeps them: each step computes only the new
token's q, k, v and attends to the stored keys.

The weights come from a GGUF file (llama.cpp's format: quantised blocks plus metadata), read and
de-quantised by our own reader (gguf.py, checked bit for bit against the `gguf` package's); `tests/test_llama.py`
checks logits and greedy tokens against Hugging Face transformers' own loading of the same file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dlroadmap.models.sequence.gguf import GGUFFile


@dataclass
class LlamaConfig:
    vocab_size: int = 49152
    dim: int = 576
    n_layers: int = 30
    n_heads: int = 9
    n_kv_heads: int = 3
    hidden: int = 1536            # SwiGLU width
    rope_theta: float = 100000.0
    eps: float = 1e-5
    max_seq: int = 8192

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight, self.eps = nn.Parameter(torch.ones(dim)), eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        return (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype) * self.weight


def rope_angles(cfg: LlamaConfig, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of position * theta^(-2i/d) for i < d/2 (RoFormer eq. 15), each (T, head_dim): the two
    halves of a head are rotated as pairs (x_i, x_{i+d/2}), the layout Hugging Face's Llama uses."""
    # theta_i = 10000^(-2(i-1)/d), eq. (15), @su2021roformer
    inv_freq = 1.0 / cfg.rope_theta ** (torch.arange(0, cfg.head_dim, 2, dtype=torch.float32) / cfg.head_dim)
    ang = positions.float()[:, None] * inv_freq[None, :]                  # (T, head_dim / 2)
    ang = torch.cat([ang, ang], dim=-1)                                    # (T, head_dim)
    return ang.cos(), ang.sin()


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """(x1, x2) -> (x1 cos - x2 sin, x2 cos + x1 sin) per pair: a 2-D rotation of each pair."""
    x1, x2 = x.chunk(2, dim=-1)
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return x * cos + torch.cat([-x2, x1], dim=-1) * sin


class KVCache:
    """Keys and values of every block for the tokens seen so far: (B, n_kv_heads, length, head_dim) each."""

    def __init__(self, n_layers: int):
        self.k: list[torch.Tensor | None] = [None] * n_layers
        self.v: list[torch.Tensor | None] = [None] * n_layers

    @property
    def length(self) -> int:
        return 0 if self.k[0] is None else self.k[0].shape[2]

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.k[layer] is not None:
            k, v = torch.cat([self.k[layer], k], dim=2), torch.cat([self.v[layer], v], dim=2)
        self.k[layer], self.v[layer] = k, v
        return k, v

    def copy(self) -> KVCache:
        """A cache that shares this one's tensors: a prompt prefix computed once, then continued many ways."""
        c = KVCache(len(self.k))
        c.k, c.v = list(self.k), list(self.v)
        return c

    def row(self, i: int) -> KVCache:
        """Continuation i of a batch, alone (a view: no copy)."""
        c = KVCache(len(self.k))
        c.k = [None if t is None else t[i: i + 1] for t in self.k]
        c.v = [None if t is None else t[i: i + 1] for t in self.v]
        return c

    def expand(self, batch: int) -> KVCache:
        """The same prefix for `batch` continuations (a batch-1 cache broadcast, no copy)."""
        c = KVCache(len(self.k))
        c.k = [None if t is None else t.expand(batch, -1, -1, -1) for t in self.k]
        c.v = [None if t is None else t.expand(batch, -1, -1, -1) for t in self.v]
        return c


class Attention(nn.Module):
    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.cfg = cfg
        hd = cfg.head_dim
        self.q_proj = nn.Linear(cfg.dim, cfg.n_heads * hd, bias=False)
        self.k_proj = nn.Linear(cfg.dim, cfg.n_kv_heads * hd, bias=False)
        self.v_proj = nn.Linear(cfg.dim, cfg.n_kv_heads * hd, bias=False)
        self.o_proj = nn.Linear(cfg.n_heads * hd, cfg.dim, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, cache: KVCache | None, layer: int,
                mask: torch.Tensor | None) -> torch.Tensor:
        # grouped-query attention: each key/value head serves n_head / n_kv_head query heads, @ainslie2023gqa
        B, T, _ = x.shape
        c, hd = self.cfg, self.cfg.head_dim
        q = self.q_proj(x).view(B, T, c.n_heads, hd).transpose(1, 2)          # (B, 9, T, 64)
        k = self.k_proj(x).view(B, T, c.n_kv_heads, hd).transpose(1, 2)       # (B, 3, T, 64)
        v = self.v_proj(x).view(B, T, c.n_kv_heads, hd).transpose(1, 2)
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        if cache is not None:
            k, v = cache.update(layer, k, v)                                  # (B, 3, past + T, 64)
        rep = c.n_heads // c.n_kv_heads                                       # each k/v head serves 3 query heads
        k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        # No mask given: either a fresh causal pass (is_causal) or one new token, which sees every stored key.
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None and T > 1)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, c.dim))


class MLP(nn.Module):
    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.gate_proj = nn.Linear(cfg.dim, cfg.hidden, bias=False)
        self.up_proj = nn.Linear(cfg.dim, cfg.hidden, bias=False)
        self.down_proj = nn.Linear(cfg.hidden, cfg.dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))   # SwiGLU


class Block(nn.Module):
    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.input_layernorm, self.self_attn = RMSNorm(cfg.dim, cfg.eps), Attention(cfg)
        self.post_attention_layernorm, self.mlp = RMSNorm(cfg.dim, cfg.eps), MLP(cfg)

    def forward(self, x, cos, sin, cache, layer, mask):
        # pre-normalisation with RMSNorm and a SwiGLU feed-forward (sec. 2.2), @touvron2023llama
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, cache, layer, mask)
        return x + self.mlp(self.post_attention_layernorm(x))


class Llama(nn.Module):
    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.cfg = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.dim, cfg.eps)
        self.lm_head = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
        self.lm_head.weight = self.embed_tokens.weight                       # tied, as in SmolLM2

    def forward(self, ids: torch.Tensor, cache: KVCache | None = None, pad_mask: torch.Tensor | None = None,
                last_only: bool = False) -> torch.Tensor:
        """ids (B, T) -> logits (B, T, vocab), continuing `cache` when given (and filling it).

        pad_mask (B, past + T), True for real tokens, lets a batch hold prompts of different lengths,
        left-padded: padding is never attended to. last_only keeps only the last position's logits
        (generation needs no more, and the 49,152-way head is a third of the model's work)."""
        B, T = ids.shape
        past = cache.length if cache is not None else 0
        positions = torch.arange(past, past + T, device=ids.device)
        mask = None
        # Query t sits at absolute position past + t and sees keys 0..past + t. SDPA's is_causal covers only
        # past = 0 (its mask is aligned top-left), so a chunk continuing a cache gets the mask written out.
        def causal() -> torch.Tensor:
            return torch.ones(T, past + T, dtype=torch.bool, device=ids.device).tril(past)   # (T, past + T)

        if pad_mask is not None:
            # Positions count real tokens only, so a left-padded prompt gets the positions it would have alone.
            pos_all = (pad_mask.long().cumsum(-1) - 1).clamp(min=0)                           # (B, past + T)
            positions = pos_all[:, past:]                                                     # (B, T)
            mask = causal()[None] & pad_mask[:, None, :]                                        # (B, T, past + T)
            mask[:, torch.arange(T), past + torch.arange(T)] = True   # a padding query sees itself: no row all masked (NaN)
            mask = mask[:, None]                                                              # (B, 1, T, past + T)
        elif past > 0 and T > 1:
            mask = causal()
        cos, sin = rope_angles(self.cfg, positions.reshape(-1))
        if pad_mask is not None:
            cos, sin = cos.view(B, 1, T, -1), sin.view(B, 1, T, -1)
        x = self.embed_tokens(ids)                                                            # (B, T, 576)
        for i, block in enumerate(self.layers):
            x = block(x, cos, sin, cache, i, mask)
        x = self.norm(x[:, -1:] if last_only else x)
        return self.lm_head(x)                                                                # (B, T, vocab)


# --- loading a GGUF file ---------------------------------------------------------------------------

GGUF_NAMES = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
              "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
              "ffn_down": "mlp.down_proj", "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm"}


def unpermute_rope(w: np.ndarray, n_heads: int) -> np.ndarray:
    """llama.cpp stores q and k rows with each head's two rotary halves interleaved ((x0, x_{d/2}), (x1, ...));
    this model rotates halves. Undo: (heads, d/2, 2, in) -> (heads, 2, d/2, in)."""
    rows = w.shape[0]
    return w.reshape(n_heads, rows // n_heads // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def config_from_gguf(meta: dict) -> LlamaConfig:
    """The architecture from a GGUF file's metadata (`llama.*` keys; the vocabulary is the tokenizer's)."""
    return LlamaConfig(vocab_size=len(meta["tokenizer.ggml.tokens"]), dim=int(meta["llama.embedding_length"]),
                       n_layers=int(meta["llama.block_count"]), n_heads=int(meta["llama.attention.head_count"]),
                       n_kv_heads=int(meta["llama.attention.head_count_kv"]), hidden=int(meta["llama.feed_forward_length"]),
                       rope_theta=float(meta["llama.rope.freq_base"]), eps=float(meta["llama.attention.layer_norm_rms_epsilon"]),
                       max_seq=int(meta["llama.context_length"]))


def load_gguf(path: str | Path, dtype: torch.dtype = torch.float32) -> Llama:
    """Read a Llama-architecture GGUF file (gguf.py): metadata -> config, each tensor de-quantised (Q4_1, Q8_0, F32, ...)."""
    with GGUFFile(path) as f:
        arch = f.metadata.get("general.architecture")
        if arch != "llama":
            raise ValueError(f"{path}: a {arch!r} GGUF file; only the llama architecture is supported")
        cfg = config_from_gguf(f.metadata)
        state = {}
        for name in f.tensors:
            w = f.array(name)                                                     # (out, in) as PyTorch stores it
            stem = name.removesuffix(".weight")
            if stem == "token_embd":
                key = "embed_tokens"
            elif stem == "output_norm":
                key = "norm"
            elif stem == "output":
                key = "lm_head"
            else:
                _, layer, part = stem.split(".")
                key = f"layers.{layer}.{GGUF_NAMES[part]}"
                if part in ("attn_q", "attn_k"):
                    w = unpermute_rope(w, cfg.n_heads if part == "attn_q" else cfg.n_kv_heads)
            state[key + ".weight"] = torch.from_numpy(np.ascontiguousarray(w))
    state.setdefault("lm_head.weight", state["embed_tokens.weight"])
    with torch.device("meta"):
        model = Llama(cfg)
    model.load_state_dict(state, assign=True, strict=True)
    model.lm_head.weight = model.embed_tokens.weight
    return model.to(dtype).eval()


def num_params(model: Llama) -> int:
    return sum(p.numel() for p in model.parameters())


def flops_per_token(cfg: LlamaConfig, context: int) -> float:
    """~2 FLOPs per weight per token plus attention's 2 * 2 * layers * context * dim (Kaplan et al. 2020, Table 1)."""
    weights = cfg.n_layers * (2 * cfg.dim * cfg.dim + 2 * cfg.dim * cfg.n_kv_heads * cfg.head_dim + 3 * cfg.dim * cfg.hidden)
    return 2.0 * (weights + cfg.dim * cfg.vocab_size) + 4.0 * cfg.n_layers * context * cfg.dim
