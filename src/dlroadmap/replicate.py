"""Replications: published numbers rerun here, each claim's node in its full preset at several seeds.

    claims = load_claims()                       # replications.toml: claim, source, setting, published, band
    table = replicate(claims, out, seeds=[0, 1, 2])
    table["rows"][0] -> {"claim": ..., "published": 0.9905, "mean": ..., "std": ..., "gap": ..., "verdict": "within band"}

A claim passes when the mean over seeds lies in its declared band; a mean outside it is "missed band" and a
metric the node did not produce is "not measured": both are shown, never dropped. The table goes to
<out>/replications.json, to the report (report.html, "Replications") and to the post of a run (`dlr publish`).
"""

from __future__ import annotations

import datetime as dt
import statistics
import time
import tomllib
from dataclasses import asdict, dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from dlroadmap import registry
from dlroadmap.environment import environment
from dlroadmap.errors import UserError
from dlroadmap.io import write_json


@dataclass(frozen=True)
class Claim:
    id: str
    claim: str
    source: str          # @KEY of references.bib, or a reference implementation
    setting: str         # what was run, on both sides
    node: str
    metric: str
    published: float
    band: tuple[float, float]


def load_claims(text: str | None = None) -> list[Claim]:
    raw = tomllib.loads(text if text is not None else files("dlroadmap").joinpath("replications.toml").read_text())
    claims = []
    for c in raw.get("claim", []):
        lo, hi = c["band"]
        if not lo <= hi:
            raise ValueError(f"claim {c['id']}: band {c['band']} is empty")
        claims.append(Claim(c["id"], c["claim"], c["source"], c["setting"], c["node"], c["metric"], float(c["published"]), (float(lo), float(hi))))
    ids = [c.id for c in claims]
    if len(ids) != len(set(ids)):
        raise ValueError("replications.toml: claim ids repeat")
    return claims


def select(claims: list[Claim], only: list[str] | None) -> list[Claim]:
    if not only:
        return claims
    unknown = [o for o in only if o not in {c.id for c in claims}]
    if unknown:
        raise UserError(f"unknown claim {unknown[0]!r}; the claims: {', '.join(c.id for c in claims)}")
    by_id = {c.id: c for c in claims}
    return [by_id[o] for o in dict.fromkeys(only)]      # in the order asked: cheap claims first, say


def row(claim: Claim, values: list[float], seeds: list[int], seconds: float | None = None) -> dict[str, Any]:
    """One line of the table: the seeds' values, their mean and sample standard deviation, the gap, the verdict."""
    base = {**asdict(claim), "band": list(claim.band), "seeds": seeds, "values": values, "seconds": seconds}
    if len(values) != len(seeds):
        return {**base, "mean": None, "std": None, "gap": None, "verdict": "not measured"}
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    lo, hi = claim.band
    return {**base, "mean": mean, "std": std, "gap": mean - claim.published, "verdict": "within band" if lo <= mean <= hi else "missed band"}


def replicate(claims: list[Claim], out: str | Path, seeds: list[int], *, track: str = "none", progress=None, fresh: bool = False) -> dict[str, Any]:
    """Run every claim's node (once per node, whatever its number of claims) in its full preset at `seeds`, and
    write <out>/replications.json after each node. A node that crashes gives its claims "not measured" rows and the
    rest go on; a seed already run here to the end in the full preset is reused unless `fresh`."""
    from dlroadmap.runner import error_line, run_seeds

    out = Path(out)
    roadmap = registry.load()
    by_node: dict[str, list[Claim]] = {}
    for c in claims:
        by_node.setdefault(c.node, []).append(c)
    rows, errors, t0 = [], {}, time.perf_counter()
    for node_id, node_claims in by_node.items():
        if progress:
            progress(f"{node_id}: full preset at seeds {', '.join(map(str, seeds))} ({', '.join(c.id for c in node_claims)})")
        try:
            summary = run_seeds(roadmap.get(node_id), out, seeds, quick=False, track=track, reuse=not fresh)
            per_seed, seconds = summary["per_seed"], summary["seconds"]     # the runs' own time, reused ones included
        except Exception as e:   # a crash is a row, not the end of the table
            errors[node_id], per_seed, seconds = error_line(e), [], None
        commits = sorted({s["commit"][:7] for s in per_seed if s.get("commit")})
        for c in node_claims:
            values = [float(s["metrics"][c.metric]) for s in per_seed if isinstance(s["metrics"].get(c.metric), (int, float))]
            rows.append({**row(c, values, seeds, seconds), "commits": commits})
        # Written after every node: a table interrupted after hours keeps what it measured.
        table = {"rows": rows, "errors": errors, "seeds": seeds, "seconds": time.perf_counter() - t0, "environment": environment(),
                 "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                 "pending": [c.id for n, cs in by_node.items() for c in cs if c.id not in {r["id"] for r in rows}]}
        write_json(out / "replications.json", table)
    return table


def claims_against_nodes(claims) -> tuple[int, int]:
    """(claims whose node is not implemented or never produces the metric, claims whose @source is not in the bibliography).
    A metric counts as produced when the node declares it or its experiment module spells it out."""
    from dlroadmap.papers import bibliography

    import re

    roadmap, bad_metric, bad_source = registry.load(), 0, 0
    for c in claims:
        node = roadmap.get(c.node)
        declared = {e.metric for e in node.expect}
        source = (registry.EXPERIMENTS.parent / node.module_file).read_text()
        # the metric's name as a literal, or as an f-string template that produces it and spells most of it out
        # (f"{key}_optimum_measured" yes; f"frozen_{a}_{b}" would take any typo, so it does not count)
        templates = [t for t in re.findall(r'f"([^"]*\{[^"]*)"', source) if len(re.sub(r"\{[^}]*\}", "", t)) >= 0.6 * len(c.metric)]
        produced = f'"{c.metric}"' in source or any(re.fullmatch(re.sub(r"\\\{[^}]*\\\}", "[a-z0-9_]+", re.escape(t)), c.metric) for t in templates)
        bad_metric += not node.implemented or (c.metric not in declared and not produced)
        bad_source += c.source.startswith("@") and c.source[1:] not in bibliography()
    return bad_metric, bad_source


def verdict_counts(table: dict[str, Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in table["rows"]:
        counts[r["verdict"]] = counts.get(r["verdict"], 0) + 1
    return counts
