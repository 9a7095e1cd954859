"""CNN training throughput (images/s) on this CPU, fp32 vs bf16 autocast, through the Trainer.

bf16 autocast runs convolutions and matmuls in bfloat16 (on CPUs with AMX, much faster) while
the weights and the optimizer stay in fp32.

    python benchmarks/cnn_throughput.py [--images 4096] [--batch 128]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("DLR_PROGRESS", "0")

import torch  # noqa: E402

from dlroadmap.data import TensorLoader  # noqa: E402
from dlroadmap.models.families import small_cnn  # noqa: E402
from dlroadmap.train import Trainer, seed_everything  # noqa: E402

from common import save  # noqa: E402


def throughput(name: str, precision: str, images: int, batch: int, repeats: int = 3) -> float:
    seed_everything(0)
    model = small_cnn(name, 10)[0]
    X, y = torch.randn(images, 28, 28), torch.randint(0, 10, (images,))
    trainer = Trainer(model, torch.optim.AdamW(model.parameters(), 1e-3), max_epochs=1, device="cpu", precision=precision)
    trainer.fit(TensorLoader(X[:batch * 2], y[:batch * 2], batch_size=batch))  # warm-up
    best = 0.0
    for _ in range(repeats):
        trainer.max_epochs += 1
        t0 = time.perf_counter()
        trainer.fit(TensorLoader(X, y, batch_size=batch, shuffle=True))
        best = max(best, images / (time.perf_counter() - t0))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=4096)
    ap.add_argument("--batch", type=int, default=128)
    args = ap.parse_args()
    rows = []
    for name in ("lenet5", "vgg", "resnet", "alexnet"):
        fp32 = throughput(name, "fp32", args.images, args.batch)
        bf16 = throughput(name, "bf16", args.images, args.batch)
        rows.append({"model": name, "fp32_images_per_s": fp32, "bf16_images_per_s": bf16, "bf16_speedup": bf16 / fp32})
        print(f"{name:8s} fp32 {fp32:8.0f} img/s   bf16 {bf16:8.0f} img/s   x{bf16 / fp32:.2f}", flush=True)
    save("cnn_throughput", {"images": args.images, "batch": args.batch, "input": "1x28x28", "rows": rows})


if __name__ == "__main__":
    main()
