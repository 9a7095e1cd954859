"""Phase 3, NLP, "Transformers (BERT, GPT, etc.)": a character-level GPT (models/gpt.py).

Trained through the Trainer on the embedded Lee news corpus (quick mode) or tiny Shakespeare
(full mode, DLR_DATA_DIR), with AdamW, linear warm-up and cosine decay. Reported: validation
loss (nats per character) against the unigram baseline (the entropy of the character
frequencies: what a model that ignores context scores), and samples at two temperatures with
top-k filtering.
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import matplotlib.pyplot as plt
import torch
from pydantic import Field

from dlroadmap.data import text_corpus
from dlroadmap.data.download import load_tinyshakespeare
from dlroadmap.data.text import WindowLoader, split_text
from dlroadmap.experiments.base import Experiment, ExperimentConfig, Result
from dlroadmap.io import write_json, write_text
from dlroadmap.models.gpt import GPT, CharTokenizer, GPTConfig
from dlroadmap.train import ModelCheckpoint, Tracker, Trainer, seed_everything
from dlroadmap.train.checkpoint import save_weights


class Config(ExperimentConfig):
    corpus: Literal["lee", "tinyshakespeare"] = Field("tinyshakespeare", description="lee is embedded; tinyshakespeare needs DLR_DATA_DIR")
    n_layer: int = Field(4, ge=1, le=48)
    n_head: int = Field(4, ge=1, le=64)
    n_embd: int = Field(128, ge=8, le=4096)
    block_size: int = Field(64, ge=8, le=4096)
    batch_size: int = Field(12, ge=1, le=4096)
    iters: int = Field(1600, ge=10, le=10_000_000)
    lr: float = Field(2e-3, gt=0, le=1)
    warmup: int = Field(100, ge=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    eval_batches: int = Field(50, ge=1, le=100_000)
    temperature: float = Field(0.8, gt=0, le=10)
    top_k: int = Field(20, ge=1, le=100_000)

    QUICK: ClassVar[dict] = {"corpus": "lee", "iters": 500, "batch_size": 16, "warmup": 50, "eval_batches": 20}


def load_text(corpus: str) -> str:
    return text_corpus() if corpus == "lee" else load_tinyshakespeare()


def lr_schedule(warmup: int, total: int, floor: float = 0.1):
    """Multiplier for the base LR: linear warm-up, then cosine decay to `floor` (nanoGPT's schedule)."""
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return floor + 0.5 * (1 + math.cos(math.pi * progress)) * (1 - floor)
    return f


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


def run_gpt(config: Config, tracker: Tracker) -> Result:
    seed_everything(config.seed)
    text = load_text(config.corpus)
    tok = CharTokenizer(text)
    ids = torch.tensor(tok.encode(text), dtype=torch.long)
    train_ids, val_ids = split_text(ids)
    cfg = GPTConfig(vocab_size=tok.vocab_size, block_size=config.block_size, n_layer=config.n_layer, n_head=config.n_head,
                    n_embd=config.n_embd, dropout=config.dropout)
    model = GPT(cfg)
    opt = model.configure_optimizer(config.lr)
    steps_per_epoch = min(config.iters, 250)
    epochs = math.ceil(config.iters / steps_per_epoch)
    train = WindowLoader(train_ids, config.block_size, config.batch_size, steps_per_epoch, seed=config.seed)
    val = WindowLoader(val_ids, config.block_size, 64, config.eval_batches, seed=config.seed + 1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_schedule(config.warmup, epochs * steps_per_epoch))
    trainer = Trainer(model, opt, max_epochs=epochs, scheduler=sched, scheduler_interval="step", grad_clip=1.0,
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
    save_weights(model.state_dict(), tracker.run_dir / "model.safetensors")
    write_json(tracker.run_dir / "model_config.json", {"family": "gpt", **cfg.to_dict(), "chars": tok.chars})
    fig, ax = plt.subplots(figsize=(6, 3.8))
    xs = [h["epoch"] * steps_per_epoch for h in history]
    ax.plot(xs, [h["train_loss"] for h in history], "o-", label="train (mean over the epoch)")
    ax.plot(xs, [h["val_loss"] for h in history], "o-", label="validation")
    ax.axhline(baseline, color="k", ls="--", lw=0.8, label=f"unigram baseline {baseline:.2f}")
    ax.set_xlabel("iteration")
    ax.set_ylabel("cross-entropy (nats / char)")
    ax.set_title(f"char-level GPT on {config.corpus}: {model.num_params() / 1e6:.2f}M parameters", fontsize=9)
    ax.legend(fontsize=7)
    plot = tracker.log_figure(fig, "gpt_loss")
    metrics = {"val_loss": val_loss, "unigram_entropy": baseline, "improvement_over_unigram": baseline - val_loss,
               "parameters": float(model.num_params()), "vocab_size": float(tok.vocab_size)}
    metrics.update(bpe_check(text))
    first = samples[config.temperature][:160].replace("\n", " / ")
    return Result(metrics=metrics, artifacts={"gpt_loss": str(plot), "samples": str(sample_path)}, history=history,
                  notes=f"sample (temperature {config.temperature}, top-k {config.top_k}): {first}")


gpt = Experiment(Config, run_gpt)
