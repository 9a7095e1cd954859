"""A post about one run, ready to publish: Markdown with YAML front matter, and a standalone HTML page.

    folder = publish("runs/p2.fnn.backprop")     # <out>/posts/p2.fnn.backprop/{index.md, index.html, figures/}

Everything in it comes from the run folder (result.json and plots) and the registry: what the node is, its
metrics against its declared expectations, its figures, its config, the replication row when `dlr replicate`
measured one, the papers it follows, and a reproducibility block (commit, the exact command, seeds, package
versions, CPU, wall time). The Markdown goes to a blog or a GitHub README as is; the HTML page holds its figures
as data URIs, so it can be mailed or archived. The Hugging Face model card of a trained model is built from
the same facts (`run_facts`).
"""

from __future__ import annotations

import ast
import base64
import datetime as dt
import html
import json
import re
import shutil
from pathlib import Path
from typing import Any

import yaml

from dlroadmap import registry
from dlroadmap.errors import UserError
from dlroadmap.io import atomic_dir, write_text
from dlroadmap.registry import fmt_value
from dlroadmap.runner import NEUTRAL_KEYS


def read_run(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / "result.json"
    try:
        result = json.loads(path.read_text())
    except OSError:
        raise UserError(f"{run_dir} is not a run folder (no result.json): give the folder `dlr run` wrote, e.g. runs/p2.fnn.backprop") from None
    except ValueError:
        raise UserError(f"{path} is not valid JSON: rerun the node") from None
    if result.get("error"):
        raise UserError(f"the run in {run_dir} failed ({result['error']}): there is nothing to publish")
    return result


def description(node: registry.Node) -> str:
    """What the node shows, from its experiment module's docstring (the lines under the node's id), else its notes."""
    doc = ast.get_docstring(ast.parse((registry.EXPERIMENTS.parent / node.module_file).read_text())) or ""
    lines, inside = [], False
    for line in doc.splitlines():
        m = re.match(rf"^\s*{re.escape(node.id)}\s{{2,}}(.*)$", line)
        if m:
            inside, lines = True, [m.group(1)]
        elif inside and line.strip() and not re.match(r"^\s*(p[1-4]|tools)\.\w+\.\w+\s{2,}", line):
            lines.append(line.strip())
        elif inside:
            break
    text = " ".join(lines) or node.notes
    return text[:1].upper() + text[1:]


def command_for(node: registry.Node, result: dict[str, Any]) -> str:
    """The `dlr run` line that reruns this run: its preset, its seed(s), and --set for whatever differs from the preset."""
    cls = node.load_experiment().Config
    quick = bool(result.get("quick"))
    base = (cls.quick() if quick else cls()).model_dump()
    config = result.get("config", {})
    sets = [f"--set {k}={json.dumps(v, separators=(',', ':'))}" for k, v in config.items() if k not in NEUTRAL_KEYS and base.get(k) != v]
    seeds = f"--seeds {','.join(map(str, result['seeds']))}" if result.get("seeds") else f"--seed {config.get('seed', 0)}"
    return " ".join(["dlr run", node.id, *(["--quick"] if quick else []), seeds, *sets])


def run_facts(run_dir: str | Path) -> dict[str, Any]:
    """Everything a post or a model card says about a run, as plain data."""
    from dlroadmap.papers import bibliography

    run_dir = Path(run_dir)
    result = read_run(run_dir)
    node = registry.load().get(result["node"])
    plots_dir = run_dir / (f"seed-{result['seeds'][0]}" if result.get("seeds") else "") / "plots"
    papers, docs = [], []
    for ref in node.refs:
        if ref.startswith("@"):
            key, _, note = ref[1:].partition(":")
            p = bibliography()[key]
            papers.append({"key": key, "cite": p.cite(), "note": note.strip(),
                           "url": f"https://arxiv.org/abs/{p.arxiv}" if p.arxiv else p.url})
        else:
            docs.append(ref)
    replication = []
    table = run_dir.parent / "replications.json"
    if table.is_file():
        replication = [row for row in json.loads(table.read_text()).get("rows", []) if row.get("node") == node.id]
    env = result.get("environment", {})
    return {"node": node.id, "title": node.title, "phase": node.phase, "topic": node.topic, "description": description(node),
            "preset": result.get("preset", "quick" if result.get("quick") else "full"), "passed": bool(result.get("passed")),
            "metrics": result.get("metrics", {}), "expectations": result.get("expectations", []), "config": result.get("config", {}),
            "seeds": result.get("seeds") or [result.get("config", {}).get("seed", 0)], "seconds": result.get("seconds", 0.0),
            "finished": result.get("finished", ""), "notes": result.get("notes", ""), "figures": sorted(plots_dir.glob("*.png")),
            "papers": papers, "docs": docs, "replication": replication, "environment": env,
            "command": command_for(node, result), "commit": env.get("commit"), "dirty": env.get("dirty")}


def _front_matter(f: dict[str, Any]) -> str:
    meta = {"title": f"{f['title']}: what one run of dlroadmap's {f['node']} showed", "date": (f["finished"] or dt.date.today().isoformat())[:10],
            "node": f["node"], "preset": f["preset"], "verified": f["passed"], "seeds": f["seeds"],
            "tags": ["deep-learning", "dlroadmap", f["phase"], f"{f['phase']}.{f['topic']}"],
            "metrics": {e["metric"]: e["got"] for e in f["expectations"]}, "commit": f["commit"]}
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n"


def to_markdown(f: dict[str, Any]) -> str:
    """The post as Markdown (CommonMark + tables), figures linked as figures/NAME.png."""
    verdict = "met every declared expectation" if f["passed"] else "missed at least one declared expectation"
    out = [_front_matter(f), f"# {f['title']}", "",
           f"*dlroadmap node `{f['node']}`, {f['preset']} preset, seed{'s' if len(f['seeds']) > 1 else ''} "
           f"{', '.join(map(str, f['seeds']))}: the run {verdict}.*", "", f["description"], ""]
    out += ["## Results", "", "| metric | expected | this run | |", "| --- | --- | --- | --- |"]
    for e in f["expectations"]:
        mark = "pass" if e["passed"] else ("**FAIL**" if e["passed"] is False else "n/a")
        out.append(f"| `{e['metric']}` | {e['op']} {fmt_value(e['value'])} | {fmt_value(e['got'])} | {mark} |")
    others = {k: v for k, v in f["metrics"].items() if k not in {e["metric"] for e in f["expectations"]}}
    if others:
        out += ["", "Also measured: " + ", ".join(f"`{k}` = {fmt_value(v)}" for k, v in others.items()) + "."]
    if f["notes"]:
        out += ["", f["notes"]]
    if f["figures"]:
        out += ["", "## Figures", ""] + [f"![{p.stem.replace('_', ' ')}](figures/{p.name})" for p in f["figures"]]
    if f["replication"]:
        out += ["", "## Against the published number", "", "| claim | source | published | here (mean ± sd) | verdict |", "| --- | --- | --- | --- | --- |"]
        for r in f["replication"]:
            out.append(f"| {r['claim']} | {r['source']} | {fmt_value(r['published'])} | {fmt_value(r['mean'])} ± {fmt_value(r['std'])} | {r['verdict']} |")
    if f["papers"] or f["docs"]:
        out += ["", "## Papers and references", ""]
        out += [f"- {p['cite']}" + (f" ({p['note']})" if p["note"] else "") + (f" <{p['url']}>" if p["url"] else "") for p in f["papers"]]
        out += [f"- <{d}>" for d in f["docs"] if d.startswith("http")]
    env = f["environment"]
    units = "".join(f", {name}" for name, key in (("AMX", "amx"), ("AVX512-BF16", "avx512_bf16")) if env.get(key))   # older runs lack them
    commit = (f["commit"] or "(not run from a git checkout)") + (" (with uncommitted changes)" if f["dirty"] else "")
    out += ["", "## Reproduce it", "", "```bash", f"git checkout {f['commit'] or 'COMMIT'}", "make install",
            f"{f['command']} --track none", "```", "",
            "| | |", "| --- | --- |", f"| commit | `{commit}` |", f"| command | `{f['command']}` |",
            f"| seeds | {', '.join(map(str, f['seeds']))} |", f"| wall time | {f['seconds']:.1f} s |",
            f"| CPU | {env.get('cpu', '?')} ({env.get('cpu_capability', '?')}{units}), {env.get('cores', '?')} cores, {env.get('torch_threads', '?')} torch threads |",
            f"| CUDA | {env.get('cuda', '?')} |", f"| Python | {env.get('python', '?')} |",
            "| packages | " + ", ".join(f"{k} {v}" for k, v in env.get("packages", {}).items()) + " |", f"| finished | {f['finished']} |",
            "", "## Configuration", "", "```json", json.dumps(f["config"], indent=1), "```", ""]
    return "\n".join(out)


def to_html(f: dict[str, Any], markdown: str) -> str:
    """The same post as one HTML file: the Markdown rendered by markdown-it-py, the figures inlined as data URIs."""
    from markdown_it import MarkdownIt

    from dlroadmap.report import CSS

    body = MarkdownIt("commonmark").enable("table").render(markdown.split("---\n", 2)[2])
    for p in f["figures"]:
        uri = "data:image/png;base64," + base64.b64encode(p.read_bytes()).decode()
        body = body.replace(f'src="figures/{p.name}"', f'src="{uri}"')
    title = html.escape(f"{f['title']} ({f['node']})")
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{title}</title><style>{CSS}"
            "main img{max-width:100%;border:1px solid #eee}pre{background:#f3f4f6;padding:8px;overflow-x:auto}</style></head>"
            f"<body><main>{body}</main></body></html>")


