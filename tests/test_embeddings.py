"""Word2vec and GloVe pieces: pairs, subsampling, the negative-sampling loss, co-occurrence counts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dlroadmap.nlp import embeddings as E


def test_tokenize_and_vocab():
    docs = E.tokenize("The cat sat.\nThe dog's bone, the CAT!\n")
    assert docs == [["the", "cat", "sat"], ["the", "dog's", "bone", "the", "cat"]]
    v = E.Vocab.build(docs, min_count=2)
    assert v.words == ["the", "cat"] and v.counts.tolist() == [3, 2]
    assert [d.tolist() for d in v.encode(docs)] == [[0, 1], [0, 0, 1]]


def test_skipgram_pairs_are_within_the_window():
    rng = np.random.default_rng(0)
    doc = np.arange(20)
    c, x = E.skipgram_pairs([doc], window=3, rng=rng)
    assert len(c) == len(x) > 0 and np.all(np.abs(c - x) <= 3) and np.all(c != x)
    # Symmetric: every (a, b) comes with (b, a) when both spans allow it; near pairs are the most common.
    dist = np.abs(c - x)
    assert (dist == 1).sum() >= (dist == 3).sum()


def test_cbow_examples_and_subsampling():
    ctx, centre = E.cbow_examples([np.array([4, 5, 6])], window=2, pad=9)
    assert centre.tolist() == [4, 5, 6] and ctx[0].tolist() == [9, 9, 5, 6]
    # a word alone in its document has no context and is skipped; an empty document adds nothing
    ctx, centre = E.cbow_examples([np.array([7]), np.array([], dtype=np.int64), np.array([4, 5])], window=1, pad=9)
    assert centre.tolist() == [4, 5] and ctx.tolist() == [[9, 5], [4, 9]] and ctx.dtype == np.int64
    ctx, centre = E.cbow_examples([np.array([7])], window=2, pad=9)
    assert ctx.shape == (0, 4) and centre.shape == (0,)
    counts = np.array([1e6, 10.0])
    rng = np.random.default_rng(0)
    doc = np.array([0] * 5000 + [1] * 5000)
    kept = E.subsample([doc], counts, 1e-3, rng)[0]
    assert (kept == 1).sum() == 5000 and (kept == 0).sum() < 500   # frequent words are dropped, rare ones kept


def test_negative_sampling_loss_matches_its_formula():
    torch.manual_seed(0)
    m = E.Word2Vec(10, 4)
    torch.nn.init.normal_(m.out.weight)
    torch.nn.init.normal_(m.inp.weight)
    x, t, neg = torch.tensor([1, 2]), torch.tensor([3, 4]), torch.tensor([[5, 6], [7, 8]])
    h, u = m.inp.weight[x], m.out.weight
    expected = -(F.logsigmoid((u[t] * h).sum(-1)) + F.logsigmoid(-(u[neg] @ h.unsqueeze(-1)).squeeze(-1)).sum(-1)).mean()
    torch.testing.assert_close(m.loss(x, t, neg), expected)


def test_cooccurrence_weights_by_distance():
    r, c, v = E.cooccurrence([np.array([0, 1, 2])], 3, window=2)
    got = {(int(a), int(b)): float(x) for a, b, x in zip(r, c, v)}
    assert got == {(0, 1): 1.0, (1, 0): 1.0, (1, 2): 1.0, (2, 1): 1.0, (0, 2): 0.5, (2, 0): 0.5}


def test_similarity_auc_and_analogy_on_planted_vectors():
    v = E.Vocab(["a", "b", "c", "d"], np.ones(4))
    vec = np.array([[1.0, 0, 0], [0.9, 0.1, 0], [0, 1, 0], [0.1, 0.95, 0]])
    assert E.nearest(vec, v, "a", 1)[0][0] == "b"
    assert E.heldout_similarity_auc(vec, np.array([[0, 1], [2, 3]]), np.array([[0, 2], [1, 3]])) == pytest.approx(1.0)
    assert E.analogy(vec, v, "a", "b", "c") == ["d"]
