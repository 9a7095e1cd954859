"""Data-parallel training on this machine: 1 vs 2 processes, where the time of a step goes, and the weights.

Model: an MLP 784-1024-1024-10 (1.86M parameters, 7.5 MB of gradients), SGD, batch 64 per process,
random data (what is measured is the machinery, not learning). Under torchrun with 2 processes (gloo):

  step time         DDP step vs the same step under no_sync() (local gradients only): the difference is the
                    communication the backward pass could not hide
  bucket size       DDP's bucket_cap_mb 1, 5, 25, 100: samples/s
  all-reduce        time of one all-reduce for 4 KB ... 16 MB buffers (latency + size / bandwidth)
  equivalence       after 20 steps, the 2-process weights vs one process at batch 128

Two cores: 2 processes each get one, where 1 process had both (torch's intra-op threads), so the speed-up
is modest; the scaling model is step(N) = compute / N + exposed all-reduce.

    python benchmarks/ddp.py
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

STEPS, BATCH, WARM = 20, 64, 3


def model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 10))


def data(world: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    n = STEPS * BATCH * 2
    return torch.randn(n, 784, generator=g), torch.randint(0, 10, (n,), generator=g)


def timed_steps(net: nn.Module, X, y, rank: int, world: int, steps: int, sync: bool = True) -> list[float]:
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    times = []
    per = BATCH * 2 // world
    for s in range(steps):
        idx = torch.arange(s * BATCH * 2, (s + 1) * BATCH * 2)[rank::world][:per]
        t0 = time.perf_counter()
        ctx = net.no_sync() if (not sync and hasattr(net, "no_sync")) else contextlib.nullcontext()
        with ctx:
            loss = nn.functional.cross_entropy(net(X[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    return times


def worker(out: Path) -> None:
    """Under torchrun (or alone, world 1)."""
    from torch.nn.parallel import DistributedDataParallel as DDP

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    X, y = data(world)
    res: dict = {"world": world}
    if world == 1:
        net = model()
        times = timed_steps(net, X, y, 0, 1, STEPS)
        res["step_ms"] = 1e3 * statistics.median(times[WARM:])
        res["samples_per_s"] = 2 * BATCH / statistics.median(times[WARM:])
        torch.save({k: v.clone() for k, v in net.state_dict().items()}, out / "single.pt")
    else:
        dist.init_process_group("gloo")
        net = DDP(model())
        times = timed_steps(net, X, y, rank, world, STEPS)
        res["step_ms"] = 1e3 * statistics.median(times[WARM:])
        res["samples_per_s"] = 2 * BATCH / statistics.median(times[WARM:])
        weights = {k.removeprefix("module."): v.clone() for k, v in net.state_dict().items()}
        local = DDP(model())
        res["no_sync_step_ms"] = 1e3 * statistics.median(timed_steps(local, X, y, rank, world, STEPS, sync=False)[WARM:])
        res["buckets"] = {}
        for cap in (1, 5, 25, 100):
            t = timed_steps(DDP(model(), bucket_cap_mb=cap), X, y, rank, world, STEPS // 2 + WARM)
            res["buckets"][str(cap)] = 2 * BATCH / statistics.median(t[WARM:])
        res["allreduce_ms"] = {}
        for floats in (2**10, 2**14, 2**18, 2**20, 2**22):
            buf = torch.zeros(floats)
            dist.barrier()
            ts = []
            for _ in range(10):
                t0 = time.perf_counter()
                dist.all_reduce(buf)
                ts.append(time.perf_counter() - t0)
            res["allreduce_ms"][f"{floats * 4 // 1024} KB"] = 1e3 * statistics.median(ts)
        if rank == 0:
            single = torch.load(out / "single.pt")
            res["max_abs_diff_vs_single"] = max(float((weights[k] - single[k]).abs().max()) for k in single)
        dist.barrier()
        dist.destroy_process_group()
    if rank == 0:
        (out / f"ddp-{world}.json").write_text(json.dumps(res))


def main() -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from common import save

    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "DLR_BENCH_WORKER": tmp}
        subprocess.run([sys.executable, __file__], env=env, check=True, timeout=600)
        subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", __file__],
                       env={**env, "OMP_NUM_THREADS": "1"}, check=True, timeout=600, capture_output=True)
        one, two = (json.loads((Path(tmp) / f"ddp-{n}.json").read_text()) for n in (1, 2))
    result = {"model": "MLP 784-1024-1024-10", "batch_per_process": BATCH, "one_process": one, "two_processes": two,
              "speedup": two["samples_per_s"] / one["samples_per_s"],
              "exposed_communication_ms": two["step_ms"] - two["no_sync_step_ms"]}
    path = save("ddp", result)
    print(f"1 process  (batch {2 * BATCH}): {one['samples_per_s']:8,.0f} samples/s, step {one['step_ms']:.1f} ms")
    print(f"2 processes (batch {BATCH} each): {two['samples_per_s']:8,.0f} samples/s, step {two['step_ms']:.1f} ms "
          f"(no_sync {two['no_sync_step_ms']:.1f} ms): speed-up {result['speedup']:.2f}x")
    print("bucket_cap_mb -> samples/s: " + ", ".join(f"{k}: {v:,.0f}" for k, v in two["buckets"].items()))
    print("all-reduce: " + ", ".join(f"{k}: {v:.2f} ms" for k, v in two["allreduce_ms"].items()))
    print(f"max |w_2proc - w_1proc| after {STEPS} steps: {two['max_abs_diff_vs_single']:.2e}")
    print(path)


if __name__ == "__main__":
    if "DLR_BENCH_WORKER" in os.environ:
        worker(Path(os.environ["DLR_BENCH_WORKER"]))
    else:
        main()
