"""Phase 4, Scalability.

  p4.scale.pipelines    The training set written as WebDataset-layout tar shards and streamed back through
                        torch's DataLoader workers (data/pipeline.py): every sample exactly once per epoch for
                        several ranks x workers; a model trained on the stream as good as one trained from memory;
                        why a shuffle buffer exists (shards written in class order, as raw data often is: with no
                        mixing every batch holds one class and SGD forgets all but the last); an interrupted epoch
                        resumed exactly; samples/s and the Trainer's data-wait vs compute split for 0, 1, 2 workers.
  p4.scale.distributed  One training run by every engine (train/parallel_check.py): one process at batch G; torchrun
                        with DDP (2 processes at G/2) and FSDP2; Ray Train's TorchTrainer; Horovod. Final weights
                        compared with the one-process run; a one-process run at G/2 shows what a wrong batch would do
                        to them; the all-reduce time beside the compute time per step (the scaling model).
"""

from __future__ import annotations

import json
import subprocess
import time
from typing import ClassVar

import matplotlib.pyplot as plt
import numpy as np
import torch
from pydantic import Field
from torch import nn

from dlroadmap.data import classification_tensors
from dlroadmap.data.augment import jitter
from dlroadmap.data.loader import TensorLoader
from dlroadmap.data.pipeline import ShardStream, StreamLoader, write_shards
from dlroadmap.evaluate.metrics import accuracy
from dlroadmap.experiments.base import Experiment, ExperimentConfig, PositiveInt, Result
from dlroadmap.models.mlp import MLP
from dlroadmap.train import Tracker
from dlroadmap.train.callbacks import Callback, ModelCheckpoint
from dlroadmap.train.trainer import Trainer

# --- p4.scale.pipelines -----------------------------------------------------------------------------


class PipelinesConfig(ExperimentConfig):
    dataset: str = Field("mnist", description="the training split that is sharded (mnist needs DLR_DATA_DIR; mnist5k is embedded)")
    shards: int = Field(16, ge=1, le=4096, description="tar shards written")
    shuffle_buffers: list[PositiveInt] = Field([1, 16, 256, 4096], min_length=2, description="shuffle-buffer sizes compared on class-ordered shards")
    epochs: int = Field(3, ge=1, le=50)
    batch_size: int = Field(128, ge=1, le=4096)
    lr: float = Field(0.05, gt=0, le=1)
    workers: list[int] = Field([0, 1, 2], min_length=1, description="DataLoader worker counts timed")
    exactly_once: list[tuple[int, int]] = Field([(1, 0), (2, 2), (3, 2), (4, 1)], description="(ranks, workers) pairs checked for exactly-once")

    QUICK: ClassVar[dict] = {"dataset": "mnist5k", "shards": 7, "shuffle_buffers": [1, 1024], "epochs": 2, "batch_size": 64,
                             "workers": [0, 2], "exactly_once": [(3, 2)]}


def _train(loader, data, config: PipelinesConfig, *, callbacks=(), resume=False, description="stream"):
    torch.manual_seed(config.seed)
    model = MLP(int(np.prod(data.shape)), [256], data.num_classes)
    flat = lambda m, b: (lambda o: (nn.functional.cross_entropy(o, b[1]), o, b[1]))(m(b[0].flatten(1)))  # noqa: E731
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=config.lr, momentum=0.9), max_epochs=config.epochs, step=flat,
                      device="cpu", seed=config.seed, callbacks=callbacks, description=description)
    trainer.fit(loader, resume=resume)
    with torch.no_grad():
        test = accuracy(model(data.X_test.flatten(1)), data.y_test)
    return model, trainer, test


