"""Scratch engine vs torch: one training step of a 784-256-10 MLP, batch 128, Adam, on the CPU.

Same shapes, same float32 data, same initial weights; the step is forward, cross-entropy,
backward and Adam update. Repeats alternate between the two; the JSON holds every time.
Target (DESIGN.md): median time ratio <= 2x, gradients equal to 1e-6 (checked here in float64).

    python benchmarks/scratch_vs_torch.py [--steps 200] [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

from dlroadmap.scratch import Tensor, nn, optim

from common import save


def build(dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    ours = nn.Sequential(nn.Linear(784, 256, rng=rng, dtype=dtype), nn.ReLU(), nn.Linear(256, 10, rng=rng, dtype=dtype))
    theirs = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))
    theirs = theirs.double() if dtype == np.float64 else theirs
    with torch.no_grad():
        for (_, p), tp in zip(ours.named_parameters(), theirs.parameters()):
            tp.copy_(torch.from_numpy(p.data))
    return ours, theirs


def grad_agreement() -> float:
    ours, theirs = build(np.float64)
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(128, 784)), rng.integers(0, 10, 128)
    nn.cross_entropy(ours(Tensor(x)), y).backward()
    F.cross_entropy(theirs(torch.from_numpy(x)), torch.from_numpy(y)).backward()
    return max(float(np.abs(p.grad - tp.grad.numpy()).max() / (np.abs(tp.grad.numpy()).max() + 1e-30))
               for p, tp in zip(ours.parameters(), theirs.parameters()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(args.steps, 128, 784)).astype(np.float32)
    Y = rng.integers(0, 10, (args.steps, 128))
    Xt, Yt = torch.from_numpy(X), torch.from_numpy(Y)

    def run_ours() -> float:
        model, _ = build()
        opt = optim.Adam(model.parameters(), lr=1e-3)
        t0 = time.perf_counter()
        for s in range(args.steps):
            loss = nn.cross_entropy(model(Tensor(X[s])), Y[s])
            opt.zero_grad()
            loss.backward()
            opt.step()
        return (time.perf_counter() - t0) / args.steps

    def run_torch() -> float:
        _, model = build()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        t0 = time.perf_counter()
        for s in range(args.steps):
            loss = F.cross_entropy(model(Xt[s]), Yt[s])
            opt.zero_grad()
            loss.backward()
            opt.step()
        return (time.perf_counter() - t0) / args.steps

    run_ours(), run_torch()  # warm-up
    ours, theirs = [], []
    for _ in range(args.repeats):
        ours.append(run_ours())
        theirs.append(run_torch())
    ratios = [o / t for o, t in zip(ours, theirs)]
    result = {
        "shape": "784-256-10", "batch": 128, "optimizer": "Adam", "dtype": "float32", "steps": args.steps,
        "scratch_step_ms": [1e3 * v for v in ours], "torch_step_ms": [1e3 * v for v in theirs],
        "scratch_median_ms": 1e3 * statistics.median(ours), "torch_median_ms": 1e3 * statistics.median(theirs),
        "median_ratio": statistics.median(ratios), "target_ratio": "<= 2", "meets_target": statistics.median(ratios) <= 2,
        "grad_max_rel_diff_float64": grad_agreement(), "grad_target": "<= 1e-6",
    }
    path = save("scratch_vs_torch", result)
    print(f"scratch {result['scratch_median_ms']:.2f} ms/step vs torch {result['torch_median_ms']:.2f} ms/step "
          f"(median ratio {result['median_ratio']:.2f}, target <= 2); grads agree to {result['grad_max_rel_diff_float64']:.1e} -> {path}")


if __name__ == "__main__":
    main()
