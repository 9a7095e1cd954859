"""The Ray Tune backend of `dlr tune`: OptunaSearch proposes settings, ASHA stops poor trials early.

Two trials run at once on a 2-core machine, each in its own Ray worker with one thread (more would
oversubscribe the cores). Every trial is still a real run of the node; it reports each epoch's validation
value to Ray through a Trainer callback (tune/pruning.py), so ASHA (Li et al. 2018, arXiv:1810.05934) can
compare trials at its rungs and stop the bottom ones. Ray's MLflowLoggerCallback writes each trial to the
same MLflow store as everything else, as a child of the study's run; the results are read back through
Ray's own ResultGrid.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Callable

from dlroadmap.errors import UserError
from dlroadmap.tune.space import Dimension


def ray_space(dims: list[Dimension]) -> dict[str, Any]:
    from ray import tune

    make = {"uniform": lambda d: tune.uniform(*d.args), "loguniform": lambda d: tune.loguniform(*d.args),
            "int": lambda d: tune.randint(d.args[0], d.args[1] + 1), "choice": lambda d: tune.choice(list(d.args))}
    return {d.name: make[d.kind](d) for d in dims}


def start_ray(cpus: int = 2) -> bool:
    """Start a local Ray with `cpus` one-thread workers and no dashboard; False if one is already running.
    Ray's own console tables are switched off (the legacy reporter honours verbose=0, the new one does not)."""
    import ray

    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, configure_logging=False,
             runtime_env={"env_vars": {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "DLR_PROGRESS": "0"}})
    return True


def _trainable(params: dict[str, Any], *, spec: dict[str, Any]) -> None:
    """One trial inside a Ray worker: rebuild the job from plain data, run the node, report the result."""
    import torch
    from ray import tune

    torch.set_num_threads(1)
    from dlroadmap import registry
    from dlroadmap.tune.pruning import RayReport
    from dlroadmap.tune.job import TuneJob, metric_of, run_config

    job = TuneJob(registry.load().get(spec["node"]), [], backend="ray", metric=spec["metric"], direction=spec["direction"],
                  out=Path(spec["out"]), quick=spec["quick"], sets=spec["sets"], name=spec["name"], track="none")
    trial_id = tune.get_context().get_trial_id()
    callbacks = (RayReport(job.metric, spec["prune_on"], job.direction),) if spec["prune_on"] else ()
    result = run_config(job, dict(params), job.folder / f"trial_{trial_id}", label=f"trial {trial_id}", callbacks=callbacks)
    tune.report({job.metric: metric_of(job, result.metrics), "final": 1.0})


def fit_ray(trainable: Callable[..., None], dims: list[Dimension], *, metric: str, direction: str, trials: int, seed: int,
            storage: Path, tracking_uri: str | None = None, tags: dict[str, str] | None = None, max_t: int = 100,
            concurrent: int = 2) -> list[Any]:
    """Ray Tune as `dlr tune` and the optuna_ray node both run it: OptunaSearch proposes, ASHA (rungs from 2
    reports, halving) stops, `concurrent` one-CPU trials at a time; with a `tracking_uri`, Ray's
    MLflowLoggerCallback logs every trial there (with `tags`, e.g. the parent run). Returns the ResultGrid's
    results (Ray's own record of each trial); Ray is started and stopped here unless one is already running."""
    # a Tune run: trials as Ray actors reporting to a scheduler, @liaw2018tune
    import ray
    from ray import tune
    from ray.air.integrations.mlflow import MLflowLoggerCallback
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    callbacks = [MLflowLoggerCallback(tracking_uri=tracking_uri, experiment_name="dlroadmap", tags=tags or {}, save_artifact=False)
                 ] if tracking_uri else []
    started = start_ray(concurrent)
    try:
        tuner = tune.Tuner(
            tune.with_resources(trainable, {"cpu": 1}),
            param_space=ray_space(dims),
            tune_config=tune.TuneConfig(metric=metric, mode=direction, num_samples=trials, max_concurrent_trials=concurrent,
                                        search_alg=OptunaSearch(seed=seed),
                                        scheduler=ASHAScheduler(time_attr="training_iteration", grace_period=2, reduction_factor=2, max_t=max_t)),
            run_config=tune.RunConfig(name="ray", storage_path=str(Path(storage).resolve()), callbacks=callbacks, verbose=0),
        )
        # Ray logs each failed trial's traceback; the callers say what failed, in one line each.
        quiet = logging.getLogger("ray.tune")
        level, quiet.level = quiet.level, logging.CRITICAL
        try:
            return list(tuner.fit())
        finally:
            quiet.setLevel(level)
    finally:
        if started:
            ray.shutdown()


def search_ray(job: Any, parent: str | None, progress: Callable[[Any], None], *, concurrent: int = 2) -> list[Any]:
    # asynchronous successive halving: a trial at a rung stops unless in its top 1/eta, @li2020asha
    from ray import tune

    from dlroadmap.tune.job import Trial

    out = Path(job.out).resolve()
    spec = {"node": job.node.id, "metric": job.metric, "direction": job.direction, "out": str(out), "quick": job.quick,
            "sets": list(job.sets), "name": job.name or job.node.id, "prune_on": job.prune_on if job.pruner != "none" else None}
    grid = fit_ray(tune.with_parameters(_trainable, spec=spec), job.dims, metric=job.metric, direction=job.direction, trials=job.trials,
                   seed=job.seed, storage=job.folder / "ray_results", concurrent=concurrent,
                   tracking_uri=f"sqlite:///{out / 'mlflow.db'}" if "mlflow" in job.track else None,
                   tags={"node": job.node.id, "tune_backend": "ray", **({"mlflow.parentRunId": parent} if parent else {})})
    trials = []
    for number, r in enumerate(grid):
        m = r.metrics or {}
        params = {k: r.config[k] for k in (d.name for d in job.dims)}
        if r.error is not None:
            lines = [ln for ln in str(r.error).splitlines() if ln.strip()]
            user = next((ln.split("UserError: ", 1)[1] for ln in reversed(lines) if "UserError: " in ln), None)
            if user is not None:                                                 # the user's mistake (e.g. --metric), not the trial's
                raise UserError(user)
            t = Trial(number, params, state="failed", note=(lines[-1] if lines else "error")[:200])
        elif m.get("final"):
            t = Trial(number, params, float(m[job.metric]), "complete", float(m.get("time_total_s", 0.0)))
        else:                                                                   # stopped by ASHA before it finished
            t = Trial(number, params, None, "pruned", float(m.get("time_total_s", 0.0)),
                      note=f"stopped by ASHA after {int(m.get('epoch', 0))} epochs")
        t.run_dir = str(job.folder / f"trial_{m.get('trial_id', '')}")
        trials.append(t)
        progress(t)
    if not trials:
        raise UserError("Ray Tune returned no trials")
    return trials
