"""SmolLM2-135M on this machine: loading, and greedy decoding with and without the KV cache, fp32 and bf16.

  load        our GGUF reader (de-quantising Q4_1/Q8_0 to float32) and transformers' tokenizer built from the
              same file (converted once, then read from the user cache); transformers' own model loading beside it
  decode      tokens/s of 64 greedy tokens after a ~50-token chat prompt: with the KV cache, without it (every
              step re-reads the whole sequence), in float32 and in bfloat16 (fast where the CPU multiplies
              bf16 natively, AMX or AVX512-BF16; emulated and slower elsewhere)
  prompt      tokens/s of one forward pass over a 512-token prompt (the work a k-shot prompt costs)

    python benchmarks/llm.py
"""

from __future__ import annotations

import os
import tempfile
import time
from unittest import mock

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from dlroadmap.models.sequence.llama import load_gguf  # noqa: E402
from dlroadmap.nlp.decoding import generate  # noqa: E402
from dlroadmap.nlp.llm import _hf_tokenizer, load_smollm2, smollm2_path  # noqa: E402

from common import median_time, save  # noqa: E402


def main() -> None:
    folder, name = smollm2_path()
    t0 = time.perf_counter()
    load_gguf(f"{folder}/{name}")
    ours_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    model, tok = load_smollm2()
    with_tok_s = time.perf_counter() - t0
    # The tokenizer alone: converted from the GGUF file (an empty cache), then read back from the user cache.
    with tempfile.TemporaryDirectory() as cache, mock.patch.dict(os.environ, {"XDG_CACHE_HOME": cache}):
        t0 = time.perf_counter()
        _hf_tokenizer(folder, name)
        tok_convert_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        _hf_tokenizer(folder, name)
        tok_cached_s = time.perf_counter() - t0
    from transformers import AutoModelForCausalLM

    t0 = time.perf_counter()
    AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)
    hf_s = time.perf_counter() - t0
    prompt = tok.chat("Explain in a few sentences why the sky is blue, for a ten-year-old.")
    decode = {}
    for dtype in (torch.float32, torch.bfloat16):
        m = model if dtype == torch.float32 else load_gguf(f"{folder}/{name}", dtype=dtype)
        for use_cache in (True, False):
            seconds, _ = median_time(lambda: generate(m, prompt, 64, use_cache=use_cache), repeats=2)
            decode[f"{str(dtype).split('.')[-1]}_{'cache' if use_cache else 'no_cache'}"] = 64 / seconds
        long = torch.randint(0, 49152, (1, 512), generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            seconds, _ = median_time(lambda: m(long, last_only=True), repeats=3)
        decode[f"{str(dtype).split('.')[-1]}_prompt_512"] = 512 / seconds
    result = {"load_seconds_ours": ours_s, "load_seconds_ours_with_tokenizer": with_tok_s, "load_seconds_transformers": hf_s,
              "tokenizer_seconds_converted": tok_convert_s, "tokenizer_seconds_cached": tok_cached_s,
              "prompt_tokens": prompt.shape[1], "tokens_per_s": decode}
    path = save("llm", result)
    print(f"load: ours {ours_s:.1f}s (with the tokenizer {with_tok_s:.1f}s), transformers {hf_s:.1f}s; "
          f"tokenizer converted from the file {tok_convert_s:.1f}s, read from the cache {tok_cached_s:.2f}s")
    for k, v in decode.items():
        print(f"  {k:22s} {v:8.1f} tokens/s")
    print(path)


if __name__ == "__main__":
    main()
