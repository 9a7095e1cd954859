"""Our Llama and decoding loop (models/sequence/llama.py, nlp/decoding.py) against Hugging Face transformers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dlroadmap.models.sequence.llama import KVCache, Llama, LlamaConfig, unpermute_rope
from dlroadmap.nlp.decoding import filter_logits, generate

TINY = LlamaConfig(vocab_size=97, dim=48, n_layers=2, n_heads=6, n_kv_heads=2, hidden=64, max_seq=64)


def tiny_llama(seed: int = 0) -> Llama:
    torch.manual_seed(seed)
    m = Llama(TINY).eval()
    for p in m.parameters():
        torch.nn.init.normal_(p, 0.0, 0.3)
    return m


def test_unpermute_inverts_llama_cpp_permutation():
    # llama.cpp's convert script interleaves each head's rotary halves: (heads, 2, d/2, in) -> (heads, d/2, 2, in).
    heads, hd, dim_in = 3, 8, 5
    w = np.random.default_rng(0).normal(size=(heads * hd, dim_in))
    permuted = w.reshape(heads, 2, hd // 2, dim_in).swapaxes(1, 2).reshape(w.shape)
    assert not np.array_equal(permuted, w)
    np.testing.assert_array_equal(unpermute_rope(permuted, heads), w)


def test_kv_cache_and_padding_give_the_full_pass_logits():
    m = tiny_llama()
    ids = torch.randint(0, TINY.vocab_size, (1, 20), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = m(ids)
        cache = KVCache(TINY.n_layers)
        parts = [m(ids[:, a:b], cache=cache) for a, b in ((0, 7), (7, 8), (8, 20))]   # a chunk, one token, a chunk
        torch.testing.assert_close(torch.cat(parts, 1), full, atol=1e-5, rtol=1e-5)
        # A left-padded batch: the shorter prompt gets the logits it gets alone.
        short = ids[:, :12]
        batch = torch.cat([ids, torch.cat([torch.zeros(1, 8, dtype=torch.long), short], 1)])
        mask = torch.ones(2, 20, dtype=torch.bool)
        mask[1, :8] = False
        out = m(batch, pad_mask=mask)
        torch.testing.assert_close(out[0], full[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(out[1, 8:], m(short)[0], atol=1e-5, rtol=1e-5)
    # Greedy decoding with and without the cache: the same tokens.
    a = generate(m, ids[:, :5], 12)
    b = generate(m, ids[:, :5], 12, use_cache=False)
    assert a.shape == (1, 12) and torch.equal(a, b)


def test_top_k_and_top_p_filters_equal_transformers_warpers():
    from transformers.generation.logits_process import TopKLogitsWarper, TopPLogitsWarper

    logits = torch.randn(4, 50, generator=torch.Generator().manual_seed(0)) * 3
    for k in (1, 5, 49):
        assert torch.equal(filter_logits(logits, top_k=k), TopKLogitsWarper(k)(None, logits.clone()))
    for p in (0.1, 0.5, 0.9, 0.99):
        ours = filter_logits(logits, top_p=p).isinf()
        ref = TopPLogitsWarper(p)(None, logits.clone()).isinf()
        assert torch.equal(ours, ref), p


@pytest.mark.slow
def test_smollm2_loaded_from_gguf_equals_transformers():
    """The real pretrained model: our GGUF reader and Llama give transformers' logits and its greedy tokens."""
    from transformers import AutoModelForCausalLM

    from dlroadmap.models.sequence.llama import num_params
    from dlroadmap.nlp.llm import load_smollm2, smollm2_path

    model, tok = load_smollm2()
    assert num_params(model) == 134_515_008
    folder, name = smollm2_path()
    ref = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name).eval()
    ids = tok.chat("Is this review positive or negative? 'A gorgeous, witty, seductive movie.'")
    with torch.no_grad():
        ours, theirs = model(ids), ref(ids).logits
    assert (ours - theirs).abs().max().item() <= 1e-4
    new = generate(model, ids, 24)
    expected = ref.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=24, do_sample=False)[:, ids.shape[1]:]
    assert torch.equal(new, expected[:, :new.shape[1]]), (tok.decode(new[0]), tok.decode(expected[0]))
    assert "positive" in tok.decode(new[0]).lower()


@pytest.mark.slow
def test_smollm2_tokenizer_cache_equals_the_gguf_conversion(tmp_path, monkeypatch):
    """The tokenizer kept in the user cache encodes, decodes and templates as the one built from the GGUF file."""
    from transformers import AutoTokenizer

    from dlroadmap.nlp.llm import _hf_tokenizer, smollm2_path

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    folder, name = smollm2_path()
    built = _hf_tokenizer(folder, name)                      # converts, then writes the cache
    assert len(list((tmp_path / "dlroadmap" / "tokenizers").glob("*/tokenizer.json"))) == 1
    cached = _hf_tokenizer(folder, name)                     # reads the cache
    ref = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    text = "Review: a gorgeous , witty film.\nSentiment: positive\n\n  ünïcode 12345 <|im_end|>"
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2 + 2?"}]
    for tok in (built, cached):
        ids = tok.encode(text, add_special_tokens=False)
        assert ids == ref.encode(text, add_special_tokens=False)
        assert tok.decode(ids, skip_special_tokens=True) == ref.decode(ids, skip_special_tokens=True)
        assert tok.apply_chat_template(chat, tokenize=False, add_generation_prompt=True) == \
            ref.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
        assert tok.convert_tokens_to_ids("<|im_end|>") == ref.convert_tokens_to_ids("<|im_end|>")
