"""Phase 3, Attention Mechanism: experiments for models/attention.py and models/transformer.py.

  p3.attention.self         scaled dot-product attention (padding and causal masks) and multi-head
                            attention written out = F.scaled_dot_product_attention and
                            nn.MultiheadAttention (values and gradients); attention maps
  p3.attention.transformer  encoder/decoder blocks (pre- and post-norm) = nn.TransformerEncoderLayer /
                            DecoderLayer; positional encodings; a small encoder-decoder trained
                            through the Trainer to reverse sequences, scored by exact match
"""

from __future__ import annotations

from typing import ClassVar

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from dlroadmap.data import TensorLoader
from dlroadmap.experiments.base import Experiment, ExperimentConfig, Result
from dlroadmap.models.sequence.attention import MultiHeadAttention, scaled_dot_product_attention
from dlroadmap.models.sequence.transformer import DecoderBlock, EncoderBlock, Seq2SeqTransformer, sinusoidal_encoding
from dlroadmap.train import Tracker, Trainer, seed_everything


class Config(ExperimentConfig):
    checks: int = Field(30, ge=1, le=10_000, description="random shapes/masks compared with torch")
    seq_len: int = Field(10, ge=2, le=256, description="length of the sequences to reverse")
    vocab: int = Field(10, ge=2, le=10_000, description="distinct tokens (digits)")
    train_size: int = Field(40_000, ge=100, le=10_000_000)
    epochs: int = Field(4, ge=1, le=1000)
    d_model: int = Field(64, ge=8, le=4096)
    layers: int = Field(2, ge=1, le=48)
    lr: float = Field(3e-3, gt=0, le=1)

    QUICK: ClassVar[dict] = {"seq_len": 8, "train_size": 20_000, "epochs": 3}


def _attention_checks(n: int, seed: int) -> tuple[float, float]:
    g = torch.Generator().manual_seed(seed)
    worst_sdpa = worst_mha = 0.0
    for i in range(n):
        L, S, d = (int(torch.randint(2, 9, (1,), generator=g)) for _ in range(3))
        q = torch.randn(2, 2, L, d, dtype=torch.float64, generator=g, requires_grad=True)
        k = torch.randn(2, 2, S, d, dtype=torch.float64, generator=g, requires_grad=True)
        v = torch.randn(2, 2, S, d, dtype=torch.float64, generator=g, requires_grad=True)
        kw = {"is_causal": True} if i % 3 == 0 and L == S else {}
        if i % 3 == 1:
            m = torch.rand(L, S, generator=g) > 0.4
            m[:, 0] = True
            kw = {"attn_mask": m}
        a, b = scaled_dot_product_attention(q, k, v, **kw), F.scaled_dot_product_attention(q, k, v, **kw)
        up = torch.randn(b.shape, dtype=torch.float64, generator=g)
        ga, gb = torch.autograd.grad(a, (q, k, v), up), torch.autograd.grad(b, (q, k, v), up)
        worst_sdpa = max(worst_sdpa, (a - b).abs().max().item(), *((x - y).abs().max().item() for x, y in zip(ga, gb)))
        ref = nn.MultiheadAttention(8, 2, batch_first=True).double()
        ours = MultiHeadAttention(8, 2).double()
        ours.load_state_dict(ref.state_dict())
        x = torch.randn(2, L, 8, dtype=torch.float64, generator=g, requires_grad=True)
        pad = torch.zeros(2, L, dtype=torch.bool)
        pad[1, L - 1] = L > 1
        (oa, wa), (ob, wb) = ours(x, x, x, key_padding_mask=pad), ref(x, x, x, key_padding_mask=pad)
        worst_mha = max(worst_mha, (oa - ob).abs().max().item(), (wa - wb).abs().max().item(),
                        (torch.autograd.grad(oa.sum(), x)[0] - torch.autograd.grad(ob.sum(), x)[0]).abs().max().item())
    return worst_sdpa, worst_mha


def run_self(config: Config, tracker: Tracker) -> Result:
    worst_sdpa, worst_mha = _attention_checks(config.checks, config.seed)
    # Attention as a soft lookup: one query that matches key 3 best; sharper with a larger scale.
    torch.manual_seed(config.seed)
    keys = torch.randn(8, 16)
    query = keys[3:4] + 0.3 * torch.randn(1, 16)
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.4))
    for scale in (0.05, 0.25, 1.0):
        _, w = scaled_dot_product_attention(query, keys, keys, scale=scale, return_weights=True)
        axes[0].plot(w[0].numpy(), "o-", label=f"scale {scale}")
    axes[0].set_title("a soft lookup: weights over 8 keys (query ~ key 3)", fontsize=9)
    axes[0].legend(fontsize=7)
    x = torch.randn(1, 8, 16)
    pad = torch.ones(8, dtype=torch.bool)
    pad[6:] = False
    for ax, (title, kw) in zip(axes[1:], (("self-attention, no mask", {}), ("causal mask", {"is_causal": True}),
                                          ("padding mask (last 2 keys are padding)", {"attn_mask": pad}))):
        _, w = scaled_dot_product_attention(x, x, x, return_weights=True, **kw)
        ax.imshow(w[0].numpy(), cmap="viridis", vmin=0)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("key position")
        ax.set_ylabel("query position")
    fig.tight_layout()
    plot = tracker.log_figure(fig, "attention_maps")
    return Result(metrics={"sdpa_max_abs_diff_vs_torch": worst_sdpa, "mha_max_abs_diff_vs_torch": worst_mha},
                  artifacts={"attention_maps": str(plot)})


