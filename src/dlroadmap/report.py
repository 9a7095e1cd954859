"""report.html: the roadmap and every run's results on one self-contained page.

No CDN, no scripts from elsewhere: CSS is inline and plots are PNGs embedded as data URIs, so the
file can be mailed, archived or opened offline. Built only from what is on disk
(<out>/<node>/result.json and its plots), so it always shows what was last measured.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import json
from pathlib import Path
from typing import Any

from dlroadmap import __version__, registry
from dlroadmap.registry import fmt_value
from dlroadmap.io import write_text

COLORS = {"missing": "#d9d9d9", "implemented": "#ffd666", "verified": "#73d13d", "custom": "#87e8de", "failed": "#ff7875"}

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#1f2937;color:#fff;padding:18px 28px}header h1{margin:0 0 4px;font-size:22px}
main{padding:8px 28px 40px;max-width:1200px}
.legend span{display:inline-block;margin-right:14px}.sw{display:inline-block;width:12px;height:12px;border-radius:3px;vertical-align:-1px;margin-right:4px}
.phase{margin:18px 0}.phase h2{font-size:17px;margin:6px 0}
.topics{display:grid;grid-template-columns:repeat(auto-fill,minmax(250px,1fr));gap:10px}
.topic{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:8px 10px}.topic h3{font-size:13px;margin:0 0 6px;color:#374151}
.node{display:block;border-radius:5px;padding:3px 7px;margin:3px 0;font-size:12.5px;color:#111;text-decoration:none}
.node small{color:#555;font-family:ui-monospace,monospace}
.run{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:12px 16px;margin:14px 0}
.run h3{margin:0 0 6px}.badge{font-size:12px;border-radius:10px;padding:2px 8px;margin-left:8px}
table{border-collapse:collapse;margin:6px 0}td,th{border-bottom:1px solid #eee;padding:3px 10px;text-align:left;font-size:13px}
.pass{color:#237804;font-weight:600}.fail{color:#a8071a;font-weight:600}
.plots img{max-width:100%;margin:6px 10px 6px 0;border:1px solid #eee;vertical-align:top}
details{margin:6px 0}code{font-size:12px}
"""


def _esc(s: Any) -> str:
    return html.escape(str(s), quote=True)


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{_esc(path.stem)}" title="{_esc(path.stem)}" src="data:image/png;base64,{data}">'


def collect(out: Path) -> dict[str, dict[str, Any]]:
    """node id -> its result.json, for every node that has one in `out`; tour errors from summary.json."""
    results: dict[str, dict[str, Any]] = {}
    for node in registry.load().nodes:
        r = registry.read_result(out, node.id)
        if r is not None:
            results[node.id] = r
    summary = out / "summary.json"
    if summary.is_file():
        try:
            for r in json.loads(summary.read_text()).get("nodes", []):
                # A tour error that left no result.json (e.g. a bad config): a later run's result.json wins.
                if r.get("error") and r["node"] not in results:
                    results[r["node"]] = r
        except (OSError, json.JSONDecodeError):
            pass
    return results


def _plot_dir(out: Path, node_id: str, r: dict[str, Any]) -> Path:
    return out / node_id / (f"seed-{r['seeds'][0]}" if r.get("seeds") else "") / "plots"


