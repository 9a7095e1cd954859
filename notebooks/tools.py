# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Recommended Tools & Platforms
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/dlroadmap/dlroadmap/blob/main/notebooks/tools.ipynb)
#
# The tools a practitioner meets around the models: notebooks themselves (Jupyter, Colab, Kaggle), model hubs
# (Hugging Face, PyTorch Hub), experiment tracking (Weights & Biases offline, TensorBoard) and MLOps (Docker,
# MLflow, DVC). Each tool is started for real and its output read back by the tool's own reader: MLflow's
# client, TensorBoard's EventAccumulator, `huggingface_hub`'s `from_pretrained`, `torch.hub.load`, `dvc repro`.
# About three minutes on two CPU cores.

# %% tags=["setup"]
# Set-up. On Colab or Kaggle: install dlroadmap (CPU torch) from GitHub; on Kaggle, also read the downloadable
# datasets (MNIST, Fashion-MNIST, tiny Shakespeare) from the attached dataset. On your machine: nothing happens.
import os
import subprocess
import sys
from pathlib import Path

try:
    import google.colab  # noqa: F401  (only Colab has it)
    ON_COLAB = True
except ImportError:
    ON_COLAB = False
ON_KAGGLE = "KAGGLE_KERNEL_RUN_TYPE" in os.environ
try:
    import dlroadmap  # noqa: F401
except ImportError:
    if ON_COLAB or ON_KAGGLE:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--extra-index-url", "https://download.pytorch.org/whl/cpu",
                        "dlroadmap @ git+https://github.com/dlroadmap/dlroadmap"], check=True)
if ON_KAGGLE:
    for folder in sorted(Path(os.environ.get("DLR_KAGGLE_INPUT", "/kaggle/input")).glob("*/mnist")):
        os.environ.setdefault("DLR_DATA_DIR", str(folder.parent))

# %% tags=["parameters"]
QUICK = True  # the quick presets (minutes on a laptop CPU); False runs the full presets (hours, full datasets via DLR_DATA_DIR)

# %%
from dlroadmap.notebooks import run

# %% [markdown]
# ## Jupyter Notebooks, Google Colab, Kaggle
#
# This notebook is one of five in `notebooks/`: their text lives in git as jupytext percent-format `.py` files and
# the `.ipynb` files are built from them (`dlr notebooks build`), so a change reads as a diff. `make test` executes
# all five on a real Jupyter kernel; `dlr notebooks run NAME` does the same for you and saves the executed copy.

# %% [markdown]
# ### Jupyter Notebooks (`tools.notebooks.jupyter`)
#
# The notebooks agree with their sources and run every implemented node between them; the Phase 1 notebook is
# executed on a fresh ipykernel through nbclient (a kernel inside this kernel): no cell fails, every node meets
# its expectations there, and each node's cell shows every plot its run wrote.

# %%
result = run("tools.notebooks.jupyter", quick=QUICK)

# %% [markdown]
# ### Google Colab (`tools.notebooks.colab`)
#
# The set-up cell at the top of every notebook, executed as Colab would run it (a stand-in `google.colab` module,
# `dlroadmap` not installed): it installs this repository from GitHub with the CPU build of torch. On a plain
# machine it starts nothing. The "Open in Colab" badges point at the notebooks' own paths.

# %%
result = run("tools.notebooks.colab", quick=QUICK)

# %% [markdown]
# ### Kaggle (`tools.notebooks.kaggle`)
#
# Each notebook's `notebooks/kaggle/NAME/kernel-metadata.json` goes through the `kaggle` package's own
# `KaggleApi.kernels_push` up to the network: its validation runs for real and the request it would send is kept.
# Broken metadata is refused by the same code. On Kaggle the set-up cell finds the attached dataset under
# `/kaggle/input` and points `DLR_DATA_DIR` at it.

# %%
result = run("tools.notebooks.kaggle", quick=QUICK)

# %% [markdown]
# ## Hugging Face, PyTorch Hub

# %% [markdown]
# ### Hugging Face (`tools.hub.huggingface`)
#
# A network trained here goes to the Hugging Face Hub layout through huggingface_hub's own
# PyTorchModelHubMixin (config.json + model.safetensors + a model card) and comes back through its
# from_pretrained: the same predictions on every test image, the card's YAML read by huggingface_hub's
# ModelCard; the training set goes to a `datasets.Dataset` (Arrow, on disk) and back identical; an upload
# without network stops with one line.

# %%
result = run("tools.hub.huggingface", quick=QUICK)

# %% [markdown]
# ### PyTorch Hub (`tools.hub.pytorch_hub`)
#
# The repository's hubconf.py read by torch.hub itself (torch.hub.load, source="local"): every entry point
# builds its network, and pretrained=True on the run's bundle gives back the trained LeNet-5, prediction for
# prediction, where a fresh one is at chance.

# %%
result = run("tools.hub.pytorch_hub", quick=QUICK)

# %% [markdown]
# ## Weights & Biases, TensorBoard (for experiment tracking)

# %% [markdown]
# ### Weights & Biases (`tools.tracking.wandb`)
#
# The offline run file (run-*.wandb, W&B's record log): the history rows so what the tool holds is checked,
# not what we meant to send.

# %%
result = run("tools.tracking.wandb", quick=QUICK)

# %% [markdown]
# ### TensorBoard (`tools.tracking.tensorboard`)
#
# EventAccumulator on the event files: the scalars per epoch

# %%
result = run("tools.tracking.tensorboard", quick=QUICK)

# %% [markdown]
# ## Docker, MLflow, DVC (for production MLOps)

# %% [markdown]
# ### Docker (`tools.mlops.docker`)
#
# The repository's Dockerfile and compose.yaml read by parsers (dockerfile-parse, YAML), not grepped: a pinned
# base, a multi-stage build, a non-root user, a healthcheck, the exposed port the server listens on, no secret
# in any layer, ports published on the loopback only, models mounted read-only. With podman present and
# `build` set (the full preset), the image is built and run by `make container-test` (a prediction checked
# against ONNX Runtime on the host, the compose pair with MLflow); without, the node says that part did not
# run.

# %%
result = run("tools.mlops.docker", quick=QUICK)

# %% [markdown]
# ### MLflow (`tools.mlops.mlflow`)
#
# The same small MLP as the tracking nodes (train/tracking.py: demo_run) logged to MLflow only, then read back
# with MlflowClient on the sqlite store: the run, its params, metric history and artifacts; what the store
# holds is checked, not what we meant to send.

# %%
result = run("tools.mlops.mlflow", quick=QUICK)

# %% [markdown]
# ### DVC (`tools.mlops.dvc`)
#
# P2.fnn.backprop as a DVC pipeline (deploy/dvc_pipeline.py) in a fresh git repository, run by the real `dvc`:
# repro runs the four stages; `dvc exp run --set-param config.lr=...` reruns only train -> export -> evaluate,
# and `dvc params diff` / `dvc metrics diff` report the change; push/pull to a local remote restore every
# output byte for byte. The exported ONNX model scores the same test split as the run.

# %%
result = run("tools.mlops.dvc", quick=QUICK)
