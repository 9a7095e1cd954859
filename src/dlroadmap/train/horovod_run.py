"""Horovod: the same data-parallel training through Uber's library, in its own environment.

Horovod (Sergeev & Del Balso 2018, arXiv:1802.05799) made ring all-reduce data parallelism easy
before PyTorch's own DDP matured: `hvd.DistributedOptimizer` averages gradients across processes
after backward, `hvd.broadcast_parameters` starts every copy from rank 0's weights, and
`horovodrun -np N` launches the processes. Its last release, 0.28.1 (June 2023), does not build
against torch >= 2.1 (it compiles as C++14; torch's headers need C++17): the fix was merged
upstream but never released, and Lightning dropped its Horovod strategy in 2022. Users moved to
torch.distributed (DDP, FSDP) launched by torchrun, and to Ray Train or DeepSpeed for clusters.
`make horovod` builds the 0.28.1 sdist with that one fix into `.venv-horovod`.

This file is both sides: `fit_with_horovod()` (in our environment) writes the problem to an .npz
and runs `horovodrun -np N --gloo` on this same file in the Horovod environment, whose `worker()`
needs only torch, numpy and horovod (dlroadmap is not installed there).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HOROVOD_PYTHON_ENV = "DLR_HOROVOD_PYTHON"


def horovod_python() -> Path | None:
    """The interpreter of the environment that has Horovod: $DLR_HOROVOD_PYTHON or ./.venv-horovod."""
    env = os.environ.get(HOROVOD_PYTHON_ENV)
    candidates = [Path(env)] if env else [Path.cwd() / ".venv-horovod" / "bin" / "python",
                                           Path(__file__).resolve().parents[3] / ".venv-horovod" / "bin" / "python"]
    return next((c for c in candidates if c.is_file()), None)


def fit_with_horovod(out: str | Path, np_: int = 2, *, global_batch: int = 64, steps: int = 48, seed: int = 0, lr: float = 0.05,
                     timeout: float = 300) -> Path:
    """Train parallel_check's problem with `np_` Horovod processes; returns the .npz of rank 0's final weights."""
    # ring all-reduce through a DistributedOptimizer, @sergeev2018horovod
    import numpy as np

    from dlroadmap.errors import UserError
    from dlroadmap.train.parallel_check import SIZES, global_batches, make_model, problem

    py = horovod_python()
    if py is None:
        raise UserError(f"Horovod lives in its own environment: run `make horovod` (creates .venv-horovod) or set {HOROVOD_PYTHON_ENV}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    X, y = problem()
    init = {f"init/{k}": v.numpy() for k, v in make_model(seed).state_dict().items()}
    np.savez(out / "horovod-problem.npz", X=X.numpy(), y=y.numpy(), batches=global_batches(len(X), global_batch, steps, seed),
             sizes=np.array(SIZES), lr=np.array(lr), **init)
    horovodrun = py.parent / "horovodrun"
    cmd = [str(horovodrun), "-np", str(np_), "-H", f"localhost:{np_}", "--gloo", str(py), __file__, str(out)]
    env = {**os.environ, "PATH": f"{py.parent}{os.pathsep}{os.environ.get('PATH', '')}", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"horovodrun failed (exit {proc.returncode}): {' | '.join(tail)}")
    return out / f"weights-horovod-{np_}.npz"


def worker(out: str) -> None:
    """One Horovod process: its slice of every global batch, gradients averaged by hvd.DistributedOptimizer."""
    import horovod.torch as hvd
    import numpy as np
    import torch
    from torch import nn

    hvd.init()
    torch.set_num_threads(1)
    rank, world = hvd.rank(), hvd.size()
    d = np.load(Path(out) / "horovod-problem.npz")
    X, y = torch.from_numpy(d["X"]), torch.from_numpy(d["y"])
    sizes = [int(s) for s in d["sizes"]]
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.Tanh()]
    model = nn.Sequential(*layers[:-1])  # parallel_check.make_model's layout; its weights come from the file
    model.load_state_dict({k[len("init/"):]: torch.from_numpy(d[k]) for k in d.files if k.startswith("init/")})
    opt = torch.optim.SGD(model.parameters(), lr=float(d["lr"]), momentum=0.9)
    opt = hvd.DistributedOptimizer(opt, named_parameters=model.named_parameters(), op=hvd.Average)
    hvd.broadcast_parameters(model.state_dict(), root_rank=0)
    hvd.broadcast_optimizer_state(opt, root_rank=0)
    for idx in d["batches"]:
        part = torch.from_numpy(idx[rank::world])  # the rank's slice, as DistributedSampler / TensorLoader.shard
        loss = nn.functional.cross_entropy(model(X[part]), y[part])
        opt.zero_grad()
        loss.backward()
        opt.step()
    if rank == 0:
        np.savez(Path(out) / f"weights-horovod-{world}.npz", **{k: v.detach().numpy() for k, v in model.state_dict().items()})


if __name__ == "__main__":
    worker(sys.argv[1])
