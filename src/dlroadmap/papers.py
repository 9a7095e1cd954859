"""The papers behind the code: references.bib, which nodes cite each entry, and where its equations are computed.

Three places agree, and tests/test_papers.py holds them to it:
  references.bib   one BibTeX entry per paper, book or reference implementation (read with bibtexparser)
  roadmap.toml     a node cites an entry in its refs as "@KEY" or "@KEY: what of it" (URLs are documentation)
  the code         a comment or docstring inside the function or class that computes a paper's equation names
                   it with the key: `# eq. (4), @kingma2013vae` -- a *marker*; `dlr paper KEY` lists them
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import hashlib
import io
import json
import re
import tokenize
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import Any, Callable

from dlroadmap.errors import UserError

SRC = Path(__file__).resolve().parent
KEY = re.compile(r"@([a-z][a-z_]*\d{4}[a-z0-9_]*)")      # author, year, a word: kingma2013vae


@dataclass(frozen=True)
class Paper:
    key: str
    kind: str                  # article, inproceedings, book, misc, ...
    title: str
    authors: tuple[str, ...]   # "Kingma, Diederik P.", as in the .bib
    year: str
    venue: str                 # journal, booktitle, publisher, institution or howpublished
    arxiv: str | None = None
    url: str | None = None

    @property
    def short(self) -> str:
        """'Kingma & Welling 2014', 'Vaswani et al. 2017'."""
        last = [a.split(",")[0].strip() for a in self.authors if a != "others"]
        names = last[0] if len(last) == 1 else (f"{last[0]} & {last[1]}" if len(last) == 2 and "others" not in self.authors else f"{last[0]} et al.")
        return f"{names} {self.year}"

    def cite(self) -> str:
        """One line: authors year, title, venue, arXiv id."""
        arxiv = f", arXiv:{self.arxiv}" if self.arxiv else ""
        return f"{self.short}, {self.title}. {self.venue}{arxiv}"


@dataclass(frozen=True)
class Marker:
    key: str
    file: str      # relative to src/dlroadmap
    line: int
    text: str      # the comment or docstring line that names the key
    owner: str     # the function or class it sits in ("" when it sits in none)


@dataclass
class Citations:
    by_key: dict[str, list[tuple[str, str]]] = field(default_factory=dict)   # key -> [(node id, note)]
    unknown: list[tuple[str, str]] = field(default_factory=list)             # (node id, ref) naming no entry
    free_text: list[tuple[str, str]] = field(default_factory=list)           # (node id, ref) neither URL nor @KEY


def _plain(text: str) -> str:
    """BibTeX's braces and LaTeX accents to plain text ({\\'e} -> e with an accent)."""
    from pylatexenc.latex2text import LatexNodes2Text

    return LatexNodes2Text().latex_to_text(text).strip()


def _source_stamp() -> str:
    """A digest of the path, size and modification time of every source file and of references.bib: what
    the parsed bibliography and markers depend on. Stat calls only (~200 files, a few milliseconds)."""
    h = hashlib.sha256()
    for path in sorted(SRC.rglob("*.py")) + [Path(str(files("dlroadmap").joinpath("references.bib")))]:
        st = path.stat()
        h.update(f"{path}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def _cached(name: str, build: Callable[[], dict[str, Any]], load: Callable[[dict], dict[str, Any]]) -> dict[str, Any]:
    """`build()`, kept as JSON in the user cache until a source file changes. Parsing the .bib (LaTeX to
    text) and tokenizing every module took ~1.7 s: every `dlr run` paid it to write the report's papers page."""
    from dlroadmap.io import user_cache_dir, write_json

    folder = user_cache_dir() / "papers"
    path = folder / f"{name}-{_source_stamp()}.json"
    try:
        return load(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError, KeyError):
        pass                                                    # none yet, or unreadable: build it again
    value = build()
    try:
        for old in folder.glob(f"{name}-*.json"):               # stamps of sources that have since changed
            old.unlink(missing_ok=True)
        write_json(path, {k: [dataclasses.asdict(x) for x in v] if isinstance(v, list) else dataclasses.asdict(v)
                          for k, v in value.items()})
    except (OSError, UserError):
        pass                                                    # a read-only or blocked cache: parse every time
    return value


@lru_cache(maxsize=1)
def bibliography() -> dict[str, Paper]:
    return _cached("bibliography", _parse_bibliography,
                   lambda d: {k: Paper(**{**v, "authors": tuple(v["authors"])}) for k, v in d.items()})


