"""Search spaces written the way `dlr tune` takes them, checked against a node's Config.

    lr=loguniform(1e-4,1e-1)      log-uniform between the bounds (the usual prior for rates and strengths)
    dropout=uniform(0,0.5)        uniform
    hidden=int(32,256)            an integer, uniform over [low, high]
    batch_size=choice(32,64,128)  one of the listed values (numbers, true/false, words or JSON lists: choice([64],[128,64]))

A space is only accepted when every value it can produce is one the node's Config accepts: the ends of each
range and every choice go through the same validation as `--set`, so a bad space fails before any trial
runs, with the field's accepted range in the message. Grid search needs points on continuous ranges:
evenly spaced (uniform, int) or geometrically spaced (loguniform), `points` per dimension.
"""

from __future__ import annotations

import difflib
import itertools
import json
import math
import re
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from dlroadmap.errors import UserError

KINDS = ("uniform", "loguniform", "int", "choice")
_SPEC = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*([a-z]+)\((.*)\)\s*$")


@dataclass(frozen=True)
class Dimension:
    name: str
    kind: str
    args: tuple[Any, ...]             # (low, high) for ranges, the values for choice

    def sample(self, rng: np.random.Generator) -> Any:
        if self.kind == "choice":
            return self.args[int(rng.integers(len(self.args)))]
        low, high = self.args
        if self.kind == "uniform":
            return float(rng.uniform(low, high))
        if self.kind == "loguniform":
            return float(math.exp(rng.uniform(math.log(low), math.log(high))))
        return int(rng.integers(low, high + 1))

    def grid(self, points: int) -> list[Any]:
        if self.kind == "choice":
            return list(self.args)
        low, high = self.args
        if self.kind == "uniform":
            return [float(v) for v in np.linspace(low, high, points)]
        if self.kind == "loguniform":
            return [float(v) for v in np.geomspace(low, high, points)]
        return sorted({int(round(v)) for v in np.linspace(low, high, points)})

    def extremes(self) -> list[Any]:
        return list(self.args)


def _value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw.strip()


def _args(inner: str) -> tuple[Any, ...]:
    """'32,64,128' -> (32, 64, 128); '[256,128],[512,256]' -> ([256, 128], [512, 256]); 'adam,sgd' -> ('adam', 'sgd')."""
    if not inner.strip():
        return ()
    try:
        return tuple(json.loads(f"[{inner}]"))
    except json.JSONDecodeError:
        return tuple(_value(a) for a in inner.split(","))


def parse_dimension(spec: str) -> Dimension:
    """'lr=loguniform(1e-4,1e-1)' -> Dimension; one UserError line for anything else."""
    m = _SPEC.match(spec)
    if not m:
        raise UserError(f"cannot read search space {spec!r}; write name=kind(...), e.g. lr=loguniform(1e-4,1e-1) or batch_size=choice(32,64)")
    name, kind, inner = m.groups()
    if kind not in KINDS:
        raise UserError(f"unknown distribution {kind!r} in {spec!r}; use one of {', '.join(KINDS)}")
    args = _args(inner)
    if kind == "choice":
        if not args:
            raise UserError(f"{spec!r}: choice needs at least one value")
        return Dimension(name, kind, args)
    if len(args) != 2 or not all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args):
        raise UserError(f"{spec!r}: {kind} takes two numbers, low and high")
    low, high = args
    if not low < high:
        raise UserError(f"{spec!r}: low must be below high")
    if kind == "loguniform" and low <= 0:
        raise UserError(f"{spec!r}: loguniform needs low > 0")
    if kind == "int" and not (float(low).is_integer() and float(high).is_integer()):
        raise UserError(f"{spec!r}: int takes two whole numbers")
    return Dimension(name, kind, (int(low), int(high)) if kind == "int" else (float(low), float(high)))


def parse_space(specs: Sequence[str], config_cls: Any | None = None) -> list[Dimension]:
    """All dimensions, each checked against `config_cls` (a node's ExperimentConfig) when given."""
    dims = [parse_dimension(s) for s in specs]
    names = [d.name for d in dims]
    if len(set(names)) != len(names):
        raise UserError(f"a hyperparameter appears twice in the search space: {sorted({n for n in names if names.count(n) > 1})}")
    if config_cls is not None:
        check_against(dims, config_cls)
    return dims


def check_against(dims: Sequence[Dimension], config_cls: Any) -> None:
    """Every end of every range and every choice must be a value the Config accepts (the `--set` rules)."""
    from dlroadmap.runner import make_config

    fields = list(config_cls.model_fields)
    for d in dims:
        if d.name not in fields:
            close = difflib.get_close_matches(d.name, fields, n=1)
            raise UserError(f"{d.name!r} is not a setting of this node{'; did you mean ' + repr(close[0]) + '?' if close else ''} "
                            f"(settings: {', '.join(fields)})")
        for v in d.extremes():
            try:
                make_config(config_cls, **{d.name: v})
            except UserError as e:
                raise UserError(f"search space for {d.name} reaches {v!r}, which the node refuses: {e}") from None


def grid(dims: Sequence[Dimension], budget: int) -> list[dict[str, Any]]:
    """The full grid with the same number of points on every continuous dimension, as many as the budget
    allows (points^d <= budget after the choices' own sizes); in row-major order."""
    fixed = math.prod(len(d.args) for d in dims if d.kind == "choice")
    free = [d for d in dims if d.kind != "choice"]
    points = max(int(math.floor((budget / fixed) ** (1 / len(free)) + 1e-9)), 1) if free else 1
    axes = [d.grid(points) for d in dims]
    return [dict(zip([d.name for d in dims], combo)) for combo in itertools.product(*axes)]


def random_configs(dims: Sequence[Dimension], n: int, seed: int) -> list[dict[str, Any]]:
    """n independent draws from the space."""
    rng = np.random.default_rng(seed)
    return [{d.name: d.sample(rng) for d in dims} for _ in range(n)]