class StopAt(Callback):
    """Interrupts training after `step` optimizer steps, as a crash would (the checkpoint every step stays)."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer: Trainer) -> None:
        if trainer.global_step == self.step:
            trainer.should_stop = True


def run_pipelines(config: PipelinesConfig, tracker: Tracker) -> Result:
    data = classification_tensors(config.dataset, seed=config.seed)
    run_dir = tracker.run_dir
    X = data.X_train.reshape(len(data.X_train), *data.shape).numpy()
    y = data.y_train.numpy()
    m: dict[str, float] = {}

    # 1. Write the shards (atomically); the class-ordered copy is how many raw datasets arrive.
    t0 = time.perf_counter()
    shuffled = write_shards(run_dir / "shards", X, y, config.shards, name=config.dataset)
    m["prepare_seconds"] = time.perf_counter() - t0
    order = np.argsort(y, kind="stable")
    by_class = write_shards(run_dir / "shards-by-class", X[order], y[order], config.shards, name=config.dataset)
    m["shard_mb"] = sum(p.stat().st_size for p in shuffled.glob("*.tar")) / 1e6

    # 2. Exactly once per epoch: each (ranks, workers) reads the whole set, every sample once.
    violations = 0
    for ranks, workers in config.exactly_once:
        ids: list[int] = []
        for r in range(ranks):
            stream = ShardStream(shuffled, shuffle_buffer=64, seed=config.seed, rank=r, world=ranks, with_ids=True)
            ids += [int(i) for b in StreamLoader(stream, config.batch_size, workers) for i in b[2]]
        counts = np.bincount(np.array(ids, dtype=np.int64), minlength=len(X))
        violations += int((counts != 1).sum())
    m["exactly_once_violations"] = violations

    # 3. Stream vs memory: the same model, optimiser and samples, read from shards by 2 workers through a shuffle
    # buffer (no augmentation here, so only the pipeline differs; sections 5 and 6 augment).
    _, _, m["memory_test_accuracy"] = _train(TensorLoader(data.X_train, data.y_train, batch_size=config.batch_size, shuffle=True, seed=config.seed),
                                             data, config, description="from memory")
    stream = StreamLoader(ShardStream(shuffled, shuffle_buffer=1024, seed=config.seed), config.batch_size, workers=2)
    _, streamed, m["stream_test_accuracy"] = _train(stream, data, config, description="streamed, 2 workers")
    m["stream_minus_memory"] = m["stream_test_accuracy"] - m["memory_test_accuracy"]

    # 4. Why shuffle: class-ordered shards through buffers of growing size (shard order shuffled each epoch).
    mixing = {}
    for buf in config.shuffle_buffers:
        loader = StreamLoader(ShardStream(by_class, shuffle_buffer=buf, seed=config.seed), config.batch_size, workers=0)
        mixing[buf] = float(np.mean([len(torch.unique(b[1])) for b in loader]))
        _, _, m[f"sorted_buffer_{buf}_test_accuracy"] = _train(loader, data, config, description=f"class-ordered, buffer {buf}")
        m[f"classes_per_batch_buffer_{buf}"] = mixing[buf]
    lo, hi = min(config.shuffle_buffers), max(config.shuffle_buffers)
    m["buffer_gain"] = m[f"sorted_buffer_{hi}_test_accuracy"] - m[f"sorted_buffer_{lo}_test_accuracy"]

    # 5. Interrupt mid-epoch (checkpoint every step), resume: the weights equal the uninterrupted run's.
    make = lambda: StreamLoader(ShardStream(shuffled, shuffle_buffer=256, seed=config.seed, transform=jitter), config.batch_size, workers=2)  # noqa: E731
    ref, _, _ = _train(make(), data, config, description="uninterrupted")
    ckpt = run_dir / "checkpoints"
    stop = len(make()) + len(make()) // 2  # half-way through epoch 2
    _train(make(), data, config, callbacks=[StopAt(stop), ModelCheckpoint(ckpt, every_n_steps=1, monitor=None, keep=1)], description="interrupted")
    resumed, _, _ = _train(make(), data, config, callbacks=[ModelCheckpoint(ckpt, every_n_steps=None, monitor=None, keep=1)], resume=True,
                           description="resumed")
    m["resume_max_abs_diff"] = max(float((a - b).abs().max()) for a, b in zip(ref.state_dict().values(), resumed.state_dict().values()))

    # 6. Throughput: an epoch of batches (no training) from memory and from shards with 0..W workers, then the
    # Trainer's own split of a training epoch into waiting for data and computing.
    speed = {"memory": _samples_per_s(TensorLoader(data.X_train, data.y_train, batch_size=config.batch_size, shuffle=True))}
    for w in config.workers:
        speed[f"{w} workers"] = _samples_per_s(StreamLoader(ShardStream(shuffled, shuffle_buffer=1024, seed=config.seed, transform=jitter),
                                                            config.batch_size, workers=w))
    for k, v in speed.items():
        m[f"samples_per_s_{k.replace(' ', '_')}"] = v
    m["stream_data_wait_share"] = streamed.timing["data_s"] / max(streamed.timing["data_s"] + streamed.timing["compute_s"], 1e-9)

    plots = {"pipeline": tracker.log_figure(_pipeline_figure(m, mixing, speed, config), "pipeline")}
    notes = (f"{len(X)} samples in {config.shards} shards ({m['shard_mb']:.1f} MB, tar headers included); stream {m['stream_test_accuracy']:.3f} "
             f"vs memory {m['memory_test_accuracy']:.3f}; class-ordered shards: buffer {lo} -> {m[f'sorted_buffer_{lo}_test_accuracy']:.3f}, "
             f"buffer {hi} -> {m[f'sorted_buffer_{hi}_test_accuracy']:.3f}; the streamed training waited for data "
             f"{100 * m['stream_data_wait_share']:.0f}% of its step time")
    return Result(metrics=m, artifacts=plots, notes=notes)


def _samples_per_s(loader, repeats: int = 1) -> float:
    n, t0 = 0, time.perf_counter()
    for _ in range(repeats):
        for b in loader:
            n += len(b[0])
    return n / (time.perf_counter() - t0)


def _pipeline_figure(m: dict[str, float], mixing: dict[int, float], speed: dict[str, float], config: PipelinesConfig):
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    bufs = sorted(mixing)
    axes[0].plot(bufs, [mixing[b] for b in bufs], "o-")
    axes[0].set(xscale="log", xlabel="shuffle buffer (samples)", ylabel="distinct classes per batch", title="class-ordered shards: mixing")
    axes[1].bar([str(b) for b in bufs], [m[f"sorted_buffer_{b}_test_accuracy"] for b in bufs], color="tab:orange", label="class-ordered shards")
    axes[1].axhline(m["stream_test_accuracy"], color="tab:green", ls="--", label="shuffled shards")
    axes[1].axhline(m["memory_test_accuracy"], color="grey", ls=":", label="from memory")
    axes[1].set(xlabel="shuffle buffer", ylabel="test accuracy", title=f"{config.epochs} epochs of SGD", ylim=(0, 1))
    axes[1].legend(fontsize=8)
    axes[2].bar(list(speed), list(speed.values()), color=["grey"] + ["tab:blue"] * (len(speed) - 1))
    for i, v in enumerate(speed.values()):
        axes[2].text(i, v, f"{v:,.0f}", ha="center", va="bottom", fontsize=8)
    axes[2].set(yscale="log", ylabel="samples / s (batches only, log scale)",
                title=f"memory vs shards + augmentation; training waited {100 * m['stream_data_wait_share']:.0f}% for data")
    fig.tight_layout()
    return fig


# --- p4.scale.distributed ---------------------------------------------------------------------------


class DistributedConfig(ExperimentConfig):
    nprocs: list[PositiveInt] = Field([2, 4], min_length=1, description="process counts for torchrun (DDP and FSDP); on 2 cores, >2 checks correctness, not speed")
    global_batch: int = Field(64, ge=4, le=1024, description="samples per step over all processes (divisible by every process count)")
    steps: int = Field(96, ge=1, le=10_000)
    ray: bool = Field(True, description="also train with Ray Train's TorchTrainer (2 workers)")
    horovod: bool = Field(True, description="also train with Horovod (needs `make horovod`)")

    QUICK: ClassVar[dict] = {"nprocs": [2], "steps": 32}


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return max(float((torch.as_tensor(a[k]) - torch.as_tensor(b[k])).abs().max()) for k in a)


def run_distributed(config: DistributedConfig, tracker: Tracker) -> Result:
    from safetensors.torch import load_file

    from dlroadmap.train import distributed as launch
    from dlroadmap.train.parallel_check import train_ddp

    if any(config.global_batch % n for n in config.nprocs):
        from dlroadmap.errors import UserError

        raise UserError(f"global_batch={config.global_batch} must be divisible by every process count in nprocs={config.nprocs}")
    out = tracker.run_dir / "weights"
    out.mkdir(parents=True, exist_ok=True)
    m: dict[str, float] = {}
    ref = train_ddp(config.global_batch, config.steps, seed=config.seed)
    reference = ref["model"].state_dict()
    m["single_samples_per_s"] = ref["samples_per_s"]
    per_step_compute = ref["seconds"] / config.steps
    # The same training at G/2 on one process: how far a wrong batch size moves the weights (the check's contrast).
    half = train_ddp(config.global_batch // 2, config.steps, seed=config.seed)
    m["half_batch_max_abs_diff"] = _max_diff(reference, half["model"].state_dict())

    env = launch.worker_env(max(config.nprocs))
    for n in config.nprocs:
        cmd = launch.torchrun_command(["--out", str(out), "--global-batch", str(config.global_batch), "--steps", str(config.steps),
                                            "--seed", str(config.seed), "--fsdp"], n, module="dlroadmap.train.parallel_check")
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**env, "DLR_PROGRESS": "0"}, timeout=600)
        if proc.returncode != 0:
            raise RuntimeError(f"torchrun with {n} processes failed: {proc.stderr.strip().splitlines()[-1:]}")
        info = json.loads((out / f"result-{n}.json").read_text())
        m[f"ddp{n}_max_abs_diff"] = _max_diff(reference, load_file(out / f"weights-ddp-{n}.safetensors"))
        m[f"fsdp{n}_max_abs_diff"] = _max_diff(reference, load_file(out / f"weights-fsdp-{n}.safetensors"))
        m[f"fsdp{n}_param_share"] = info["fsdp_local_params"] / info["fsdp_params"]
        m[f"ddp{n}_samples_per_s"] = info["samples_per_s"]
        m[f"ddp{n}_allreduce_ms"] = info["allreduce_ms"]
    notes = []
    if config.ray:
        from dlroadmap.train.ray_train import fit_with_ray

        t0 = time.perf_counter()
        m["ray_max_abs_diff"] = _max_diff(reference, load_file(fit_with_ray(out, 2, global_batch=config.global_batch, steps=config.steps, seed=config.seed)))
        m["ray_seconds"] = time.perf_counter() - t0
    if config.horovod:
        from dlroadmap.train.horovod_run import fit_with_horovod, horovod_python

        if horovod_python() is None:
            notes.append("Horovod not run: its environment is missing (`make horovod`)")
        else:
            w = np.load(fit_with_horovod(out, 2, global_batch=config.global_batch, steps=config.steps, seed=config.seed))
            m["horovod_max_abs_diff"] = _max_diff(reference, {k: w[k] for k in w.files})
    # The scaling model: a step of N processes costs compute / N + all-reduce (2 cores: N <= 2 run truly in parallel).
    n2 = min(config.nprocs)
    comm = m[f"ddp{n2}_allreduce_ms"] / 1e3
    m["predicted_speedup"] = per_step_compute / (per_step_compute / n2 + comm)
    m["measured_speedup"] = m[f"ddp{n2}_samples_per_s"] / m["single_samples_per_s"]

    plots = {"engines": tracker.log_figure(_engines_figure(m, config), "engines")}
    notes.insert(0, f"max |w - w_single| after {config.steps} steps: " + ", ".join(
        f"{k.replace('_max_abs_diff', '')} {v:.1e}" for k, v in m.items() if k.endswith("_max_abs_diff")))
    return Result(metrics=m, artifacts=plots, notes="; ".join(notes))


def _engines_figure(m: dict[str, float], config: DistributedConfig):
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    keys = [k for k in m if k.endswith("_max_abs_diff")]
    axes[0].bar([k.replace("_max_abs_diff", "").replace("half_batch", "1 process, G/2") for k in keys], [max(m[k], 1e-12) for k in keys],
                color=["tab:red" if k.startswith("half") else "tab:blue" for k in keys])
    axes[0].axhline(1e-5, color="grey", ls="--", label="tolerance 1e-5")
    axes[0].set(yscale="log", ylabel="max |w - w_single|", title=f"final weights vs one process at batch {config.global_batch}")
    axes[0].legend(fontsize=8)
    n = min(config.nprocs)
    axes[1].bar(["1 process", f"DDP x{n}", f"predicted x{n}"], [m["single_samples_per_s"], m[f"ddp{n}_samples_per_s"],
                                                              m["single_samples_per_s"] * m["predicted_speedup"]], color=["grey", "tab:blue", "tab:cyan"])
    axes[1].set(ylabel="samples / s", title=f"a tiny MLP: all-reduce {m[f'ddp{n}_allreduce_ms']:.2f} ms per step")
    fig.tight_layout()
    return fig


pipelines = Experiment(PipelinesConfig, run_pipelines)
distributed = Experiment(DistributedConfig, run_distributed)
