"""Word embeddings from scratch in PyTorch: word2vec (skip-gram and CBOW with negative sampling)
and GloVe.

word2vec (Mikolov et al. 2013, arXiv:1301.3781 and arXiv:1310.4546): every word has an "input"
vector v_w and an "output" vector u_w. Skip-gram predicts each context word c from the centre
word w; CBOW predicts w from the mean of its context vectors. Instead of a softmax over the whole
vocabulary, negative sampling makes it binary: push sigma(u_c . v_w) to 1 for the observed pair and
sigma(u_n . v_w) to 0 for k "noise" words drawn from the unigram distribution raised to 3/4.
Frequent words ("the", "of") are randomly dropped (subsampling), which both speeds training and
improves the vectors of rarer words.

GloVe (Pennington, Socher & Manning 2014): count co-occurrences X_ij within a window (weighted
1/distance), then fit w_i . w~_j + b_i + b~_j = log X_ij by weighted least squares, with weight
f(X) = min(1, (X / x_max)^alpha) so rare pairs count less and frequent ones do not dominate.
The final vector of a word is w + w~.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def tokenize(text: str) -> list[list[str]]:
    """Lower-cased word tokens, one list per line (a line is a document in the Lee corpus)."""
    return [re.findall(r"[a-z]+(?:'[a-z]+)?", line.lower()) for line in text.splitlines() if line.strip()]


@dataclass
class Vocab:
    words: list[str]
    counts: np.ndarray

    @classmethod
    def build(cls, docs: list[list[str]], min_count: int = 3) -> "Vocab":
        c = Counter(w for d in docs for w in d)
        kept = sorted((w for w, n in c.items() if n >= min_count), key=lambda w: (-c[w], w))
        return cls(kept, np.array([c[w] for w in kept], dtype=np.float64))

    def __post_init__(self):
        self.index = {w: i for i, w in enumerate(self.words)}

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, docs: list[list[str]]) -> list[np.ndarray]:
        return [np.array([self.index[w] for w in d if w in self.index], dtype=np.int64) for d in docs]


def subsample(docs: list[np.ndarray], counts: np.ndarray, t: float, rng: np.random.Generator) -> list[np.ndarray]:
    """Keep word w with probability min(1, sqrt(t / f(w)) + t / f(w)) (the word2vec C code's rule)."""
    if t <= 0:
        return docs
    f = counts / counts.sum()
    keep = np.minimum(1.0, np.sqrt(t / f) + t / f)
    return [d[rng.random(len(d)) < keep[d]] for d in docs]


def skipgram_pairs(docs: list[np.ndarray], window: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(centre, context) pairs; each centre uses a random window size in 1..window, as word2vec does,
    which weights near words more."""
    centres, contexts = [], []
    for d in docs:
        n = len(d)
        if n < 2:
            continue
        spans = rng.integers(1, window + 1, size=n)
        for offset in range(1, window + 1):
            ok = spans[: n - offset] >= offset           # pairs (i, i + offset) within word i's span
            centres += [d[: n - offset][ok], d[offset:][spans[offset:] >= offset]]
            contexts += [d[offset:][ok], d[: n - offset][spans[offset:] >= offset]]
    return np.concatenate(centres), np.concatenate(contexts)


def cbow_examples(docs: list[np.ndarray], window: int, pad: int) -> tuple[np.ndarray, np.ndarray]:
    """(context ids (N, 2 * window) padded with `pad`, centre id) for CBOW."""
    # CBOW: the context predicts the centre word (sec. 3.1), @mikolov2013efficient
    from numpy.lib.stride_tricks import sliding_window_view

    ctx, centre = [np.empty((0, 2 * window), dtype=np.int64)], [np.empty(0, dtype=np.int64)]
    for d in docs:
        if len(d) == 0:
            continue
        padded = np.concatenate([np.full(window, pad), d, np.full(window, pad)])
        spans = sliding_window_view(padded, 2 * window + 1)                  # (n, 2w + 1): word i at column w
        around = np.delete(spans, window, axis=1)                             # (n, 2w): the words either side
        keep = (around != pad).any(1)                                         # a word alone in its document has no context
        ctx.append(around[keep])
        centre.append(d[keep])
    return np.concatenate(ctx).astype(np.int64, copy=False), np.concatenate(centre).astype(np.int64, copy=False)


class Word2Vec(nn.Module):
    """Input and output embeddings; `mode` is "skipgram" or "cbow"."""

    def __init__(self, vocab_size: int, dim: int, mode: str = "skipgram"):
        super().__init__()
        self.mode = mode
        # sparse gradients: a batch touches a few hundred rows, so SGD updates those instead of the whole table
        self.inp = nn.Embedding(vocab_size + 1, dim, padding_idx=vocab_size, sparse=True)   # last row: CBOW padding
        self.out = nn.Embedding(vocab_size, dim, sparse=True)
        nn.init.uniform_(self.inp.weight, -0.5 / dim, 0.5 / dim)              # word2vec's initialisation
        with torch.no_grad():
            self.inp.weight[vocab_size].zero_()
        nn.init.zeros_(self.out.weight)

    def loss(self, x: torch.Tensor, target: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
        """Negative-sampling loss: -log sigma(u_t . h) - sum_k log sigma(-u_k . h)."""
        # negative sampling, eq. (4), @mikolov2013distributed
        if self.mode == "cbow":
            mask = (x != self.inp.padding_idx).float().unsqueeze(-1)
            h = (self.inp(x) * mask).sum(1) / mask.sum(1).clamp_min(1)        # mean of the context vectors
        else:
            h = self.inp(x)                                                   # the centre word's vector
        pos = (self.out(target) * h).sum(-1)                                  # (B,)
        neg = torch.bmm(self.out(negatives), h.unsqueeze(-1)).squeeze(-1)     # (B, k)
        return -(F.logsigmoid(pos) + F.logsigmoid(-neg).sum(-1)).mean()

    def vectors(self) -> np.ndarray:
        return self.inp.weight[:-1].detach().numpy()


def train_word2vec(docs: list[np.ndarray], vocab: Vocab, mode: str = "skipgram", dim: int = 100, window: int = 5,
                   negatives: int = 5, epochs: int = 5, lr: float = 0.025, batch_size: int = 1024, sample: float = 1e-3,
                   seed: int = 0, log=None) -> np.ndarray:
    """Train with plain SGD and a linearly decaying learning rate (as the original tool)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = Word2Vec(len(vocab), dim, mode)
    noise = torch.tensor(vocab.counts ** 0.75 / np.sum(vocab.counts ** 0.75))   # unigram^(3/4)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    batches_per_epoch = []
    for epoch in range(epochs):
        kept = subsample(docs, vocab.counts, sample, rng)
        if mode == "skipgram":
            x, y = skipgram_pairs(kept, window, rng)
        else:
            x, y = cbow_examples(kept, window, pad=len(vocab))
        order = rng.permutation(len(y))
        x, y = torch.from_numpy(x[order]), torch.from_numpy(y[order])
        n_batches = -(-len(y) // batch_size)
        batches_per_epoch.append(n_batches)
        total = 0.0
        for b in range(n_batches):
            progress = (epoch + b / n_batches) / epochs
            for g in opt.param_groups:
                g["lr"] = lr * max(1e-4, 1 - progress)
            xb, yb = x[b * batch_size:(b + 1) * batch_size], y[b * batch_size:(b + 1) * batch_size]
            neg = torch.multinomial(noise, len(yb) * negatives, replacement=True).view(len(yb), negatives)
            loss = model.loss(xb, yb, neg)
            opt.zero_grad(set_to_none=True)
            # Sum over the batch instead of the mean, so each pair gets the per-pair SGD step
            # that word2vec uses (the learning rate is per example, not per batch).
            (loss * len(yb)).backward()
            opt.step()
            total += loss.item()
        if log:
            log({f"{mode}/loss": total / n_batches}, epoch + 1)
    return model.vectors()


def cooccurrence(docs: list[np.ndarray], vocab_size: int, window: int = 5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Symmetric co-occurrence counts, each pair at distance d adding 1/d. Returns (rows, cols, values)."""
    counts: Counter = Counter()
    for d in docs:
        for offset in range(1, window + 1):
            a, b = d[:-offset], d[offset:]
            for i, j in zip(a.tolist(), b.tolist()):
                counts[(i, j)] += 1.0 / offset
                counts[(j, i)] += 1.0 / offset
    keys = np.array(list(counts.keys()), dtype=np.int64)
    return keys[:, 0], keys[:, 1], np.array(list(counts.values()))


def train_glove(docs: list[np.ndarray], vocab: Vocab, dim: int = 100, window: int = 5, epochs: int = 30, lr: float = 0.05,
                x_max: float = 100.0, alpha: float = 0.75, batch_size: int = 4096, seed: int = 0, log=None) -> np.ndarray:
    """GloVe's weighted least squares, minimised with AdaGrad as in the paper."""
    # the weighted least-squares cost, eq. (8), with f(x) = (x / x_max)^alpha, eq. (9), @pennington2014glove
    torch.manual_seed(seed)
    rows, cols, vals = cooccurrence(docs, len(vocab), window)
    i, j, X = torch.from_numpy(rows), torch.from_numpy(cols), torch.from_numpy(vals).float()
    weight = torch.clamp((X / x_max) ** alpha, max=1.0)
    logx = X.log()
    V = len(vocab)
    W, Wc = nn.Embedding(V, dim), nn.Embedding(V, dim)
    b, bc = nn.Embedding(V, 1), nn.Embedding(V, 1)
    for e in (W, Wc):
        nn.init.uniform_(e.weight, -0.5 / dim, 0.5 / dim)
    for e in (b, bc):
        nn.init.zeros_(e.weight)
    params = [p for m in (W, Wc, b, bc) for p in m.parameters()]
    opt = torch.optim.Adagrad(params, lr=lr)
    g = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        order = torch.randperm(len(X), generator=g)
        total = 0.0
        for s in range(0, len(X), batch_size):
            idx = order[s: s + batch_size]
            pred = (W(i[idx]) * Wc(j[idx])).sum(-1) + b(i[idx]).squeeze(-1) + bc(j[idx]).squeeze(-1)
            loss = (weight[idx] * (pred - logx[idx]) ** 2).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item()
        if log:
            log({"glove/loss": total / len(X)}, epoch + 1)
    return (W.weight + Wc.weight).detach().numpy()


# --- evaluation ------------------------------------------------------------------------------------


def normalise(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def nearest(vectors: np.ndarray, vocab: Vocab, word: str, k: int = 5) -> list[tuple[str, float]]:
    v = normalise(vectors)
    sims = v @ v[vocab.index[word]]
    order = np.argsort(-sims)
    return [(vocab.words[o], float(sims[o])) for o in order if vocab.words[o] != word][:k]


def analogy(vectors: np.ndarray, vocab: Vocab, a: str, b: str, c: str, k: int = 1) -> list[str]:
    """a is to b as c is to ?: the word nearest to v_b - v_a + v_c (3CosAdd), excluding a, b, c."""
    v = normalise(vectors)
    q = v[vocab.index[b]] - v[vocab.index[a]] + v[vocab.index[c]]
    sims = v @ q
    return [vocab.words[o] for o in np.argsort(-sims) if vocab.words[o] not in (a, b, c)][:k]


def heldout_similarity_auc(vectors: np.ndarray, pos: np.ndarray, neg: np.ndarray) -> float:
    """A similarity benchmark built from the corpus: word pairs that co-occur (within a window) in
    held-out documents should be more similar than random pairs. Returns the ROC-AUC of cosine
    similarity separating the two sets (0.5 = chance)."""
    from dlroadmap.evaluate.metrics import roc_auc_score

    v = normalise(vectors)
    s_pos = np.sum(v[pos[:, 0]] * v[pos[:, 1]], axis=1)
    s_neg = np.sum(v[neg[:, 0]] * v[neg[:, 1]], axis=1)
    return roc_auc_score(np.r_[np.ones(len(s_pos)), np.zeros(len(s_neg))], np.r_[s_pos, s_neg])


def heldout_pairs(docs: list[np.ndarray], counts: np.ndarray, window: int = 2, n: int = 5000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Positive pairs: distinct words within `window` of each other in held-out docs (both not among
    the 50 most frequent words, which carry little meaning). Negative pairs: random words drawn by frequency."""
    rng = np.random.default_rng(seed)
    pos = set()
    for d in docs:
        for offset in range(1, window + 1):
            for a, b in zip(d[:-offset].tolist(), d[offset:].tolist()):
                if a != b and a >= 50 and b >= 50:
                    pos.add((min(a, b), max(a, b)))
    pos = np.array(sorted(pos), dtype=np.int64)
    pos = pos[rng.permutation(len(pos))[:n]]
    p = counts / counts.sum()
    p[:50] = 0
    p /= p.sum()
    neg = rng.choice(len(counts), size=(len(pos), 2), p=p)
    return pos, neg[neg[:, 0] != neg[:, 1]]


def analogy_questions(vocab: Vocab) -> list[tuple[str, str, str, str]]:
    """Google's analogy questions (Mikolov et al. 2013, shipped in gensim's test data), kept only
    when all four words are in the vocabulary."""
    from gensim.test.utils import datapath

    out = []
    with open(datapath("questions-words.txt"), encoding="utf-8") as f:
        for line in f:
            if line.startswith(":"):
                continue
            words = line.lower().split()
            if len(words) == 4 and all(w in vocab.index for w in words):
                out.append(tuple(words))
    return out


def analogy_accuracy(vectors: np.ndarray, vocab: Vocab, questions: list[tuple[str, str, str, str]]) -> float:
    """Fraction of a:b :: c:d answered exactly (3CosAdd, a, b, c excluded)."""
    if not questions:
        return float("nan")
    return float(np.mean([analogy(vectors, vocab, a, b, c)[0] == d for a, b, c, d in questions]))
