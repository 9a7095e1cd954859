"""Decoding: turning a language model's next-token distribution into text.

    logits (B, vocab) -> / temperature -> keep the top k -> keep the smallest set with probability >= p
                      -> sample (or argmax: greedy)

Temperature < 1 sharpens the distribution, > 1 flattens it; top-k sampling (Fan et al. 2018,
arXiv:1805.04833) cuts the long tail at a fixed count; nucleus (top-p) sampling (Holtzman et al. 2019,
arXiv:1904.09751) cuts it where the cumulative probability reaches p, so the number kept adapts to how
sure the model is. Greedy decoding (temperature 0) is deterministic: the same prompt, the same tokens.

The loop works with any model called as `model(ids, cache=..., last_only=True) -> logits` (models/sequence/
llama.py): with a KV cache the prompt is read once and each new token costs one position's work;
without it (`use_cache=False`) every step re-reads the whole sequence, the baseline the cache is timed against.
"""

from __future__ import annotations

import torch


def filter_logits(logits: torch.Tensor, top_k: int | None = None, top_p: float | None = None) -> torch.Tensor:
    """Set to -inf every logit outside the top k and outside the nucleus of mass top_p; logits (B, vocab)."""
    # nucleus (top-p) sampling: the smallest set of tokens whose probability reaches p (sec. 3.1), @holtzman2019curious
    if top_k is not None and top_k < logits.size(-1):
        kth = torch.topk(logits, top_k).values[:, -1:]                       # (B, 1) the k-th largest
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(-1)
        # Drop a token when the tokens before it already hold >= top_p: the first token is always kept.
        drop_sorted = probs.cumsum(-1) - probs >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def next_token(logits: torch.Tensor, temperature: float = 0.0, top_k: int | None = None, top_p: float | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """logits (B, vocab) -> token ids (B, 1): argmax at temperature 0, else a draw from the filtered softmax."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    logits = logits.float()
    if temperature == 0:
        return logits.argmax(-1, keepdim=True)
    probs = filter_logits(logits / temperature, top_k, top_p).softmax(-1)
    return torch.multinomial(probs, 1, generator=generator)


@torch.no_grad()
def generate(model, ids: torch.Tensor, max_new_tokens: int, *, temperature: float = 0.0, top_k: int | None = None,
             top_p: float | None = None, eos_id: int | None = None, use_cache: bool = True,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """Continue ids (1, T) by up to max_new_tokens tokens; returns only the new ones (1, n), stopping after eos_id."""
    from dlroadmap.models.sequence.llama import KVCache

    cache = KVCache(len(model.layers)) if use_cache else None
    seq, new = ids, []
    step_input = ids                                                        # the first step reads the whole prompt
    for _ in range(max_new_tokens):
        logits = model(step_input if use_cache else seq, cache=cache, last_only=True)[:, -1]   # (1, vocab)
        tok = next_token(logits, temperature, top_k, top_p, generator)                      # (1, 1)
        new.append(tok)
        if eos_id is not None and int(tok) == eos_id:
            break
        seq = torch.cat([seq, tok], dim=1)
        step_input = tok                                                    # later steps: one token each
    return torch.cat(new, dim=1) if new else ids[:, :0]
