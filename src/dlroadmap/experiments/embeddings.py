"""Phase 3, NLP, "Word embeddings (Word2Vec, GloVe)": nlp/embeddings.py against gensim.

Skip-gram, CBOW and GloVe are trained on the embedded Lee news corpus (300 articles, ~60k words)
and compared with gensim's Word2Vec (the C-optimised reference) on the same tokens and settings:
  - quality: a similarity benchmark built from the corpus itself: word pairs that co-occur in
    20% held-out documents must be more similar than random pairs (ROC-AUC of cosine similarity);
  - speed: seconds to train;
plus nearest neighbours, Google's analogy questions (the few whose words occur in this small
corpus: expect low scores from ~60k words), and a 2-D PCA projection of frequent words.
"""

from __future__ import annotations

import time
from typing import ClassVar

import matplotlib.pyplot as plt
import numpy as np
from pydantic import Field

from dlroadmap.data import text_corpus
from dlroadmap.experiments.base import Experiment, ExperimentConfig, Result
from dlroadmap.foundations.linalg import pca
from dlroadmap.nlp import embeddings as E
from dlroadmap.train import Tracker


class Config(ExperimentConfig):
    dim: int = Field(100, ge=2, le=2000)
    window: int = Field(5, ge=1, le=50)
    negatives: int = Field(5, ge=1, le=100)
    epochs: int = Field(50, ge=1, le=1000, description="passes over the corpus (it is small: many passes help)")
    glove_epochs: int = Field(60, ge=1, le=1000)
    min_count: int = Field(3, ge=1, le=1000)
    probe_words: list[str] = Field(["government", "police", "australia", "president", "water"], min_length=1)

    QUICK: ClassVar[dict] = {"epochs": 20, "glove_epochs": 40}


def run_embeddings(config: Config, tracker: Tracker) -> Result:
    import gensim

    docs_words = E.tokenize(text_corpus())
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(len(docs_words))
    n_test = len(docs_words) // 5
    train_words = [docs_words[i] for i in order[n_test:]]
    test_words = [docs_words[i] for i in order[:n_test]]
    vocab = E.Vocab.build(train_words, config.min_count)
    train_ids, test_ids = vocab.encode(train_words), vocab.encode(test_words)
    pos, neg = E.heldout_pairs(test_ids, vocab.counts.copy(), seed=config.seed)
    log = lambda m, s: tracker.log_metrics(m, step=s)  # noqa: E731

    results: dict[str, np.ndarray] = {}
    seconds: dict[str, float] = {}
    for mode in ("skipgram", "cbow"):
        t0 = time.perf_counter()
        results[mode] = E.train_word2vec(train_ids, vocab, mode, config.dim, config.window, config.negatives, config.epochs,
                                         lr=0.025 if mode == "skipgram" else 0.05, seed=config.seed, log=log)
        seconds[mode] = time.perf_counter() - t0
    t0 = time.perf_counter()
    results["glove"] = E.train_glove(train_ids, vocab, config.dim, config.window, config.glove_epochs, seed=config.seed, log=log)
    seconds["glove"] = time.perf_counter() - t0
    # gensim on exactly the same tokens (only in-vocabulary words, same order), same settings.
    sentences = [[vocab.words[i] for i in d] for d in train_ids]
    for sg, name in ((1, "gensim_skipgram"), (0, "gensim_cbow")):
        t0 = time.perf_counter()
        g = gensim.models.Word2Vec(sentences, vector_size=config.dim, window=config.window, negative=config.negatives, sg=sg,
                                   min_count=1, epochs=config.epochs, seed=config.seed + 1, workers=1, sample=1e-3)
        seconds[name] = time.perf_counter() - t0
        results[name] = np.stack([g.wv[w] for w in vocab.words])
    auc = {k: E.heldout_similarity_auc(v, pos, neg) for k, v in results.items()}
    questions = E.analogy_questions(vocab)
    analogies = {k: E.analogy_accuracy(results[k], vocab, questions) for k in ("skipgram", "gensim_skipgram", "glove")}
    probes = [w for w in config.probe_words if w in vocab.index]
    neighbours = {w: [n for n, _ in E.nearest(results["skipgram"], vocab, w, 5)] for w in probes}
    # A 2-D map of the 60 most frequent content words (skip-gram vectors).
    words = list(range(50, 110))
    Z, _, _ = pca(E.normalise(results["skipgram"])[words].astype(np.float64), 2)
    fig, axes = plt.subplots(1, 2, figsize=(14, 5))
    axes[0].scatter(Z[:, 0], Z[:, 1], s=8)
    for (x, y), w in zip(Z, words):
        axes[0].annotate(vocab.words[w], (x, y), fontsize=7)
    axes[0].set_title("skip-gram vectors of frequent words, PCA to 2-D", fontsize=9)
    names = list(auc)
    axes[1].barh(names, [auc[n] for n in names])
    for i, n in enumerate(names):
        axes[1].text(auc[n], i, f" {auc[n]:.3f} ({seconds[n]:.1f}s)", va="center", fontsize=7)
    axes[1].axvline(0.5, color="k", ls="--", lw=0.8)
    axes[1].set_xlim(0.4, 1.0)
    axes[1].set_title(f"held-out co-occurrence benchmark: ROC-AUC ({len(pos)} pairs), train time", fontsize=9)
    fig.tight_layout()
    plot = tracker.log_figure(fig, "embeddings")
    metrics = {f"auc_{k}": v for k, v in auc.items()}
    metrics.update({f"seconds_{k}": v for k, v in seconds.items()})
    metrics["vocab_size"] = float(len(vocab))
    metrics["analogy_questions_in_vocab"] = float(len(questions))
    metrics.update({f"analogy_accuracy_{k}": v for k, v in analogies.items()})
    metrics["skipgram_auc_minus_gensim"] = auc["skipgram"] - auc["gensim_skipgram"]
    metrics["cbow_auc_minus_gensim"] = auc["cbow"] - auc["gensim_cbow"]
    notes = "; ".join(f"{w}: {', '.join(n)}" for w, n in neighbours.items())
    if questions:
        a, b, c, d = questions[0]
        notes += f". Analogy {a}:{b} :: {c}:? -> {E.analogy(results['skipgram'], vocab, a, b, c)[0]} (expected {d})"
    return Result(metrics=metrics, artifacts={"embeddings": str(plot)}, notes=f"nearest neighbours (skip-gram): {notes}")


embeddings = Experiment(Config, run_embeddings)
