"""The CUDA path of data-parallel training, checked on a machine with a GPU (not part of CI: CI has none).

Runs train/parallel_check.py's problem on the GPU: one process; two torchrun processes sharing the one GPU
(gloo over CUDA tensors: nccl refuses two ranks on one device); and a one-rank nccl process group with a
DDP-wrapped model (the nccl code path of the Trainer). Prints one JSON object: the weight differences
against the one-process CUDA run and against the CPU run.

    python benchmarks/cuda_ddp_check.py --out /tmp/cuda-ddp
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
NCCL_ONE_RANK = """
import os, torch
from dlroadmap.train import distributed
from dlroadmap.train.parallel_check import make_model, problem
from dlroadmap.train.trainer import Trainer
from dlroadmap.data.loader import TensorLoader
X, y = problem()
model = make_model(0)
t = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9), max_steps=48, device="cuda", strategy="ddp", seed=0)
t.fit(TensorLoader(X, y, batch_size=64, shuffle=True, seed=0, drop_last=True))
import torch.distributed as dist
from safetensors.torch import save_file
print("backend", dist.get_backend(), "sharded", t.sharded, "device", t.device)
save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, os.environ["OUT_FILE"])
distributed.cleanup()
"""


def run(cmd: list[str], env: dict[str, str]) -> str:
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{r.stderr[-3000:]}")
    return r.stdout + r.stderr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=tempfile.mkdtemp(prefix="cuda-ddp-"))
    a = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device here: this check needs a GPU")
    from safetensors.torch import load_file

    out = Path(a.out)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""), "DLR_PROGRESS": "0"}
    py = sys.executable
    check = ["-m", "dlroadmap.train.parallel_check"]
    run([py, *check, "--out", str(out / "cpu"), "--device", "cpu"], env)
    run([py, *check, "--out", str(out / "cuda1"), "--device", "cuda"], env)
    torchrun = [py, "-m", "torch.distributed.run", "--standalone", "--max-restarts=0"]
    run([*torchrun, "--nproc-per-node=2", *check, "--out", str(out / "cuda2"), "--device", "cuda"], env)
    # one rank, set up as a launcher would: the nccl process group and a DDP-wrapped model
    log = run([py, "-c", NCCL_ONE_RANK], {**env, "OUT_FILE": str(out / "nccl1.safetensors"), "RANK": "0", "WORLD_SIZE": "1",
                                           "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29533"})
    w = {k: load_file(p) for k, p in (("cpu", out / "cpu" / "weights-ddp-1.safetensors"), ("cuda1", out / "cuda1" / "weights-ddp-1.safetensors"),
                                      ("cuda2", out / "cuda2" / "weights-ddp-2.safetensors"), ("nccl1", out / "nccl1.safetensors"))}
    diff = lambda a, b: max(float((w[a][k] - w[b][k]).abs().max()) for k in w[a])  # noqa: E731
    info = json.loads((out / "cuda2" / "result-2.json").read_text())
    print(json.dumps({"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__,
                      "cuda2_vs_cuda1": diff("cuda2", "cuda1"), "cuda1_vs_cpu": diff("cuda1", "cpu"), "nccl1_vs_cuda1": diff("nccl1", "cuda1"),
                      "cuda2_strategy": info["strategy"], "cuda2_sharded": info["sharded"], "cuda2_allreduce_ms": info["allreduce_ms"],
                      "nccl_log": [line for line in log.splitlines() if line.startswith("backend")]}, indent=1))


if __name__ == "__main__":
    main()
