"""The one way to run a node: the CLI, the tour, notebooks and tests all come through here.

    config = make_config(Config, quick=True, sets=["lr=0.01"])     # the preset, then --set overrides
    result = run_node(node, config, out, quick=True)               # run, check, write <out>/<id>/result.json

A run records what it was: `preset` is "quick" or "full" when the config is the declared preset
(whatever the seed or device), else "custom"; only a preset run can verify a node. A run that
crashes or is interrupted still writes its result.json (passed: false, with the error line), so
`dlr list` never keeps showing an older "verified" for a node whose latest run broke. A run refused
for bad input (a device that is not here, a dataset that cannot be had: a UserError) changes nothing:
the previous result.json and checkpoints stay.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import shutil
import time
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import annotated_types
from pydantic import ValidationError

from dlroadmap.allocator import keep_freed_memory
from dlroadmap.environment import environment
from dlroadmap.errors import TrainingDiverged, UserError
from dlroadmap.experiments.base import Experiment, ExperimentConfig, Result
from dlroadmap.io import as_written, check_writable_dir, write_json
from dlroadmap.registry import Node
from dlroadmap.train import distributed
from dlroadmap.train.compiled import compiling
from dlroadmap.train.trainer import pick_device
from dlroadmap.train.tracking import Tracker

# Config keys that do not change what a run shows: a run that differs from its preset only in these
# still counts as that preset (a seed sweep verifies, so does a compiled run; a bf16 run or a --set override does not).
NEUTRAL_KEYS = ("seed", "device", "resume", "compile")


# --- building a config from the command line -------------------------------------------------


def _parse_value(raw: str) -> Any:
    """JSON where it parses (numbers, true/false, null, lists), else the plain string."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        low = raw.strip().lower()
        if low in ("true", "false"):
            return low == "true"
        if low in ("none", "null"):
            return None
        return raw


def describe_field(cls: type[ExperimentConfig], name: str) -> str:
    """'float, > 0 and <= 10' or 'one of adam, sgd': what a field accepts, for error messages."""
    f = cls.model_fields[name]
    ann = f.annotation
    if get_origin(ann) is Literal:
        return "one of " + ", ".join(map(str, get_args(ann)))
    kind = getattr(ann, "__name__", str(ann).replace("typing.", ""))
    bounds = []
    for m in f.metadata:
        for attr, sym in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            if isinstance(m, getattr(annotated_types, attr.capitalize())):
                bounds.append(f"{sym} {getattr(m, attr)}")
    return kind + (", " + " and ".join(bounds) if bounds else "")


