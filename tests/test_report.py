"""report.html: self-contained, shows the roadmap and the runs; rendered by headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from dlroadmap import registry
from dlroadmap.runner import make_config, run_node
from dlroadmap.report import write_report


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    node = registry.load().get("p2.fnn.backprop")
    cfg = make_config(node.load_experiment().Config, quick=True, sets=["epochs=2", "hidden=[64]"])
    result = run_node(node, cfg, out, track="none", quick=True)
    return out, write_report(out), result


@pytest.mark.slow
def test_report_is_self_contained_and_complete(report):
    out, path, result = report
    html = path.read_text()
    # No CDN, no remote scripts, styles or images.
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    assert "<script" not in html
    for p in registry.load().phases:
        assert p.title.replace("&", "&amp;") in html
    for n in registry.load().nodes:
        assert f"<small>{n.id}</small>" in html
    assert html.count("data:image/png;base64,") == 2  # learning curves + confusion matrix
    assert 'id="p2.fnn.backprop"' in html and "test_accuracy" in html and "&gt;= 0.93" in html
    status = "verified" if result.passed else "failed"
    assert f'data-status="{status}"' in html and 'data-status="implemented"' in html   # every other node: built, not run here


def _chromium() -> str | None:
    from dlroadmap.publish import browser   # the one lookup of a headless-capable Chromium (also `dlr publish`'s)

    return browser()


CHROME_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


@pytest.mark.slow
@pytest.mark.browser
def test_report_renders_in_headless_chromium(report, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("headless Chromium not found: install Debian's `chromium` package (.ci/run does) to render report.html")
    out, path, result = report
    profile = tmp_path / "profile"
    dom = subprocess.run([browser, *CHROME_FLAGS, f"--user-data-dir={profile}", "--dump-dom", path.as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    text = re.sub(r"<[^>]+>", " ", dom.stdout)
    for needle in ("dlroadmap report", "Phase 1: Foundations (Beginner)", "Backpropagation", "test_accuracy", "Recommended Tools"):
        assert needle in text
    shot = tmp_path / "report.png"
    cap = subprocess.run([browser, *CHROME_FLAGS, f"--user-data-dir={profile}", f"--screenshot={shot}", "--window-size=1280,2400", path.as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert cap.returncode == 0 and shot.is_file(), cap.stderr[-2000:]
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 50_000  # a real rendering, not a blank page
    shutil.copy(shot, out / "report-screenshot.png")


def test_generated_digits_side_by_side(tmp_path):
    """With two or more generative nodes' sample grids in the runs folder, the report shows them in one row."""
    import json

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for node_id in ("p3.gen.vae", "p4.research.diffusion"):
        (tmp_path / node_id / "plots").mkdir(parents=True)
        (tmp_path / node_id / "result.json").write_text(json.dumps({"node": node_id, "metrics": {}, "expectations": []}))
        fig = plt.figure(figsize=(1, 1))
        fig.savefig(tmp_path / node_id / "plots" / "samples.png")
        plt.close(fig)
    html = write_report(tmp_path).read_text()
    side = html.split("Generated digits side by side", 1)[1].split("<h2>Runs</h2>", 1)[0]
    assert side.count('<img alt="samples"') == 2
    (tmp_path / "p3.gen.vae" / "plots" / "samples.png").unlink()
    assert "Generated digits side by side" not in write_report(tmp_path).read_text()   # one grid alone is not a comparison
