"""Data-parallel training across processes (and machines): torch.distributed, launched by torchrun.

The idea (Li et al. 2020, "PyTorch Distributed", arXiv:2006.15704): every process holds a full copy
of the model and trains on its own slice of each global batch; after backward, gradients are
averaged across processes (an all-reduce, bucketed and overlapped with the backward pass), so
every copy takes the same optimiser step. With a mean loss and equal slices,

    N processes x batch B  ==  1 process x batch N*B          (up to float rounding)

because the mean of the N per-slice mean gradients is the mean gradient over the N*B samples.

How a run becomes distributed: `dlr run ID --nproc N` re-launches itself under torchrun, which
starts N processes with RANK, LOCAL_RANK, WORLD_SIZE and a rendezvous address in their
environment. The Trainer sees WORLD_SIZE > 1 and (strategy "auto") trains with DDP: it joins the
process group, wraps the model, hands each rank its slice of the data (`loader.shard(rank,
world)`), and lets only rank 0 write checkpoints, logs, progress and results. Every node that
trains through the Trainer therefore runs distributed without a change to its code.

Backends: gloo on CPU; nccl when every local rank has a GPU of its own; gloo with CUDA tensors when
several ranks share one GPU (nccl refuses that).
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from typing import Any

import torch
import torch.distributed as dist

from dlroadmap.errors import UserError

DEFAULT_TIMEOUT_S = 120  # a collective waiting longer than this (a rank died, a machine hangs) fails instead of hanging


def world_size() -> int:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    """Rank 0 (or a plain single process): the one that writes files, logs and prints."""
    return rank() == 0


def launched() -> bool:
    """True inside a process that torchrun (or Ray Train, or any launcher setting WORLD_SIZE) started with peers."""
    return world_size() > 1


def in_launcher() -> bool:
    """Started by a launcher (it sets WORLD_SIZE, even to 1) or already in a process group."""
    return "WORLD_SIZE" in os.environ or (dist.is_available() and dist.is_initialized())


def backend_for(device: torch.device) -> str:
    if device.type == "cuda" and torch.cuda.device_count() >= int(os.environ.get("LOCAL_WORLD_SIZE", "1")):
        return "nccl"
    return "gloo"


def setup(device: torch.device) -> torch.device:
    """Join the process group (once per process) and return the device this rank trains on."""
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        timeout = dt.timedelta(seconds=float(os.environ.get("DLR_DDP_TIMEOUT", DEFAULT_TIMEOUT_S)))
        dist.init_process_group(backend_for(device), timeout=timeout)
    return device


def cleanup() -> None:
    """Leave the process group at the end of a run. Every rank first waits for the others: a rank that tears
    its connections down while a peer still uses them (rank 0 writing results) can abort that peer."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        import gc

        gc.collect()  # DDP wrappers left in reference cycles hold the group's backend: free them before it goes
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def all_reduce_sum(values: list[float], device: torch.device) -> list[float]:
    """Sum a few numbers over all ranks (e.g. each rank's loss sum and sample count)."""
    # gradients summed across ranks by all-reduce, as DDP's buckets do, @li2020pytorchddp
    if not (dist.is_available() and dist.is_initialized()):
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def gather_to_all(obj: Any) -> list[Any]:
    """Every rank's `obj`, on every rank (picklable objects: RNG states for a checkpoint)."""
    if not (dist.is_available() and dist.is_initialized()):
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def torchrun_command(args: list[str], nproc: int, *, nnodes: int = 1, node_rank: int | None = None,
                     rdzv_endpoint: str | None = None, rdzv_id: str = "dlr", module: str = "dlroadmap.cli",
                     local_addr: str | None = None, is_host: bool = False) -> list[str]:
    """The torchrun command that runs `python -m MODULE ARGS` (default: the dlr CLI) on `nproc` processes per machine.

    One machine: a standalone rendezvous on a free local port. Several machines: the same command on
    each, with a c10d rendezvous at `rdzv_endpoint` (HOST:PORT of one of them). Where a machine's own
    hostname does not resolve to the address the others reach it at (containers, network namespaces),
    give each its `local_addr`, and the rendezvous host `is_host`."""
    if nproc < 1:
        raise UserError(f"--nproc must be >= 1, got {nproc}")
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}", "--max-restarts=0"]
    if nnodes == 1 and rdzv_endpoint is None:
        cmd.append("--standalone")
    else:
        if rdzv_endpoint is None:
            raise UserError("several machines need a rendezvous address: --rdzv-endpoint HOST:PORT (one of the machines)")
        cmd += [f"--nnodes={nnodes}", "--rdzv-backend=c10d", f"--rdzv-endpoint={rdzv_endpoint}", f"--rdzv-id={rdzv_id}"]
        if node_rank is not None:
            cmd.append(f"--node-rank={node_rank}")
        if local_addr is not None:
            cmd.append(f"--local-addr={local_addr}")
        if is_host:
            cmd.append("--rdzv-conf=is_host=1")
    return cmd + ["-m", module, *args]


def worker_env(nproc: int) -> dict[str, str]:
    """The environment for torchrun's workers: the machine's cores split between them (torchrun would
    otherwise set one thread each and print a banner about it)."""
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    return env