def publish(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write <out>/posts/<node>/ (index.md, index.html, figures/): built in a sibling temporary folder, then renamed
    into place, so an interrupted publish never leaves a half-written post."""
    f = run_facts(run_dir)
    target = Path(out) if out else Path(run_dir).parent / "posts" / f["node"]
    markdown = to_markdown(f)
    with atomic_dir(target) as tmp:
        (tmp / "figures").mkdir()
        for p in f["figures"]:
            shutil.copy2(p, tmp / "figures" / p.name)
        write_text(tmp / "index.md", markdown)
        write_text(tmp / "index.html", to_html(f, markdown))
    return target


def browser() -> str | None:
    """A headless-capable Chromium on PATH, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        if found := shutil.which(name):
            return found
    return None


def rendered_text(page: Path, timeout: float = 60.0) -> tuple[str, int]:
    """What a browser shows of a page: headless Chromium loads it and dumps the DOM after layout; returns the
    visible text (tags stripped, style and script dropped) and how many images carry data: URIs."""
    import subprocess
    from html.parser import HTMLParser

    exe = browser()
    if exe is None:
        raise UserError("no Chromium on PATH (chromium, chromium-browser or google-chrome): install one to render posts")
    dom = subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", Path(page).resolve().as_uri()],
                         capture_output=True, text=True, timeout=timeout, check=True).stdout

    class Text(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.parts: list[str] = []
            self.images, self._skip = 0, 0

        def handle_starttag(self, tag, attrs):
            self._skip += tag in ("style", "script")
            self.images += tag == "img" and (dict(attrs).get("src") or "").startswith("data:image/png;base64,")

        def handle_endtag(self, tag):
            self._skip -= tag in ("style", "script")

        def handle_data(self, data):
            if not self._skip:
                self.parts.append(data)

    parser = Text()
    parser.feed(dom)
    return " ".join(" ".join(parser.parts).split()), parser.images