def render(out: Path) -> str:
    roadmap = registry.load()
    results = collect(out)

    def status(node) -> str:
        r = results.get(node.id)
        return "failed" if r is not None and r.get("error") else registry.status_from(node, r)

    counts: dict[str, int] = {}
    parts = [f"<!doctype html><html lang=en><head><meta charset=utf-8><title>dlroadmap report</title><style>{CSS}</style></head><body>"]
    now = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    statuses = {n.id: status(n) for n in roadmap.nodes}
    for s in statuses.values():
        counts[s] = counts.get(s, 0) + 1
    parts.append(f"<header><h1>dlroadmap report</h1><div>Deep Learning Roadmap: {len(roadmap.nodes)} nodes &middot; "
                 + " &middot; ".join(f"{counts.get(s, 0)} {s}" for s in COLORS) + f" &middot; generated {now} by dlroadmap {__version__}"
                 + ' &middot; <a style="color:#9cf" href="papers.html">the papers behind the code</a></div></header><main>')
    parts.append('<p class=legend>' + "".join(f'<span><i class=sw style="background:{c}"></i>{s}</span>' for s, c in COLORS.items()) + "</p>")

    # The roadmap: phases > topics > bullets, each bullet coloured by status.
    for p in roadmap.phases:
        parts.append(f'<section class=phase><h2>{_esc(p.title)}</h2><div class=topics>')
        for t in p.topics:
            parts.append(f'<div class=topic><h3>{_esc(t.title)}</h3>')
            for n in t.nodes:
                st = statuses[n.id]
                href = f' href="#{_esc(n.id)}"' if n.id in results else ""
                parts.append(f'<a class=node data-status="{st}" style="background:{COLORS[st]}"{href}>{_esc(n.title)} <small>{_esc(n.id)}</small></a>')
            parts.append("</div>")
        parts.append("</div></section>")

    # The generative models' samples side by side: every node that logs a "samples" plot, in roadmap order.
    grids = [(n.id, p) for n in roadmap.nodes if n.id in results and (p := _plot_dir(out, n.id, results[n.id]) / "samples.png").is_file()]
    if len(grids) >= 2:
        parts.append("<h2>Generated digits side by side</h2><p>Samples of each generative model in this report, judged by the "
                     "Fréchet LeNet Distance (our LeNet-5's features, not Inception; lower is better, comparable at equal sample counts).</p>")
        parts.append("<div class=plots>" + "".join(_img(p) for _, p in grids) + "</div>")

    # Replications (`dlr replicate`): the published figure against this machine's mean over seeds; misses stay visible.
    table = out / "replications.json"
    if table.is_file():
        rows = json.loads(table.read_text()).get("rows", [])
        parts.append("<h2>Replications</h2><p>Each claim's node in its full preset at several seeds (<code>dlr replicate</code>); "
                     "the verdict compares the mean with the declared band.</p><table><tr><th>claim</th><th>source</th><th>published</th>"
                     "<th>here (mean &plusmn; sd)</th><th>gap</th><th>band</th><th>verdict</th></tr>")
        for r in rows:
            here = "" if r.get("mean") is None else f"{fmt_value(r['mean'])} &plusmn; {fmt_value(r['std'])}"
            cls = {"within band": "pass", "missed band": "fail"}.get(r["verdict"], "fail")
            gap = "" if r.get("gap") is None else f"{r['gap']:+.4g}"
            parts.append(f"<tr><td>{_esc(r['claim'])}<br><small>{_esc(r['setting'])}</small></td><td>{_esc(r['source'])}</td>"
                         f"<td>{fmt_value(r['published'])}</td><td>{here}</td><td>{gap}</td>"
                         f"<td>[{fmt_value(r['band'][0])}, {fmt_value(r['band'][1])}]</td><td class={cls}>{_esc(r['verdict'])}</td></tr>")
        parts.append("</table>")

    # Runs: metrics against expectations, then plots.
    parts.append("<h2>Runs</h2>" if results else "<h2>Runs</h2><p>No results yet: run <code>dlr tour --quick</code>.</p>")
    for node in roadmap.nodes:
        r = results.get(node.id)
        if r is None:
            continue
        st = statuses[node.id]
        parts.append(f'<section class=run id="{_esc(node.id)}"><h3>{_esc(node.title)} <small><code>{_esc(node.id)}</code></small>'
                     f'<span class=badge style="background:{COLORS[st]}">{st}</span></h3>')
        if r.get("error"):
            parts.append(f"<p class=fail>error: {_esc(r['error'])}</p></section>")
            continue
        parts.append(f"<div>{_esc(registry.describe_run(r))} &middot; {r.get('seconds', 0):.1f} s</div>")
        if r.get("notes"):
            parts.append(f"<p>{_esc(r['notes'])}</p>")
        parts.append("<table><tr><th>metric</th><th>value</th><th>expected</th><th>pass</th></tr>")
        expected = {e["metric"]: e for e in r.get("expectations", [])}
        for k, v in r.get("metrics", {}).items():
            e = expected.get(k)
            exp = f"{e['op']} {fmt_value(e['value'])}" if e else ""
            ok = "" if e is None else ('<span class=pass>yes</span>' if e["passed"] else '<span class=fail>no</span>')
            if "metrics_min" in r and k in r["metrics_min"]:  # several seeds: mean (min to max)
                v = f"{fmt_value(v)} ({fmt_value(r['metrics_min'][k])} to {fmt_value(r['metrics_max'][k])})"
            parts.append(f"<tr><td>{_esc(k)}</td><td>{_esc(fmt_value(v))}</td><td>{_esc(exp)}</td><td>{ok}</td></tr>")
        for k, e in expected.items():
            if k not in r.get("metrics", {}):
                parts.append(f"<tr><td>{_esc(k)}</td><td>(not measured)</td><td>{_esc(e['op'])} {fmt_value(e['value'])}</td><td class=fail>no</td></tr>")
        parts.append("</table>")
        plots = sorted(_plot_dir(out, node.id, r).glob("*.png"))
        if plots:
            parts.append("<div class=plots>" + "".join(_img(p) for p in plots) + "</div>")
        cfg = r.get("config", {})
        if cfg:
            parts.append("<details><summary>config</summary><code>" + _esc(json.dumps(cfg)) + "</code></details>")
        parts.append("</section>")
    parts.append("</main></body></html>")
    return "\n".join(parts)


