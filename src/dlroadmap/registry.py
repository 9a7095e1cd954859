"""The roadmap registry: `roadmap.toml` parsed into phases > topics > nodes.

Each bullet of ROADMAP.md is a `Node`. A node's status is one of
  missing      not built yet (declared in roadmap.toml)
  implemented  code, tests and an experiment exist, no run recorded
  verified     its latest run was of a declared preset (quick or full) and met every expectation
  custom       its latest run used overridden settings (--set, --precision): it verifies nothing
  failed       its latest run missed an expectation, crashed or was interrupted
The first two come from the toml; the others are derived from the latest result on disk, so the
registry never claims more than the last run showed.
"""

from __future__ import annotations

import difflib
import importlib
import json
import operator
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from dlroadmap.errors import UserError

ROADMAP_TOML = Path(__file__).with_name("roadmap.toml")
STATUSES = ("missing", "implemented", "verified", "custom", "failed")

_OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq}


def fmt_value(v: Any) -> str:
    """Numbers for people: integers in full (61,706 parameters), other floats to 4 significant digits."""
    if isinstance(v, bool) or v is None:
        return "" if v is None else str(v)
    if isinstance(v, (int, float)):
        if float(v).is_integer() and abs(v) < 1e15:
            return f"{int(v):,}"
        return f"{v:.4g}"
    return str(v)


EXPERIMENTS = Path(__file__).parent / "experiments"


@dataclass(frozen=True)
class Expectation:
    """A declared result, e.g. test_accuracy >= 0.93."""

    metric: str
    op: str
    value: float
    mode: str | None = None  # "quick" or "full": the expectation applies only to runs in that mode
    when: str | None = None  # a name in CONDITIONS: the expectation applies only where that holds (e.g. "tflite")

    def applies(self, quick: bool) -> bool:
        if self.when is not None and not condition_holds(self.when):
            return False
        return self.mode is None or self.mode == ("quick" if quick else "full")

    def check(self, metrics: dict[str, float]) -> bool | None:
        """True/False when the metric was measured, None when it is absent."""
        if self.metric not in metrics:
            return None
        got = metrics[self.metric]
        if got is None or got != got:  # NaN never meets an expectation
            return False
        return bool(_OPS[self.op](got, self.value))

    def __str__(self) -> str:
        return (f"{self.metric} {self.op} {fmt_value(self.value)}" + (f" ({self.mode} mode)" if self.mode else "")
                + (f" (where {self.when} is installed)" if self.when else ""))


# Optional parts of the environment that some expectations need: name -> "module:function" returning truthy when present.
CONDITIONS = {"tflite": "dlroadmap.deploy.export:tflite_python", "podman": "dlroadmap.io:podman_available",
              "chromium": "dlroadmap.publish:browser"}


def condition_holds(name: str) -> bool:
    module, _, func = CONDITIONS[name].partition(":")
    return bool(getattr(importlib.import_module(module), func)())


@dataclass(frozen=True)
class Node:
    id: str
    title: str
    phase: str
    topic: str
    status: str = "missing"
    code: tuple[str, ...] = ()
    tests: tuple[str, ...] = ()
    expect: tuple[Expectation, ...] = ()
    refs: tuple[str, ...] = ()
    notes: str = ""
    exclusive: bool = False     # starts processes of its own (a Ray cluster): a `--jobs` tour runs it alone

    @property
    def implemented(self) -> bool:
        return self.status != "missing"

    @property
    def experiment(self) -> str:
        """Where the node's experiment lives, by rule: "p2.cnn.filters" -> "dlroadmap.experiments.p2.cnn:filters";
        a topic that outgrew one file is a package with a module per node: "p4.research.foundation" ->
        "dlroadmap.experiments.p4.research.foundation:foundation"."""
        topic, name = f"dlroadmap.experiments.{self.phase}.{self.topic}", self.id.split(".")[-1]
        return f"{topic}.{name}:{name}" if (EXPERIMENTS / self.phase / self.topic).is_dir() else f"{topic}:{name}"

    @property
    def module_file(self) -> str:
        """The experiment module's path under src/dlroadmap, as listed in `code`."""
        module = self.experiment.partition(":")[0].removeprefix("dlroadmap.")
        return module.replace(".", "/") + ".py"

    def load_experiment(self):
        """The node's experiment: an `Experiment(Config, run)` named after the bullet in its topic's module."""
        if not self.implemented:
            raise UserError(f"node {self.id} is not implemented yet (status: missing); see `dlr list`")
        module_name, _, attr = self.experiment.partition(":")
        module = importlib.import_module(module_name)
        return getattr(module, attr)

    def check(self, metrics: dict[str, float], quick: bool = True) -> list[tuple[Expectation, bool | None]]:
        """Each expectation that applies to this mode, with True/False (or None: not measured)."""
        return [(e, e.check(metrics)) for e in self.expect if e.applies(quick)]


@dataclass(frozen=True)
class Topic:
    id: str
    title: str
    nodes: tuple[Node, ...]


@dataclass(frozen=True)
class Phase:
    id: str
    title: str
    topics: tuple[Topic, ...]


