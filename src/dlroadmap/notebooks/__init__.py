"""The notebooks' side of the package: what a cell calls, and how the notebooks are built and run.

    from dlroadmap.notebooks import run
    result = run("p2.cnn.filters")     # runs the node (quick preset), shows its checks and plots inline

  cells.py      run() and show(): the only calls a notebook cell makes into the package
  execute.py    jupytext (.py source -> .ipynb), nbclient on a real ipykernel, papermill-style parameters
  platforms.py  Colab and Kaggle: the set-up cell, Colab badges, kernel-metadata.json pushed through `kaggle`

The notebooks live in `notebooks/` of the checkout as jupytext percent-format `.py` files (the text that
git diffs) with the `.ipynb` built from them (what Jupyter, Colab and Kaggle open).
"""

from dlroadmap.notebooks.cells import run, show

# Phase -> notebook name (notebooks/<name>.py and .ipynb): one notebook per phase and one for the tools.
NOTEBOOKS = {
    "p1": "p1_foundations",
    "p2": "p2_core_deep_learning",
    "p3": "p3_advanced_concepts",
    "p4": "p4_research_and_deployment",
    "tools": "tools",
}

__all__ = ["NOTEBOOKS", "run", "show"]
