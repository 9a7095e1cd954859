"""`dlr list`, `dlr show`, `dlr report`: what the roadmap holds and what its runs showed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table
from rich.tree import Tree

from dlroadmap.cli.common import STATUS_STYLE, OutOpt, app, default_out, roadmap
from dlroadmap.registry import fmt_value
from dlroadmap.ui import console


def _tree_json(out: Path) -> list[dict[str, Any]]:
    from dlroadmap.registry import describe_run, read_result, status_from

    data = []
    for p in roadmap().phases:
        topics = []
        for t in p.topics:
            nodes = []
            for n in t.nodes:
                res = read_result(out, n.id)
                nodes.append({
                    "id": n.id, "title": n.title, "status": status_from(n, res),
                    "code": list(n.code), "tests": list(n.tests), "experiment": n.experiment if n.implemented else None,
                    "expect": [str(e) for e in n.expect], "refs": list(n.refs), "notes": n.notes,
                    "last_result": None if res is None else {"metrics": res.get("metrics"), "passed": res.get("passed"),
                                                             "preset": res.get("preset"), "finished": res.get("finished"),
                                                             "error": res.get("error"), "seconds": res.get("seconds")},
                    "last_run": describe_run(res),
                })
            topics.append({"id": t.id, "title": t.title, "nodes": nodes})
        data.append({"id": p.id, "title": p.title, "topics": topics})
    return data


@app.command("list")
def list_(
    as_json: bool = typer.Option(False, "--json", help="print the tree as JSON"),
    out: Optional[Path] = OutOpt,
) -> None:
    """Show the roadmap as phases > topics > bullets, with each node's status.

    Status: missing (not built yet), implemented (built, never run here), verified (the latest run,
    of a declared quick or full preset, met every expectation), custom (the latest run used
    overridden settings: it verifies nothing), failed (the latest run missed an expectation or crashed).
    Beside each run: its preset and when it finished.
    """
    out = out or default_out()
    data = _tree_json(out)
    if as_json:
        print(json.dumps(data, indent=2))
        return
    counts: dict[str, int] = {}
    root = Tree(f"[bold]Deep Learning Roadmap[/]  [dim](results from {out})[/]")
    for p in data:
        pt = root.add(f"[bold]{p['title']}[/]")
        for t in p["topics"]:
            tt = pt.add(t["title"])
            for n in t["nodes"]:
                counts[n["status"]] = counts.get(n["status"], 0) + 1
                style = STATUS_STYLE[n["status"]]
                when = f"  [dim]({n['last_run']})[/]" if n["last_run"] else ""
                tt.add(f"[{style}]{n['status']:<11}[/] [cyan]{n['id']}[/]  {n['title']}{when}")
    from rich.console import Console

    Console().print(root)
    Console().print("  ".join(f"[{STATUS_STYLE[s]}]{s}: {counts.get(s, 0)}[/]" for s in STATUS_STYLE))


@app.command()
def show(node_id: str = typer.Argument(..., help="node id, e.g. p2.fnn.backprop"), out: Optional[Path] = OutOpt) -> None:
    """Print one node: its bullet, files, tests, experiment config, expectations, refs and last result."""
    from rich.console import Console

    from dlroadmap.registry import describe_run, read_result, status_from
    from dlroadmap.runner import describe_field

    out = out or default_out()
    node = roadmap().get(node_id)
    c = Console()
    res = read_result(out, node.id)
    status = status_from(node, res)
    c.print(f"[bold]{node.title}[/]  [cyan]{node.id}[/]  [{STATUS_STYLE[status]}]{status}[/]")
    c.print(f"phase {node.phase}, topic {node.topic}")
    if node.notes:
        c.print(f"[italic]{node.notes}[/]")
    src = Path(__file__).resolve().parents[1]  # src/dlroadmap: the paths in roadmap.toml are relative to the package
    for label, items, base in (("code", node.code, src), ("tests", node.tests, None)):
        c.print(f"[bold]{label}:[/]" + ("" if items else " (none yet)"))
        for item in items:
            path = (base / item) if base else Path(item.split("::")[0])
            c.print(f"  {path if base else item}")
    if node.experiment:
        cfg = node.load_experiment().Config
        c.print(f"[bold]experiment:[/] {node.experiment}  (dlr run {node.id} --quick)")
        t = Table("key", "default", "quick", "accepts", box=None, pad_edge=False)
        for name, f in cfg.model_fields.items():
            t.add_row(name, repr(f.default), repr(cfg.QUICK[name]) if name in cfg.QUICK else "", describe_field(cfg, name))
        c.print(t)
    c.print("[bold]expect:[/] " + (", ".join(map(str, node.expect)) or "(none declared)"))
    c.print("[bold]refs:[/]" + ("" if node.refs else " (none)"))
    for r in node.refs:
        if r.startswith("@"):   # a citation of references.bib: the paper, then what of it the node uses
            from dlroadmap.papers import bibliography

            key, _, note = r[1:].partition(":")
            paper = bibliography().get(key)
            c.print(f"  {paper.cite() if paper else r}" + (f" ({note.strip()})" if note else "") + f"  [dim]dlr paper {key}[/]", highlight=False)
        else:
            c.print(f"  {r}")
    if res is None:
        c.print(f"[bold]last result:[/] none in {out}")
    else:
        c.print(f"[bold]last result:[/] {'passed' if res.get('passed') else 'FAILED'} "
                f"({describe_run(res)}, {res.get('seconds', 0):.1f}s, {out / node.id})")
        c.print(result_table([res]))



def result_table(results: list[dict[str, Any]]) -> Table:
    t = Table("node", "metric", "value", "expected", "pass", title=None)
    for r in results:
        rows = r.get("expectations") or []
        if r.get("error"):
            t.add_row(r["node"], "error", r["error"][:80], "", "[red]no[/]")
            continue
        for e in rows:
            ok = e["passed"]
            t.add_row(r["node"], e["metric"], fmt_value(e["got"]), f"{e['op']} {fmt_value(e['value'])}",
                      "[green]yes[/]" if ok else "[red]no[/]" if ok is False else "[yellow]missing[/]")
        if not rows:
            t.add_row(r["node"], "(no expectations)", "", "", "")
    return t



@app.command()
def report(out: Optional[Path] = OutOpt) -> None:
    """Rebuild <out>/report.html from the results already in the output folder."""
    from dlroadmap.errors import UserError
    from dlroadmap.report import write_report

    out = out or default_out()
    if not out.is_dir():
        raise UserError(f"{out} is not a folder: give the --out folder of `dlr run` or `dlr tour` (default: ./runs or $DLR_OUT)")
    path = write_report(out)
    console.print(f"report: {path}")
