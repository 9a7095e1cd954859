"""Colab and Kaggle: the set-up cell each notebook opens with, its badge, and its Kaggle kernel metadata.

Neither service can be reached from here, so each is checked up to its boundary with its own machinery:
  - Colab: the set-up cell is executed with a stand-in `google.colab` module importable and `dlroadmap`
    hidden, so its Colab branch really runs; the pip command it would start is recorded, not run.
  - Kaggle: notebooks/kaggle/<name>/kernel-metadata.json is pushed through the `kaggle` package's own
    KaggleApi.kernels_push, whose validation (title, id, code_file, language, kernel_type, dataset
    sources) runs for real; only the HTTP client it would build is replaced by a recorder, which keeps
    the request (title, text, sources, flags) the server would have received.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator
from unittest import mock

import nbformat

from dlroadmap.notebooks import NOTEBOOKS
from dlroadmap.notebooks.execute import notebook_dir

GITHUB_REPO = "dlroadmap/dlroadmap"            # owner/name on GitHub: the Colab badges and the set-up cell's pip install
KAGGLE_OWNER = "dlroadmap"
KAGGLE_DATASET = f"{KAGGLE_OWNER}/dlroadmap-data"  # MNIST, Fashion-MNIST, tiny Shakespeare in DLR_DATA_DIR's layout
NEEDS_DATASETS = ("p2", "p3", "p4")             # notebooks whose full presets read the downloadable datasets


# --- Colab ---------------------------------------------------------------------------------------


def colab_url(name: str) -> str:
    return f"https://colab.research.google.com/github/{GITHUB_REPO}/blob/main/notebooks/{name}.ipynb"


def badge(name: str) -> str:
    return f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab_url(name)})"


def setup_cell(nb: nbformat.NotebookNode) -> str:
    """The source of the notebook's cell tagged "setup" (the first code cell of every notebook)."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            if "setup" not in cell.get("metadata", {}).get("tags", []):
                raise ValueError("the first code cell is not tagged 'setup'")
            return cell.source
    raise ValueError("the notebook has no code cell")


@contextlib.contextmanager
def _simulated(colab: bool, kaggle_input: Path | None) -> Iterator[list[list[str]]]:
    """While active: `google.colab` importable (colab=True), `dlroadmap` not importable, Kaggle's
    environment variable set (kaggle_input given), and every subprocess.run recorded instead of started."""
    commands: list[list[str]] = []

    def record(cmd, *args, **kwargs):
        commands.append([str(c) for c in cmd])
        return subprocess.CompletedProcess(cmd, 0)

    with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory() as fake:
        stack.enter_context(mock.patch.object(subprocess, "run", record))
        # sys.modules["dlroadmap"] = None makes `import dlroadmap` raise ImportError, as on a fresh Colab machine.
        stack.callback(sys.modules.__setitem__, "dlroadmap", sys.modules["dlroadmap"])
        sys.modules["dlroadmap"] = None  # type: ignore[assignment]
        env = {"DLR_DATA_DIR": ""}
        if kaggle_input is not None:
            env.update(KAGGLE_KERNEL_RUN_TYPE="Interactive", DLR_KAGGLE_INPUT=str(kaggle_input))
        stack.enter_context(mock.patch.dict(os.environ, env))
        os.environ.pop("DLR_DATA_DIR")
        if colab:
            # google/colab/__init__.py without google/__init__.py: a portion of the `google` namespace package,
            # beside google.protobuf where that is installed.
            (Path(fake) / "google" / "colab").mkdir(parents=True)
            (Path(fake) / "google" / "colab" / "__init__.py").write_text("")
            stack.enter_context(mock.patch.object(sys, "path", [fake, *sys.path]))
            stack.callback(_forget_colab)
        yield commands


def _forget_colab() -> None:
    sys.modules.pop("google.colab", None)
    if hasattr(sys.modules.get("google"), "colab"):
        delattr(sys.modules["google"], "colab")


def simulate_setup(source: str, *, colab: bool = False, kaggle_input: Path | None = None) -> dict[str, Any]:
    """Execute a set-up cell as Colab (colab=True), Kaggle (kaggle_input: the folder standing for /kaggle/input)
    or a plain machine would: the commands it starts (recorded) and the DLR_DATA_DIR it leaves."""
    with _simulated(colab, kaggle_input) as commands:
        namespace: dict[str, Any] = {}
        exec(compile(source, "<setup cell>", "exec"), namespace)
        data_dir = os.environ.get("DLR_DATA_DIR")
    return {"commands": commands, "on_colab": namespace.get("ON_COLAB"), "on_kaggle": namespace.get("ON_KAGGLE"), "data_dir": data_dir}


def installs_from_repo(command: list[str]) -> bool:
    """A pip install of this repository from GitHub with the CPU build of torch."""
    return command[1:4] == ["-m", "pip", "install"] and any(f"git+https://github.com/{GITHUB_REPO}" in c for c in command) \
        and "https://download.pytorch.org/whl/cpu" in command


# --- Kaggle --------------------------------------------------------------------------------------


def kaggle_folder(name: str) -> Path:
    return notebook_dir() / "kaggle" / name


def kernel_metadata(name: str) -> dict[str, Any]:
    """What notebooks/kaggle/<name>/kernel-metadata.json holds, in the Kaggle CLI's format."""
    title = f"dlroadmap {name.replace('_', ' ')}"
    phase = next(p for p, n in NOTEBOOKS.items() if n == name)
    return {
        "id": f"{KAGGLE_OWNER}/dlroadmap-{name.replace('_', '-')}",
        "title": title,
        "code_file": f"../../{name}.ipynb",
        "language": "python",
        "kernel_type": "notebook",
        "is_private": False,
        "enable_gpu": False,          # the CPU build of torch is installed; the code would use CUDA if it were there
        "enable_tpu": False,
        "enable_internet": True,      # the set-up cell installs dlroadmap from GitHub
        "dataset_sources": [KAGGLE_DATASET] if phase in NEEDS_DATASETS else [],
        "competition_sources": [],
        "kernel_sources": [],
        "model_sources": [],
        "keywords": ["deep learning", "tutorial"],
    }


class _Recorder:
    """Stands in for kagglesdk's KaggleClient: `kernels.kernels_api_client.save_kernel(request)` keeps the request."""

    def __init__(self, requests: list) -> None:
        self.kernels = self
        self.kernels_api_client = self
        self._requests = requests

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None

    def save_kernel(self, request):
        self._requests.append(request)
        return None


def push_dry(folder: Path) -> tuple[Any, str]:
    """`kaggle kernels push -p FOLDER` up to the network: KaggleApi.kernels_push validates the metadata and builds
    the request; the recorder keeps it. Returns (request, what kaggle printed); raises kaggle's ValueError."""
    requests: list = []
    printed = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        # importing the package runs kaggle/__init__.py, which tries to authenticate and prints how to log in
        from kaggle.api.kaggle_api_extended import KaggleApi
    with mock.patch.object(KaggleApi, "build_kaggle_client", lambda self: _Recorder(requests)), contextlib.redirect_stdout(printed):
        KaggleApi().kernels_push(str(folder))
    return requests[0], printed.getvalue()


def read_metadata(name: str) -> dict[str, Any]:
    return json.loads((kaggle_folder(name) / "kernel-metadata.json").read_text())
