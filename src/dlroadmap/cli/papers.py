"""`dlr papers` and `dlr paper KEY`: the bibliography, who cites each paper, where its equations are computed."""

from __future__ import annotations

import json

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
