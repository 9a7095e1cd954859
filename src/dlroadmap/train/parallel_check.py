"""One small training, run by every engine: the yardstick that data parallelism changes nothing but speed.

The same problem (an MLP on the digits, plain SGD, a fixed sequence of global batches) is trained

    - by one process at global batch G                  (the reference)
    - by N processes under torchrun, our Trainer + DDP, each at G / N
    - by N processes with FSDP2 (`fully_shard`: each rank stores 1/N of the parameters)
    - by N Ray Train workers (train/ray_train.py), our Trainer again
    - by N Horovod processes (train/horovod_worker.py, its own environment)

and the final weights are compared. They agree to float rounding only if each rank trained on the
right slice, gradients were averaged (not summed), every replica started from the same weights and
took every step. Deterministic: no dropout, no batch norm (batch statistics over G / N samples
would differ from statistics over G: that is what SyncBatchNorm is for).

    python -m dlroadmap.train.parallel_check --out DIR            # one process
    torchrun --nproc-per-node 2 -m dlroadmap.train.parallel_check --out DIR --fsdp
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dlroadmap.data.loader import TensorLoader
from dlroadmap.train import distributed
from dlroadmap.train.checkpoint import save_weights
from dlroadmap.train.trainer import Trainer

SIZES = (64, 128, 128, 10)


def problem(n: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """The first n digits (8x8), standardised: (n, 64) float32, (n,) int64."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = (X[:n] - X[:n].mean()) / X[:n].std()
    return torch.tensor(X, dtype=torch.float32), torch.tensor(y[:n])


def make_model(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for a, b in zip(SIZES[:-1], SIZES[1:]):
        layers += [nn.Linear(a, b), nn.Tanh()]
    return nn.Sequential(*layers[:-1])


def global_batches(n: int, global_batch: int, steps: int, seed: int) -> np.ndarray:
    """(steps, G) sample indices: the global batches every engine trains on, in order (TensorLoader's epochs)."""
    loader = TensorLoader(torch.arange(n), batch_size=global_batch, shuffle=True, seed=seed, drop_last=True)
    out = []
    epoch = 0
    while len(out) < steps:
        loader.set_epoch(epoch)
        out += [b[0].numpy() for b in loader]
        epoch += 1
    return np.stack(out[:steps])


def train_ddp(global_batch: int = 64, steps: int = 48, lr: float = 0.05, seed: int = 0, device: str = "cpu") -> dict[str, Any]:
    """Our Trainer on this process's share (all of it when alone): strategy 'auto' is DDP under a launcher."""
    X, y = problem()
    world = distributed.world_size()
    model = make_model(seed)
    loader = TensorLoader(X, y, batch_size=global_batch // world, shuffle=True, seed=seed, drop_last=True)
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9), max_steps=steps, device=device,
                      seed=seed, description=f"ddp x{world}")
    t0 = time.perf_counter()
    trainer.fit(loader)
    seconds = time.perf_counter() - t0
    allreduce_ms = allreduce_time(model, trainer.device) if world > 1 else 0.0
    return {"model": model, "seconds": seconds, "samples_per_s": steps * global_batch / seconds, "world": world,
            "strategy": trainer.strategy, "sharded": trainer.sharded, "allreduce_ms": allreduce_ms,
            "data_s": trainer.timing["data_s"], "compute_s": trainer.timing["compute_s"]}


def allreduce_time(model: nn.Module, device: torch.device, repeats: int = 20) -> float:
    """Milliseconds for one all-reduce of a gradient-sized flat buffer (what DDP does per step, bucketed)."""
    import torch.distributed as dist

    buf = torch.zeros(sum(p.numel() for p in model.parameters()), device=device)
    dist.barrier()
    t0 = time.perf_counter()
    for _ in range(repeats):
        dist.all_reduce(buf)
    return (time.perf_counter() - t0) / repeats * 1e3


def train_fsdp(global_batch: int = 64, steps: int = 48, lr: float = 0.05, seed: int = 0) -> dict[str, Any]:
    """FSDP2: each rank keeps 1/N of every parameter (a DTensor shard), gathers a layer's full weights just
    before using it and reduce-scatters its gradients. Plain loop: the same batches as train_ddp."""
    # fully sharded data parallel: parameters sharded across ranks, gathered per layer, @zhao2023fsdp
    from torch.distributed.fsdp import fully_shard

    X, y = problem()
    world, rank = distributed.world_size(), distributed.rank()
    model = make_model(seed)
    for layer in model:
        if isinstance(layer, nn.Linear):
            fully_shard(layer)
    fully_shard(model)
    local = sum(p.to_local().numel() for p in model.parameters())
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    batches = global_batches(len(X), global_batch, steps, seed)
    for idx in batches:
        part = torch.from_numpy(idx[rank::world])
        loss = nn.functional.cross_entropy(model(X[part]), y[part])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    full = {k: v.full_tensor() for k, v in model.state_dict().items()}  # a collective: every rank takes part
    return {"state": full, "local_params": local, "params": sum(v.numel() for v in full.values())}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="folder for weights-<engine>-<world>.safetensors and result-<world>.json")
    ap.add_argument("--global-batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=48)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--fsdp", action="store_true", help="also train with FSDP2 (needs a process group: run under torchrun)")
    a = ap.parse_args(argv)
    out = Path(a.out)
    r = train_ddp(a.global_batch, a.steps, seed=a.seed, device=a.device)
    world = r["world"]
    info = {k: v for k, v in r.items() if k != "model"}
    if a.fsdp:
        f = train_fsdp(a.global_batch, a.steps, seed=a.seed)
        info.update(fsdp_local_params=f["local_params"], fsdp_params=f["params"])
    if distributed.is_main():
        out.mkdir(parents=True, exist_ok=True)
        save_weights(r["model"].state_dict(), out / f"weights-ddp-{world}.safetensors")
        if a.fsdp:
            save_weights(f["state"], out / f"weights-fsdp-{world}.safetensors")
        (out / f"result-{world}.json").write_text(json.dumps(info, indent=1))
    distributed.cleanup()


if __name__ == "__main__":
    main()
