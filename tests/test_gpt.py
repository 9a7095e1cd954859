"""The GPT model: causality, tied weights, sampling, and its fused attention = the written-out one."""

from __future__ import annotations

import pytest
import torch

from dlroadmap.data.text import WindowLoader, split_text
from dlroadmap.models.sequence.attention import scaled_dot_product_attention
from dlroadmap.models.sequence.gpt import GPT, CharTokenizer, GPTConfig


def small(**kw):
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=11, block_size=16, n_layer=2, n_head=2, n_embd=16, **kw)).eval()


def test_logits_depend_only_on_the_past():
    m = small()
    x = torch.randint(0, 11, (2, 10))
    y = x.clone()
    y[:, 6:] = (y[:, 6:] + 3) % 11
    with torch.no_grad():
        torch.testing.assert_close(m(x)[0][:, :6], m(y)[0][:, :6])
        assert not torch.allclose(m(x)[0][:, 6:], m(y)[0][:, 6:])


def test_tied_weights_loss_and_parameter_count():
    m = small()
    assert m.lm_head.weight is m.wte.weight
    x = torch.randint(0, 11, (3, 8))
    logits, loss = m(x, x)
    assert logits.shape == (3, 8, 11)
    assert loss.item() == pytest.approx(torch.nn.functional.cross_entropy(logits.reshape(-1, 11), x.reshape(-1)).item())
    C, L, V = 16, 2, 11
    per_block = 2 * 2 * C + (C * 3 * C + 3 * C) + (C * C + C) + (C * 4 * C + 4 * C) + (4 * C * C + C)
    assert m.num_params() == V * C + L * per_block + 2 * C
    with pytest.raises(ValueError, match="block_size"):
        m(torch.zeros(1, 17, dtype=torch.long))


def test_fused_attention_equals_written_out():
    m = small()
    attn = m.h[0].attn
    x = torch.randn(2, 9, 16)
    q, k, v = attn.c_attn(x).split(16, dim=2)
    q, k, v = (t.view(2, 9, 2, 8).transpose(1, 2) for t in (q, k, v))
    ours = scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(2, 9, 16)
    torch.testing.assert_close(attn(x), attn.c_proj(ours), rtol=1e-5, atol=1e-6)


def test_sampling_temperature_and_top_k():
    m = small()
    prompt = torch.zeros(1, 1, dtype=torch.long)
    greedy = prompt
    with torch.no_grad():
        for _ in range(5):
            greedy = torch.cat([greedy, m(greedy)[0][:, -1].argmax(-1, keepdim=True)], 1)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(m.generate(prompt, 5, temperature=1.0, top_k=1, generator=g), greedy)
    a = m.generate(prompt, 20, temperature=0.8, top_k=3, generator=torch.Generator().manual_seed(1))
    b = m.generate(prompt, 20, temperature=0.8, top_k=3, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.shape == (1, 21)
    with pytest.raises(ValueError):
        m.generate(prompt, 1, temperature=0)


def test_char_tokenizer_and_window_loader():
    tok = CharTokenizer("hello world")
    assert tok.decode(tok.encode("low hell")) == "low hell" and tok.vocab_size == 8
    ids = torch.arange(1000)
    tr, va = split_text(ids)
    assert len(tr) == 900 and va[0] == 900
    ld = WindowLoader(tr, 8, 4, 5, seed=2)
    ld.set_epoch(1)
    batches = list(ld)
    x, y = batches[0]
    assert x.shape == (4, 8) and torch.equal(y, x + 1)  # targets are the inputs shifted by one
    assert [b[0].tolist() for b in ld.iter_from(3)] == [b[0].tolist() for b in batches[3:]]


@pytest.mark.parametrize("amx", [False, True])
def test_attention_stays_fp32_under_cpu_bf16_autocast(monkeypatch, amx):
    """bf16 attention is the slower kernel on the CPUs measured, with AMX too (gpt.py): under autocast the
    projections run in bf16 while attention's output, which c_proj receives, is fp32."""
    import dlroadmap.models.sequence.gpt as G

    monkeypatch.setattr(G, "AMX", amx)
    m = small()
    seen = []
    m.h[0].attn.c_proj.register_forward_pre_hook(lambda mod, args: seen.append(args[0].dtype))
    m.h[0].attn.c_attn.register_forward_hook(lambda mod, args, out: seen.append(out.dtype))
    with torch.no_grad(), torch.autocast("cpu", torch.bfloat16):
        m(torch.randint(0, 11, (2, 10)))
    assert seen == [torch.bfloat16, torch.float32]
