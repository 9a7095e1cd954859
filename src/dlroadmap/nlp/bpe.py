"""Byte-pair encoding (Sennrich, Haddow & Birch 2016, arXiv:1508.07909), trained from scratch.

Training: split the text into words (here: runs of word characters, or runs of punctuation), start
from single characters, and repeatedly merge the most frequent adjacent pair of symbols into a
new symbol, until the vocabulary reaches its size (or no pair occurs min_frequency times).
Ties between equally frequent pairs go to the pair with the smaller ids (symbols created earlier,
or alphabetically first characters): the rule of Hugging Face `tokenizers`' BpeTrainer, so both
learn the same merges (tests/test_bpe.py compares them).
Encoding a word replays the merges in the order they were learned.
"""

from __future__ import annotations

import heapq
import json
import re
from collections import Counter, defaultdict
from pathlib import Path

WORD_RE = r"\w+|[^\w\s]+"          # the same split as tokenizers.pre_tokenizers.Whitespace (drops spaces)
KEEP_SPACES_RE = r" ?\w+| ?[^\w\s]+|\s+"   # GPT-2 style: a word keeps its leading space, so decode(encode(t)) == t


def pre_tokenize(text: str, pattern: str = WORD_RE) -> list[str]:
    return re.findall(pattern, text)


class BPE:
    def __init__(self, vocab: dict[str, int], merges: list[tuple[str, str]], unk_token: str | None = "[UNK]", pattern: str = WORD_RE):
        self.vocab, self.merges, self.unk_token, self.pattern = vocab, merges, unk_token, pattern
        self.ranks = {pair: i for i, pair in enumerate(merges)}
        self.inverse = {i: t for t, i in vocab.items()}

    # --- training ----------------------------------------------------------------------------------
    @classmethod
    def train(cls, texts, vocab_size: int, min_frequency: int = 2, special_tokens: tuple[str, ...] = ("[UNK]",),
              pattern: str = WORD_RE) -> "BPE":
        # merge the most frequent pair, repeatedly (Algorithm 1), @sennrich2016bpe
        word_counts: Counter = Counter()
        for t in texts:
            word_counts.update(pre_tokenize(t, pattern))
        vocab: dict[str, int] = {s: i for i, s in enumerate(special_tokens)}
        for ch in sorted({c for w in word_counts for c in w}):      # the alphabet, by code point
            vocab.setdefault(ch, len(vocab))
        tokens = list(vocab)
        words = [[vocab[c] for c in w] for w in word_counts]         # each word as a list of symbol ids
        counts = list(word_counts.values())
        pair_counts: dict[tuple[int, int], int] = defaultdict(int)
        where: dict[tuple[int, int], set[int]] = defaultdict(set)   # pair -> words containing it
        for wi, (w, n) in enumerate(zip(words, counts)):
            for a, b in zip(w, w[1:]):
                pair_counts[(a, b)] += n
                where[(a, b)].add(wi)
        # A max-heap on (count, then the smaller pair); stale entries are refreshed when popped.
        heap = [(-c, p) for p, c in pair_counts.items()]
        heapq.heapify(heap)
        merges: list[tuple[str, str]] = []
        while len(vocab) < vocab_size and heap:
            neg, pair = heapq.heappop(heap)
            current = pair_counts.get(pair, 0)
            if -neg != current:
                if current > 0:
                    heapq.heappush(heap, (-current, pair))
                continue
            if current < min_frequency:
                break
            new_token = tokens[pair[0]] + tokens[pair[1]]
            new_id = vocab.setdefault(new_token, len(vocab))
            if new_id == len(tokens):
                tokens.append(new_token)
            merges.append((tokens[pair[0]], tokens[pair[1]]))
            changed: dict[tuple[int, int], int] = defaultdict(int)
            for wi in list(where[pair]):
                w, n = words[wi], counts[wi]
                i, out = 0, []
                while i < len(w):                                    # merge left to right, non-overlapping
                    if i + 1 < len(w) and (w[i], w[i + 1]) == pair:
                        out.append(new_id)
                        i += 2
                    else:
                        out.append(w[i])
                        i += 1
                for a, b in zip(w, w[1:]):                           # remove the word's old pairs ...
                    changed[(a, b)] -= n
                for a, b in zip(out, out[1:]):                       # ... and add its new ones
                    changed[(a, b)] += n
                    where[(a, b)].add(wi)
                words[wi] = out
            for p, delta in changed.items():
                if delta:
                    pair_counts[p] += delta
                    if delta > 0:
                        heapq.heappush(heap, (-pair_counts[p], p))
            pair_counts.pop(pair, None)
        return cls(vocab, merges, special_tokens[0] if special_tokens else None, pattern)

    # --- encoding --------------------------------------------------------------------------------
    def encode_word(self, word: str) -> list[str]:
        symbols = list(word)
        while len(symbols) > 1:
            ranked = [(self.ranks.get((a, b), float("inf")), i) for i, (a, b) in enumerate(zip(symbols, symbols[1:]))]
            rank, i = min(ranked)
            if rank == float("inf"):
                break
            symbols[i: i + 2] = [symbols[i] + symbols[i + 1]]
        return symbols

    def encode(self, text: str) -> list[int]:
        ids = []
        for word in pre_tokenize(text, self.pattern):
            for s in self.encode_word(word):
                if s in self.vocab:
                    ids.append(self.vocab[s])
                elif self.unk_token is not None:
                    ids.append(self.vocab[self.unk_token])
        return ids

    def tokens(self, text: str) -> list[str]:
        return [self.inverse[i] for i in self.encode(text)]

    def decode(self, ids) -> str:
        """Concatenate the tokens: exact inverse of encode with KEEP_SPACES_RE (spaces are inside tokens)."""
        return "".join(self.inverse[int(i)] for i in ids)

    def save(self, path: str | Path) -> None:
        from dlroadmap.io import write_json

        write_json(path, {"vocab": self.vocab, "merges": [list(m) for m in self.merges], "unk_token": self.unk_token, "pattern": self.pattern})

    @classmethod
    def load(cls, path: str | Path) -> "BPE":
        data = json.loads(Path(path).read_text())
        return cls(data["vocab"], [tuple(m) for m in data["merges"]], data.get("unk_token"), data.get("pattern", WORD_RE))