@dataclass(frozen=True)
class Roadmap:
    phases: tuple[Phase, ...]
    _by_id: dict[str, Node] = field(repr=False, default_factory=dict)

    @property
    def nodes(self) -> list[Node]:
        return [n for p in self.phases for t in p.topics for n in t.nodes]

    def get(self, node_id: str) -> Node:
        try:
            return self._by_id[node_id]
        except KeyError:
            raise UserError(f"unknown node id {node_id!r}; {self.suggest(node_id)}") from None

    def suggest(self, node_id: str) -> str:
        ids = list(self._by_id)
        close = difflib.get_close_matches(node_id, ids, n=3, cutoff=0.5)
        # Also accept a bare bullet name ("backprop") or a prefix ("p2.fnn").
        close += [i for i in ids if (i.endswith("." + node_id) or i.startswith(node_id + ".")) and i not in close]
        if close:
            return "did you mean " + ", ".join(close[:5]) + "?"
        return "run `dlr list` to see all ids"

    def select(self, prefix: str | None) -> list[Node]:
        """Nodes whose id starts with `prefix` (all when None)."""
        nodes = [n for n in self.nodes if prefix is None or n.id == prefix or n.id.startswith(prefix.rstrip(".") + ".")]
        if not nodes:
            raise UserError(f"no node matches --only {prefix!r}; {self.suggest(prefix or '')}")
        return nodes


def _node(raw: dict[str, Any], phase: str, topic: str) -> Node:
    known = {"id", "title", "status", "code", "tests", "expect", "refs", "notes", "exclusive"}
    unknown = set(raw) - known
    if unknown:
        raise ValueError(f"roadmap.toml: node {raw.get('id')} has unknown keys {sorted(unknown)}")
    status = raw.get("status", "missing")
    if status not in ("missing", "implemented"):
        raise ValueError(f"roadmap.toml: node {raw['id']} has status {status!r}; use 'missing' or 'implemented'")
    expect = []
    for e in raw.get("expect", []):
        if e["op"] not in _OPS:
            raise ValueError(f"roadmap.toml: node {raw['id']}: unknown op {e['op']!r}")
        if e.get("mode") not in (None, "quick", "full"):
            raise ValueError(f"roadmap.toml: node {raw['id']}: mode must be 'quick' or 'full'")
        if e.get("when") not in (None, *CONDITIONS):
            raise ValueError(f"roadmap.toml: node {raw['id']}: when must be one of {', '.join(CONDITIONS)}")
        expect.append(Expectation(e["metric"], e["op"], float(e["value"]), e.get("mode"), e.get("when")))
    return Node(
        id=raw["id"],
        title=raw["title"],
        phase=phase,
        topic=topic,
        status=status,
        code=tuple(raw.get("code", ())),
        tests=tuple(raw.get("tests", ())),
        expect=tuple(expect),
        refs=tuple(raw.get("refs", ())),
        notes=raw.get("notes", ""),
        exclusive=bool(raw.get("exclusive", False)),
    )


def parse(text: str) -> Roadmap:
    data = tomllib.loads(text)
    phases = []
    by_id: dict[str, Node] = {}
    for p in data["phase"]:
        topics = []
        for t in p["topic"]:
            nodes = tuple(_node(n, p["id"], t["id"]) for n in t.get("node", []))
            for n in nodes:
                if n.id in by_id:
                    raise ValueError(f"roadmap.toml: duplicate node id {n.id}")
                if n.id.rsplit(".", 1)[0] != f"{p['id']}.{t['id']}":
                    raise ValueError(f"roadmap.toml: node {n.id} sits in {p['id']}.{t['id']}: its id must be {p['id']}.{t['id']}.<bullet>")
                by_id[n.id] = n
            topics.append(Topic(t["id"], t["title"], nodes))
        phases.append(Phase(p["id"], p["title"], tuple(topics)))
    return Roadmap(tuple(phases), by_id)


@lru_cache(maxsize=1)
def load() -> Roadmap:
    return parse(ROADMAP_TOML.read_text(encoding="utf-8"))


# --- results on disk -------------------------------------------------------------------------
# `dlr run` writes <out>/<node id>/result.json; `dlr tour` also writes <out>/summary.json.
# The status shown by `dlr list` comes from these files, so it is always what was last measured.


def read_result(out: Path, node_id: str) -> dict | None:
    path = Path(out) / node_id / "result.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def status_from(node: Node, result: dict | None) -> str:
    """A node's status given its last result (None when it has not run)."""
    if not node.implemented:
        return "missing"
    if result is None:
        return "implemented"
    if not result.get("passed"):
        return "failed"
    return "custom" if preset_from(result) == "custom" else "verified"


def preset_from(result: dict) -> str:
    """"quick", "full" or "custom": which configuration the run used."""
    return result.get("preset") or ("quick" if result.get("quick") else "full")


def describe_run(result: dict | None) -> str:
    """'quick, 2026-11-25 19:40 UTC, 3 seeds' : how and when a node's latest run ran."""
    if result is None:
        return ""
    parts = [preset_from(result)]
    if result.get("finished"):
        parts.append(result["finished"][:16].replace("T", " ") + " UTC")
    if result.get("seeds"):
        parts.append(f"{len(result['seeds'])} seeds")
    if result.get("error"):
        parts.append("error: " + result["error"][:80])
    return ", ".join(parts)


def status_of(node: Node, out: Path | None) -> str:
    return status_from(node, read_result(out, node.id) if out is not None else None)
