"""Phase 4, Contribute to Open Source & Research.

p4.oss.arxiv      references.bib (every paper the nodes cite, read with bibtexparser) agrees with roadmap.toml's
                  citations and with the code, where each paper's equations are marked; the arXiv API's Atom feed
                  for "Attention is all you need" is read with the standard library and agrees with the entry;
                  a live fetch agrees too where there is network, and stops with one line where there is none.
p4.oss.replicate  a published number rerun through the replication harness: FrozenLake's stated optima (0.74 on
                  4x4, 0.91 on 8x8, gymnasium's registrations) measured at three seeds by simulating the optimal
                  policy that backward induction finds on the env's own transition table; the claims of
                  replications.toml checked against the nodes that should produce them. `dlr replicate` runs the
                  full table (each claim's node, full preset, three seeds).
p4.oss.publish    one run written up as a post (`dlr publish`): the Markdown parses (YAML front matter, tables,
                  figures), headless Chromium renders the HTML page and shows every checked metric, the command
                  and the figures, and the post's own reproduce command, rerun, gives the same numbers.
"""

from __future__ import annotations

import json
import shlex
from typing import ClassVar

import matplotlib.pyplot as plt
import numpy as np
from pydantic import Field

from dlroadmap import registry
from dlroadmap.experiments.base import Experiment, ExperimentConfig, Result
from dlroadmap.io import write_json
from dlroadmap.train import Tracker


# --- p4.oss.arxiv ------------------------------------------------------------------------------------


class ArxivConfig(ExperimentConfig):
    paper: str = Field("vaswani2017attention", description="the paper whose entry, citing nodes and marked equations the run shows")
    live_timeout: float = Field(5.0, gt=0, le=120, description="seconds the live arXiv request may take before it counts as offline")

    QUICK: ClassVar[dict] = {}


def run_arxiv(config: ArxivConfig, tracker: Tracker) -> Result:
    from importlib.resources import files

    from dlroadmap import arxiv_api, papers
    from dlroadmap.errors import UserError

    bib, cites, marks = papers.bibliography(), papers.citations(), papers.markers()
    chosen = papers.get(config.paper)
    m = {"papers": float(len(bib)),
         "citations_unresolved": float(len(cites.unknown) + len(cites.free_text)),
         "entries_uncited": float(sum(k not in cites.by_key for k in bib)),
         "entries_unmarked": float(sum(not any(x.owner for x in marks.get(k, [])) for k in bib)),
         "markers_unknown": float(sum(k not in bib for k in marks)),
         "markers": float(sum(1 for ms in marks.values() for x in ms if x.owner))}

    def agrees(entry, paper) -> bool:
        """Title (case aside), first-author surnames in order, year and id: what a citation must get right."""
        surnames = [a.split()[-1] for a in entry.authors]
        return (entry.title.lower() == paper.title.lower() and entry.arxiv_id == paper.arxiv
                and surnames[:len(paper.authors)] == [a.split(",")[0].split()[-1] for a in paper.authors if a != "others"][:len(surnames)]
                and abs(int(entry.year) - int(paper.year)) <= 1)   # arXiv's year is the preprint's; a venue may be a year later

    (recorded,) = arxiv_api.parse(files("dlroadmap").joinpath("data/files/arxiv-1706.03762.atom").read_bytes())
    m["feed_agrees_with_bibliography"] = float(agrees(recorded, bib["vaswani2017attention"]))
    try:
        live = arxiv_api.fetch(chosen.arxiv or "1706.03762", timeout=config.live_timeout)
        m["arxiv_online"], m["arxiv_client_behaves"] = 1.0, float(agrees(live, chosen if chosen.arxiv else bib["vaswani2017attention"]))
        said = f"live: {live.title} ({live.year})"
    except UserError as e:
        m["arxiv_online"], m["arxiv_client_behaves"] = 0.0, float("\n" not in str(e) and "cannot reach arXiv" in str(e))
        said = f"offline: {e}"

    # Where the phases' papers come from: count by year, stacked by the phase of the node that first cites each.
    phase_of = {k: v[0][0].split(".")[0] for k, v in cites.by_key.items()}
    years = sorted({int(p.year) for p in bib.values()})
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 3.4), gridspec_kw={"width_ratios": [3, 1]})
    bottom = np.zeros(len(years))
    for ph in ("p1", "p2", "p3", "p4", "tools"):
        n = np.array([sum(1 for k, p in bib.items() if int(p.year) == y and phase_of.get(k) == ph) for y in years], float)
        a1.bar(years, n, bottom=bottom, label=ph)
        bottom += n
    a1.set_xlabel("year")
    a1.set_ylabel("papers cited")
    a1.legend(fontsize=7)
    a1.set_title(f"{len(bib)} entries of references.bib, by year and by the phase that cites them", fontsize=9)
    per = [len([x for x in marks.get(k, []) if x.owner]) for k in bib]
    a2.hist(per, bins=range(1, max(per) + 2), color="tab:gray", align="left")
    a2.set_xlabel("code lines marking a paper")
    a2.set_title("equation markers", fontsize=9)
    fig.tight_layout()
    plot = tracker.log_figure(fig, "papers")
    lines = [f"{x.file}:{x.line} ({x.owner})" for x in marks.get(chosen.key, []) if x.owner]
    return Result(metrics=m, artifacts={"papers": str(plot)},
                  notes=f"{chosen.cite()}; its equations in {', '.join(lines)}; cited by {', '.join(n for n, _ in cites.by_key.get(chosen.key, []))}. "
                        f"arXiv {said[:160]}")


