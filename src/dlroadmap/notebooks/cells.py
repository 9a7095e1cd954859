"""What a notebook cell calls: run a node through the one runner, then show what it found.

A cell holds `run("p2.cnn.filters")` and nothing else, so the notebook reads as prose and results while
the logic stays in the package, where the tests check it. Runs land in $DLR_OUT (default ./runs/notebooks),
each in <out>/<node id>/ with its result.json and plots, exactly as `dlr run` writes them, so
`dlr list --out runs/notebooks` and `dlr report` see what the notebook ran.
"""

from __future__ import annotations

import html
import os
from pathlib import Path

from dlroadmap import registry
from dlroadmap.experiments.base import Result
from dlroadmap.registry import fmt_value
from dlroadmap.runner import run_id


def out_dir() -> Path:
    return Path(os.environ.get("DLR_OUT", "runs/notebooks"))


def run(node_id: str, *, quick: bool = True, sets: list[str] | None = None, track: str = "none", quiet: bool = False) -> Result:
    """Run `node_id` (its quick preset unless quick=False), write its run folder, and show the result.

    A missed expectation is shown in red, not raised: the notebook goes on, and the run folder says
    what failed (`dlr list` shows it as failed). `sets` are `--set key=value` overrides; `track`
    is "none", "mlflow", "tensorboard" or "wandb", as for `dlr run --track`.
    """
    node = registry.load().get(node_id)
    result = run_id(node, out_dir(), quick=quick, sets=sets, track=track)
    if not quiet:
        show(result)
    return result


def summary_html(result: Result) -> str:
    """One table: each expectation (metric, rule, what the run got), then the node's verdict."""
    rows = []
    for e in result.expectations:
        colour = "#1a7f37" if e["passed"] else ("#b42318" if e["passed"] is False else "#6e7781")
        mark = "pass" if e["passed"] else ("FAIL" if e["passed"] is False else "n/a")
        rows.append(f"<tr><td><code>{html.escape(e['metric'])}</code></td><td>{html.escape(e['op'])} {fmt_value(e['value'])}</td>"
                    f"<td>{fmt_value(e['got'])}</td><td style='color:{colour};font-weight:600'>{mark}</td></tr>")
    verdict = "verified" if result.passed else "NOT verified"
    return (f"<div><b>{html.escape(result.node)}</b> ({html.escape(result.title)}), {result.preset} preset, "
            f"{result.seconds:.1f} s: <b style='color:{'#1a7f37' if result.passed else '#b42318'}'>{verdict}</b>"
            "<table><tr><th>metric</th><th>expected</th><th>got</th><th></th></tr>" + "".join(rows) + "</table></div>")


def plots_of(result: Result) -> list[Path]:
    return sorted((out_dir() / result.node / "plots").glob("*.png"))


def show(result: Result) -> None:
    """The checks as an HTML table and every plot the run wrote, inline (IPython's rich display)."""
    from IPython.display import HTML, Image, display

    display(HTML(summary_html(result)))
    for png in plots_of(result):
        display(Image(filename=str(png)))
