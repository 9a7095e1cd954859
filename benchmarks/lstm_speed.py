"""Our LSTM (models/sequence/rnn.py: backpropagation through time written out) vs torch.nn.LSTM
(oneDNN's fused kernel on the CPU), forward and forward + backward, timed interleaved in one run.

Target (issue 19): ours within 1.5x of nn.LSTM forward + backward at batch 64, 28 steps, hidden 128,
with outputs and gradients equal to nn.LSTM's.

    python benchmarks/lstm_speed.py [--batch 64] [--steps 28] [--hidden 128] [--repeats 60]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from dlroadmap.models.sequence.rnn import Recurrent

from common import save


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=28)
    ap.add_argument("--input", type=int, default=28)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=60)
    args = ap.parse_args()
    torch.manual_seed(0)
    ref = nn.LSTM(args.input, args.hidden, batch_first=True)
    ours = Recurrent("lstm", args.input, args.hidden).load_from_torch(ref)
    x = torch.randn(args.batch, args.steps, args.input)

    def forward(model):
        with torch.no_grad():
            model(x)

    def forward_backward(model):
        out, (h_n, c_n) = model(x)
        (out.sum() + c_n.sum()).backward()

    # Interleaved (ours, torch, ours, torch, ...) so that a slow spell of the machine hits both alike.
    times: dict[str, list[float]] = {k: [] for k in ("ours_fwd", "torch_fwd", "ours_fwd_bwd", "torch_fwd_bwd")}
    for i in range(args.repeats + 5):
        for key, fn, model in (("ours_fwd_bwd", forward_backward, ours), ("torch_fwd_bwd", forward_backward, ref),
                               ("ours_fwd", forward, ours), ("torch_fwd", forward, ref)):
            t0 = time.perf_counter()
            fn(model)
            if i >= 5:  # the first rounds warm up allocators and kernels
                times[key].append(time.perf_counter() - t0)
    ms = {k: 1e3 * statistics.median(v) for k, v in times.items()}
    # Same numbers: outputs and every gradient against nn.LSTM's.
    for m in (ours, ref):
        m.zero_grad()
        forward_backward(m)
    # relative to the largest entry (float32 sums over 64 x 28 terms differ in the last bits)
    rel = lambda a, b: float((a - b).abs().max() / b.abs().max())  # noqa: E731
    diff = max(rel(a.grad, b.grad) for a, b in zip(ours.parameters(), [ref.weight_ih_l0, ref.weight_hh_l0, ref.bias_ih_l0, ref.bias_hh_l0]))
    with torch.no_grad():
        diff = max(diff, rel(ours(x)[0], ref(x)[0]))
    ratio = ms["ours_fwd_bwd"] / ms["torch_fwd_bwd"]
    result = {"batch": args.batch, "steps": args.steps, "input": args.input, "hidden": args.hidden, "threads": torch.get_num_threads(),
              **{f"{k}_ms": round(v, 3) for k, v in ms.items()}, "ratio_fwd_bwd_ours_over_torch": round(ratio, 3),
              "ratio_fwd_ours_over_torch": round(ms["ours_fwd"] / ms["torch_fwd"], 3), "max_rel_diff_outputs_and_grads": diff,
              "target": "ours forward + backward <= 1.5x nn.LSTM", "meets_target": ratio <= 1.5}
    save("lstm_speed", result)
    print(f"LSTM forward + backward: ours {ms['ours_fwd_bwd']:.2f} ms, nn.LSTM {ms['torch_fwd_bwd']:.2f} ms (ratio {ratio:.2f}); "
          f"forward only: {ms['ours_fwd']:.2f} vs {ms['torch_fwd']:.2f} ms; outputs and gradients agree to {diff:.1e} (relative)")


if __name__ == "__main__":
    main()
