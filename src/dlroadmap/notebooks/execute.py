"""Build and run the notebooks: jupytext for the text <-> .ipynb pairing, nbclient for execution.

    nb = read_source("p1_foundations")            # notebooks/p1_foundations.py (percent format) -> NotebookNode
    nb = execute(nb, cwd=tmp, env={"DLR_OUT": ...})   # every cell on a real ipykernel, outputs filled in
    errors(nb), images_by_node(nb), cell_seconds(nb)

Parameters follow papermill's convention: the cell tagged "parameters" holds the defaults (QUICK = True)
and `inject` adds a cell tagged "injected-parameters" right after it, so a run can change them without
editing the notebook (papermill itself would read the same notebooks).
"""

from __future__ import annotations

import ast
import datetime as dt
import os
from pathlib import Path
from typing import Any

import nbformat

from dlroadmap.io import checkout_root, write_text

KERNEL = "python3"   # ipykernel's own kernel spec, which runs this interpreter


def notebook_dir() -> Path:
    return checkout_root("notebooks/tools.py") / "notebooks"


def source_path(name: str) -> Path:
    return notebook_dir() / f"{name}.py"


def ipynb_path(name: str) -> Path:
    return notebook_dir() / f"{name}.ipynb"


def read_source(name: str) -> nbformat.NotebookNode:
    """The notebook as jupytext reads its percent-format .py (markdown cells are the `# %% [markdown]` ones)."""
    import jupytext

    nb = jupytext.read(source_path(name))
    nb.metadata["kernelspec"] = {"name": KERNEL, "display_name": "Python 3", "language": "python"}
    return nb


def write_ipynb(name: str) -> Path:
    """Build notebooks/<name>.ipynb from its .py source, outputs empty (atomic write). Cell ids are numbered
    rather than random, so rebuilding an unchanged source gives the same file."""
    import jupytext

    nb = read_source(name)
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i}"
    return write_text(ipynb_path(name), jupytext.writes(nb, fmt="ipynb"))


def out_of_sync(name: str) -> list[str]:
    """Where the committed .ipynb differs from what its .py source builds: [] when they agree."""
    built, committed = read_source(name).cells, nbformat.read(ipynb_path(name), as_version=4).cells
    if len(built) != len(committed):
        return [f"{name}: {len(committed)} cells in the .ipynb, {len(built)} in the .py source"]
    return [f"{name}: cell {i} differs" for i, (a, b) in enumerate(zip(built, committed))
            if (a.cell_type, a.source) != (b.cell_type, b.source)]


def nodes_run(nb: nbformat.NotebookNode) -> list[str]:
    """Node ids a notebook runs: the first argument of each `run("...")` call in its code cells."""
    ids = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for call in ast.walk(ast.parse(cell.source)):
            if isinstance(call, ast.Call) and getattr(call.func, "id", None) == "run" and call.args \
                    and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str):
                ids.append(call.args[0].value)
    return ids


def coverage() -> tuple[int, dict[str, list[str]]]:
    """How many nodes are run wrongly: an implemented node no notebook runs, or that runs twice or in another
    phase's notebook, or a node run that is not implemented. Also each notebook's node ids."""
    from dlroadmap import registry
    from dlroadmap.notebooks import NOTEBOOKS

    ran = {name: nodes_run(read_source(name)) for name in NOTEBOOKS.values()}
    wrong = 0
    for node in registry.load().nodes:
        where = [name for name, ids in ran.items() for i in ids if i == node.id]
        wrong += where != ([NOTEBOOKS[node.phase]] if node.implemented else [])
    return wrong, ran


def inject(nb: nbformat.NotebookNode, **params: Any) -> nbformat.NotebookNode:
    """Papermill's convention: a cell tagged "injected-parameters" right after the one tagged "parameters"."""
    if not params:
        return nb
    at = next((i for i, c in enumerate(nb.cells) if "parameters" in c.get("metadata", {}).get("tags", [])), None)
    if at is None:
        raise ValueError("the notebook has no cell tagged 'parameters'")
    cell = nbformat.v4.new_code_cell("\n".join(f"{k} = {v!r}" for k, v in params.items()),
                                     metadata={"tags": ["injected-parameters"]})
    nb.cells.insert(at + 1, cell)
    return nb


def execute(nb: nbformat.NotebookNode, *, cwd: Path, env: dict[str, str] | None = None, timeout: int = 3600,
            allow_errors: bool = False) -> nbformat.NotebookNode:
    """Run every cell on a fresh ipykernel (nbclient), in `cwd`, with `env` added to this process's environment.

    With allow_errors=False the first failing cell raises nbclient's CellExecutionError (its traceback
    included); with True every cell runs and the errors stay in the outputs (see `errors`).
    """
    from nbclient import NotebookClient

    client = NotebookClient(nb, timeout=timeout, kernel_name=KERNEL, allow_errors=allow_errors, record_timing=True,
                            resources={"metadata": {"path": str(cwd)}})
    client.execute(env={**os.environ, **(env or {})})
    return nb


def errors(nb: nbformat.NotebookNode) -> list[str]:
    """'cell N: Type: message' for every cell whose output is an error."""
    return [f"cell {i}: {o.get('ename')}: {o.get('evalue')}" for i, c in enumerate(nb.cells) if c.cell_type == "code"
            for o in c.get("outputs", []) if o.get("output_type") == "error"]


def images_by_node(nb: nbformat.NotebookNode) -> dict[str, int]:
    """node id -> how many PNG images its run cell displayed."""
    counts: dict[str, int] = {}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for node_id in nodes_run(nbformat.v4.new_notebook(cells=[cell])):
            counts[node_id] = sum("image/png" in o.get("data", {}) for o in cell.get("outputs", []))
    return counts


def cell_seconds(nb: nbformat.NotebookNode) -> list[float]:
    """Wall seconds of each executed code cell, from the timestamps nbclient records."""
    out = []
    for cell in nb.cells:
        t = cell.get("metadata", {}).get("execution", {})
        if "iopub.execute_input" in t and "shell.execute_reply" in t:
            start, end = (dt.datetime.fromisoformat(t[k].replace("Z", "+00:00")) for k in ("iopub.execute_input", "shell.execute_reply"))
            out.append((end - start).total_seconds())
    return out
