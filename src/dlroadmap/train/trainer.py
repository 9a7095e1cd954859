"""The one Trainer used by every PyTorch experiment.

The training step itself is four lines (forward, loss, backward, step). Everything else here is
engineering that every experiment gets for free: device choice, bf16 autocast, torch.compile
(train/compiled.py), gradient clipping, LR schedules, callbacks, a progress bar, a NaN/inf guard,
seeding, and checkpoints that resume exactly (same batches, same RNG draws, same weights, bit for bit).

Two ways to train beyond "one optimiser, one loss per batch":
  - several optimisers (a GAN's discriminator and generator): pass `optimizer={"d": ..., "g": ...}`
    and a `manual_step(trainer, batch) -> {name: value}` that calls `trainer.optimize(name, loss)`
    for each update it wants, in its own order (Lightning's "manual optimisation", without hooks);
  - a step budget instead of epochs (RL, diffusion): `max_steps=N`; with no dataset, `fit(None)`
    gives the step an empty batch `()` and the step draws its own data from the seeded RNGs;
    `eval_every` steps make one round of validation, logging and checkpoints.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dlroadmap.data.loader import NoData, ResumableLoader, resumable
from dlroadmap.errors import TrainingDiverged, UserError
from dlroadmap.train import checkpoint as ckpt
from dlroadmap.train import compiled, distributed
from dlroadmap.train import memory_format as layout
from dlroadmap.train.callbacks import Callback, ModelCheckpoint, attached_callbacks

PRECISIONS = ("fp32", "bf16")
STRATEGIES = ("auto", "single", "ddp")
StepFn = Callable[[nn.Module, Sequence[torch.Tensor]], "tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]"]
MetricFn = Callable[[torch.Tensor, torch.Tensor], float]
ManualStepFn = Callable[["Trainer", Sequence[torch.Tensor]], "dict[str, float | torch.Tensor]"]


def pick_device(device: str = "auto") -> torch.device:
    """'auto' picks cuda > mps > cpu; anything else is passed to torch.device and checked."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise UserError(f"unknown device {device!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {device!r} requested but CUDA is not available here; use --device cpu or auto")
    return dev


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and torch; with deterministic=True also ask torch for deterministic
    kernels (some, like embedding backward, are slower that way)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(deterministic, warn_only=True)


def rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(_tuplify(state["python"]))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _tuplify(x: Any) -> Any:
    return tuple(_tuplify(v) for v in x) if isinstance(x, (list, tuple)) else x


def supervised_step(model: nn.Module, batch: Sequence[torch.Tensor], loss_fn: Callable = F.cross_entropy):
    """The default step: (inputs, targets) -> (loss, outputs, targets)."""
    x, y = batch[0], batch[1]
    out = model(x)
    return loss_fn(out, y), out, y


class Trainer:
    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer | dict[str, torch.optim.Optimizer],
        loss_fn: Callable = F.cross_entropy,
        *,
        max_epochs: int | None = None,
        max_steps: int | None = None,
        eval_every: int | None = None,
        scheduler: Any = None,
        scheduler_interval: str = "epoch",
        device: str | torch.device = "auto",
        precision: str = "fp32",
        grad_clip: float | None = None,
        callbacks: Iterable[Callback] = (),
        tracker: Any = None,
        seed: int = 0,
        metrics: dict[str, MetricFn] | None = None,
        step: StepFn | None = None,
        manual_step: ManualStepFn | None = None,
        log_prefix: str = "",
        description: str = "train",
        deterministic: bool = True,
        strategy: str = "auto",
        compile: bool | None = None,
        memory_format: str = "auto",
    ):
        if strategy not in STRATEGIES:
            raise UserError(f"unknown strategy {strategy!r}; choose from {', '.join(STRATEGIES)}")
        if memory_format not in layout.FORMATS:
            raise UserError(f"unknown memory_format {memory_format!r}; choose from {', '.join(layout.FORMATS)}")
        if precision not in PRECISIONS:
            raise UserError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
        if scheduler_interval not in ("epoch", "step"):
            raise ValueError("scheduler_interval must be 'epoch' or 'step'")
        if isinstance(optimizer, dict) and manual_step is None:
            raise ValueError("several optimizers need a manual_step that says which one each update uses")
        if max_steps is not None and max_steps < 1:
            raise ValueError("max_steps must be >= 1")
        self.device = device if isinstance(device, torch.device) else pick_device(device)
        # "auto": data-parallel when started with peers (torchrun, Ray Train), else one process.
        self.strategy = ("ddp" if distributed.launched() else "single") if strategy == "auto" else strategy
        if self.strategy == "ddp":
            if not distributed.in_launcher():
                raise UserError("strategy 'ddp' needs processes started together: `dlr run ID --nproc N` or `torchrun --nproc-per-node N ...`")
            self.device = distributed.setup(self.device)
        self.model = model.to(self.device)
        self._train_model: nn.Module = self.model  # the DDP wrapper while training sharded data
        self.sharded = False
        # Optimisers (and their schedulers) by name; a single one is called "main".
        self.optimizers: dict[str, torch.optim.Optimizer] = dict(optimizer) if isinstance(optimizer, dict) else {"main": optimizer}
        self.optimizer = next(iter(self.optimizers.values()))
        if scheduler is None:
            self.schedulers: dict[str, Any] = {}
        elif isinstance(scheduler, dict):
            self.schedulers = dict(scheduler)
        else:
            self.schedulers = {next(iter(self.optimizers)): scheduler}
        unknown = set(self.schedulers) - set(self.optimizers)
        if unknown:
            raise ValueError(f"schedulers for unknown optimizers {sorted(unknown)}")
        self.loss_fn = loss_fn
        self.max_steps = max_steps
        # Without a step budget, epochs bound training (10 unless given); with one, only if given.
        self.max_epochs = max_epochs if max_epochs is not None else (10 if max_steps is None else 2**62)
        self.eval_every = eval_every
        self.scheduler_interval = scheduler_interval
        self.precision = precision
        self.grad_clip = grad_clip
        # Checkpoint callbacks run last at epoch end, so what they save includes every other callback's decision.
        cbs = list(callbacks) + list(attached_callbacks())
        self.callbacks = [c for c in cbs if not isinstance(c, ModelCheckpoint)] + [c for c in cbs if isinstance(c, ModelCheckpoint)]
        self.tracker = tracker
        self.seed = seed
        self.metrics = metrics or {}
        self.step_fn = step or (lambda m, b: supervised_step(m, b, self.loss_fn))
        self.manual_step = manual_step
        self.log_prefix = log_prefix
        self.description = description
        self.deterministic = deterministic
        # torch.compile the model the training step calls (train/compiled.py); None: as `dlr run --compile` says.
        self.compile = compiled.compile_by_default() if compile is None else compile
        # Counters: everything needed to resume exactly.
        self.epoch = 0              # epochs completed
        self.global_step = 0        # optimizer steps taken
        self.batch_in_epoch = 0     # batches of the current epoch already trained on
        self.should_stop = False
        self.history: list[dict[str, float]] = []
        self._sums: dict[str, float] = {}  # running sums of the step's logged values over this epoch
        self._seen = 0
        self.last_checkpoint: Path | None = None
        # Where the time of training steps went: waiting for the next batch vs the step itself. When
        # data_s is a large share, the input pipeline is the bottleneck (more workers, prefetch, shards).
        self.timing = {"data_s": 0.0, "compute_s": 0.0, "steps": 0}
        if self.compile:
            self.timing["first_step_s"] = 0.0   # with compile: the first step's wall time, compilation included
        # Conv nets: NCHW or channels-last (NHWC); "auto": whichever measures faster here (train/memory_format.py), at the first step.
        self.requested_memory_format = memory_format
        self.memory_format: torch.memory_format | None = None

    # --- precision ---------------------------------------------------------------------------
    def autocast(self):
        """bf16 autocast (on CPUs with AMX, bf16 matmuls run several times faster) or nothing."""
        if self.precision == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _to_device(self, batch: Sequence[torch.Tensor]) -> Sequence[torch.Tensor]:
        if self.device.type != "cpu":
            batch = tuple(t.to(self.device, non_blocking=True) for t in batch)
        if self.memory_format == torch.channels_last:
            batch = layout.to_format(batch, torch.channels_last)
        return batch

    def _pick_memory_format(self, batch: Sequence[torch.Tensor]) -> None:
        """Channels-last or not, for the whole run, from the first batch (a manual step or DDP keeps NCHW)."""
        if self.manual_step is not None or self.strategy == "ddp":
            self.memory_format = torch.contiguous_format
            return
        self.memory_format = layout.pick(self.model, batch, lambda m, b: self.step_fn(m, b)[0], self.autocast, self.device, self.precision,
                                         self.requested_memory_format)
        if self.memory_format == torch.channels_last:
            self.model.to(memory_format=torch.channels_last)   # in place: the optimiser keeps the same parameters

    # --- the training step -------------------------------------------------------------------
    def training_step(self, batch: Sequence[torch.Tensor]) -> dict[str, float]:
        """One step; returns the values to average over the epoch ({"loss": ...} by default)."""
        if self.memory_format is None:
            batch = self._to_device(batch)          # no format chosen yet: moved to the device, still NCHW, as it is measured
            self._pick_memory_format(batch)
        batch = self._to_device(batch)              # on the device already: only the chosen memory format is applied
        if self.manual_step is not None:
            logs = self.manual_step(self, batch)
            return {k: float(v.detach()) if isinstance(v, torch.Tensor) else float(v) for k, v in logs.items()}
        with self.autocast():
            loss, _, _ = self.step_fn(self._train_model, batch)
        return {"loss": self.optimize("main", loss)}

    def optimize(self, name: str, loss: torch.Tensor, parameters: Iterable[torch.Tensor] | None = None) -> float:
        """One update of optimiser `name`: zero its gradients, backpropagate `loss`, clip, step.

        A manual step calls this once per update (e.g. discriminator, then generator). Gradients are
        zeroed on `parameters` (default: the optimiser's own), so an update never sees gradients that
        another network's loss left behind. Returns the loss as a float; stops on NaN/inf.
        """
        value = loss.item()
        if not math.isfinite(value):
            self._diverged(f"{'loss' if name == 'main' else 'loss ' + name} became {value}")
        opt = self.optimizers[name]
        params = list(parameters) if parameters is not None else [p for g in opt.param_groups for p in g["params"]]
        for p in params:
            p.grad = None
        loss.backward()
        if self.grad_clip is not None:
            norm = nn.utils.clip_grad_norm_(params, self.grad_clip)
            if not torch.isfinite(norm):
                self._diverged(f"gradient norm became {norm.item()}")
        opt.step()
        sched = self.schedulers.get(name)
        if sched is not None and self.scheduler_interval == "step":
            sched.step()
        return value

    def _compiled_step(self, batch: Sequence[torch.Tensor], bar, task) -> dict[str, float]:
        """A training step through the compiled model; if compiling fails (at the first step, or at a
        recompile for a new shape), one warning line, then this step and the rest run eagerly."""
        first = self.timing.get("first_step_s") == 0.0
        if first and bar is not None:
            bar.update(task, info="compiling the model (the first step; cached for the next run)")
        rng = torch.get_rng_state()  # the step is redone eagerly with the same random draws
        t0 = time.perf_counter()
        try:
            logs = self.training_step(batch)
        except compiled.compile_errors() as e:
            from dlroadmap.ui import console

            self._train_model = compiled.uncompiled(self._train_model)
            first_line = (str(e).strip().splitlines() or [""])[0][:160]
            console.print(f"[yellow]{self.description}: torch.compile failed ({type(e).__name__}: {first_line}); training on eagerly[/]",
                          highlight=False, soft_wrap=True)
            torch.set_rng_state(rng)
            logs = self.training_step(batch)
        if first:
            self.timing["first_step_s"] = time.perf_counter() - t0
        return logs

    def _diverged(self, what: str) -> None:
        where = f"epoch {self.epoch + 1}, step {self.global_step + 1}"
        kept = f"last good checkpoint: {self.last_checkpoint}" if self.last_checkpoint else "no checkpoint was written yet"
        raise TrainingDiverged(
            f"training stopped at {where}: {what}; {kept}. Try a lower learning rate, gradient clipping (grad_clip) or fp32"
        )

    # --- fit -----------------------------------------------------------------------------------
    def fit(self, train_loader: Iterable | None, val_loader: Iterable | None = None, *, resume: bool | str | Path = False) -> list[dict[str, float]]:
        """Train for max_epochs or max_steps (or until a callback stops). `resume=True` continues from the
        latest checkpoint of the ModelCheckpoint callback, `resume=PATH` from that checkpoint folder.
        `train_loader=None` (with max_steps): no dataset, the step makes its own data."""
        if train_loader is None:
            if self.max_steps is None:
                raise ValueError("fit(None) trains by step budget: give the Trainer max_steps")
            train_loader = NoData(self.eval_every or self.max_steps)
        loader = self._distribute(train_loader) if self.strategy == "ddp" else resumable(train_loader)
        if self.compile and self.manual_step is None:
            self._train_model = compiled.compile_model(self._train_model)
        # Under DDP each rank draws its own dropout masks and augmentations, as different samples would on one process.
        seed_everything(self.seed + (distributed.rank() if self.sharded else 0), self.deterministic)
        if resume:
            path = self._resume_path(resume)
            if path is not None:
                self.load_checkpoint(path)
        for cb in self.callbacks:
            cb.on_fit_start(self)
        n_batches = len(loader)
        from dlroadmap.ui import progress

        with progress() as bar:
            total = self.max_steps if self.max_steps is not None else n_batches * self.max_epochs
            task = bar.add_task(self.description, total=total, info="", completed=self.global_step) if bar else None
            while self.epoch < self.max_epochs and not self.should_stop and not self.budget_spent:
                if self._train_epoch(loader, bar, task):
                    self._end_epoch(val_loader, bar, task)
            if bar is not None:
                bar.remove_task(task)
        for cb in self.callbacks:
            cb.on_fit_end(self)
        self._train_model = self.model  # release the DDP wrapper (it holds the process group's gradient buckets) and the compiled one
        return self.history

    def _distribute(self, train_loader: Iterable) -> ResumableLoader:
        """Under DDP: this rank's shard of the data and the model wrapped to average gradients; or, when the
        data cannot be sharded or the step is manual, the same training on every rank (correct, no faster)."""
        from torch.nn.parallel import DistributedDataParallel

        if self.manual_step is None and hasattr(train_loader, "shard"):
            self.sharded = True
            self._train_model = DistributedDataParallel(self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
            return resumable(train_loader.shard(distributed.rank(), distributed.world_size()))
        if distributed.is_main():
            from dlroadmap.ui import console

            why = "a manual step" if self.manual_step is not None else f"a loader without shard() ({type(train_loader).__name__})"
            console.print(f"[yellow]{self.description}: {why} runs the same training on each of the {distributed.world_size()} ranks (no data parallelism)[/]")
        return resumable(train_loader)

    @property
    def budget_spent(self) -> bool:
        return self.max_steps is not None and self.global_step >= self.max_steps

    def _train_epoch(self, loader: ResumableLoader, bar, task) -> bool:
        """Train on the rest of the current epoch (or up to the step budget); False when a callback stopped it midway."""
        loader.set_epoch(self.epoch)
        self.model.train()
        update_every = 10
        batches = iter(loader.iter_from(self.batch_in_epoch))
        while True:
            t0 = time.perf_counter()
            batch = next(batches, None)
            t1 = time.perf_counter()
            if batch is None:
                break
            compiling = self._train_model is not compiled.uncompiled(self._train_model)
            logs = self._compiled_step(batch, bar, task) if compiling else self.training_step(batch)
            self.timing["data_s"] += t1 - t0
            self.timing["compute_s"] += time.perf_counter() - t1
            self.timing["steps"] += 1
            n = len(batch[0]) if len(batch) else 1
            for k, v in logs.items():
                self._sums[k] = self._sums.get(k, 0.0) + v * n
            self._seen += n
            self.batch_in_epoch += 1
            self.global_step += 1
            for cb in self.callbacks:
                cb.on_train_batch_end(self)
            if bar is not None and self.global_step % update_every == 0:
                shown = "  ".join(f"{k} {v:.4f}" for k, v in logs.items())
                bar.update(task, completed=self.global_step, info=f"epoch {self.epoch + 1} {shown}")
            if self.should_stop or self.budget_spent:
                break
        close = getattr(batches, "close", None)
        if close is not None:
            close()  # a stopped epoch releases its loader now (DataLoader workers shut down)
        if bar is not None:
            bar.update(task, completed=self.global_step)
        return not self.should_stop

    def _end_epoch(self, val_loader: Iterable | None, bar, task) -> None:
        sums, seen = self._sums, self._seen
        if self.sharded:  # the epoch's training loss over all ranks' samples
            keys = sorted(sums)
            *vals, seen = distributed.all_reduce_sum([sums[k] for k in keys] + [seen], self.device)
            sums = dict(zip(keys, vals))
        metrics: dict[str, float] = {f"train_{k}": v / max(seen, 1) for k, v in sums.items()}
        if val_loader is not None:
            metrics.update(self.evaluate(val_loader, prefix="val_"))
        if self.scheduler_interval == "epoch":
            for sched in self.schedulers.values():
                if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
                    sched.step(metrics.get("val_loss", metrics.get("train_loss")))
                else:
                    sched.step()
        self.epoch += 1
        self.batch_in_epoch = 0
        self._sums, self._seen = {}, 0
        for cb in self.callbacks:
            cb.on_epoch_metrics(self, metrics)
        self.history.append({"epoch": float(self.epoch), **({"step": float(self.global_step)} if self.max_steps else {}), **metrics})
        if self.tracker is not None and distributed.is_main():
            shown = {f"{self.log_prefix}/{k}": v for k, v in metrics.items()} if self.log_prefix else metrics
            self.tracker.log_metrics(shown, step=self.global_step if self.max_steps else self.epoch)
        if bar is not None:
            shown = "  ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k != "lr")
            bar.update(task, info=f"epoch {self.epoch} {shown}")
        for cb in self.callbacks:
            cb.on_epoch_end(self, metrics)

    # --- evaluation ----------------------------------------------------------------------------
    @torch.inference_mode()
    def predict(self, loader: Iterable) -> tuple[torch.Tensor, torch.Tensor | None, float]:
        """(outputs, targets, mean loss) over a loader, outputs in float32 on the CPU."""
        self.model.eval()
        outs, targets, loss_sum, seen = [], [], 0.0, 0
        if isinstance(loader, ResumableLoader):
            loader.set_epoch(0)  # evaluation always sees the same batches
        for batch in loader:
            batch = self._to_device(batch)
            with self.autocast():
                loss, out, y = self.step_fn(self.model, batch)
            n = len(batch[0])
            loss_sum += float(loss) * n
            seen += n
            if out is not None:
                outs.append(out.float().cpu())
            if y is not None:
                targets.append(y.cpu())
        out_t = torch.cat(outs) if outs else torch.empty(0)
        y_t = torch.cat(targets) if targets else None
        return out_t, y_t, loss_sum / max(seen, 1)

    def evaluate(self, loader: Iterable, prefix: str = "") -> dict[str, float]:
        out, y, loss = self.predict(loader)
        metrics = {f"{prefix}loss": loss}
        for name, fn in self.metrics.items():
            metrics[f"{prefix}{name}"] = float(fn(out, y))
        return metrics

    # --- checkpoints ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "global_step": self.global_step,
            "batch_in_epoch": self.batch_in_epoch,
            "sums": dict(self._sums),
            "seen": self._seen,
            # A stop at an epoch boundary (early stopping) is final; one in mid-epoch is an interruption.
            "should_stop": self.should_stop and self.batch_in_epoch == 0,
            "history": self.history,
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "schedulers": {k: sch.state_dict() for k, sch in self.schedulers.items()},
            "callbacks": {key: cb.state_dict() for key, cb in self._callback_keys()},
            "rng": rng_state(),
            "precision": self.precision,
        }

    def save_checkpoint(self, dirpath: str | Path, keep: int = 2) -> Path:
        # Never persist a diverged model: the last good checkpoint must stay the newest one.
        if not all(torch.isfinite(p).all() for p in self.model.parameters()):
            self._diverged("weights became non-finite")
        state = self.state_dict()
        if self.strategy == "ddp":
            # Every rank reaches this at the same step: rank 0 writes (with each rank's RNG state), the others wait.
            state["rng_ranks"] = distributed.gather_to_all(state["rng"])
            if distributed.is_main():
                ckpt.save_checkpoint(dirpath, self.model.state_dict(), state, step=self.global_step, keep=keep)
            distributed.barrier()
            self.last_checkpoint = Path(dirpath) / f"step-{self.global_step:08d}"
            return self.last_checkpoint
        self.last_checkpoint = ckpt.save_checkpoint(dirpath, self.model.state_dict(), state, step=self.global_step, keep=keep)
        return self.last_checkpoint

    def load_checkpoint(self, path: str | Path) -> None:
        weights, state = ckpt.load_checkpoint(path)
        try:
            self.model.load_state_dict(weights)
        except RuntimeError as e:
            raise UserError(f"checkpoint {path} does not fit this model ({str(e).splitlines()[0]}); was it made with other settings?") from None
        self.model.to(self.device)
        saved_opts = state["optimizers"]
        if set(saved_opts) != set(self.optimizers):
            raise UserError(f"checkpoint {path} holds optimizers {sorted(saved_opts)}, this run has {sorted(self.optimizers)}")
        for k, o in self.optimizers.items():
            o.load_state_dict(saved_opts[k])
        for k, sch in self.schedulers.items():
            if k in state.get("schedulers", {}):
                sch.load_state_dict(state["schedulers"][k])
        saved = state.get("callbacks", {})
        for key, cb in self._callback_keys():
            if key in saved:
                cb.load_state_dict(saved[key])
        self.epoch, self.global_step, self.batch_in_epoch = state["epoch"], state["global_step"], state["batch_in_epoch"]
        self._sums, self._seen = dict(state["sums"]), state["seen"]
        self.should_stop = state["should_stop"]
        self.history = list(state["history"])
        ranks = state.get("rng_ranks")
        set_rng_state(ranks[distributed.rank()] if ranks and len(ranks) == distributed.world_size() else state["rng"])
        self.last_checkpoint = Path(path)

    def _callback_keys(self) -> list[tuple[str, Callback]]:
        """Stable names for callback state: class name and its index among callbacks of that class."""
        seen: dict[str, int] = {}
        keys = []
        for cb in self.callbacks:
            name = type(cb).__name__
            keys.append((f"{name}:{seen.get(name, 0)}", cb))
            seen[name] = seen.get(name, 0) + 1
        return keys

    def _resume_path(self, resume: bool | str | Path) -> Path | None:
        if not isinstance(resume, bool):
            return Path(resume)
        dirs = [cb.dirpath for cb in self.callbacks if isinstance(cb, ModelCheckpoint)]
        if not dirs:
            raise UserError("resume needs a ModelCheckpoint callback (it says where checkpoints are)")
        return ckpt.latest_checkpoint(dirs[0])


