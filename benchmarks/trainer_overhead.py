"""Trainer overhead: our Trainer vs a hand-written PyTorch loop, same model, data, seed.

Both train the same MLP (784-256-128-10, AdamW, batch 64) on the same in-memory MNIST-5k tensors
for one epoch at a time; repeats alternate between the two so drift on the machine hits both.
The Trainer runs as users run it: progress display off (as in CI), no tracker, per-epoch
validation off on both sides. Target (DESIGN.md): median ratio <= 1.05.

    python benchmarks/trainer_overhead.py [--repeats 7] [--epochs 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torch.nn.functional as F

os.environ.setdefault("DLR_PROGRESS", "0")

from dlroadmap.data import TensorLoader, classification_tensors  # noqa: E402
from dlroadmap.models.mlp import MLP  # noqa: E402
from dlroadmap.train import Trainer, seed_everything  # noqa: E402

from common import save  # noqa: E402


def build(seed: int):
    seed_everything(seed)
    model = MLP(784, [256, 128], 10)
    return model, torch.optim.AdamW(model.parameters(), lr=1e-3)


def hand_loop(data, epochs: int, seed: int) -> float:
    model, opt = build(seed)
    loader = TensorLoader(data.X_train, data.y_train, batch_size=64, shuffle=True, seed=seed)
    t0 = time.perf_counter()
    for epoch in range(epochs):
        loader.set_epoch(epoch)
        model.train()
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            _ = loss.item()  # any real loop reads the loss (logging, NaN checks)
    return time.perf_counter() - t0


def trainer_loop(data, epochs: int, seed: int) -> float:
    model, opt = build(seed)
    loader = TensorLoader(data.X_train, data.y_train, batch_size=64, shuffle=True, seed=seed)
    trainer = Trainer(model, opt, max_epochs=epochs, device="cpu", seed=seed)
    t0 = time.perf_counter()
    trainer.fit(loader)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--epochs", type=int, default=2)
    args = ap.parse_args()
    data = classification_tensors("mnist5k", seed=0)
    hand_loop(data, 1, 0), trainer_loop(data, 1, 0)  # warm-up: first-call allocations, thread pools
    hand, ours = [], []
    for r in range(args.repeats):
        hand.append(hand_loop(data, args.epochs, r))
        ours.append(trainer_loop(data, args.epochs, r))
    ratios = [o / h for o, h in zip(ours, hand)]
    result = {
        "epochs_per_repeat": args.epochs, "repeats": args.repeats, "steps_per_epoch": -(-len(data.X_train) // 64),
        "hand_loop_s": hand, "trainer_s": ours,
        "hand_loop_median_s": statistics.median(hand), "trainer_median_s": statistics.median(ours),
        "median_ratio": statistics.median(ratios), "ratio_of_medians": statistics.median(ours) / statistics.median(hand),
        "target": "<= 1.05", "meets_target": statistics.median(ratios) <= 1.05,
    }
    path = save("trainer_overhead", result)
    print(f"trainer {result['trainer_median_s']:.3f}s vs hand loop {result['hand_loop_median_s']:.3f}s "
          f"(median ratio {result['median_ratio']:.3f}, target <= 1.05) -> {path}")


if __name__ == "__main__":
    main()
