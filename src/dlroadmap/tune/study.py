"""`dlr tune`: search a node's Config for the settings that do best on one of its validation metrics.

    study = TuneJob(node, parse_space(specs, Config), backend="optuna", trials=20, metric="best_val_accuracy", ...)
    summary = tune(study)

Every trial is a real run of the node (runner.run_node) in its own folder, <out>/tune/<node>/trial_NNN/,
logged to MLflow as a child of one parent run (the study). Four backends propose the settings:

  grid     the full grid (tune/space.py), as many points per range as the budget allows
  random   independent draws from the space (Bergstra & Bengio 2012)
  optuna   TPE (Bergstra et al. 2011) with a pruner; the study lives in <study>/optuna.db (sqlite), so running
           the same command again after a crash or a kill continues it (load_if_exists)
  ray      Ray Tune: OptunaSearch proposes, ASHA stops poor trials early, 2 trials at a time (tune/ray_search.py)

Selection happens on the validation metric only. The best settings are written to best_config.json and run
again beside the node's defaults; the summary reports both on validation and on the test metric.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

from dlroadmap.errors import TrainingDiverged, UserError
from dlroadmap.io import write_json
from dlroadmap.tune.job import Trial, TuneJob, check_job, metric_of, run_config, test_metric_of
from dlroadmap.tune.space import Dimension, grid, random_configs

__all__ = ["Trial", "TuneJob", "check_job", "tune"]

def _trial(job: TuneJob, number: int, params: dict[str, Any], parent: str | None, callbacks: tuple = ()) -> Trial:
    """Run one trial; a run that diverges is a failed trial (the study goes on), a pruned one is re-raised."""
    run_dir = job.trial_dir(number)
    t0 = time.perf_counter()
    trial = Trial(number, params, run_dir=str(run_dir))
    try:
        result = run_config(job, params, run_dir, parent=parent, label=f"trial {number}", callbacks=callbacks)
        trial.value = metric_of(job, result.metrics)
    except TrainingDiverged as e:
        trial.state, trial.note = "failed", f"diverged: {e}"
    trial.seconds = time.perf_counter() - t0
    return trial


def _search_fixed(job: TuneJob, parent: str | None, progress: Callable[[Trial], None]) -> list[Trial]:
    # random search: independent draws, so every trial tries a new value of each hyperparameter, @bergstra2012random
    configs = grid(job.dims, job.trials) if job.backend == "grid" else random_configs(job.dims, job.trials, job.seed)
    trials = []
    for number, params in enumerate(configs):
        trials.append(_trial(job, number, params, parent))
        progress(trials[-1])
    return trials


def optuna_pruner(name: str):
    import optuna

    # Nothing is pruned before 5 trials have finished (a median of fewer is noise) nor in a trial's first 3 epochs.
    return {"median": lambda: optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=3),
            "halving": lambda: optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3),
            "hyperband": lambda: optuna.pruners.HyperbandPruner(min_resource=1, reduction_factor=3),
            "none": lambda: optuna.pruners.NopPruner()}[name]()


def suggest(trial: Any, d: Dimension) -> Any:
    if d.kind == "choice":
        if all(isinstance(v, (bool, int, float, str)) for v in d.args):
            return trial.suggest_categorical(d.name, list(d.args))
        # Optuna's categories are scalars: a list (e.g. layer widths) goes in as its JSON text and comes back parsed.
        return json.loads(trial.suggest_categorical(d.name, [json.dumps(v) for v in d.args]))
    if d.kind == "int":
        return trial.suggest_int(d.name, *d.args)
    return trial.suggest_float(d.name, *d.args, log=d.kind == "loguniform")


def _decoded(d: Dimension, value: Any) -> Any:
    """A value as Optuna stored it, back in the space's terms (list choices were stored as JSON text)."""
    return json.loads(value) if d.kind == "choice" and isinstance(value, str) and value not in d.args else value


def open_optuna_study(path: Path, *, name: str, direction: str, seed: int, pruner: str):
    """A TPE study in a sqlite file: created on the first run, continued by the next (load_if_exists).
    A trial left RUNNING by a killed process can never finish: it is marked FAIL and tried again."""
    # a define-by-run study kept in RDB storage (sqlite), resumable, @akiba2019optuna
    import optuna

    path.parent.mkdir(parents=True, exist_ok=True)
    storage = optuna.storages.RDBStorage(f"sqlite:///{path.resolve()}")
    study = optuna.create_study(study_name=name, storage=storage, load_if_exists=True,
                                direction="maximize" if direction == "max" else "minimize",
                                sampler=optuna.samplers.TPESampler(seed=seed), pruner=optuna_pruner(pruner))
    for stale in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        storage.set_trial_state_values(stale._trial_id, optuna.trial.TrialState.FAIL)
    return study