# --- p4.oss.replicate --------------------------------------------------------------------------------


class ReplicateConfig(ExperimentConfig):
    episodes: int = Field(2_000, ge=100, le=1_000_000, description="simulated episodes of the optimal policy per seed")
    seeds: int = Field(3, ge=2, le=20, description="seeds seed, seed+1, ...: the spread a replication reports")

    QUICK: ClassVar[dict] = {}


def run_replicate(config: ReplicateConfig, tracker: Tracker) -> Result:
    from dlroadmap.replicate import claims_against_nodes, load_claims, row, verdict_counts
    from dlroadmap.rl import tabular as T
    from dlroadmap.rl.envs import make_env

    claims = {c.id: c for c in load_claims()}
    bad_metric, bad_source = claims_against_nodes(claims.values())
    seeds = [config.seed + i for i in range(config.seeds)]
    rows = []
    for claim_id, env_id in (("frozenlake-optimum", "FrozenLake-v1"), ("frozenlake8x8-optimum", "FrozenLake8x8-v1")):
        env = make_env(env_id)
        model, horizon = T.transition_model(env), env.spec.max_episode_steps
        exact, timed_policy = T.finite_horizon_optimum(model, horizon)     # the optimum within the time limit
        values = [float(T.run_policy(env, timed_policy, config.episodes, seed).mean()) for seed in seeds]
        rows.append({**row(claims[claim_id], values, seeds), "exact": exact})
    table = {"rows": rows, "seeds": seeds, "note": "run by p4.oss.replicate; `dlr replicate` runs every claim"}
    write_json(tracker.run_dir / "replications.json", table)
    m = {"claims": float(len(claims)), "claims_unknown_metric": float(bad_metric), "claims_unknown_source": float(bad_source)}
    for r, key in zip(rows, ("frozen4x4", "frozen8x8")):
        m[f"{key}_mean"], m[f"{key}_std"], m[f"{key}_exact"] = r["mean"], r["std"], r["exact"]
        m[f"{key}_within_band"] = float(r["verdict"] == "within band")
        # The simulation against the exact value: |mean - exact| in standard errors of a mean of seeds x episodes.
        m[f"{key}_sim_z"] = abs(r["mean"] - r["exact"]) / np.sqrt(r["exact"] * (1 - r["exact"]) / (config.episodes * len(seeds)))
    m["rows_missed"] = float(verdict_counts(table).get("missed band", 0))

    fig, ax = plt.subplots(figsize=(7, 3))
    for i, r in enumerate(rows):
        ax.plot(r["band"], [i, i], color="tab:green", lw=8, alpha=0.3, label="declared band" if i == 0 else None)
        ax.plot([r["published"]], [i], "k|", ms=18, mew=2, label="published" if i == 0 else None)
        ax.errorbar([r["mean"]], [i], xerr=[[r["std"]], [r["std"]]], fmt="o", color="tab:blue", label="here: mean ± sd of 3 seeds" if i == 0 else None)
        ax.plot([r["exact"]], [i], "x", color="tab:red", label="exact (backward induction)" if i == 0 else None)
    ax.set_yticks(range(len(rows)), [r["id"] for r in rows])
    ax.set_xlabel("success rate of the optimal policy")
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title("FrozenLake's stated optima, replicated", fontsize=9)
    fig.tight_layout()
    plot = tracker.log_figure(fig, "replication")
    return Result(metrics=m, artifacts={"replication": str(plot), "table": str(tracker.run_dir / "replications.json")},
                  notes="the full table: dlr replicate (each claim's node in its full preset at 3 seeds; `make replicate`)")


