"""Captions for MNIST digits: several templates per class, some held out of training (CLIP's zero-shot
test asks in words the model never saw together), and a word-level tokenizer built from them.

Every held-out template uses only words that training captions use, in a combination training never
shows ("a handwritten seven" where training has "a handwritten 7" and "the digit seven"), so zero-shot
accuracy measures whether the text encoder composes what it learned, not whether it knows a new word.
"""

from __future__ import annotations

import torch

NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]

# {w}: the number as a word, {d}: as a numeral. Each form appears in several training templates.
TRAIN_TEMPLATES = [
    "a photo of the number {w}",
    "a handwritten {d}",
    "the digit {w}",
    "a picture of a {w}",
    "an image of the number {d}",
    "a {w} written by hand",
    "this is a {d}",
    "a drawing of the digit {w}",
]
HELD_OUT_TEMPLATES = [
    "a handwritten {w}",
    "a photo of the digit {d}",
    "an image of a {w}",
    "the number {d}",
    "this is a {w} written by hand",
]


def caption(template: str, label: int) -> str:
    return template.format(w=NUMBER_WORDS[label], d=str(label))


class WordTokenizer:
    """Words to ids: 0 = padding, 1 = start, 2 = end, then the vocabulary in order of first appearance.
    `encode` gives (N, L) ids, each row <start> words <end> <pad>..., and the end token's position (N,)."""

    PAD, BOS, EOS = 0, 1, 2

    def __init__(self, texts: list[str]):
        self.vocab = ["<pad>", "<start>", "<end>"]
        for t in texts:
            self.vocab += [w for w in t.split() if w not in self.vocab]
        self.index = {w: i for i, w in enumerate(self.vocab)}

    def __len__(self) -> int:
        return len(self.vocab)

    def encode(self, texts: list[str], length: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        rows = []
        for t in texts:
            unknown = [w for w in t.split() if w not in self.index]
            if unknown:
                raise ValueError(f"words not in the vocabulary: {unknown}; captions may only use words from the tokenizer's texts")
            rows.append([self.BOS] + [self.index[w] for w in t.split()] + [self.EOS])
        length = length or max(map(len, rows))
        if max(map(len, rows)) > length:
            raise ValueError(f"a caption has {max(map(len, rows))} tokens with start and end; the encoder reads at most {length}")
        ids = torch.full((len(rows), length), self.PAD, dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
        return ids, torch.tensor([len(r) - 1 for r in rows])


def caption_table(tokenizer: WordTokenizer, templates: list[str], length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every template's caption of every digit, tokenised: ids (T, 10, L) and end positions (T, 10)."""
    ids, ends = tokenizer.encode([caption(t, c) for t in templates for c in range(10)], length)
    return ids.view(len(templates), 10, length), ends.view(len(templates), 10)


class InterleavedCaptions:
    """Flamingo's interleaved sequences: "<image> this is a seven . <image> this is a 3 . ...". Each sequence
    writes numbers one way, as words or as numerals, chosen at random: the in-context examples are how a
    model can tell which, so a 0-shot query ("<image> this is a") is ambiguous and a 2-shot one is not."""

    STYLES = ("word", "numeral")
    PER_IMAGE = 6       # <image> this is a LABEL .

    def __init__(self):
        self.vocab = ["<pad>", "<image>", "this", "is", "a", "."] + NUMBER_WORDS + [str(c) for c in range(10)]
        self.index = {w: i for i, w in enumerate(self.vocab)}
        self.image = self.index["<image>"]
        self.first_label = self.index["zero"]     # the 10 number words, then the 10 numerals

    def __len__(self) -> int:
        return len(self.vocab)

    def label_token(self, labels: torch.Tensor, styles: torch.Tensor) -> torch.Tensor:
        """The token of digit `labels` written in `styles` (0: word, 1: numeral); same shapes."""
        return self.first_label + labels + 10 * styles

    def style_of(self, tokens: torch.Tensor) -> torch.Tensor:
        """0 for a number word, 1 for a numeral, -1 for any other token."""
        offset = tokens - self.first_label
        return torch.where((offset >= 0) & (offset < 20), offset // 10, -1)

    def captions(self, labels: torch.Tensor, styles: torch.Tensor, query: bool = False) -> torch.Tensor:
        """labels (B, M), styles (B,) -> ids (B, 6M): M captioned images; with `query` the last caption stops
        before its label (B, 6M - 2), so the next token is the answer."""
        B, M = labels.shape
        head = torch.tensor([self.image, self.index["this"], self.index["is"], self.index["a"]])
        ids = torch.empty(B, M, self.PER_IMAGE, dtype=torch.long)
        ids[:, :, :4] = head
        ids[:, :, 4] = self.label_token(labels, styles[:, None].expand(B, M))
        ids[:, :, 5] = self.index["."]
        ids = ids.reshape(B, M * self.PER_IMAGE)
        return ids[:, :-2] if query else ids
