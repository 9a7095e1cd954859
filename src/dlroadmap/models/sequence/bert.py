"""BERT (Devlin et al. 2018, arXiv:1810.04805): a Transformer encoder pre-trained by masked language
modelling, then fine-tuned.

Input: [CLS] tokens [SEP], embedded as word + position + segment vectors, LayerNorm. The encoder is
a stack of post-norm blocks with GELU (models/transformer.py). Pre-training hides 15% of the tokens
and predicts them from both sides: of the chosen positions 80% become [MASK], 10% a random token,
10% stay unchanged (so the model cannot rely on seeing [MASK]). The MLM head shares its output
matrix with the word embeddings. For classification, the [CLS] vector goes through a tanh "pooler"
and a linear layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dlroadmap.models.sequence.transformer import EncoderBlock


@dataclass
class BertConfig:
    vocab_size: int
    hidden: int = 128
    layers: int = 2
    heads: int = 4
    intermediate: int = 256
    max_len: int = 128
    dropout: float = 0.1


class Bert(nn.Module):
    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.cfg = cfg
        self.word = nn.Embedding(cfg.vocab_size, cfg.hidden)
        self.position = nn.Embedding(cfg.max_len, cfg.hidden)
        self.segment = nn.Embedding(2, cfg.hidden)
        self.norm = nn.LayerNorm(cfg.hidden, eps=1e-12)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(EncoderBlock(cfg.hidden, cfg.heads, cfg.intermediate, cfg.dropout, norm_first=False, activation="gelu")
                                    for _ in range(cfg.layers))
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """ids (N, T); attention_mask (N, T) with 1 for real tokens, 0 for padding. Returns (N, T, H)."""
        pos = torch.arange(ids.shape[1], device=ids.device)
        x = self.drop(self.norm(self.word(ids) + self.position(pos) + self.segment(torch.zeros_like(ids))))
        pad = None if attention_mask is None else attention_mask == 0
        for block in self.blocks:
            x = block(x, key_padding_mask=pad)
        return x


class BertForMaskedLM(nn.Module):
    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.bert = Bert(cfg)
        self.transform = nn.Sequential(nn.Linear(cfg.hidden, cfg.hidden), nn.GELU(), nn.LayerNorm(cfg.hidden, eps=1e-12))
        self.bias = nn.Parameter(torch.zeros(cfg.vocab_size))

    def forward(self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None, at: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (N, T, V); with `at` (a bool (N, T) mask of the hidden positions) only there: (M, V). Only ~15% of
        positions carry a loss, so projecting just those onto the vocabulary saves most of the head's work."""
        h = self.bert(ids, attention_mask)
        if at is not None:
            h = h[at]                                           # (M, H)
        return self.transform(h) @ self.bert.word.weight.T + self.bias        # tied to the input embeddings


class BertForClassification(nn.Module):
    def __init__(self, cfg: BertConfig, num_classes: int, bert: Bert | None = None):
        super().__init__()
        self.bert = bert or Bert(cfg)
        self.pooler = nn.Linear(cfg.hidden, cfg.hidden)
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.hidden, num_classes)

    def forward(self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        cls = self.bert(ids, attention_mask)[:, 0]               # the [CLS] position
        return self.head(self.drop(torch.tanh(self.pooler(cls))))


def mask_tokens(ids: torch.Tensor, mask_id: int, vocab_size: int, special: torch.Tensor, p: float = 0.15,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masking: returns (inputs, labels) with labels = -100 (ignored) where nothing was hidden."""
    # the masked-LM corruption of sec. 3.1: 80% [MASK], 10% random, 10% unchanged, @devlin2019bert
    prob = torch.full(ids.shape, p)
    prob[torch.isin(ids, special)] = 0.0                          # never mask [CLS], [SEP], [PAD]
    chosen = torch.bernoulli(prob, generator=generator).bool()
    labels = torch.where(chosen, ids, torch.full_like(ids, -100))
    inputs = ids.clone()
    r = torch.rand(ids.shape, generator=generator)
    inputs[chosen & (r < 0.8)] = mask_id                                            # 80%: [MASK]
    rand = chosen & (r >= 0.8) & (r < 0.9)                                          # 10%: a random token
    inputs[rand] = torch.randint(vocab_size, (int(rand.sum()),), generator=generator)
    return inputs, labels                                                           # 10%: unchanged


def mlm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100)
