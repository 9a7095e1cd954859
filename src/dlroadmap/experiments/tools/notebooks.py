"""Recommended Tools, notebooks: Jupyter, Google Colab and Kaggle.

  tools.notebooks.jupyter  the notebooks in notebooks/ (one per phase, one for the tools; jupytext sources in
                           git, .ipynb built from them) agree with their sources and run every implemented node
                           between them; one of them (Phase 1 by default) is executed on a real ipykernel through
                           nbclient: no cell fails, every node it runs meets its expectations inside the kernel,
                           and each node's cell shows every plot its run wrote.
  tools.notebooks.colab    each notebook's set-up cell executed as Colab would run it (a stand-in google.colab
                           importable, dlroadmap not installed): it installs this repository from GitHub with the
                           CPU build of torch, and on a plain machine it starts nothing; the "Open in Colab"
                           badges point at the notebooks' own paths.
  tools.notebooks.kaggle   each notebook's kernel-metadata.json pushed through the `kaggle` package's own
                           KaggleApi.kernels_push up to the network (its validation runs for real; the request it
                           would send is kept); broken metadata is refused by the same code; on Kaggle the set-up
                           cell finds the attached dataset and points DLR_DATA_DIR at it (full mode: MNIST is read
                           from there, checksums verified).

The whole-notebook runs are in tests/test_notebooks.py: `make test` executes all five notebooks.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import ClassVar, Literal

import matplotlib.pyplot as plt
from pydantic import Field

from dlroadmap import registry
from dlroadmap.experiments.base import Experiment, ExperimentConfig, Result
from dlroadmap.io import atomic_path
from dlroadmap.notebooks import NOTEBOOKS
from dlroadmap.notebooks.execute import cell_seconds, coverage, errors, execute, images_by_node, inject, out_of_sync, read_source
from dlroadmap.train import Tracker

NAMES = tuple(NOTEBOOKS.values())


class Config(ExperimentConfig):
    notebook: Literal[NAMES] = Field("p1_foundations", description="the notebook the jupyter node executes on a kernel")
    full_presets: bool = Field(True, description="run the notebook's nodes with their full presets (QUICK = False)")

    QUICK: ClassVar[dict] = {"full_presets": False}


def _barh(ax, labels: list[str], values: list[float], colours: list[str], xlabel: str) -> None:
    ax.barh(labels, values, color=colours)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.tick_params(axis="y", labelsize=7)


# --- tools.notebooks.jupyter -------------------------------------------------------------------------


def run_jupyter(config: Config, tracker: Tracker) -> Result:
    metrics: dict[str, float] = {}
    metrics["notebooks_out_of_sync"] = float(sum(len(out_of_sync(name)) for name in NAMES))
    missing, ran = coverage()
    metrics["nodes_missing_from_notebooks"] = float(missing)

    # One notebook on a real kernel, its runs in <run>/kernel-runs, the executed copy saved beside them.
    runs = tracker.run_dir / "kernel-runs"
    nb = inject(read_source(config.notebook), QUICK=not config.full_presets)
    execute(nb, cwd=tracker.run_dir, env={"DLR_OUT": str(runs.resolve())}, allow_errors=True)
    with atomic_path(tracker.run_dir / f"{config.notebook}.ipynb") as tmp:
        tmp.write_text(json.dumps(nb, indent=1))
    metrics["cells_failed"] = float(len(errors(nb)))
    ids = ran[config.notebook]
    results = {i: registry.read_result(runs, i) for i in ids}
    metrics["nodes_in_notebook"] = float(len(ids))
    metrics["nodes_not_run_in_kernel"] = float(sum(r is None for r in results.values()))
    metrics["nodes_failed_in_kernel"] = float(sum(r is not None and not r.get("passed") for r in results.values()))
    shown = images_by_node(nb)
    written = {i: len(list((runs / i / "plots").glob("*.png"))) for i in ids}
    metrics["plots_not_shown_inline"] = float(sum(abs(shown.get(i, 0) - written[i]) for i in ids))
    metrics["kernel_seconds"] = float(sum(cell_seconds(nb)))

    seconds = [float((results[i] or {}).get("seconds", 0.0)) for i in ids]
    colours = ["tab:green" if (results[i] or {}).get("passed") else "tab:red" for i in ids]
    fig, ax = plt.subplots(figsize=(7, 0.28 * len(ids) + 1.2))
    _barh(ax, [f"{i} ({shown.get(i, 0)} plot{'' if shown.get(i, 0) == 1 else 's'})" for i in ids], seconds, colours, "seconds in the kernel (green: expectations met)")
    ax.set_title(f"{config.notebook}.ipynb executed by nbclient on ipykernel ({'full' if config.full_presets else 'quick'} presets)", fontsize=9)
    fig.tight_layout()
    plot = tracker.log_figure(fig, "notebook_in_kernel")
    return Result(metrics=metrics, artifacts={"notebook_in_kernel": str(plot), "executed_notebook": str(tracker.run_dir / f"{config.notebook}.ipynb")},
                  notes=f"open the executed notebook: jupyter lab {tracker.run_dir / config.notebook}.ipynb; all five run in tests/test_notebooks.py")


# --- tools.notebooks.colab ---------------------------------------------------------------------------


def run_colab(config: Config, tracker: Tracker) -> Result:
    from importlib.metadata import metadata

    from packaging.requirements import Requirement

    from dlroadmap.io import checkout_root
    from dlroadmap.notebooks import platforms as P

    readme = (checkout_root("README.md") / "README.md").read_text()
    setups, on_colab, local, badges_wrong, readme_missing, target_ok = {}, {}, {}, 0, 0, True
    for name in NAMES:
        nb = read_source(name)
        setups[name] = P.setup_cell(nb)
        colab = P.simulate_setup(setups[name], colab=True)
        on_colab[name] = [c for c in colab["commands"] if P.installs_from_repo(c)]
        local[name] = P.simulate_setup(setups[name])
        for cmd in colab["commands"]:   # the pip requirement names this project (PEP 508: "dlroadmap @ git+https://...")
            reqs = [Requirement(a) for a in cmd if "@ git+" in a]
            target_ok &= len(reqs) == 1 and reqs[0].name == metadata("dlroadmap")["Name"]
        first_markdown = next(c.source for c in nb.cells if c.cell_type == "markdown")
        badges_wrong += P.badge(name) not in first_markdown or not (P.notebook_dir() / f"{name}.ipynb").is_file()
        readme_missing += P.colab_url(name) not in readme
    first = setups[NAMES[0]]
    metrics = {
        "setup_cells_differ": float(sum(s != first for s in setups.values())),
        "colab_setups_not_installing": float(sum(len(c) != 1 for c in on_colab.values())),
        "install_target_is_this_project": float(target_ok),
        "local_setups_starting_commands": float(sum(bool(r["commands"]) or r["on_colab"] is not False for r in local.values())),
        "badges_wrong": float(badges_wrong),
        "readme_badges_missing": float(readme_missing),
    }
    fig, ax = plt.subplots(figsize=(7, 2.6))
    x = range(len(NAMES))
    ax.bar([i - 0.2 for i in x], [len(on_colab[n]) for n in NAMES], width=0.4, label="Colab (simulated): pip installs", color="tab:orange")
    ax.bar([i + 0.2 for i in x], [len(local[n]["commands"]) for n in NAMES], width=0.4, label="this machine: commands", color="tab:blue")
    ax.set_xticks(list(x), NAMES, fontsize=7)
    ax.set_ylim(0, 2)
    ax.legend(fontsize=7)
    ax.set_title("what each notebook's set-up cell starts", fontsize=9)
    fig.tight_layout()
    plot = tracker.log_figure(fig, "setup_cell")
    return Result(metrics=metrics, artifacts={"setup_cell": str(plot)},
                  notes=f"on Colab: {' '.join(on_colab[NAMES[0]][0]) if on_colab[NAMES[0]] else 'no install'}")


# --- tools.notebooks.kaggle --------------------------------------------------------------------------


def _kaggle_input_with_data(root: Path) -> bool:
    """A folder standing for /kaggle/input with the attached dataset in it: <root>/dlroadmap-data/mnist/, holding
    links to the real MNIST files when this machine has them (DLR_DATA_DIR), else empty. True when it has them."""
    from dlroadmap.data.download import DOWNLOADABLE

    target = root / "dlroadmap-data" / "mnist"
    target.mkdir(parents=True)
    source = Path(os.environ.get("DLR_DATA_DIR", "/nonexistent")) / "mnist"
    files = [f.name for f in DOWNLOADABLE["mnist"].files]
    if all((source / f).is_file() for f in files):
        for f in files:
            (target / f).symlink_to((source / f).resolve())
        return True
    return False


def run_kaggle(config: Config, tracker: Tracker) -> Result:
    from dlroadmap.notebooks import platforms as P

    stale = rejected = slug_warnings = cells_differ = sources_missing = 0
    requests = {}
    for name in NAMES:
        stale += P.read_metadata(name) != P.kernel_metadata(name)
        try:
            request, printed = P.push_dry(P.kaggle_folder(name))
        except ValueError:
            rejected += 1
            continue
        requests[name] = request
        slug_warnings += "does not resolve to the specified id" in printed
        sent = json.loads(request.text)
        cells_differ += len(sent["cells"]) != len(read_source(name).cells) or any(c.get("outputs") for c in sent["cells"])
        phase = next(p for p, n in NOTEBOOKS.items() if n == name)
        sources_missing += (phase in P.NEEDS_DATASETS) != (P.KAGGLE_DATASET in request.dataset_data_sources)

    # Negative controls: the same validator must refuse metadata without a code file and a dataset without its owner.
    refused = 0
    for broken in ({"code_file": ""}, {"dataset_sources": ["mnist"]}):
        with tempfile.TemporaryDirectory() as d:
            meta = {**P.kernel_metadata(NAMES[0]), **broken}
            meta["code_file"] = meta["code_file"] and str(P.notebook_dir() / f"{NAMES[0]}.ipynb")
            (Path(d) / "kernel-metadata.json").write_text(json.dumps(meta))
            try:
                P.push_dry(Path(d))
            except ValueError:
                refused += 1

    metrics = {"metadata_stale": float(stale), "kernels_rejected": float(rejected), "title_slug_mismatches": float(slug_warnings),
               "pushed_notebooks_differ": float(cells_differ), "dataset_sources_wrong": float(sources_missing),
               "broken_metadata_refused": float(refused) / 2}

    # On Kaggle: the set-up cell finds the attached dataset under /kaggle/input and sets DLR_DATA_DIR to it.
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        has_mnist = _kaggle_input_with_data(root)
        found = P.simulate_setup(P.setup_cell(read_source(NAMES[1])), kaggle_input=root)
        metrics["kaggle_data_dir_found"] = float(found["data_dir"] == str(root / "dlroadmap-data"))
        if has_mnist:
            from dlroadmap.data.download import load_idx_dataset

            before = os.environ.get("DLR_DATA_DIR")
            os.environ["DLR_DATA_DIR"] = found["data_dir"]
            try:
                train, test = load_idx_dataset("mnist")   # md5 of every file checked on the way
                metrics["mnist_read_through_kaggle_input"] = float(len(train) == 60000 and len(test) == 10000)
            finally:
                if before is None:
                    os.environ.pop("DLR_DATA_DIR", None)
                else:
                    os.environ["DLR_DATA_DIR"] = before

    fig, ax = plt.subplots(figsize=(7, 2.6))
    names = list(requests)
    _barh(ax, [f"{requests[n].slug} ({'+ ' + ', '.join(requests[n].dataset_data_sources) if requests[n].dataset_data_sources else 'no dataset'})" for n in names],
          [len(json.loads(requests[n].text)["cells"]) for n in names], ["tab:blue"] * len(names), "cells in the request kernels_push would send")
    ax.set_title("kaggle kernels push, up to the network (KaggleApi.kernels_push)", fontsize=9)
    fig.tight_layout()
    plot = tracker.log_figure(fig, "kaggle_push")
    return Result(metrics=metrics, artifacts={"kaggle_push": str(plot)},
                  notes="publish: kaggle kernels push -p notebooks/kaggle/NAME (after `kaggle auth login`)")


jupyter = Experiment(Config, run_jupyter)
colab = Experiment(Config, run_colab)
kaggle = Experiment(Config, run_kaggle)
