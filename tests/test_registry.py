"""The registry holds every bullet of ROADMAP.md, in the bullet's own words."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dlroadmap import registry
from dlroadmap.experiments.base import ExperimentConfig

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "dlroadmap"


def roadmap_md() -> str:
    """The roadmap: the shared copy beside the checkout (the source of truth), else the packaged copy."""
    for p in (ROOT.parent / "shared" / "ROADMAP.md", ROOT / "docs" / "ROADMAP.md"):
        if p.is_file():
            return p.read_text(encoding="utf-8")
    pytest.fail("ROADMAP.md not found in ../shared/ or docs/")


def parse_roadmap(text: str) -> dict[str, list[str]]:
    """{"p1": [bullets...], ..., "tools": [items...]} straight from the markdown."""
    out: dict[str, list[str]] = {}
    section = None
    for line in text.splitlines():
        m = re.match(r"^###\s+Phase\s+(\d+)", line)
        if m:
            section = f"p{m.group(1)}"
            out[section] = []
            continue
        if re.match(r"^###\s+Recommended Tools", line):
            section = "tools"
            out[section] = []
            continue
        m = re.match(r"^\s*\*\s+(.+?)\s*$", line)
        if m and section:
            item = m.group(1)
            if section == "tools":
                # "**Docker**, **MLflow**, **DVC** (for production MLOps)" -> Docker, MLflow, DVC
                item = re.sub(r"\(.*?\)", "", item).replace("**", "")
                out[section] += [s.strip() for s in item.split(",") if s.strip()]
            else:
                out[section].append(item)
    return out


def test_every_bullet_has_a_node_with_its_title():
    bullets = parse_roadmap(roadmap_md())
    assert set(bullets) == {"p1", "p2", "p3", "p4", "tools"}
    assert sum(len(v) for k, v in bullets.items() if k != "tools") == 59
    rm = registry.load()
    for phase, items in bullets.items():
        titles = [n.title for n in rm.nodes if n.phase == phase]
        missing = [b for b in items if b not in titles]
        assert not missing, f"bullets of {phase} without a node: {missing}"
        assert len(titles) == len(items), f"{phase}: nodes that are not bullets: {set(titles) - set(items)}"


def test_structure_has_24_topics_and_unique_ids():
    rm = registry.load()
    topics = [t for p in rm.phases if p.id != "tools" for t in p.topics]
    assert len(topics) == 24
    ids = [n.id for n in rm.nodes]
    assert len(ids) == len(set(ids))
    for n in rm.nodes:
        assert n.id.startswith(f"{n.phase}.{n.topic}."), n.id


@pytest.mark.parametrize("node", [n for n in registry.load().nodes if n.implemented], ids=lambda n: n.id)
def test_implemented_nodes_are_complete(node):
    assert node.code and node.tests and node.expect and node.refs, f"{node.id} lacks code/tests/expect/refs"
    for f in node.code:
        assert (SRC / f).is_file(), f"{node.id}: code file {f} does not exist"
    for t in node.tests:
        path, _, func = t.partition("::")
        text = (ROOT / path).read_text()
        if func:
            assert f"def {func}" in text, f"{node.id}: {t} not found"
    mod = node.load_experiment()
    assert issubclass(mod.Config, ExperimentConfig) and callable(mod.run)
    mod.Config.quick()  # the quick preset validates


def test_unknown_id_suggests_close_ids():
    rm = registry.load()
    with pytest.raises(registry.UserError, match="did you mean p2.fnn.backprop"):
        rm.get("p2.fnn.backprob")


def test_parse_rejects_bad_status():
    bad = '[[phase]]\nid="p"\ntitle="P"\n[[phase.topic]]\nid="t"\ntitle="T"\n[[phase.topic.node]]\nid="p.t.x"\ntitle="X"\nstatus="done"\n'
    with pytest.raises(ValueError, match="status"):
        registry.parse(bad)


def test_expectation_check():
    e = registry.Expectation("acc", ">=", 0.9)
    assert e.check({"acc": 0.95}) is True
    assert e.check({"acc": 0.5}) is False
    assert e.check({"acc": float("nan")}) is False
    assert e.check({}) is None


def test_an_expectation_for_an_optional_tool_applies_only_where_it_is_installed(monkeypatch):
    from dlroadmap.deploy import export as E

    text = ROADMAP_TOML_MINI.replace("EXPECT", '{ metric = "tflite_max_abs_diff", op = "<=", value = 1e-4, when = "tflite" }')
    node = registry.parse(text).get("p9.t.n")
    monkeypatch.setattr(E, "tflite_python", lambda: None)
    assert node.check({}, quick=True) == []                          # not installed: nothing to check
    monkeypatch.setattr(E, "tflite_python", lambda: "/usr/bin/python3")
    [(e, ok)] = node.check({}, quick=True)
    assert ok is None and "where tflite is installed" in str(e)      # installed: a missing metric is a miss
    with pytest.raises(ValueError, match="when must be one of"):
        registry.parse(ROADMAP_TOML_MINI.replace("EXPECT", '{ metric = "m", op = "<=", value = 1, when = "gpu" }'))


def test_node_ids_must_sit_in_their_phase_and_topic():
    with pytest.raises(ValueError, match="its id must be p9.t.<bullet>"):
        registry.parse(ROADMAP_TOML_MINI.replace('id = "p9.t.n"', 'id = "p9.other.n"').replace("EXPECT", ""))


ROADMAP_TOML_MINI = """
[[phase]]
id = "p9"
title = "Phase 9"
[[phase.topic]]
id = "t"
title = "Topic"
[[phase.topic.node]]
id = "p9.t.n"
title = "A node"
status = "implemented"
expect = [EXPECT]
"""


def test_exclusive_nodes_are_parsed_and_marked():
    text = ROADMAP_TOML_MINI.replace("EXPECT", "").replace('status = "implemented"', 'status = "implemented"\nexclusive = true')
    assert registry.parse(text).get("p9.t.n").exclusive is True
    assert registry.parse(ROADMAP_TOML_MINI.replace("EXPECT", "")).get("p9.t.n").exclusive is False
    # The nodes that start processes of their own (Ray, torchrun) run one at a time, each in a fresh worker, in a --jobs tour.
    assert [n.id for n in registry.load().nodes if n.exclusive] == ["p4.tune.optuna_ray", "p4.scale.distributed"]
