"""The research workflow: `dlr papers` / `dlr paper KEY` (the bibliography, who cites each paper, where its
equations are computed), `dlr publish RUN` (a post about one run) and `dlr replicate` (published numbers, rerun)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from dlroadmap.cli.common import app
from dlroadmap.ui import console

papers_app = typer.Typer(help="The papers behind the code (references.bib): `dlr papers` lists them, `dlr papers add ARXIV_ID` "
                              "fetches one from arXiv into the bibliography, `dlr paper KEY` shows one.", invoke_without_command=True)
app.add_typer(papers_app, name="papers")


@papers_app.callback()
def papers(ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table")) -> None:
    """Every paper the nodes cite: key, authors and year, title, the citing nodes, how many code lines mark it."""
    if ctx.invoked_subcommand is not None:
        return
    from rich.console import Console
    from rich.table import Table

    from dlroadmap.papers import bibliography, citations, markers

    cites, marks = citations().by_key, markers()
    rows = [{"key": p.key, "cite": p.short, "title": p.title, "arxiv": p.arxiv, "nodes": [n for n, _ in cites.get(p.key, [])],
             "markers": [f"{m.file}:{m.line}" for m in marks.get(p.key, []) if m.owner]} for p in bibliography().values()]
    if as_json:
        print(json.dumps(rows, indent=1))
        return
    table = Table(title=f"{len(rows)} papers (dlr paper KEY for one)")
    for col in ("key", "paper", "cited by", "code lines"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r["key"], r["cite"], ", ".join(r["nodes"]), str(len(r["markers"])))
    Console().print(table)


@papers_app.command()
def add(arxiv_id: str = typer.Argument(..., help="an arXiv id, e.g. 1706.03762"),
        key: str = typer.Option(None, "--key", help="the BibTeX key [default: surname + year + title word, e.g. vaswani2017attention]")) -> None:
    """Fetch a paper's metadata and abstract from the arXiv API and append it to references.bib (needs network)."""
    from dlroadmap.arxiv_api import bibtex_key, fetch, to_bibtex
    from dlroadmap.errors import UserError
    from dlroadmap.io import write_text
    from dlroadmap.papers import SRC, bibliography

    entry = fetch(arxiv_id)
    known = [p.key for p in bibliography().values() if p.arxiv == entry.arxiv_id]
    if known:
        raise UserError(f"arXiv:{entry.arxiv_id} is already in references.bib as {known[0]}")
    key = key or bibtex_key(entry)
    if key in bibliography():
        raise UserError(f"the key {key!r} is taken; pick another with --key")
    path = SRC / "references.bib"
    write_text(path, path.read_text(encoding="utf-8").rstrip("\n") + "\n\n" + to_bibtex(entry, key))
    console.print(f"added {key}: {entry.title} ({entry.year}). Cite it in roadmap.toml as \"@{key}\" and mark the code that "
                  f"computes its equations with \"# eq. (N), @{key}\".")


@app.command()
def paper(key: str = typer.Argument(..., help="a BibTeX key from `dlr papers`, e.g. vaswani2017attention")) -> None:
    """One paper: its entry, the nodes that cite it, and each line of code that marks one of its equations."""
    from rich.console import Console

    from dlroadmap.papers import get, markers, nodes_of

    console = Console()   # the answer goes to stdout (messages and errors to stderr)
    p = get(key)
    console.print(f"[bold]{p.key}[/bold]  {p.cite()}")
    if p.arxiv:
        console.print(f"  https://arxiv.org/abs/{p.arxiv}")
    elif p.url:
        console.print(f"  {p.url}")
    console.print("cited by:")
    for node, note in nodes_of(p.key):
        console.print(f"  {node}" + (f"  ({note})" if note else ""))
    console.print("in the code (src/dlroadmap/):")
    for m in markers().get(p.key, []):
        if m.owner:
            console.print(f"  {m.file}:{m.line}  {m.owner}  {m.text}", highlight=False)


