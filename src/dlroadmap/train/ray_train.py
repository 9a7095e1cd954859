"""Ray Train: the same data-parallel training on Ray workers, the engine for "more machines".

`TorchTrainer` starts N worker processes (actors) wherever the Ray cluster has room: on one laptop
here, on many machines when `ray start --head` / `ray start --address=HEAD:6379` built a cluster,
with no change to the code. Before it calls the training function on each worker, it sets up the
torch.distributed process group (gloo on CPU), so our Trainer finds itself in a group of N
(strategy "auto" -> DDP) exactly as under torchrun: the same function, another launcher.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any


def _loop(config: dict[str, Any]) -> None:
    """Runs on every Ray worker: train this rank's share, rank 0 saves the weights."""
    import torch

    torch.set_num_threads(1)
    from dlroadmap.train import distributed
    from dlroadmap.train.checkpoint import save_weights
    from dlroadmap.train.parallel_check import train_ddp

    r = train_ddp(config["global_batch"], config["steps"], seed=config["seed"])
    if distributed.is_main():
        save_weights(r["model"].state_dict(), Path(config["out"]) / f"weights-ray-{r['world']}.safetensors")
        (Path(config["out"]) / "ray.json").write_text(json.dumps({k: v for k, v in r.items() if k != "model"}))


def fit_with_ray(out: str | Path, workers: int = 2, *, global_batch: int = 64, steps: int = 48, seed: int = 0) -> Path:
    """Train parallel_check's problem on `workers` Ray workers; returns the weights file rank 0 wrote."""
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from dlroadmap.tune.ray_search import start_ray

    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    started = start_ray(cpus=workers)
    try:
        trainer = TorchTrainer(
            _loop,
            train_loop_config={"out": str(out), "global_batch": global_batch, "steps": steps, "seed": seed},
            scaling_config=ScalingConfig(num_workers=workers, use_gpu=False, resources_per_worker={"CPU": 1}),
            run_config=RunConfig(name="parallel_check", storage_path=tempfile.mkdtemp(prefix="ray-train-", dir=out)),
        )
        trainer.fit()
    finally:
        if started:
            ray.shutdown()
    return out / f"weights-ray-{workers}.safetensors"
