"""GPT: a decoder-only Transformer language model in one file (Radford et al. 2018/2019).

The model reads tokens x_1..x_T and predicts x_{t+1} from x_1..x_t at every position at once;
causal self-attention (each position sees only the past) makes that possible in one pass.

    tokens (B, T) -> token embedding + position embedding         (B, T, C)
                  -> n_layer x Block:  x = x + attn(ln1(x))        pre-norm, as GPT-2
                                       x = x + mlp(ln2(x))         MLP: C -> 4C -> C, GELU
                  -> ln_f -> lm_head (weights tied to the token embedding)   (B, T, vocab)

Training minimises the cross-entropy of the next token. Sampling draws one token at a time from
softmax(logits / temperature), optionally only among the top-k most likely.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


AMX = torch.cpu._is_amx_tile_supported()   # Intel's matrix tiles: bf16 matmuls several times faster than fp32 (benchmarks record it)


@dataclass
class GPTConfig:
    vocab_size: int = 65
    block_size: int = 64        # context length
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    bias: bool = True

    def to_dict(self) -> dict:
        return asdict(self)


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        assert cfg.n_embd % cfg.n_head == 0
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)   # q, k, v for all heads in one matmul
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.resid_dropout = nn.Dropout(cfg.dropout)
        self.n_head, self.dropout = cfg.n_head, cfg.dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))   # (B, h, T, d)
        # The fused kernel computes softmax(q k^T / sqrt(d) + causal mask) v without materialising
        # the (T, T) matrix twice; models/attention.py has the same thing written out.
        p = self.dropout if self.training else 0.0
        if q.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            # Under bf16 autocast torch's CPU attention kernel is slower in bf16 than in fp32 (forward + backward,
            # measured: 3x on an AMD EPYC without AMX; on an Intel Xeon with AMX a whole training step of the
            # 4x4x128 GPT took 52 ms with bf16 attention, 30 ms with fp32), while the matmuls around it gain.
            # So attention itself stays fp32.
            with torch.autocast("cpu", enabled=False):
                y = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), is_causal=True, dropout_p=p)
        else:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=p)
        y = y.transpose(1, 2).contiguous().view(B, T, C)                                            # re-assemble heads
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd, bias=cfg.bias)
        self.c_proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x))))


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.ln_1, self.attn = nn.LayerNorm(cfg.n_embd, bias=cfg.bias), CausalSelfAttention(cfg)
        self.ln_2, self.mlp = nn.LayerNorm(cfg.n_embd, bias=cfg.bias), MLP(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # layer norm at the input of each sub-block (sec. 2.3), @radford2019gpt2
        x = x + self.attn(self.ln_1(x))   # communicate: tokens exchange information
        return x + self.mlp(self.ln_2(x))  # compute: each token on its own


class GPT(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.wpe = nn.Embedding(cfg.block_size, cfg.n_embd)
        self.drop = nn.Dropout(cfg.dropout)
        self.h = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # weight tying (Press & Wolf 2016, arXiv:1608.05859)
        self.apply(self._init)
        for name, p in self.named_parameters():  # GPT-2: scale residual projections by 1/sqrt(2 * n_layer)
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, 0.0, 0.02)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters()) - self.wpe.weight.numel()

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        # the language-modelling objective, eq. (1): next-token cross-entropy, @radford2018gpt
        B, T = idx.shape
        if T > self.cfg.block_size:
            raise ValueError(f"sequence of length {T} exceeds block_size {self.cfg.block_size}")
        pos = torch.arange(T, device=idx.device)
        x = self.drop(self.wte(idx) + self.wpe(pos))          # (B, T, C)
        for block in self.h:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))                   # (B, T, vocab)
        loss = None if targets is None else F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), targets.reshape(-1))
        return logits, loss

    def configure_optimizer(self, lr: float, weight_decay: float = 0.1, betas=(0.9, 0.99), muon_lr: float | None = None,
                            muon_dtype: str = "bfloat16") -> torch.optim.Optimizer:
        """AdamW; weight decay on matrices only (not biases, LayerNorm gains or, here, embeddings' duplicates).

        With `muon_lr`, the blocks' matrices are trained by Muon at that rate instead (train/muon.py;
        its Newton-Schulz iteration in `muon_dtype`) and everything else by AdamW at `lr`, in one optimizer.
        """
        params = {n: p for n, p in self.named_parameters() if p.requires_grad}
        decay = [p for p in params.values() if p.dim() >= 2]
        no_decay = [p for p in params.values() if p.dim() < 2]
        if muon_lr is None:
            return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
                                     lr=lr, betas=betas)
        from dlroadmap.train.muon import Muon

        hidden = [p for n, p in params.items() if p.dim() == 2 and n.startswith("h.")]       # attention and MLP matrices
        embeddings = [p for n, p in params.items() if p.dim() >= 2 and not n.startswith("h.")]  # token (= output), position
        return Muon([{"params": hidden},
                     {"params": embeddings, "adam": True, "lr": lr, "weight_decay": weight_decay},
                     {"params": no_decay, "adam": True, "lr": lr, "weight_decay": 0.0}],
                    lr=muon_lr, betas=betas, ns_dtype=muon_dtype)

    @torch.no_grad()
    def generate(self, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Sample continuations: temperature < 1 sharpens the distribution, top_k keeps the k likeliest."""
        if temperature <= 0:
            raise ValueError("temperature must be > 0")
        for _ in range(max_new_tokens):
            logits, _ = self(idx[:, -self.cfg.block_size:])
            logits = logits[:, -1, :].float() / temperature
            if top_k is not None:
                kth = torch.topk(logits, min(top_k, logits.size(-1))).values[:, [-1]]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            nxt = torch.multinomial(F.softmax(logits, dim=-1), 1, generator=generator)
            idx = torch.cat([idx, nxt], dim=1)
        return idx


class CharTokenizer:
    """Characters <-> integer ids, built from the training text."""

    def __init__(self, text: str):
        self.chars = sorted(set(text))
        self.stoi = {c: i for i, c in enumerate(self.chars)}

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, s: str) -> list[int]:
        return [self.stoi[c] for c in s]

    def decode(self, ids) -> str:
        return "".join(self.chars[int(i)] for i in ids)
