"""Our LSTM (models/rnn.py, a Python loop over time steps) vs torch.nn.LSTM, forward + backward.

    python benchmarks/lstm_speed.py [--batch 64] [--steps 28] [--hidden 128]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from dlroadmap.models.sequence.rnn import Recurrent

from common import save


def time_fn(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=28)
    ap.add_argument("--input", type=int, default=28)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=30)
    args = ap.parse_args()
    torch.manual_seed(0)
    ref = nn.LSTM(args.input, args.hidden, batch_first=True)
    ours = Recurrent("lstm", args.input, args.hidden).load_from_torch(ref)
    x = torch.randn(args.batch, args.steps, args.input)

    def step(model):
        def run():
            out, _ = model(x)
            out.sum().backward()
        return run

    t_ours, t_ref = time_fn(step(ours), args.repeats), time_fn(step(ref), args.repeats)
    with torch.no_grad():
        diff = float((ours(x)[0] - ref(x)[0]).abs().max())
    result = {"batch": args.batch, "steps": args.steps, "input": args.input, "hidden": args.hidden,
              "ours_ms": 1e3 * t_ours, "torch_ms": 1e3 * t_ref, "ratio_ours_over_torch": t_ours / t_ref, "max_abs_output_diff": diff}
    save("lstm_speed", result)
    print(f"LSTM fwd+bwd: ours {1e3 * t_ours:.2f} ms, nn.LSTM {1e3 * t_ref:.2f} ms (ratio {t_ours / t_ref:.2f}); outputs agree to {diff:.1e}")


if __name__ == "__main__":
    main()
