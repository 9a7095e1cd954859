"""Char-level GPT on tiny Shakespeare: time to a validation loss of 1.88, ours vs nanoGPT's CPU configuration.

Peer: nanoGPT's shakespeare_char CPU settings (4 layers, 4 heads, 128-dim, block 64, batch 12,
2,000 iterations, AdamW lr 1e-3 with beta2 0.99, 100 warm-up steps, cosine decay to 1e-4,
weight decay 0.1, grad clip 1.0, no dropout), trained with a plain fp32 PyTorch loop.
Ours: the same model (models/sequence/gpt.py) through the Trainer, with a recipe for time to target:
Muon (train/muon.py: momentum orthogonalised by Newton-Schulz) at 0.02 for the blocks' matrices and
AdamW at 6e-3 (beta2 0.95) for the embeddings, gains and biases, 100 warm-up steps and a linear decay
to 0 over 700 iterations, bf16 autocast where bf16 matmuls measure faster than fp32 (attention itself
stays fp32: slower in bf16 on every CPU measured, with AMX or without), torch's faster
non-deterministic kernels allowed. Muon reaches the target in about half the iterations AdamW needs
(seed 0: 600 against 1,300), though its optimizer step takes 17 ms against AdamW's 6 (the batched
Newton-Schulz matmuls; measured on the AMX host).
The recipe was chosen at seed 0 (Muon lr 0.02 / 0.03 / 0.05, schedules of 600 to 1,400 iterations:
the shortest that reached 1.88 with a margin; 1.875 after 600 iterations, 1.827 after 700); the
benchmark reports other seeds (default 1 and 2). The earlier all-AdamW recipe (lr 6e-3, linear
decay over 1,400 iterations, chosen at seed 0 the same way) runs with `--muon-lr 0 --ours-iters 1400`.

Both are judged the same way: every 100 iterations the clock stops, the validation loss is measured
(the same 50 batches of 64 windows from the last 10% of the text), and the time to target is the
training time until the first measurement <= 1.88 (a run that never gets there counts with all its time).
Also reported: tokens/s, the model's FLOPs per token (torch's FLOP counter) and the share of this
machine's measured GEMM peak (2048x2048 matmul, fp32 and bf16) that the training achieves.

    DLR_DATA_DIR=../shared/data python benchmarks/gpt_shakespeare.py [--seeds 1,2] [--ours-iters 700] [--muon-lr 0.02]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time

os.environ.setdefault("DLR_PROGRESS", "0")

import torch  # noqa: E402

from dlroadmap.data.download import load_tinyshakespeare  # noqa: E402
from dlroadmap.data.text import WindowLoader, split_text  # noqa: E402
from dlroadmap.errors import DataError  # noqa: E402
from dlroadmap.models.sequence.gpt import AMX, GPT, CharTokenizer, GPTConfig  # noqa: E402
from dlroadmap.train import Trainer, seed_everything  # noqa: E402
from dlroadmap.train.callbacks import Callback  # noqa: E402

from common import gemm_peak, save  # noqa: E402

TARGET, EVERY, BATCH, BLOCK = 1.88, 100, 12, 64


def val_loss(model: GPT, val_ids: torch.Tensor, precision: str) -> float:
    model.eval()
    losses = []
    with torch.no_grad(), torch.autocast("cpu", torch.bfloat16, enabled=precision == "bf16"):
        for x, y in WindowLoader(val_ids, BLOCK, 64, 50, seed=123):
            losses.append(model(x, y)[1].item())
    model.train()
    return sum(losses) / len(losses)


class Clock:
    """Training time with the clock stopped while the validation loss is measured every EVERY iterations."""

    def __init__(self, val_ids: torch.Tensor, precision: str):
        self.val_ids, self.precision = val_ids, precision
        self.t0, self.paused, self.curve, self.reached = time.perf_counter(), 0.0, [], None

    def probe(self, model: GPT, it: int) -> bool:
        """After iteration `it`: measure; True once the target is reached."""
        t = time.perf_counter()
        train_s = t - self.t0 - self.paused
        v = val_loss(model, self.val_ids, self.precision)
        self.curve.append({"iter": it, "seconds": round(train_s, 2), "val_loss": round(v, 4)})
        if self.reached is None and v <= TARGET:
            self.reached = {"iter": it, "seconds": round(train_s, 2), "val_loss": round(v, 4)}
        self.paused += time.perf_counter() - t
        return self.reached is not None

    def summary(self) -> dict:
        last = self.curve[-1]
        return {"reached": self.reached is not None, "time_to_target_s": self.reached["seconds"] if self.reached else last["seconds"],
                "iters_to_target": self.reached["iter"] if self.reached else None, "iters_run": last["iter"],
                "train_seconds": last["seconds"], "last_val_loss": last["val_loss"], "curve": self.curve}


def peer(train_ids, val_ids, vocab: int, seed: int) -> dict:
    """nanoGPT's configuration, a plain fp32 loop (nothing from dlroadmap.train); stops once it reaches the target."""
    torch.manual_seed(1337 + seed)
    model = GPT(GPTConfig(vocab_size=vocab))
    opt = model.configure_optimizer(1e-3, weight_decay=0.1, betas=(0.9, 0.99))
    iters, warmup, lr, min_lr = 2000, 100, 1e-3, 1e-4
    clock = Clock(val_ids, "fp32")
    for it, (x, y) in enumerate(WindowLoader(train_ids, BLOCK, BATCH, iters, seed=1337 + seed)):
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
        if (it + 1) % EVERY == 0 and clock.probe(model, it + 1):
            break
    return {"recipe": "nanoGPT CPU config: 2,000 iters, lr 1e-3 cosine to 1e-4, beta2 0.99, fp32", **clock.summary()}


