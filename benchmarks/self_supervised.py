"""Contrastive pre-training side by side, in one run:

1. Pre-training throughput (images/s, two views each) of SimCLR and MoCo v2 with the contrastive node's
   encoder, fp32 and bf16 autocast (bf16 pays only on CPUs with AMX or on GPUs).
2. SimCLR and MoCo at equal wall time: MoCo's step is cheaper (it back-propagates through one view),
   so it gets the epochs that fit in SimCLR's pre-training time, measured in part 1; then the node
   p3.ssl.contrastive runs through the runner and its kNN and linear-probe accuracies, at both batch
   sizes, and the 100-label table are read from its result.

    python benchmarks/self_supervised.py            # quick preset on the embedded MNIST-5k
    python benchmarks/self_supervised.py --full     # full preset on full MNIST (DLR_DATA_DIR)
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("DLR_PROGRESS", "0")

import torch  # noqa: E402

from dlroadmap import registry  # noqa: E402
from dlroadmap.data.augment import contrastive_view  # noqa: E402
from dlroadmap.models.ssl.contrastive import ConvEncoder, MoCo, SimCLR, projection_head  # noqa: E402
from dlroadmap.runner import run_id  # noqa: E402

from common import save  # noqa: E402


def throughput(method: str, width: int, batch: int, precision: str, steps: int = 20, warmup: int = 3) -> float:
    """Images per second of pre-training steps (augmentation, forward, backward, AdamW) on random digits-shaped input."""
    torch.manual_seed(0)
    encoder, head = ConvEncoder(128, width), projection_head(128, 128, 64)
    model = SimCLR(encoder, head, 0.5) if method == "simclr" else MoCo(encoder, head, queue_size=1024)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    x = torch.rand(batch, 1, 28, 28)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32

    def step() -> None:
        with torch.autocast("cpu", dtype=dtype, enabled=precision == "bf16"):
            loss = model.loss(contrastive_view(x), contrastive_view(x))
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true", help="full preset (full MNIST from DLR_DATA_DIR) instead of quick")
    args = ap.parse_args()
    node = registry.load().get("p3.ssl.contrastive")
    experiment = node.load_experiment()
    config = experiment.Config() if args.full else experiment.Config.quick()

    speed = {f"{m}_{p}": throughput(m, config.width, config.batch_size, p) for m in ("simclr", "moco") for p in ("fp32", "bf16")}
    for k, v in speed.items():
        print(f"  {k:12s} {v:8.0f} images/s")
    # Equal wall time: MoCo gets the epochs SimCLR's time buys at MoCo's (fp32) speed.
    moco_epochs = max(1, round(config.epochs * speed["moco_fp32"] / speed["simclr_fp32"]))
    with tempfile.TemporaryDirectory() as tmp:
        result = run_id(node, Path(tmp), quick=not args.full, track=None, sets=[f"moco_epochs={moco_epochs}", f"small_batch_epochs={max(1, config.small_batch_epochs)}"])   # the quick preset skips batch 32
    m = result.metrics
    small = config.small_batch
    table = {
        name: {"knn": m[f"knn_{key}"], "linear_probe": m[f"probe_{key}"], "linear_probe_100_labels": m[f"probe100_{key}"]}
        for name, key in (("pixels", "pixels"), ("random encoder", "random_encoder"), ("autoencoder", "autoencoder"), ("SimCLR", "simclr"),
                          ("MoCo v2", "moco"), (f"SimCLR batch {small}", f"simclr_batch{small}"), (f"MoCo v2 batch {small}", f"moco_batch{small}"))
    }
    hundred = {"from scratch": m["scratch100"], "from scratch, augmented": m["scratch100_augmented"],
               "SimCLR + linear probe": m["probe100_simclr"], "SimCLR fine-tuned": m["finetune100_simclr"]}
    print(f"  equal wall time: SimCLR {config.epochs} epochs in {m['simclr_pretrain_seconds']:.0f} s, "
          f"MoCo {moco_epochs} epochs in {m['moco_pretrain_seconds']:.0f} s")
    print(f"  {'encoder':22s} {'kNN':>7s} {'probe':>7s} {'probe100':>9s}")
    for name, row in table.items():
        print(f"  {name:22s} {row['knn']:7.3f} {row['linear_probe']:7.3f} {row['linear_probe_100_labels']:9.3f}")
    for name, v in hundred.items():
        print(f"  100 labels, {name:24s} {v:.3f}")
    out = save("self_supervised_full" if args.full else "self_supervised", {
        "mode": "full" if args.full else "quick", "dataset": config.dataset, "batch_size": config.batch_size, "width": config.width,
        "pretrain_images_per_second": speed, "simclr_epochs": config.epochs, "moco_epochs": moco_epochs,
        "simclr_pretrain_seconds": m["simclr_pretrain_seconds"], "moco_pretrain_seconds": m["moco_pretrain_seconds"],
        "frozen_encoders": table, "labels_100": hundred, "expectations_met": result.passed,
    })
    print(f"saved {out}")


if __name__ == "__main__":
    main()