def make_config(cls: type[ExperimentConfig], *, quick: bool = False, sets: list[str] | None = None, **extra: Any) -> ExperimentConfig:
    """Config from the class defaults, the QUICK preset, `--set key=value` items, then `extra`."""
    values: dict[str, Any] = dict(cls.QUICK) if quick else {}
    raw: dict[str, str] = {}
    for item in sets or []:
        if "=" not in item:
            raise UserError(f"--set expects key=value, got {item!r}")
        key, val = (s.strip() for s in item.split("=", 1))
        if key not in cls.model_fields:
            close = difflib.get_close_matches(key, list(cls.model_fields), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise UserError(f"unknown --set key {key!r}; {hint}valid keys: {', '.join(cls.model_fields)}")
        values[key] = _parse_value(val)
        raw[key] = val
    for k, v in extra.items():  # CLI options such as --precision, --seed
        if v is not None:
            values[k] = v
            raw[k] = str(v)
    try:
        return cls(**values)
    except ValidationError as e:
        err = e.errors()[0]
        key = str(err["loc"][0]) if err["loc"] else "?"
        shown = f"{key}={raw[key]}" if key in raw else key
        accepted = describe_field(cls, key) if key in cls.model_fields else ""
        raise UserError(f"invalid value {shown}: {err['msg'].lower()}" + (f" (accepted: {accepted})" if accepted else "")) from None


def preset_of(config: ExperimentConfig, quick: bool) -> str:
    """"quick" / "full" when `config` is that declared preset (seed, device and resume aside), else "custom"."""
    declared = type(config).quick() if quick else type(config)()
    a, b = config.model_dump(exclude=set(NEUTRAL_KEYS)), declared.model_dump(exclude=set(NEUTRAL_KEYS))
    return ("quick" if quick else "full") if a == b else "custom"


# --- running a node --------------------------------------------------------------------------


def run_node(node: Node, config: ExperimentConfig, out: str | Path, *, track: str | list[str] | None = "mlflow", quick: bool = False,
             experiment: Experiment | None = None, run_dir: Path | None = None, tags: dict[str, str] | None = None,
             run_name: str | None = None) -> Result:
    """Run `node`'s experiment with `config`, write <out>/<id>/result.json, and check expectations.

    `experiment` is the node's loaded experiment (loaded here when not given). A run that raises
    writes a failed result.json with the error line, then re-raises (a UserError writes nothing). `tags` are added to the
    tracker's (a tuning trial's `mlflow.parentRunId`), `run_name` replaces the node id as its name.
    """
    keep_freed_memory()   # training steps reuse freed blocks instead of page-faulting fresh ones (allocator.py)
    experiment = experiment or node.load_experiment()
    out = check_writable_dir(out)
    run_dir = run_dir or out / node.id
    # Under data-parallel training (torchrun) every rank runs the node; rank 0 alone tracks and writes results.
    main = distributed.is_main()
    track = track if main else "none"
    pick_device(config.device)    # a device that is not here is refused before anything is touched
    checkpoints, parked = run_dir / "checkpoints", run_dir / ".checkpoints.previous"
    if not config.resume and main and checkpoints.exists():
        # A fresh run starts from a clean folder (stale checkpoints must never be resumed by accident). The old
        # ones are parked, not deleted, until the run ends: a run refused for bad input puts them back.
        shutil.rmtree(parked, ignore_errors=True)
        checkpoints.rename(parked)
    run_dir.mkdir(parents=True, exist_ok=True)
    preset = preset_of(config, quick)
    t0 = time.perf_counter()
    base = {"node": node.id, "title": node.title, "config": config.model_dump(), "quick": quick, "preset": preset}
    try:
        with Tracker(run_dir, track, root=out, run_name=run_name or node.id,
                     tags={"node": node.id, "mode": "quick" if quick else "full", "preset": preset, **(tags or {})}) as tracker:
            tracker.log_params({"node": node.id, "quick": quick, **config.model_dump()})
            with compiling(config.compile):
                result: Result = experiment.run(config, tracker)
            result.seconds = time.perf_counter() - t0
            result.node, result.title, result.quick, result.preset = node.id, node.title, quick, preset
            result.config = config.model_dump()
            result.finished = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
            result.environment = environment()
            checks = node.check(result.metrics, quick=quick)
            result.expectations = [
                {"metric": e.metric, "op": e.op, "value": e.value, "got": result.metrics.get(e.metric), "passed": ok}
                for e, ok in checks
            ]
            result.passed = all(ok is True for _, ok in checks)
            result.artifacts = {k: str(v) for k, v in result.artifacts.items()}
            tracker.log_metrics({k: v for k, v in result.metrics.items() if isinstance(v, (int, float))}, step=len(result.history) + 1)
            if main:
                write_json(run_dir / "result.json", result.to_json())
                tracker.log_artifact(run_dir / "result.json")
    except UserError:
        # Bad input the experiment found (a dataset that cannot be had, settings that do not go together): the
        # run was refused, not failed, so the node's previous result and checkpoints stay as they were.
        if main and parked.exists():
            shutil.rmtree(checkpoints, ignore_errors=True)
            parked.rename(checkpoints)
        raise
    except BaseException as e:  # a crash, a divergence or Ctrl-C: the latest run of this node failed, say so
        if not main:
            raise
        write_json(run_dir / "result.json", {**base, "passed": False, "error": error_line(e), "expectations": [], "metrics": {},
                                             "seconds": time.perf_counter() - t0,
                                             "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")})
        raise
    finally:
        shutil.rmtree(parked, ignore_errors=True)
    return result


