"""What every experiment shares: a typed config with a `quick` preset, a Result, and the runner.

An experiment module under `dlroadmap.experiments` defines

    class Config(ExperimentConfig): ...          # every hyperparameter, typed and bounded
    def run(config: Config, tracker: Tracker) -> Result

and never prints: it reports through the tracker (metrics, figures) and the shared progress bar.
`run_node` is the one way the CLI, the tour, notebooks and tests run a node.
"""

from __future__ import annotations

import difflib
import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args, get_origin

import annotated_types
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dlroadmap.errors import UserError
from dlroadmap.io import check_writable_dir, write_json
from dlroadmap.registry import Node
from dlroadmap.train.tracking import Tracker


class ExperimentConfig(BaseModel):
    """Base config. Subclasses add fields with bounds (`Field(ge=..., le=...)`) and set QUICK."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    seed: int = Field(0, ge=0, le=2**31 - 1, description="seed for every random number generator")
    device: str = Field("auto", description="auto (cuda > mps > cpu), cpu, cuda, cuda:N or mps")
    precision: Literal["fp32", "bf16"] = Field("fp32", description="bf16 = autocast to bfloat16 (fast on AMX CPUs and GPUs)")
    resume: bool = Field(False, description="continue from the run folder's latest checkpoint")

    # Overrides applied by --quick: small enough to finish in seconds to a minute on 2 cores.
    QUICK: ClassVar[dict[str, Any]] = {}

    @classmethod
    def quick(cls, **overrides: Any) -> "ExperimentConfig":
        return cls(**{**cls.QUICK, **overrides})


@dataclass
class Result:
    """What a run produced. `metrics` are checked against the node's expectations."""

    metrics: dict[str, float]
    artifacts: dict[str, str] = field(default_factory=dict)  # name -> path (plots, checkpoints, models)
    history: list[dict[str, float]] = field(default_factory=list)
    notes: str = ""
    # Filled in by run_node:
    node: str = ""
    title: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    quick: bool = False
    seconds: float = 0.0
    expectations: list[dict[str, Any]] = field(default_factory=list)
    passed: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Experiment:
    """One node's experiment inside a topic module that holds several (`experiment = "module:name"`)."""

    Config: type[ExperimentConfig]
    run: Any  # (config, tracker) -> Result


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


# --- running a node --------------------------------------------------------------------------


def run_node(node: Node, config: ExperimentConfig, out: str | Path, *, track: str | list[str] | None = "mlflow", quick: bool = False) -> Result:
    """Run `node`'s experiment with `config`, write <out>/<id>/result.json, and check expectations."""
    module = node.load_experiment()
    out = check_writable_dir(out)
    run_dir = out / node.id
    if not config.resume:
        # A fresh run starts from a clean folder: stale checkpoints must never be resumed by accident.
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with Tracker(run_dir, track, root=out, run_name=node.id, tags={"node": node.id, "mode": "quick" if quick else "full"}) as tracker:
        tracker.log_params({"node": node.id, "quick": quick, **config.model_dump()})
        result: Result = module.run(config, tracker)
        result.seconds = time.perf_counter() - t0
        result.node, result.title, result.quick = node.id, node.title, quick
        result.config = config.model_dump()
        checks = node.check(result.metrics, quick=quick)
        result.expectations = [
            {"metric": e.metric, "op": e.op, "value": e.value, "got": result.metrics.get(e.metric), "passed": ok}
            for e, ok in checks
        ]
        result.passed = all(ok is True for _, ok in checks)
        result.artifacts = {k: str(v) for k, v in result.artifacts.items()}
        tracker.log_metrics({k: v for k, v in result.metrics.items() if isinstance(v, (int, float))}, step=len(result.history) + 1)
        write_json(run_dir / "result.json", result.to_json())
        tracker.log_artifact(run_dir / "result.json")
    return result
