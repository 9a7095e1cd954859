"""BPE trained from scratch = Hugging Face tokenizers' BpeTrainer: same merges, vocabulary and encodings."""

from __future__ import annotations

import json

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers, trainers

from dlroadmap.data import text_corpus
from dlroadmap.nlp.bpe import BPE, pre_tokenize


def hf_bpe(lines, vocab_size, min_frequency):
    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(lines, trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                                       special_tokens=["[UNK]"], show_progress=False))
    return tok


@pytest.mark.parametrize("vocab_size,min_frequency", [(200, 2), (1500, 2), (800, 5)])
def test_same_merges_vocab_and_encodings_as_hf(vocab_size, min_frequency):
    lines = text_corpus().splitlines()
    ours = BPE.train(lines, vocab_size, min_frequency)
    tok = hf_bpe(lines, vocab_size, min_frequency)
    model = json.loads(tok.to_str())["model"]
    theirs = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    assert ours.merges == theirs
    assert ours.vocab == model["vocab"]
    for line in lines[:40]:
        assert ours.encode(line) == tok.encode(line).ids


def test_pre_tokenizer_matches_hf_whitespace():
    s = "Hello, world! It's 3.14 -- isn't it?"
    assert pre_tokenize(s) == [w for w, _ in pre_tokenizers.Whitespace().pre_tokenize_str(s)]


def test_unknown_characters_save_and_load(tmp_path):
    ours = BPE.train(["aaab aab ab"], 10, 1)
    assert ours.tokens("aab") == ["aab"] and ours.encode("zz") == [ours.vocab["[UNK]"]] * 2
    ours.save(tmp_path / "bpe.json")
    again = BPE.load(tmp_path / "bpe.json")
    assert again.merges == ours.merges and again.encode("ab aaab") == ours.encode("ab aaab")


def test_space_keeping_bpe_round_trips_text():
    from dlroadmap.nlp.bpe import KEEP_SPACES_RE

    lines = text_corpus().splitlines()[:50]
    bpe = BPE.train(lines, 600, 2, special_tokens=(), pattern=KEEP_SPACES_RE)
    for line in lines[:10]:
        assert bpe.decode(bpe.encode(line)) == line
    assert len(bpe.encode(lines[0])) < len(lines[0]) / 2  # subwords: far fewer tokens than characters
