"""`dlr publish`: a post with front matter, tables, figures and a reproducibility block; rendered by Chromium."""

from __future__ import annotations

import pytest
import yaml
from markdown_it import MarkdownIt

from dlroadmap import publish as P
from dlroadmap.errors import UserError


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from dlroadmap import registry
    from dlroadmap.runner import run_id

    out = tmp_path_factory.mktemp("runs")
    run_id(registry.load().get("p1.prob.gaussian"), out, quick=True, track="none", seed=3, sets=["trials=60"])
    return out / "p1.prob.gaussian"


def test_the_post_parses_and_says_how_to_reproduce(run_dir, tmp_path):
    folder = P.publish(run_dir, tmp_path / "post")
    text = (folder / "index.md").read_text()
    _, front, body = text.split("---\n", 2)
    meta = yaml.safe_load(front)
    assert meta["node"] == "p1.prob.gaussian" and meta["preset"] == "custom" and meta["seeds"] == [3]
    assert meta["commit"] and len(meta["commit"]) == 40
    tokens = MarkdownIt("commonmark").enable("table").parse(body)
    assert any(t.type == "table_open" for t in tokens)
    assert "dlr run p1.prob.gaussian --quick --seed 3 --set trials=60" in body      # the override, not just the preset
    assert sorted(p.name for p in (folder / "figures").iterdir()) == ["gaussian.png"]
    assert "Box & Muller 1958" in body and "scikit-learn" in body
    # the CPU line names the bf16 units the run had: the capability string alone says AVX512 with AMX or without
    import torch

    cpu = next(line for line in body.splitlines() if line.startswith("| CPU |"))
    assert ("AMX" in cpu) == torch.cpu._is_amx_tile_supported() and ("AVX512-BF16" in cpu) == torch.cpu._is_avx512_bf16_supported()


@pytest.mark.skipif(P.browser() is None, reason="no Chromium on PATH")
def test_chromium_renders_the_page_with_its_figures_and_numbers(run_dir, tmp_path):
    folder = P.publish(run_dir, tmp_path / "post")
    shown, images = P.rendered_text(folder / "index.html")
    facts = P.run_facts(run_dir)
    assert images == len(facts["figures"]) == 1
    assert "Reproduce it" in shown and facts["command"] in shown
    from dlroadmap.registry import fmt_value

    assert all(e["metric"] in shown and fmt_value(e["got"]) in shown for e in facts["expectations"])


def test_a_failed_or_missing_run_is_refused_with_one_line(tmp_path, cli):
    code, _, err = cli("publish", str(tmp_path / "nothing"))
    assert code == 2 and "no result.json" in err and "Traceback" not in err
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "result.json").write_text('{"node": "p1.prob.gaussian", "error": "interrupted"}')
    with pytest.raises(UserError, match="failed"):
        P.read_run(tmp_path / "broken")


def test_republishing_replaces_the_post_whole(run_dir, tmp_path):
    target = tmp_path / "post"
    P.publish(run_dir, target)
    (target / "figures" / "stale.png").write_bytes(b"old")
    P.publish(run_dir, target)
    assert not (target / "figures" / "stale.png").exists() and (target / "index.html").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]        # no temporary folder left behind
