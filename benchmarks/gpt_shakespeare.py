"""Char-level GPT on tiny Shakespeare: ours vs nanoGPT's published CPU configuration.

Peer: nanoGPT's shakespeare_char CPU settings (4 layers, 4 heads, 128-dim, block 64, batch 12,
2,000 iterations, AdamW lr 1e-3 with beta2 0.99, 100 warm-up steps, cosine decay to 1e-4,
weight decay 0.1, grad clip 1.0, no dropout), trained with a plain fp32 PyTorch loop.
Ours: the same model (models/gpt.py) through the Trainer with a higher peak learning rate (2e-3),
fewer iterations, bf16 autocast, and torch's non-deterministic (faster) kernels allowed. Both validation losses are measured the same way (the same
50 batches of 64 windows from the last 10% of the text) in the same run.
Target: validation loss <= 1.88 in less wall time than the peer.

    DLR_DATA_DIR=../shared/data python benchmarks/gpt_shakespeare.py [--ours-iters 1600]
"""

from __future__ import annotations

import argparse
import math
import os
import time

os.environ.setdefault("DLR_PROGRESS", "0")

import torch  # noqa: E402

from dlroadmap.data.download import load_tinyshakespeare  # noqa: E402
from dlroadmap.data.text import WindowLoader, split_text  # noqa: E402
from dlroadmap.errors import DataError  # noqa: E402
from dlroadmap.train.schedules import warmup_cosine  # noqa: E402
from dlroadmap.models.sequence.gpt import GPT, CharTokenizer, GPTConfig  # noqa: E402
from dlroadmap.train import Trainer, seed_everything  # noqa: E402

from common import save  # noqa: E402


def val_loss(model: GPT, val_ids: torch.Tensor, precision: str) -> float:
    model.eval()
    losses = []
    with torch.no_grad(), torch.autocast("cpu", torch.bfloat16, enabled=precision == "bf16"):
        for x, y in WindowLoader(val_ids, 64, 64, 50, seed=123):
            losses.append(model(x, y)[1].item())
    model.train()
    return sum(losses) / len(losses)


def peer(train_ids, val_ids, vocab: int) -> dict:
    """nanoGPT's configuration, a plain fp32 loop (nothing from dlroadmap.train)."""
    torch.manual_seed(1337)
    model = GPT(GPTConfig(vocab_size=vocab))
    opt = model.configure_optimizer(1e-3, weight_decay=0.1, betas=(0.9, 0.99))
    iters, warmup, lr, min_lr = 2000, 100, 1e-3, 1e-4
    t0 = time.perf_counter()
    for it, (x, y) in enumerate(WindowLoader(train_ids, 64, 12, iters, seed=1337)):
        if it < warmup:
            cur = lr * (it + 1) / (warmup + 1)
        else:
            cur = min_lr + 0.5 * (1 + math.cos(math.pi * (it - warmup) / (iters - warmup))) * (lr - min_lr)
        for g in opt.param_groups:
            g["lr"] = cur
        _, loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    seconds = time.perf_counter() - t0
    return {"iters": iters, "batch": 12, "lr": lr, "precision": "fp32", "seconds": seconds, "val_loss": val_loss(model, val_ids, "fp32")}


def ours(train_ids, val_ids, vocab: int, iters: int, lr: float, precision: str) -> dict:
    seed_everything(0, deterministic=False)
    model = GPT(GPTConfig(vocab_size=vocab))
    opt = model.configure_optimizer(lr, weight_decay=0.1, betas=(0.9, 0.99))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(100, iters))
    trainer = Trainer(model, opt, max_epochs=1, scheduler=sched, scheduler_interval="step", grad_clip=1.0, precision=precision,
                      device="cpu", step=lambda m, b: (m(b[0], b[1])[1], None, None), deterministic=False)
    t0 = time.perf_counter()
    trainer.fit(WindowLoader(train_ids, 64, 12, iters, seed=0))
    seconds = time.perf_counter() - t0
    return {"iters": iters, "batch": 12, "lr": lr, "precision": precision, "seconds": seconds, "val_loss": val_loss(model, val_ids, precision)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ours-iters", type=int, default=1600)
    ap.add_argument("--ours-lr", type=float, default=2e-3)
    ap.add_argument("--precision", default="bf16", choices=["fp32", "bf16"])
    args = ap.parse_args()
    try:
        text = load_tinyshakespeare()
    except DataError as e:
        save("gpt_shakespeare", {"skipped": str(e)})
        print(f"skipped: {e}")
        return
    tok = CharTokenizer(text)
    train_ids, val_ids = split_text(torch.tensor(tok.encode(text)))
    print("ours ...", flush=True)
    o = ours(train_ids, val_ids, tok.vocab_size, args.ours_iters, args.ours_lr, args.precision)
    print(f"  ours: val {o['val_loss']:.4f} in {o['seconds']:.1f}s", flush=True)
    print("peer (nanoGPT CPU config, plain fp32 loop) ...", flush=True)
    p = peer(train_ids, val_ids, tok.vocab_size)
    print(f"  peer: val {p['val_loss']:.4f} in {p['seconds']:.1f}s", flush=True)
    result = {"ours": o, "peer": p, "threads": torch.get_num_threads(), "target": "val_loss <= 1.88 in less time than the peer",
              "meets_target": o["val_loss"] <= 1.88 and o["seconds"] < p["seconds"], "time_ratio_ours_over_peer": o["seconds"] / p["seconds"]}
    save("gpt_shakespeare", result)
    print(f"ours {o['val_loss']:.4f} in {o['seconds']:.1f}s vs peer {p['val_loss']:.4f} in {p['seconds']:.1f}s; meets target: {result['meets_target']}")


if __name__ == "__main__":
    main()