# --- p3.attention.transformer ------------------------------------------------------------------------


def reversal_data(n: int, length: int, vocab: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """src: random digits; target: the same digits reversed, fed to the decoder after a BOS token."""
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(0, vocab, (n, length), generator=g)
    tgt = src.flip(1)
    bos = torch.full((n, 1), vocab)
    return src, torch.cat([bos, tgt[:, :-1]], dim=1), tgt


def _block_checks(seed: int) -> float:
    torch.manual_seed(seed)
    worst = 0.0
    for norm_first in (False, True):
        ref_e = nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, batch_first=True, norm_first=norm_first).double().eval()
        ref_d = nn.TransformerDecoderLayer(16, 4, 32, dropout=0.0, batch_first=True, norm_first=norm_first).double().eval()
        enc, dec = EncoderBlock(16, 4, 32, 0.0, norm_first).double().eval(), DecoderBlock(16, 4, 32, 0.0, norm_first).double().eval()
        enc.load_state_dict(ref_e.state_dict())
        dec.load_state_dict(ref_d.state_dict())
        x, mem = torch.randn(2, 6, 16, dtype=torch.float64), torch.randn(2, 9, 16, dtype=torch.float64)
        future = nn.Transformer.generate_square_subsequent_mask(6, dtype=torch.bool)
        worst = max(worst, (enc(x) - ref_e(x)).abs().max().item(), (dec(x, mem, tgt_mask=future) - ref_d(x, mem, tgt_mask=future)).abs().max().item())
    return worst


def run_transformer(config: Config, tracker: Tracker) -> Result:
    seed_everything(config.seed)
    src, tgt_in, tgt = reversal_data(config.train_size, config.seq_len, config.vocab, config.seed)
    v_src, v_in, v_tgt = reversal_data(1000, config.seq_len, config.vocab, config.seed + 1)
    model = Seq2SeqTransformer(config.vocab + 1, d_model=config.d_model, nhead=4, layers=config.layers,
                               dim_feedforward=2 * config.d_model, max_len=config.seq_len + 1)

    def step(m, batch):
        s, t_in, t_out = batch
        logits = m(s, t_in)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), t_out.reshape(-1)), logits, t_out

    def token_accuracy(logits, target):
        return float((logits.argmax(-1) == target).float().mean())

    loader = TensorLoader(src, tgt_in, tgt, batch_size=64, shuffle=True, seed=config.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, config.lr, total_steps=config.epochs * len(loader), pct_start=0.2)
    trainer = Trainer(model, opt, max_epochs=config.epochs, scheduler=sched, scheduler_interval="step", grad_clip=1.0,
                      device=config.device, precision=config.precision, seed=config.seed, step=step,
                      metrics={"token_acc": token_accuracy}, tracker=tracker, description="reverse")
    history = trainer.fit(loader, TensorLoader(v_src, v_in, v_tgt, batch_size=500))
    model.cpu().eval()                           # trained on the Trainer's device (CUDA when present); judged here on the CPU
    pred = model.generate(v_src, bos=config.vocab, length=config.seq_len)   # free-running, no teacher forcing
    exact = float((pred == v_tgt).all(dim=1).float().mean())
    # Cross-attention of the last decoder block on one example: reversal reads the source backwards.
    with torch.no_grad():
        model(v_src[:1], v_in[:1])
    cross = model.decoder[-1].last_cross_attention[0].numpy()
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    axes[0].plot([h["epoch"] for h in history], [h["train_loss"] for h in history], "o-", label="train")
    axes[0].plot([h["epoch"] for h in history], [h["val_loss"] for h in history], "o-", label="validation")
    axes[0].set_yscale("log")
    axes[0].set_title(f"reversing length-{config.seq_len} sequences: exact match {exact:.3f}", fontsize=9)
    axes[0].legend(fontsize=7)
    axes[1].imshow(cross, cmap="viridis")
    axes[1].set_title("cross-attention (last decoder block): an anti-diagonal", fontsize=9)
    axes[1].set_xlabel("source position")
    axes[1].set_ylabel("output position")
    axes[2].imshow(sinusoidal_encoding(64, config.d_model).numpy().T, aspect="auto", cmap="RdBu")
    axes[2].set_title("sinusoidal positional encoding (feature x position)", fontsize=9)
    axes[2].set_xlabel("position")
    fig.tight_layout()
    plot = tracker.log_figure(fig, "transformer")
    anti = float(np.mean(cross.argmax(axis=1) == np.arange(config.seq_len)[::-1]))
    metrics = {"block_max_abs_diff_vs_torch": _block_checks(config.seed), "exact_match": exact,
               "token_accuracy": history[-1]["val_token_acc"], "cross_attention_on_mirror_position": anti,
               "parameters": float(sum(p.numel() for p in model.parameters()))}
    return Result(metrics=metrics, artifacts={"transformer": str(plot)}, history=history)


self = Experiment(Config, run_self)  # node p3.attention.self ("Self-attention mechanism")
transformer = Experiment(Config, run_transformer)