def error_line(e: BaseException) -> str:
    """What stopped a run, in one line: our own errors as they read, anything else with its type."""
    if isinstance(e, KeyboardInterrupt):
        return "interrupted"
    if isinstance(e, (UserError, TrainingDiverged)):
        return str(e)
    return f"{type(e).__name__}: {e}".splitlines()[0]


def run_id(node: Node, out: str | Path, *, quick: bool = False, sets: list[str] | None = None, track: str | list[str] | None = "mlflow",
           **overrides: Any) -> Result:
    """Build the config and run: the experiment is loaded once."""
    experiment = node.load_experiment()
    config = make_config(experiment.Config, quick=quick, sets=sets, **overrides)
    return run_node(node, config, out, track=track, quick=quick, experiment=experiment)


def finished_run(path: Path, config: ExperimentConfig) -> dict[str, Any] | None:
    """The result.json at `path` when it is a run of exactly `config` that finished (met its expectations or
    not), else None: a crashed run, another preset or other settings are run again."""
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    same = saved.get("config") == as_written(config.model_dump())
    return saved if same and "error" not in saved and isinstance(saved.get("metrics"), dict) else None


def run_seeds(node: Node, out: str | Path, seeds: list[int], *, quick: bool = False, sets: list[str] | None = None,
              track: str | list[str] | None = "mlflow", reuse: bool = False, **overrides: Any) -> dict[str, Any]:
    """Run a node at several seeds (each in <out>/<id>/seed-N/) and write <out>/<id>/result.json with each
    metric's mean, min and max; the node passes only when every seed meets every expectation. With `reuse`, a
    seed already run to the end here with the same settings is read back instead of run again (an hours-long
    replication interrupted at its third seed keeps the first two)."""
    if not seeds:
        raise UserError("--seeds needs at least one seed, e.g. --seeds 0,1,2")
    experiment = node.load_experiment()
    out = check_writable_dir(out)
    runs: list[dict[str, Any]] = []
    for s in seeds:
        config = make_config(experiment.Config, quick=quick, sets=sets, **{**overrides, "seed": s})
        run_dir = out / node.id / f"seed-{s}"
        done = finished_run(run_dir / "result.json", config) if reuse else None
        runs.append(done or run_node(node, config, out, track=track, quick=quick, experiment=experiment, run_dir=run_dir).to_json())
    agg = aggregate(runs)
    summary = {"node": node.id, "title": node.title, "quick": quick, "preset": runs[0]["preset"], "seeds": seeds,
               "config": runs[0]["config"], "metrics": agg["mean"], "metrics_min": agg["min"], "metrics_max": agg["max"],
               "per_seed": [{"seed": s, "passed": r["passed"], "metrics": r["metrics"], "expectations": r["expectations"],
                             "commit": r.get("environment", {}).get("commit")} for s, r in zip(seeds, runs)],
               "expectations": worst_expectations(runs), "passed": all(r["passed"] for r in runs),
               "seconds": sum(r["seconds"] for r in runs), "finished": runs[-1]["finished"]}
    write_json(out / node.id / "result.json", summary)
    return summary


def aggregate(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    keys = [k for k in runs[0]["metrics"] if all(isinstance(r["metrics"].get(k), (int, float)) for r in runs)]
    vals = {k: [float(r["metrics"][k]) for r in runs] for k in keys}
    return {"mean": {k: sum(v) / len(v) for k, v in vals.items()}, "min": {k: min(v) for k, v in vals.items()},
            "max": {k: max(v) for k, v in vals.items()}}


def worst_expectations(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each expectation with the seed that came closest to missing it (or missed it)."""
    rows = []
    for i, e in enumerate(runs[0]["expectations"]):
        per = [r["expectations"][i] for r in runs]
        failed = [p for p in per if p["passed"] is not True]
        got = [p["got"] for p in per if isinstance(p["got"], (int, float))]
        worst = (min(got) if e["op"] in (">=", ">") else max(got)) if got else None
        rows.append({**e, "got": failed[0]["got"] if failed else worst, "passed": not failed})
    return rows