@app.command()
def publish(run: Path = typer.Argument(..., help="a run folder from `dlr run`, e.g. runs/p2.fnn.backprop"),
            out: Optional[Path] = typer.Option(None, "--out", "-o", help="the post's folder [default: <run>/../posts/<node>]")) -> None:
    """Write a post about one run: index.md (YAML front matter + Markdown) and index.html (figures inside).

    It holds what the node is, its metrics against its expectations, its figures, its config, the replication
    row if `dlr replicate` measured one, the papers it follows, and how to reproduce it (commit, command,
    seeds, package versions, CPU, wall time).
    """
    from dlroadmap.publish import publish as write_post

    folder = write_post(run, out)
    console.print(f"wrote {folder / 'index.md'} and {folder / 'index.html'} ({len(list((folder / 'figures').glob('*.png')))} figures)")


def _replication_table(rows: list[dict]):
    from rich.table import Table

    from dlroadmap.registry import fmt_value

    table = Table(title="replications (published figure vs this machine, full preset)")
    for col in ("claim", "source", "published", "here (mean ± sd)", "gap", "band", "verdict"):
        table.add_column(col, overflow="fold")
    colour = {"within band": "green", "missed band": "red", "not measured": "yellow"}
    for r in rows:
        here = "" if r["mean"] is None else f"{fmt_value(r['mean'])} ± {fmt_value(r['std'])}"
        table.add_row(r["id"], r["source"], fmt_value(r["published"]), here, "" if r["gap"] is None else f"{r['gap']:+.4g}",
                      f"[{fmt_value(r['band'][0])}, {fmt_value(r['band'][1])}]", f"[{colour[r['verdict']]}]{r['verdict']}[/]")
    return table


@app.command()
def replicate(
    only: Optional[str] = typer.Option(None, "--only", help="comma-separated claim ids (see --list) [default: every claim]"),
    seeds: str = typer.Option("0,1,2", "--seeds", help="comma-separated seeds: each claim's node runs its full preset at each"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="runs and replications.json [default: <$DLR_OUT or ./runs>/replicate]"),
    list_only: bool = typer.Option(False, "--list", help="print the claims (replications.toml) without running anything"),
    fresh: bool = typer.Option(False, "--fresh", help="rerun every seed, even one already run to the end in OUT with the same settings"),
) -> None:
    """Rerun published numbers: each claim's node in its full preset at every seed, its mean against the paper's figure.

    Full presets read the full datasets (DLR_DATA_DIR) and take from minutes to an hour each on a laptop CPU;
    `make replicate` runs all of them. The table goes to OUT/replications.json (after each node) and to the
    report; run it again after an interruption and every seed already run to the end is reused (--fresh: none).
    """
    from rich.console import Console

    from dlroadmap.cli.common import default_out
    from dlroadmap.errors import UserError
    from dlroadmap.io import check_writable_dir
    from dlroadmap.replicate import load_claims, replicate as run_claims, select

    claims = select(load_claims(), [s.strip() for s in only.split(",") if s.strip()] if only else None)
    if list_only:
        for c in claims:
            Console().print(f"{c.id:20} {c.node:24} {c.metric:28} published {c.published:g}, band [{c.band[0]:g}, {c.band[1]:g}]  {c.claim}", highlight=False)
        return
    try:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError:
        raise UserError(f"--seeds expects comma-separated integers, got {seeds!r}") from None
    if not seed_list:
        raise UserError("--seeds needs at least one seed, e.g. --seeds 0,1,2")
    out = check_writable_dir(out or default_out() / "replicate")
    table = run_claims(claims, out, seed_list, fresh=fresh, progress=lambda msg: console.print(f"[dim]{msg}[/]"))
    Console().print(_replication_table(table["rows"]))
    for node, err in table["errors"].items():
        console.print(f"[red]{node} crashed: {err}[/]")
    console.print(f"{out / 'replications.json'} ({table['seconds'] / 60:.1f} min); `dlr report --out {out}` shows it with the runs")