def render_papers(out: Path) -> str:
    """papers.html: every paper the nodes cite, the code lines that compute its equations, and the citing nodes' results."""
    from dlroadmap.papers import bibliography, citations, markers

    roadmap, results, cites, marks = registry.load(), collect(out), citations().by_key, markers()
    parts = [f"<!doctype html><html lang=en><head><meta charset=utf-8><title>dlroadmap papers</title><style>{CSS}</style></head><body>",
             f"<header><h1>The papers behind the code</h1><div>{len(bibliography())} entries of references.bib &middot; "
             '<a style="color:#9cf" href="report.html">back to the report</a></div></header><main>',
             "<p>Each paper: the nodes that cite it (coloured by their latest run here) and every line of <code>src/dlroadmap/</code> "
             "that marks one of its equations (<code>dlr paper KEY</code> prints the same).</p>"]
    for p in sorted(bibliography().values(), key=lambda p: (p.year, p.key)):
        link = f"https://arxiv.org/abs/{p.arxiv}" if p.arxiv else p.url
        title = f'<a href="{_esc(link)}">{_esc(p.title)}</a>' if link else _esc(p.title)
        parts.append(f'<section class=run id="{_esc(p.key)}"><h3>{title}</h3><div>{_esc(p.short)} &middot; {_esc(p.venue)}'
                     f"{' &middot; arXiv:' + _esc(p.arxiv) if p.arxiv else ''} &middot; <code>@{_esc(p.key)}</code></div>")
        nodes = []
        for node_id, note in cites.get(p.key, []):
            node, r = roadmap.get(node_id), results.get(node_id)
            st = "failed" if r is not None and r.get("error") else registry.status_from(node, r)
            nodes.append(f'<a class=node style="display:inline-block;background:{COLORS[st]}" href="report.html#{_esc(node_id)}">'
                         f"{_esc(node.title)} <small>{_esc(node_id)}</small></a>" + (f" <small>{_esc(note)}</small>" if note else ""))
        parts.append("<div>cited by: " + " ".join(nodes) + "</div>")
        rows = [f"<tr><td><code>{_esc(m.file)}:{m.line}</code></td><td><code>{_esc(m.owner)}</code></td><td>{_esc(m.text)}</td></tr>"
                for m in marks.get(p.key, []) if m.owner]
        parts.append("<table><tr><th>where</th><th>in</th><th>what it computes</th></tr>" + "".join(rows) + "</table></section>")
    parts.append("</main></body></html>")
    return "\n".join(parts)


def write_report(out: str | Path) -> Path:
    out = Path(out)
    write_text(out / "papers.html", render_papers(out))
    return write_text(out / "report.html", render(out))
