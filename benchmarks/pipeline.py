"""The input pipeline: in-memory tensors vs streamed tar shards, and whether training waits for data.

  batches only   samples/s of one epoch of batches: TensorLoader (in memory) and StreamLoader over shards
                 with 0, 1, 2 DataLoader workers, without and with on-the-fly augmentation
  training       one epoch of an MLP (784-256-10, batch 128) through the Trainer on each loader: samples/s and
                 the Trainer's split of step time into waiting for the next batch vs computing the step

MNIST's 60,000 training images when DLR_DATA_DIR has them (make bench sets it to ../shared/data), else the
embedded MNIST-5k. Two cores: a worker takes a core from the training step, so workers help only while the
step leaves a core idle.

    python benchmarks/pipeline.py
"""

from __future__ import annotations

import os
import tempfile
import time

import torch
from torch import nn

os.environ.setdefault("DLR_PROGRESS", "0")

from dlroadmap.data import classification_tensors  # noqa: E402
from dlroadmap.data.augment import jitter  # noqa: E402
from dlroadmap.errors import DataError  # noqa: E402
from dlroadmap.data.loader import TensorLoader  # noqa: E402
from dlroadmap.data.pipeline import ShardStream, StreamLoader, write_shards  # noqa: E402
from dlroadmap.models.mlp import MLP  # noqa: E402
from dlroadmap.train.trainer import Trainer  # noqa: E402

from common import save  # noqa: E402


def epoch_rate(loader) -> float:
    n, t0 = 0, time.perf_counter()
    for b in loader:
        n += len(b[0])
    return n / (time.perf_counter() - t0)


def train_epoch(loader, features: int) -> dict[str, float]:
    torch.manual_seed(0)
    model = MLP(features, [256], 10)
    step = lambda m, b: (lambda o: (nn.functional.cross_entropy(o, b[1]), o, b[1]))(m(b[0].flatten(1)))  # noqa: E731
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9), max_epochs=1, step=step, device="cpu")
    t0 = time.perf_counter()
    trainer.fit(loader)
    seconds = time.perf_counter() - t0
    t = trainer.timing
    return {"samples_per_s": t["steps"] * 128 / seconds, "data_wait_ms_per_step": 1e3 * t["data_s"] / t["steps"],
            "compute_ms_per_step": 1e3 * t["compute_s"] / t["steps"], "data_wait_share": t["data_s"] / (t["data_s"] + t["compute_s"])}


def main() -> None:
    try:
        data, name = classification_tensors("mnist"), "mnist"
    except DataError:
        data, name = classification_tensors("mnist5k"), "mnist5k"
    X = data.X_train.reshape(len(data.X_train), *data.shape).numpy()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        folder = write_shards(f"{tmp}/shards", X, data.y_train.numpy(), 16, name=name)
        prepare_s = time.perf_counter() - t0
        loaders = {"memory": lambda aug: TensorLoader(data.X_train, data.y_train, batch_size=128, shuffle=True)}
        for w in (0, 1, 2):
            loaders[f"stream_{w}_workers"] = lambda aug, w=w: StreamLoader(
                ShardStream(folder, shuffle_buffer=2048, transform=jitter if aug else None), 128, workers=w)
        batches = {f"{k}{'_augmented' if aug else ''}": epoch_rate(make(aug)) for k, make in loaders.items() for aug in (False, True)
                   if not (k == "memory" and aug)}
        training = {f"{k}{'_augmented' if k != 'memory' else ''}": train_epoch(make(k != "memory"), X[0].size) for k, make in loaders.items()}
    result = {"dataset": name, "samples": len(X), "shards": 16, "prepare_seconds": prepare_s, "batches_samples_per_s": batches, "training": training}
    path = save("pipeline", result)
    print(f"{name}: {len(X)} samples, shards written in {prepare_s:.1f}s")
    for k, v in batches.items():
        print(f"  batches  {k:32s} {v:>12,.0f} samples/s")
    for k, v in training.items():
        print(f"  training {k:32s} {v['samples_per_s']:>12,.0f} samples/s   data wait {v['data_wait_ms_per_step']:.2f} ms"
              f" vs compute {v['compute_ms_per_step']:.2f} ms per step ({100 * v['data_wait_share']:.0f}%)")
    print(path)


if __name__ == "__main__":
    main()