def linear_decay(warmup: int, total: int):
    return lambda s: (s + 1) / (warmup + 1) if s < warmup else max(0.0, (total - s) / max(1, total - warmup))


def ours(train_ids, val_ids, vocab: int, seed: int, iters: int, lr: float, precision: str, batch: int = BATCH,
         muon_lr: float | None = 0.02) -> dict:
    seed_everything(seed, deterministic=False)
    model = GPT(GPTConfig(vocab_size=vocab))
    # Muon for the blocks' matrices (its Newton-Schulz matmuls in bf16 where bf16 is the faster), AdamW for the rest
    opt = model.configure_optimizer(lr, weight_decay=0.1, betas=(0.9, 0.95), muon_lr=muon_lr,
                                    muon_dtype="bfloat16" if precision == "bf16" else "float32")
    sched = torch.optim.lr_scheduler.LambdaLR(opt, linear_decay(100, iters))
    clock = Clock(val_ids, precision)
    every = max(1, round(EVERY * BATCH / batch))      # a check every 100 x 12 x 64 training tokens, whatever the batch

    class Probe(Callback):
        def on_train_batch_end(self, trainer):
            if trainer.global_step % every == 0 and clock.probe(trainer.model, trainer.global_step):
                trainer.should_stop = True

    trainer = Trainer(model, opt, max_epochs=1, scheduler=sched, scheduler_interval="step", grad_clip=1.0, precision=precision,
                      device="cpu", step=lambda m, b: (m(b[0], b[1])[1], None, None), deterministic=False, callbacks=[Probe()])
    clock.t0 = time.perf_counter()
    trainer.fit(WindowLoader(train_ids, BLOCK, batch, iters, seed=seed))
    optimizer = f"Muon lr {muon_lr:g} for the blocks' matrices + AdamW lr {lr:g}" if muon_lr else f"AdamW lr {lr:g}"
    return {"recipe": f"batch {batch}, {iters} iters, {optimizer}, beta2 0.95, linear decay to 0, {precision}", "batch": batch,
            **clock.summary()}


