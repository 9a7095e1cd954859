"""evaluate/flops.py: our FLOP count equals torch's FlopCounterMode, and it sees what a KV cache saves."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from dlroadmap.evaluate.flops import CountFlops
from dlroadmap.models.sequence.llama import Llama, LlamaConfig
from dlroadmap.nlp.decoding import generate

TINY = LlamaConfig(vocab_size=97, dim=48, n_layers=2, n_heads=6, n_kv_heads=2, hidden=64, max_seq=64)


def _both(fn) -> tuple[int, int]:
    with CountFlops() as ours:
        fn()
    with FlopCounterMode(display=False) as torchs:
        fn()
    return ours.total, torchs.get_total_flops()


def test_count_equals_flop_counter_mode_on_matmuls_convolutions_attention_and_backward():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(8 * 6 * 6, 5))
    x = torch.randn(4, 3, 8, 8)
    q, k, v = (torch.randn(2, 3, 10, 16) for _ in range(3))

    def work():
        net(x).square().sum().backward()                        # conv, addmm and their gradients
        torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        torch.bmm(torch.randn(3, 4, 5), torch.randn(3, 5, 6))

    ours, torchs = _both(work)
    assert ours == torchs > 0


def test_the_kv_cache_is_seen_doing_a_fraction_of_the_work_with_the_same_tokens():
    torch.manual_seed(0)
    model = Llama(TINY).eval()
    prompt = torch.randint(0, TINY.vocab_size, (1, 20), generator=torch.Generator().manual_seed(1))
    counts, tokens = {}, {}
    for use_cache in (True, False):
        ours, torchs = _both(lambda: tokens.__setitem__(use_cache, generate(model, prompt, 12, use_cache=use_cache)))
        assert ours == torchs
        counts[use_cache] = ours
    assert torch.equal(tokens[True], tokens[False])
    # Cached: the 20-token prompt once, then 11 one-token steps (31 positions); re-reading: 20 + 21 + ... + 31 = 306.
    # The language-model head runs on the last position only in both, so the ratio sits a little under 306 / 31.
    assert 6 < counts[False] / counts[True] < 306 / 31
