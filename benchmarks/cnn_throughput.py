"""CNN training throughput (images/s) on this CPU: NCHW vs channels-last (NHWC), fp32 vs bf16 autocast,
through the Trainer; and what the Trainer's automatic choice of memory format picks here.

bf16 autocast runs convolutions and matmuls in bfloat16 (on CPUs with AMX, much faster) while the
weights and the optimizer stay in fp32. Channels-last stores each pixel's channels side by side,
the layout oneDNN's convolutions prefer. Each row is images/s (best of 3 epochs of 4,096 images)
and the share of this machine's measured GEMM peak (2048x2048 matmul in the same dtype) that the
training step's FLOPs (torch's FLOP counter, forward + backward) reach.

    python benchmarks/cnn_throughput.py [--images 4096] [--batch 128] [--models resnet,vgg,lenet5,alexnet]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("DLR_PROGRESS", "0")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from dlroadmap.data import TensorLoader  # noqa: E402
from dlroadmap.models.families import small_cnn  # noqa: E402
from dlroadmap.train import Trainer, seed_everything  # noqa: E402
from dlroadmap.train import memory_format as layout  # noqa: E402

from common import gemm_peak, save  # noqa: E402


def throughput(name: str, precision: str, fmt: str, images: int, batch: int, repeats: int = 3) -> float:
    seed_everything(0)
    model = small_cnn(name, 10)[0]
    X, y = torch.randn(images, 1, 28, 28), torch.randint(0, 10, (images,))
    trainer = Trainer(model, torch.optim.AdamW(model.parameters(), 1e-3), max_epochs=1, device="cpu", precision=precision,
                      memory_format=fmt)
    trainer.fit(TensorLoader(X[:batch * 2], y[:batch * 2], batch_size=batch))  # warm-up
    assert trainer.memory_format == (torch.channels_last if fmt == "channels_last" else torch.contiguous_format)
    best = 0.0
    for _ in range(repeats):
        trainer.max_epochs += 1
        t0 = time.perf_counter()
        trainer.fit(TensorLoader(X, y, batch_size=batch, shuffle=True))
        best = max(best, images / (time.perf_counter() - t0))
    return best


def flops_per_image(name: str, batch: int) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    model = small_cnn(name, 10)[0]
    x, y = torch.randn(batch, 1, 28, 28), torch.randint(0, 10, (batch,))
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), y).backward()
    return counter.get_total_flops() / batch


def trainer_choice(name: str, precision: str, batch: int) -> dict:
    """What Trainer(memory_format auto) measures and picks for this model (its measurement, not the table's)."""
    model = small_cnn(name, 10)[0]
    b = (torch.randn(batch, 1, 28, 28), torch.randint(0, 10, (batch,)))
    ac = (lambda: torch.autocast("cpu", torch.bfloat16)) if precision == "bf16" else (lambda: torch.autocast("cpu", enabled=False))
    ms = layout.measure(model, b, lambda m, bb: F.cross_entropy(m(bb[0]), bb[1]), ac)
    return {"contiguous_ms": round(1e3 * ms["contiguous"], 2), "channels_last_ms": round(1e3 * ms["channels_last"], 2),
            "picks": layout.choose(ms)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=4096)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--models", default="resnet,vgg,lenet5,alexnet")
    args = ap.parse_args()
    peaks = {"fp32": gemm_peak(torch.float32), "bf16": gemm_peak(torch.bfloat16)}
    print(f"GEMM peak: fp32 {peaks['fp32']:.0f} GFLOP/s, bf16 {peaks['bf16']:.0f}", flush=True)
    rows = []
    for name in args.models.split(","):
        fpi = flops_per_image(name, args.batch)
        row = {"model": name, "train_flops_per_image": round(fpi)}
        for precision in ("fp32", "bf16"):
            for fmt in ("contiguous", "channels_last"):
                ips = throughput(name, precision, fmt, args.images, args.batch)
                row[f"{precision}_{fmt}_images_per_s"] = round(ips, 1)
                row[f"{precision}_{fmt}_gemm_peak_share"] = round(ips * fpi / 1e9 / peaks[precision], 4)
            row[f"{precision}_trainer_choice"] = trainer_choice(name, precision, args.batch)
        row["channels_last_speedup_fp32"] = round(row["fp32_channels_last_images_per_s"] / row["fp32_contiguous_images_per_s"], 3)
        row["channels_last_speedup_bf16"] = round(row["bf16_channels_last_images_per_s"] / row["bf16_contiguous_images_per_s"], 3)
        row["bf16_speedup"] = round(row["bf16_contiguous_images_per_s"] / row["fp32_contiguous_images_per_s"], 3)
        rows.append(row)
        print(f"{name:8s} fp32 NCHW {row['fp32_contiguous_images_per_s']:7.0f}  NHWC {row['fp32_channels_last_images_per_s']:7.0f} img/s  "
              f"bf16 NCHW {row['bf16_contiguous_images_per_s']:7.0f}  NHWC {row['bf16_channels_last_images_per_s']:7.0f}  "
              f"(best {100 * max(row[k] for k in row if k.endswith('peak_share')):.0f}% of a GEMM peak); "
              f"Trainer picks {row['fp32_trainer_choice']['picks']} (fp32), {row['bf16_trainer_choice']['picks']} (bf16)", flush=True)
    save("cnn_throughput", {"images": args.images, "batch": args.batch, "input": "1x28x28", "gemm_peak_gflops": peaks, "rows": rows})


if __name__ == "__main__":
    main()
