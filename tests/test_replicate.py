"""The replication harness: claims load and point at real nodes and metrics; rows, verdicts and the table are right."""

from __future__ import annotations

import json

import pytest

from dlroadmap import registry
from dlroadmap.errors import UserError
from dlroadmap.replicate import Claim, load_claims, replicate, row, select

CLAIM = Claim("c", "a claim", "@lecun1998gradient", "setting", "p1.prob.gaussian", "box_muller_ks_pvalue", 0.5, (0.01, 1.0))


def test_claims_point_at_implemented_nodes_and_known_sources():
    from dlroadmap.papers import bibliography

    claims = load_claims()
    assert len(claims) >= 8
    for c in claims:
        assert registry.load().get(c.node).implemented, c.id
        assert c.band[0] <= c.band[1]
        if c.source.startswith("@"):
            assert c.source[1:] in bibliography(), c.id


def test_a_claim_whose_metric_no_node_produces_is_caught():
    from dlroadmap.replicate import claims_against_nodes

    assert claims_against_nodes(load_claims()) == (0, 0)
    typo = Claim("t", "x", "@nosuch2020paper", "s", "p3.rl.qlearning", "frozen_optimum_measurd", 0.74, (0.7, 0.8))
    assert claims_against_nodes([typo]) == (1, 1)


def test_rows_mean_sd_gap_and_verdicts():
    r = row(CLAIM, [0.2, 0.4, 0.6], [0, 1, 2])
    assert r["mean"] == pytest.approx(0.4) and r["std"] == pytest.approx(0.2) and r["gap"] == pytest.approx(-0.1)
    assert r["verdict"] == "within band"
    assert row(CLAIM, [0.001, 0.002, 0.003], [0, 1, 2])["verdict"] == "missed band"
    assert row(CLAIM, [0.3], [0, 1, 2])["verdict"] == "not measured"


def test_bad_toml_and_unknown_ids_are_refused():
    with pytest.raises(ValueError, match="empty"):
        load_claims('[[claim]]\nid="x"\nclaim="c"\nsource="s"\nsetting="s"\nnode="n"\nmetric="m"\npublished=1\nband=[2, 1]\n')
    with pytest.raises(UserError, match="unknown claim 'nope'"):
        select(load_claims(), ["nope"])
    assert [c.id for c in select(load_claims(), ["ppo-cartpole", "lenet5-mnist"])] == ["ppo-cartpole", "lenet5-mnist"]


@pytest.mark.slow
def test_replicate_runs_a_node_at_seeds_and_writes_the_table(tmp_path, monkeypatch):
    """The harness end to end on a node whose full preset takes a second: three seeds, one row per claim, and a
    claim on a metric the node never produces shown as not measured (not dropped)."""
    missing = Claim("m", "missing", "@box1958note", "s", "p1.prob.gaussian", "no_such_metric", 1.0, (0.0, 2.0))
    table = replicate([CLAIM, missing], tmp_path, [0, 1, 2])
    saved = json.loads((tmp_path / "replications.json").read_text())
    assert saved["rows"] == json.loads(json.dumps(table["rows"]))
    got = {r["id"]: r for r in saved["rows"]}
    assert len(got["c"]["values"]) == 3 and len(set(got["c"]["values"])) == 3     # three seeds, three different samples
    assert got["c"]["verdict"] == "within band" and got["m"]["verdict"] == "not measured"
    assert (tmp_path / "p1.prob.gaussian" / "seed-2" / "result.json").is_file()
    from dlroadmap.report import write_report

    write_report(tmp_path)
    page = (tmp_path / "report.html").read_text()
    assert "Replications" in page and "not measured" in page
    # Run again: every finished seed is reused (same numbers, no new run), unless fresh.
    seed_file = lambda s: tmp_path / "p1.prob.gaussian" / f"seed-{s}" / "result.json"  # noqa: E731
    before = {s: seed_file(s).stat().st_mtime_ns for s in (0, 1, 2)}
    again = replicate([CLAIM], tmp_path, [0, 1, 2])
    assert again["rows"][0]["values"] == got["c"]["values"] and {s: seed_file(s).stat().st_mtime_ns for s in (0, 1, 2)} == before
    assert again["rows"][0]["commits"] == got["c"]["commits"]
    # A table cut short after two seeds of a node: asked for three, it runs only the third.
    assert replicate([CLAIM], tmp_path, [1, 3])["rows"][0]["values"][0] == got["c"]["values"][1]
    assert seed_file(1).stat().st_mtime_ns == before[1] and seed_file(3).is_file()
    # A crashed seed, or one run with other settings, is run again.
    seed_file(2).write_text(json.dumps({**json.loads(seed_file(2).read_text()), "error": "RuntimeError: killed"}))
    replicate([CLAIM], tmp_path, [2])
    assert "error" not in json.loads(seed_file(2).read_text())
    replicate([CLAIM], tmp_path, [0], fresh=True)
    assert seed_file(0).stat().st_mtime_ns != before[0]


def test_a_seed_is_reused_only_for_the_same_settings(tmp_path):
    from dlroadmap.runner import finished_run, make_config, run_node

    node = registry.load().get("p1.prob.gaussian")
    cls = node.load_experiment().Config
    config = make_config(cls, seed=4)
    run_node(node, config, tmp_path, track="none", run_dir=tmp_path / "seed-4")
    path = tmp_path / "seed-4" / "result.json"
    assert finished_run(path, config)["metrics"] == json.loads(path.read_text())["metrics"]
    assert finished_run(path, make_config(cls, seed=5)) is None                          # another seed
    assert finished_run(path, make_config(cls, quick=True, seed=4)) is None              # another preset
    assert finished_run(tmp_path / "nothing.json", config) is None
