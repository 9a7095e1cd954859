"""references.bib, the nodes' citations and the code's equation markers agree; the arXiv client reads the API's feed."""

from __future__ import annotations

import urllib.error
from importlib.resources import files

import bibtexparser
import pytest

from dlroadmap import arxiv_api, papers
from dlroadmap.errors import UserError

ATOM = files("dlroadmap").joinpath("data/files/arxiv-1706.03762.atom").read_bytes()


def test_bibliography_citations_and_markers_agree():
    assert papers.problems() == []
    assert len(papers.bibliography()) >= 100


def test_every_marker_sits_in_code_and_names_a_known_paper():
    known = papers.bibliography()
    for key, found in papers.markers().items():
        for m in found:
            assert key in known, f"{m.file}:{m.line} names @{key}"
            if m.owner:   # inside a function or class: the line it marks exists in that body
                text = (papers.SRC / m.file).read_text().splitlines()
                assert f"@{key}" in text[m.line - 1]


def test_parsed_markers_are_cached_until_a_source_file_changes(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(papers, "SRC", tmp_path / "src")
    module = tmp_path / "src" / "m.py"
    module.parent.mkdir()
    module.write_text("def f(x):\n    # eq. (1), @vaswani2017attention\n    return x\n")
    papers.markers.cache_clear()
    try:
        first = papers.markers()
        assert [(m.key, m.line, m.owner) for m in first["vaswani2017attention"]] == [("vaswani2017attention", 2, "f")]
        assert len(list((tmp_path / "cache" / "dlroadmap" / "papers").glob("markers-*.json"))) == 1
        papers.markers.cache_clear()
        assert papers.markers() == first                           # read back from the cache: the same markers
        module.write_text(module.read_text() + "\n\nclass G:\n    \"\"\"eq. (2), @kingma2013vae\"\"\"\n")
        papers.markers.cache_clear()
        assert [(m.key, m.owner) for m in papers.markers()["kingma2013vae"]] == [("kingma2013vae", "G")]   # edited: parsed again
        assert len(list((tmp_path / "cache" / "dlroadmap" / "papers").glob("markers-*.json"))) == 1    # the stale one is gone
    finally:
        papers.markers.cache_clear()
    papers.bibliography.cache_clear()
    assert papers.bibliography() == papers._parse_bibliography()  # the cached bibliography is the parsed one


def test_problems_catch_a_typo_an_uncited_entry_and_an_unmarked_paper(tmp_path, monkeypatch):
    bad = tmp_path / "bad.py"
    bad.write_text("def f(x):\n    # eq. (1), @vaswani2017atention\n    return x\n")
    found = papers.markers_in(bad, "bad.py")
    assert [(m.key, m.line, m.owner) for m in found] == [("vaswani2017atention", 2, "f")]
    marks = {k: list(v) for k, v in papers.markers().items()}
    marks.pop("kingma2014adam")                                   # its only marker gone
    marks.setdefault("vaswani2017atention", []).extend(found)     # a typo in a marker
    monkeypatch.setattr(papers, "markers", lambda: marks)
    cites = papers.citations()
    cites.by_key.pop("hinton2012rmsprop")                         # no node cites it any more
    cites.free_text.append(("p1.nn.cost", "Nielsen 2015"))        # a paper named in free text
    monkeypatch.setattr(papers, "citations", lambda: cites)
    got = papers.problems()
    assert any("kingma2014adam: no line of code marks it" in p for p in got)
    assert any("@vaswani2017atention is not in references.bib" in p for p in got)
    assert any("hinton2012rmsprop: cited by no node" in p for p in got)
    assert any("neither a URL nor an @KEY" in p for p in got)


def test_the_atom_feed_is_read_and_agrees_with_references_bib():
    (entry,) = arxiv_api.parse(ATOM)
    assert (entry.arxiv_id, entry.version, entry.year, entry.primary_category) == ("1706.03762", 7, "2017", "cs.CL")
    assert entry.title == "Attention Is All You Need" and len(entry.authors) == 8
    assert entry.abstract.startswith("The dominant sequence transduction models") and "\n" not in entry.abstract
    ours = papers.get("vaswani2017attention")
    assert arxiv_api.bibtex_key(entry) == ours.key
    assert entry.title.lower() == ours.title.lower() and ours.arxiv == entry.arxiv_id
    assert [a.split()[-1] for a in entry.authors] == [a.split(",")[0].split()[-1] for a in ours.authors]
    lib = bibtexparser.parse_string(arxiv_api.to_bibtex(entry))
    fields = lib.entries[0].fields_dict
    assert not lib.failed_blocks and fields["eprint"].value == "1706.03762" and fields["author"].value.startswith("Vaswani, Ashish and")


def test_an_error_entry_and_an_unknown_layout_are_one_line():
    error = ATOM.replace(b"<title>Attention Is All You Need</title>", b"<title>Error</title>")
    with pytest.raises(UserError, match="arXiv answered an error"):
        arxiv_api.parse(error)
    with pytest.raises(UserError, match="not an arXiv abstract URL"):
        arxiv_api.parse(ATOM.replace(b"http://arxiv.org/abs/1706.03762v7</id>", b"http://example.org/x</id>"))


def test_fetch_offline_and_a_bad_id_fail_with_one_line(monkeypatch):
    def offline(*a, **k):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(arxiv_api.urllib.request, "urlopen", offline)
    with pytest.raises(UserError, match="cannot reach arXiv") as e:
        arxiv_api.fetch("1706.03762")
    assert "\n" not in str(e.value)
    with pytest.raises(UserError, match="is not an arXiv id"):
        arxiv_api.fetch("attention-is-all-you-need")


def test_cli_papers(cli, monkeypatch, tmp_path):
    import json

    code, out, _ = cli("papers", "--json")
    assert code == 0 and len(json.loads(out)) == len(papers.bibliography())
    code, out, _ = cli("paper", "kingma2013vae")
    assert code == 0 and "p3.gen.vae" in out and "models/generative/vae.py" in out
    code, _, err = cli("paper", "kingma2013vea")
    assert code == 2 and "did you mean kingma2013vae" in err
    (entry,) = arxiv_api.parse(ATOM)
    monkeypatch.setattr(arxiv_api, "fetch", lambda arxiv_id, timeout=20.0: entry)
    code, _, err = cli("papers", "add", "1706.03762")
    assert code == 2 and "already in references.bib as vaswani2017attention" in err
    # A paper not yet in the bibliography is appended (to a copy here) and parses back with its abstract.
    other = arxiv_api.ArxivEntry("2106.09685", 2, "LoRA: Low-Rank Adaptation of Large Language Models", ("Edward J. Hu", "Yelong Shen"),
                                 "2021-06-17T17:37:18Z", "An important paradigm of natural language processing.", "cs.CL")
    monkeypatch.setattr(arxiv_api, "fetch", lambda arxiv_id, timeout=20.0: other)
    (tmp_path / "references.bib").write_text((papers.SRC / "references.bib").read_text())
    monkeypatch.setattr(papers, "SRC", tmp_path)
    code, _, err = cli("papers", "add", "2106.09685")
    assert code == 0 and "added hu2021lora" in err
    lib = bibtexparser.parse_string((tmp_path / "references.bib").read_text())
    assert not lib.failed_blocks and lib.entries_dict["hu2021lora"].fields_dict["abstract"].value.startswith("An important")


def test_the_report_has_a_papers_page(tmp_path):
    from dlroadmap.report import write_report

    write_report(tmp_path)
    page = (tmp_path / "papers.html").read_text()
    assert "Attention is All You Need" in page and "models/sequence/attention.py" in page and "p3.attention.self" in page
    assert 'href="papers.html"' in (tmp_path / "report.html").read_text()
