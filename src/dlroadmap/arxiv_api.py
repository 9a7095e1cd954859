"""The arXiv API, read with the standard library: a paper's metadata and abstract from its Atom feed.

    entry = fetch("1706.03762")            # GET https://export.arxiv.org/api/query?id_list=1706.03762
    entry.title, entry.authors, entry.year, entry.primary_category, entry.abstract
    to_bibtex(entry, "vaswani2017attention")

The API answers an Atom 1.0 feed (https://info.arxiv.org/help/api/user-manual.html): one <entry> per paper
with <id> (the abs URL with its version), <published>, <title> and <summary> (wrapped over lines),
<author><name>, and arXiv's own elements (arxiv:primary_category, arxiv:comment, arxiv:journal_ref,
arxiv:doi). Without network `fetch` stops with one line; `parse` works on any saved response.
"""

from __future__ import annotations

import re
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from dlroadmap.errors import UserError

API = "https://export.arxiv.org/api/query"
NS = {"atom": "http://www.w3.org/2005/Atom", "arxiv": "http://arxiv.org/schemas/atom",
      "opensearch": "http://a9.com/-/spec/opensearch/1.1/"}
ARXIV_ID = re.compile(r"^(\d{4}\.\d{4,5})(v\d+)?$")


@dataclass(frozen=True)
class ArxivEntry:
    arxiv_id: str            # 1706.03762
    version: int             # 7
    title: str
    authors: tuple[str, ...]  # "Ashish Vaswani", as the API writes them
    published: str           # 2017-06-12T17:57:34Z (the first version)
    abstract: str
    primary_category: str
    journal_ref: str | None = None
    doi: str | None = None

    @property
    def year(self) -> str:
        return self.published[:4]


def _text(element: ET.Element | None) -> str:
    """The API wraps long titles and abstracts over lines: one space between words."""
    return " ".join((element.text or "").split()) if element is not None else ""


def parse(atom: str | bytes) -> list[ArxivEntry]:
    """Every paper in an API response. An id the API does not know comes back as an entry titled 'Error'."""
    root = ET.fromstring(atom)
    entries = []
    for e in root.findall("atom:entry", NS):
        title = _text(e.find("atom:title", NS))
        if title == "Error":
            raise UserError(f"arXiv answered an error: {_text(e.find('atom:summary', NS))}")
        abs_url = _text(e.find("atom:id", NS))                  # http://arxiv.org/abs/1706.03762v7
        m = re.search(r"abs/(\d{4}\.\d{4,5})v(\d+)$", abs_url)
        if not m:
            raise UserError(f"not an arXiv abstract URL in the feed: {abs_url!r}")
        primary = e.find("arxiv:primary_category", NS)
        entries.append(ArxivEntry(
            arxiv_id=m.group(1), version=int(m.group(2)), title=title,
            authors=tuple(_text(a.find("atom:name", NS)) for a in e.findall("atom:author", NS)),
            published=_text(e.find("atom:published", NS)), abstract=_text(e.find("atom:summary", NS)),
            primary_category=primary.get("term", "") if primary is not None else "",
            journal_ref=_text(e.find("arxiv:journal_ref", NS)) or None, doi=_text(e.find("arxiv:doi", NS)) or None))
    return entries


def fetch(arxiv_id: str, timeout: float = 20.0) -> ArxivEntry:
    """One paper's metadata from the API; one clear line when the id is malformed or arXiv cannot be reached."""
    m = ARXIV_ID.match(arxiv_id.removeprefix("arXiv:").strip())
    if not m:
        raise UserError(f"{arxiv_id!r} is not an arXiv id (expected e.g. 1706.03762 or 1706.03762v7)")
    url = f"{API}?{urllib.parse.urlencode({'id_list': m.group(0)})}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = response.read()
    except (urllib.error.URLError, TimeoutError, OSError) as e:
        reason = getattr(e, "reason", None) or e
        raise UserError(f"cannot reach arXiv ({reason}): no network? references.bib and `dlr paper KEY` work offline") from None
    found = parse(body)
    if not found:
        raise UserError(f"arXiv has no paper {arxiv_id}")
    return found[0]


def bibtex_key(entry: ArxivEntry) -> str:
    """first author's surname + year + first long title word: vaswani2017attention."""
    surname = re.sub(r"[^a-z]", "", entry.authors[0].split()[-1].lower()) if entry.authors else "anon"
    word = next((w for w in re.findall(r"[a-z]+", entry.title.lower()) if len(w) > 3 and w not in {"with", "from", "that", "what"}), "paper")
    return f"{surname}{entry.year}{word}"


def to_bibtex(entry: ArxivEntry, key: str | None = None) -> str:
    """A @misc entry (an arXiv preprint; edit the type and venue once it is published), abstract included."""
    authors = " and ".join(f"{n.split()[-1]}, {' '.join(n.split()[:-1])}".strip(", ") for n in entry.authors)
    fields = {"author": authors, "title": entry.title, "year": entry.year, "eprint": entry.arxiv_id, "archiveprefix": "arXiv",
              "primaryclass": entry.primary_category, "journal": entry.journal_ref, "doi": entry.doi, "abstract": entry.abstract}
    body = ",\n".join(f"  {k} = {{{v}}}" for k, v in fields.items() if v)
    return f"@misc{{{key or bibtex_key(entry)},\n{body},\n}}\n"