def flops_per_token(vocab: int) -> float:
    """Forward + backward FLOPs of one training step, per token (torch.utils.flop_counter)."""
    from torch.utils.flop_counter import FlopCounterMode

    model = GPT(GPTConfig(vocab_size=vocab))
    x = torch.randint(0, vocab, (BATCH, BLOCK))
    with FlopCounterMode(display=False) as counter:
        model(x, x)[1].backward()
    return counter.get_total_flops() / (BATCH * BLOCK)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="1,2", help="comma-separated seeds (0 chose the recipe)")
    ap.add_argument("--ours-iters", type=int, default=700, help="length of ours' schedule (1400 suits --muon-lr 0)")
    ap.add_argument("--ours-lr", type=float, default=6e-3, help="AdamW's peak rate (embeddings, gains, biases; all with --muon-lr 0)")
    ap.add_argument("--muon-lr", type=float, default=0.02, help="Muon's peak rate for the blocks' matrices; 0: AdamW for all")
    ap.add_argument("--ours-batch", type=int, default=BATCH, help="windows a step for ours (the peer keeps nanoGPT's 12)")
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                    help="auto: bf16 when this CPU's bf16 GEMM measures >= 1.3x its fp32 GEMM")
    args = ap.parse_args()
    try:
        text = load_tinyshakespeare()
    except DataError as e:
        save("gpt_shakespeare", {"skipped": str(e)})
        print(f"skipped: {e}")
        return
    peaks = {"fp32": gemm_peak(torch.float32), "bf16": gemm_peak(torch.bfloat16)}
    precision = args.precision if args.precision != "auto" else ("bf16" if peaks["bf16"] >= 1.3 * peaks["fp32"] else "fp32")
    print(f"GEMM peak fp32 {peaks['fp32']:.0f} GFLOP/s, bf16 {peaks['bf16']:.0f}; AMX: {AMX}; ours in {precision}", flush=True)
    tok = CharTokenizer(text)
    train_ids, val_ids = split_text(torch.tensor(tok.encode(text)))
    fpt = flops_per_token(tok.vocab_size)
    runs = []
    for seed in (int(s) for s in args.seeds.split(",")):
        o = ours(train_ids, val_ids, tok.vocab_size, seed, args.ours_iters, args.ours_lr, precision, args.ours_batch, args.muon_lr or None)
        print(f"seed {seed} ours: {o['last_val_loss']:.4f} after {o['iters_run']} iters, time to {TARGET}: {o['time_to_target_s']:.1f} s", flush=True)
        p = peer(train_ids, val_ids, tok.vocab_size, seed)
        print(f"seed {seed} peer: {p['last_val_loss']:.4f} after {p['iters_run']} iters, time to {TARGET}: {p['time_to_target_s']:.1f} s", flush=True)
        for r, prec, batch in ((o, precision, args.ours_batch), (p, "fp32", BATCH)):
            tokens_per_s = r["iters_run"] * batch * BLOCK / r["train_seconds"]
            r.update(tokens_per_s=round(tokens_per_s), gemm_peak_share=round(tokens_per_s * fpt / 1e9 / peaks[prec], 3))
        runs.append({"seed": seed, "ours": o, "peer": p, "time_ratio_ours_over_peer": round(o["time_to_target_s"] / p["time_to_target_s"], 3),
                     "ours_reached": o["reached"]})
    ratios = [r["time_ratio_ours_over_peer"] for r in runs]
    result = {"target": f"val_loss <= {TARGET}: ours in <= 0.5x the peer's time", "precision": precision, "amx": AMX,
              "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA"),   # set to e.g. AVX512_CORE_BF16 to run as without AMX
              "gemm_peak_gflops": {k: round(v, 1) for k, v in peaks.items()}, "flops_per_token": round(fpt), "threads": torch.get_num_threads(),
              "runs": runs, "median_time_ratio": statistics.median(ratios), "meets_target": all(r["ours_reached"] for r in runs) and max(ratios) <= 0.5}
    save("gpt_shakespeare", result)
    for r in runs:
        o, p = r["ours"], r["peer"]
        reached = {k: f"{x['iters_to_target']} iters" if x["reached"] else f"not reached in {x['iters_run']} iters: {x['last_val_loss']:.3f}"
                   for k, x in (("ours", o), ("peer", p))}
        print(f"seed {r['seed']}: ours {o['time_to_target_s']:.1f} s ({reached['ours']}, {o['tokens_per_s']:,} tokens/s, "
              f"{100 * o['gemm_peak_share']:.0f}% of the {precision} GEMM peak) vs peer {p['time_to_target_s']:.1f} s "
              f"({reached['peer']}, {p['tokens_per_s']:,} tokens/s, {100 * p['gemm_peak_share']:.0f}% of fp32): x{r['time_ratio_ours_over_peer']:.2f}")


if __name__ == "__main__":
    main()