# --- p4.oss.publish ----------------------------------------------------------------------------------


class PublishConfig(ExperimentConfig):
    subject: str = Field("p1.prob.gaussian", description="the node whose quick run is written up and reproduced")

    QUICK: ClassVar[dict] = {}


def _rerun(command: str, out) -> dict[str, float]:
    """Run a post's `dlr run ID [--quick] --seed N [--set k=v ...]` line through the runner, as the CLI would."""
    from dlroadmap.runner import run_id

    args = shlex.split(command)[2:]
    node_id, quick, seed, sets = args[0], "--quick" in args, 0, []
    for i, a in enumerate(args):
        if a == "--seed":
            seed = int(args[i + 1])
        elif a == "--set":
            sets.append(args[i + 1])
    return run_id(registry.load().get(node_id), out, quick=quick, sets=sets, track="none", seed=seed).metrics


def run_publish(config: PublishConfig, tracker: Tracker) -> Result:
    import yaml
    from markdown_it import MarkdownIt

    from dlroadmap.publish import browser, publish, rendered_text, run_facts
    from dlroadmap.runner import run_id

    if config.subject == tracker.run_dir.name:
        from dlroadmap.errors import UserError

        raise UserError("p4.oss.publish cannot write up its own run: pick another --set subject=NODE")
    subject_out = tracker.run_dir / "subject"
    run_id(registry.load().get(config.subject), subject_out, quick=True, track="none", seed=config.seed)
    run_dir = subject_out / config.subject
    folder = publish(run_dir, tracker.run_dir / "post")
    facts = run_facts(run_dir)
    text = (folder / "index.md").read_text()
    _, front, body = text.split("---\n", 2)
    meta = yaml.safe_load(front)
    tokens = MarkdownIt("commonmark").enable("table").parse(body)
    kinds = {t.type for t in tokens} | {c.type for t in tokens for c in (t.children or [])}
    m = {"front_matter_ok": float(meta.get("node") == config.subject and bool(meta.get("title")) and meta.get("verified") == facts["passed"]
                                  and set(meta.get("metrics", {})) == {e["metric"] for e in facts["expectations"]}),
         "markdown_has_table_and_figures": float("table_open" in kinds and "image" in kinds and "fence" in kinds),
         "figures": float(len(facts["figures"]))}
    if browser():
        shown, images = rendered_text(folder / "index.html")
        from dlroadmap.registry import fmt_value

        m["html_metrics_missing"] = float(sum(e["metric"] not in shown or fmt_value(e["got"]) not in shown for e in facts["expectations"]))
        m["html_shows_command"] = float(facts["command"] in shown and (facts["commit"] or "") in shown)
        m["html_figures_missing"] = float(len(facts["figures"]) - images)
    # The reproducibility block, taken at its word: its command, rerun, must give the published numbers.
    again = _rerun(facts["command"], tracker.run_dir / "rerun")
    m["rerun_max_abs_diff"] = float(max(abs(again[e["metric"]] - e["got"]) for e in facts["expectations"]))

    artifacts = {"post": str(folder / "index.html"), "markdown": str(folder / "index.md")}
    if browser():
        import subprocess

        shot = tracker.run_dir / "plots" / "post.png"
        shot.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([browser(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1000,1300",
                        f"--screenshot={shot}", (folder / "index.html").resolve().as_uri()], capture_output=True, timeout=60, check=True)
        tracker.log_artifact(shot)
        artifacts["post_screenshot"] = str(shot)
    else:   # no browser: the post's results table as a figure instead of its screenshot
        fig, ax = plt.subplots(figsize=(7, 2.5))
        ax.axis("off")
        ax.table([[e["metric"], f"{e['op']} {e['value']}", f"{e['got']:.4g}"] for e in facts["expectations"]], colLabels=["metric", "expected", "got"], loc="center")
        artifacts["post_table"] = str(tracker.log_figure(fig, "post_table"))
    return Result(metrics=m, artifacts=artifacts, notes=f"post: {folder / 'index.html'}; reproduce: {facts['command']}; meta {json.dumps(meta['tags'])}")


arxiv = Experiment(ArxivConfig, run_arxiv)
replicate = Experiment(ReplicateConfig, run_replicate)
publish = Experiment(PublishConfig, run_publish)
