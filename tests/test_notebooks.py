"""The notebooks: executed on a real Jupyter kernel (every node's quick run in the suite happens here), in step with
their jupytext sources, and ready for Colab and Kaggle up to those services' boundaries."""

from __future__ import annotations

import json
import shutil

import nbformat
import pytest

from dlroadmap import registry
from dlroadmap.notebooks import NOTEBOOKS
from dlroadmap.notebooks import execute as X
from dlroadmap.notebooks import platforms as P

PHASE_OF = {name: phase for phase, name in NOTEBOOKS.items()}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(NOTEBOOKS.values()))
def test_notebook_runs_every_node(name, tmp_path):
    """The tour, a notebook at a time, on ipykernel through nbclient: no cell fails, each node's quick run meets
    every declared expectation inside the kernel, writes its plots and shows each of them in its cell."""
    runs = tmp_path / "runs"
    nb = X.inject(X.read_source(name), QUICK=True)
    # The kernel's own default backend (a learner's), so a figure an experiment forgets to close shows up as an extra image.
    X.execute(nb, cwd=tmp_path, env={"DLR_OUT": str(runs), "MPLBACKEND": "module://matplotlib_inline.backend_inline"}, allow_errors=True)
    nbformat.write(nb, tmp_path / f"{name}.ipynb")   # kept with the runs, for a failure's post-mortem

    problems = X.errors(nb)
    ids = X.nodes_run(nb)
    expected = [n.id for n in registry.load().nodes if n.phase == PHASE_OF[name] and n.implemented]
    if sorted(ids) != sorted(expected):
        problems.append(f"the notebook runs {sorted(set(ids) ^ set(expected))} wrongly (missing or not implemented)")
    shown = X.images_by_node(nb)
    for node_id in ids:
        result = registry.read_result(runs, node_id)
        if result is None:
            problems.append(f"{node_id}: no result.json")
            continue
        missed = [e for e in result["expectations"] if not e["passed"]]
        if not result["passed"] or missed:
            problems.append(f"{node_id}: missed {missed or result.get('error')}")
        plots = list((runs / node_id / "plots").glob("*.png"))
        if not plots or any(p.stat().st_size <= 5000 for p in plots):
            problems.append(f"{node_id}: plots missing or empty: {[p.name for p in plots]}")
        if shown.get(node_id) != len(plots):
            problems.append(f"{node_id}: {len(plots)} plots written, {shown.get(node_id)} shown in its cell")
        if registry.status_of(registry.load().get(node_id), runs) != "verified":
            problems.append(f"{node_id}: status {registry.status_of(registry.load().get(node_id), runs)}")
    assert not problems, f"{name}: " + "\n".join(problems)


def test_notebooks_agree_with_their_sources():
    assert [p for n in NOTEBOOKS.values() for p in X.out_of_sync(n)] == []
    for n in NOTEBOOKS.values():
        assert P.read_metadata(n) == P.kernel_metadata(n), f"{n}: run `dlr notebooks build`"
    assert X.coverage()[0] == 0


def test_an_edited_ipynb_is_out_of_sync(tmp_path, monkeypatch):
    shutil.copytree(X.notebook_dir(), tmp_path / "notebooks")
    monkeypatch.setattr(X, "notebook_dir", lambda: tmp_path / "notebooks")
    path = tmp_path / "notebooks" / "tools.ipynb"
    nb = nbformat.read(path, as_version=4)
    nb.cells[-1].source += "  # edited in Jupyter, not in the .py source"
    nbformat.write(nb, path)
    assert X.out_of_sync("tools") == [f"tools: cell {len(nb.cells) - 1} differs"]
    X.write_ipynb("tools")
    assert X.out_of_sync("tools") == []


def test_parameters_are_injected_after_the_parameters_cell():
    nb = X.inject(X.read_source("p1_foundations"), QUICK=False)
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    assert nb.cells[at + 1].source == "QUICK = False" and nb.cells[at + 1].metadata["tags"] == ["injected-parameters"]
    bare = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    with pytest.raises(ValueError, match="parameters"):
        X.inject(bare, QUICK=False)


def test_setup_cell_installs_on_colab_and_nothing_here(tmp_path):
    import importlib

    for name in NOTEBOOKS.values():
        source = P.setup_cell(X.read_source(name))
        colab = P.simulate_setup(source, colab=True)
        assert colab["on_colab"] is True and len(colab["commands"]) == 1 and P.installs_from_repo(colab["commands"][0]), colab
        here = P.simulate_setup(source)
        assert here == {"commands": [], "on_colab": False, "on_kaggle": False, "data_dir": None}
        kaggle_input = tmp_path / name
        (kaggle_input / "dlroadmap-data" / "mnist").mkdir(parents=True)
        on_kaggle = P.simulate_setup(source, kaggle_input=kaggle_input)
        assert on_kaggle["on_kaggle"] and on_kaggle["data_dir"] == str(kaggle_input / "dlroadmap-data")
    # Nothing leaks out of the simulation: the package imports, google.colab does not.
    assert importlib.import_module("dlroadmap").__name__ == "dlroadmap"
    with pytest.raises(ImportError):
        importlib.import_module("google.colab")


def test_the_notebooks_open_with_their_badge_and_setup_cell():
    for name in NOTEBOOKS.values():
        nb = X.read_source(name)
        assert P.badge(name) in nb.cells[0].source
        assert nb.cells[1].metadata.get("tags") == ["setup"]
        assert "parameters" in nb.cells[2].metadata.get("tags", [])


def test_kernel_metadata_passes_kaggles_own_validation(tmp_path):
    for name in NOTEBOOKS.values():
        request, printed = P.push_dry(P.kaggle_folder(name))
        assert request.slug == P.kernel_metadata(name)["id"] and request.language == "python" and request.kernel_type == "notebook"
        assert "does not resolve" not in printed
        sent = json.loads(request.text)
        assert len(sent["cells"]) == len(X.read_source(name).cells)
        assert request.enable_internet and (P.KAGGLE_DATASET in request.dataset_data_sources) == (PHASE_OF[name] in P.NEEDS_DATASETS)
    good = P.kernel_metadata("tools")
    good["code_file"] = str(X.ipynb_path("tools"))
    for broken, message in (({"code_file": ""}, "source file"), ({"language": "julia"}, "valid language"),
                            ({"kernel_type": "app"}, "kernel type"), ({"dataset_sources": ["mnist"]}, "Dataset must be")):
        (tmp_path / "kernel-metadata.json").write_text(json.dumps({**good, **broken}))
        with pytest.raises(ValueError, match=message):
            P.push_dry(tmp_path)


def test_summary_marks_a_missed_expectation():
    from dlroadmap.experiments.base import Result
    from dlroadmap.notebooks.cells import summary_html

    r = Result(metrics={"acc": 0.5}, node="p2.fnn.backprop", title="Backpropagation", preset="quick",
               expectations=[{"metric": "acc", "op": ">=", "value": 0.93, "got": 0.5, "passed": False}])
    page = summary_html(r)
    assert "FAIL" in page and "NOT verified" in page and "0.5" in page


def test_cli_notebooks(cli):
    assert cli("notebooks", "check")[0] == 0
    code, _, err = cli("notebooks", "run", "p9_nothing")
    assert code == 2 and "unknown notebook 'p9_nothing'" in err and "Traceback" not in err