def _parse_bibliography() -> dict[str, Paper]:
    import bibtexparser

    library = bibtexparser.parse_string(files("dlroadmap").joinpath("references.bib").read_text(encoding="utf-8"))
    if library.failed_blocks:
        raise ValueError(f"references.bib: {len(library.failed_blocks)} entries do not parse, the first at line "
                         f"{library.failed_blocks[0].start_line + 1}")
    papers = {}
    for e in library.entries:
        f = {k.lower(): v.value for k, v in e.fields_dict.items()}
        venue = next((f[k] for k in ("journal", "booktitle", "publisher", "institution", "school", "howpublished") if k in f), "")
        papers[e.key] = Paper(key=e.key, kind=e.entry_type, title=_plain(f.get("title", "")),
                              authors=tuple(_plain(a) for a in re.split(r"\s+and\s+", f.get("author", ""))),
                              year=f.get("year", ""), venue=_plain(venue), arxiv=f.get("eprint"), url=f.get("url"))
    return papers


def get(key: str) -> Paper:
    papers = bibliography()
    key = key.lstrip("@")
    if key not in papers:
        close = difflib.get_close_matches(key, list(papers), n=3)
        raise UserError(f"no paper {key!r} in references.bib" + (f"; did you mean {', '.join(close)}?" if close else "; `dlr papers` lists them"))
    return papers[key]


def citations() -> Citations:
    """What the nodes of roadmap.toml cite: "@KEY" or "@KEY: note" refs by key; the rest must be URLs."""
    from dlroadmap import registry

    out, papers = Citations(), bibliography()
    for node in registry.load().nodes:
        for ref in node.refs:
            if ref.startswith("@"):
                key, _, note = ref[1:].partition(":")
                if key in papers:
                    out.by_key.setdefault(key, []).append((node.id, note.strip()))
                else:
                    out.unknown.append((node.id, ref))
            elif not ref.startswith(("http://", "https://")):
                out.free_text.append((node.id, ref))
    return out


def _owners(tree: ast.AST) -> list[tuple[int, int, str]]:
    """(first line, last line, qualified name) of every function and class in a module."""
    spans = []

    def walk(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                spans.append((child.lineno, child.end_lineno or child.lineno, name))
                walk(child, name + ".")
            else:
                walk(child, prefix)

    walk(tree, "")
    return spans


def markers_in(path: Path, rel: str) -> list[Marker]:
    """Every @KEY named in a comment or string of one Python file, with the innermost function/class around it."""
    text = path.read_text(encoding="utf-8")
    if "@" not in text:
        return []
    spans = _owners(ast.parse(text))
    found = []
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type not in (tokenize.COMMENT, tokenize.STRING):
            continue
        for offset, line in enumerate(tok.string.splitlines()):
            for m in KEY.finditer(line):
                lineno = tok.start[0] + offset
                inside = [s for s in spans if s[0] <= lineno <= s[1]]
                owner = max(inside, key=lambda s: s[0])[2] if inside else ""
                found.append(Marker(m.group(1), rel, lineno, line.strip().lstrip("#").strip(), owner))
    return found


@lru_cache(maxsize=1)
def markers() -> dict[str, list[Marker]]:
    """key -> its markers across src/dlroadmap (every author-year key found, known or not: the test checks them)."""
    return _cached("markers", _find_markers, lambda d: {k: [Marker(**m) for m in v] for k, v in d.items()})


def _find_markers() -> dict[str, list[Marker]]:
    out: dict[str, list[Marker]] = {}
    for path in sorted(SRC.rglob("*.py")):
        for m in markers_in(path, str(path.relative_to(SRC))):
            out.setdefault(m.key, []).append(m)
    return out


def nodes_of(key: str) -> list[tuple[str, str]]:
    return citations().by_key.get(key, [])


def problems() -> list[str]:
    """Everything that breaks the agreement between references.bib, roadmap.toml and the code: [] when none."""
    papers, cites, marks = bibliography(), citations(), markers()
    out = [f"{node}: {ref!r} names no entry of references.bib" for node, ref in cites.unknown]
    out += [f"{node}: {ref!r} is neither a URL nor an @KEY citation" for node, ref in cites.free_text]
    out += [f"{key}: cited by no node" for key in papers if key not in cites.by_key]
    out += [f"{key}: no line of code marks it (add '# eq. (N), @{key}' in the function that computes it)"
            for key in papers if not any(m.owner for m in marks.get(key, []))]
    out += [f"{m.file}:{m.line}: @{m.key} is not in references.bib" for ms in marks.values() for m in ms if m.key not in papers]
    out += [f"{key}: arXiv id {p.arxiv!r} is malformed" for key, p in papers.items() if p.arxiv and not re.fullmatch(r"\d{4}\.\d{4,5}", p.arxiv)]
    out += [f"{key}: no title, author or year" for key, p in papers.items() if not (p.title and p.authors and p.year)]
    return out