def _search_optuna(job: TuneJob, parent: str | None, progress: Callable[[Trial], None]) -> list[Trial]:
    # the tree-structured Parzen estimator (TPE) proposes each trial, @bergstra2011tpe
    import optuna

    from dlroadmap.tune.pruning import OptunaPruning

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = open_optuna_study(job.folder / "optuna.db", name=job.name or job.node.id, direction=job.direction, seed=job.seed,
                              pruner=job.pruner)
    done = [t for t in study.trials if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)]

    def objective(ot: optuna.Trial) -> float:
        params = {d.name: suggest(ot, d) for d in job.dims}
        callbacks = (OptunaPruning(ot, job.prune_on),) if job.prune_on and job.pruner != "none" else ()
        t0 = time.perf_counter()
        try:
            trial = _trial(job, ot.number, params, parent, callbacks)
        except optuna.TrialPruned as e:
            progress(Trial(ot.number, params, state="pruned", seconds=time.perf_counter() - t0,
                           run_dir=str(job.trial_dir(ot.number)), note=str(e)))
            raise
        progress(trial)
        if trial.value is None:                                                 # diverged: optuna records a failure
            raise RuntimeError(trial.note)
        return trial.value

    remaining = job.trials - len(done)
    if remaining > 0:
        study.optimize(objective, n_trials=remaining, catch=(RuntimeError,))
    state = {optuna.trial.TrialState.COMPLETE: "complete", optuna.trial.TrialState.PRUNED: "pruned"}
    return [Trial(t.number, {d.name: _decoded(d, t.params[d.name]) for d in job.dims if d.name in t.params},
                  t.value if t.state == optuna.trial.TrialState.COMPLETE else None, state.get(t.state, "failed"),
                  t.duration.total_seconds() if t.duration else 0.0, str(job.trial_dir(t.number)))
            for t in study.trials if t.state != optuna.trial.TrialState.RUNNING]


def tune(job: TuneJob, progress: Callable[[Trial], None] = lambda t: None) -> dict[str, Any]:
    """Run the study, re-run its best settings and the node's defaults, write study.json + best_config.json."""
    from dlroadmap.train.tracking import Tracker

    check_job(job)
    job.folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with Tracker(job.folder, job.track, root=job.out, run_name=f"tune {job.name or job.node.id} ({job.backend})",
                 tags={"node": job.node.id, "tune_backend": job.backend}) as parent:
        parent.log_params({"backend": job.backend, "trials": job.trials, "metric": job.metric, "direction": job.direction,
                           "space": [f"{d.name}={d.kind}{d.args}" for d in job.dims], "quick": job.quick, "sets": job.sets})
        mlflow = parent.backend("mlflow")
        parent_id = mlflow.run_id if mlflow is not None else None
        if job.backend in ("grid", "random"):
            trials = _search_fixed(job, parent_id, progress)
        elif job.backend == "optuna":
            trials = _search_optuna(job, parent_id, progress)
        else:
            from dlroadmap.tune.ray_search import search_ray

            trials = search_ray(job, parent_id, progress)
        complete = [t for t in trials if t.state == "complete" and t.value is not None]
        if not complete:
            raise UserError(f"no trial of {job.node.id} completed ({len(trials)} pruned or failed); widen the space or add --trials")
        best = (max if job.direction == "max" else min)(complete, key=lambda t: t.value)     # the first, among equals
        so_far = None
        for i, t in enumerate(trials):                                       # the study's curve, live in MLflow
            if t.value is not None and job.better(t.value, so_far):
                so_far = t.value
            if so_far is not None:
                parent.log_metrics({"trial_value": t.value if t.value is not None else float("nan"), "best_so_far": so_far}, step=i)
        write_json(job.folder / "best_config.json", {"node": job.node.id, "metric": job.metric, "direction": job.direction,
                                                     "value": best.value, "trial": best.number, "params": best.params,
                                                     "quick": job.quick, "sets": job.sets})
        # The chosen settings and the defaults, each run once more: validation (what was selected on) and test.
        tuned = run_config(job, best.params, job.folder / "best", parent=parent_id, label="best").metrics
        default = run_config(job, {}, job.folder / "default", parent=parent_id, label="default").metrics
        test_key = test_metric_of(job, tuned)
        summary = {
            "node": job.node.id, "backend": job.backend, "metric": job.metric, "direction": job.direction, "test_metric": test_key,
            "space": [asdict(d) for d in job.dims], "quick": job.quick, "sets": job.sets, "seed": job.seed,
            "trials": [asdict(t) for t in trials], "best": asdict(best),
            "tuned": {"params": best.params, "val": metric_of(job, tuned), "test": tuned.get(test_key) if test_key else None},
            "default": {"val": metric_of(job, default), "test": default.get(test_key) if test_key else None},
            "pruned": sum(t.state == "pruned" for t in trials), "failed": sum(t.state == "failed" for t in trials),
            "seconds": time.perf_counter() - t0,
        }
        parent.log_metrics({"tuned_val": summary["tuned"]["val"], "default_val": summary["default"]["val"],
                            **({"tuned_test": summary["tuned"]["test"], "default_test": summary["default"]["test"]} if test_key else {})},
                           step=len(trials))
        parent.log_figure(best_so_far_figure(summary), "best_so_far")
        write_json(job.folder / "study.json", summary)
        parent.log_artifact(job.folder / "study.json")
    return summary


def best_so_far_figure(summary: dict[str, Any]):
    import matplotlib.pyplot as plt
    import numpy as np

    trials = summary["trials"]
    values = np.array([t["value"] if t["value"] is not None else np.nan for t in trials], dtype=float)
    pick = np.fmax if summary["direction"] == "max" else np.fmin
    fig, ax = plt.subplots(figsize=(7, 4))
    x = np.arange(len(values))
    ax.scatter(x, values, s=14, color="tab:blue", label="trial")
    pruned = [i for i, t in enumerate(trials) if t["state"] == "pruned"]
    if pruned:
        ax.scatter(pruned, [np.nanmin(values) if np.isfinite(values).any() else 0] * len(pruned), marker="x", color="tab:red",
                   label=f"pruned ({len(pruned)})")
    ax.plot(x, pick.accumulate(np.where(np.isnan(values), -np.inf if summary["direction"] == "max" else np.inf, values)),
            color="k", label="best so far")
    ax.axhline(summary["default"]["val"], color="tab:grey", ls="--", label="node default")
    ax.set(xlabel="trial", ylabel=summary["metric"])
    ax.set_title(f"{summary['node']}: {summary['backend']} search, {len(trials)} trials", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
