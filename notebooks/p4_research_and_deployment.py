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
# # Phase 4: Research & Deployment (Expert)
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/dlroadmap/dlroadmap/blob/main/notebooks/p4_research_and_deployment.ipynb)
#
# Interpretability (SHAP, LIME, attributions), hyperparameter search (grid, random, Optuna, Ray Tune),
# scale (data pipelines, DDP, Horovod, Ray Train), deployment (ONNX, TorchScript, TFLite, a FastAPI server) and
# research topics: diffusion, CLIP, and a real pretrained language model (SmolLM2-135M) read into our own Llama.
# Each cell runs one node through the same runner as `dlr run NODE --quick` and shows its checks and plots.
# About seven minutes on two CPU cores; the distributed node starts worker processes, the serving node a server
# on 127.0.0.1.

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
# ## Model Interpretability

# %% [markdown]
# ### SHAP, LIME (`p4.interpret.shap_lime`)
#
# Local explanations, each checked against its reference package and then against the model: exact Shapley
# values (all 2^13 coalitions of wine's features) vs KernelSHAP (ours and shap's) as the coalition budget
# grows; LIME (tabular, and SLIC superpixels) = lime's with the same seed, and how much it moves between
# seeds; five gradient methods on an MNIST-5k LeNet-5 = captum's; then deletion/insertion curves (do the top-
# ranked pixels matter?) and Adebayo et al.'s model-randomisation check (do the attributions depend on the
# weights?). The trained LeNet-5 is saved as a bundle, with 3 raw test digits, for `dlr explain`.

# %%
result = run("p4.interpret.shap_lime", quick=QUICK)

# %% [markdown]
# ### Feature importance (`p4.interpret.importance`)
#
# Global feature importance of a random forest on breast_cancer and wine, three ways
# (interpret/importance.py): permutation importance on held-out rows (= scikit-learn's with the same seed and
# repeats), drop-column importance (one refit per feature) and impurity importance (= the forest's
# feature_importances_, from its node arrays). A random ID column (unique per row) and a coin-flip column,
# both unrelated to the label, show Strobl et al. 2007's bias: impurity importance gives the ID many times the
# coin's share (it offers a split point between every pair of rows); held-out permutation gives both ~0. Drop-
# column and permutation both miss what a group of correlated features carries (breast_cancer's radius /
# perimeter / area): dropping the whole group shows it. SHAP's global importance (mean |KernelSHAP| over held-
# out rows) sits beside them: it explains the model, so it credits the random ID as much as the forest uses
# it.

# %%
result = run("p4.interpret.importance", quick=QUICK)

# %% [markdown]
# ## Hyperparameter Optimization

# %% [markdown]
# ### Grid search, random search (`p4.tune.grid_random`)
#
# Bergstra & Bengio 2012 reproduced: on a space where one of four hyperparameters matters (tune/objective.py:
# an MLP on digits; the learning rate decides, weight decay, width and dropout barely move it), repeated
# studies of grid search and random search at equal budgets. A grid spends its budget on every combination of
# values it fixed in advance, so it tries only budget^(1/4) learning rates; random search tries a new one
# every trial. Best-so-far curves with bands over the studies; the config each study selects on validation,
# scored on test.

# %%
result = run("p4.tune.grid_random", quick=QUICK)

# %% [markdown]
# ### Optuna, Ray Tune (`p4.tune.optuna_ray`)
#
# The same objective searched by Optuna's TPE in a sqlite study (opened twice: the second call continues the
# first), with pruning wired into the Trainer (a callback reports each epoch's validation accuracy): no pruner
# vs median vs successive halving, in epochs trained, seconds and best value; Optuna's own plots; then Ray
# Tune with ASHA and OptunaSearch, 2 trials at a time, logged to the run's MLflow store and read back through
# Ray's ResultGrid and MLflow.

# %%
result = run("p4.tune.optuna_ray", quick=QUICK)

# %% [markdown]
# ## Scalability

# %% [markdown]
# ### Data pipelines (`p4.scale.pipelines`)
#
# The training set written as WebDataset-layout tar shards and streamed back through torch's DataLoader
# workers (data/pipeline.py): every sample exactly once per epoch for several ranks x workers; a model trained
# on the stream as good as one trained from memory; why a shuffle buffer exists (shards written in class
# order, as raw data often is: with no mixing every batch holds one class and SGD forgets all but the last);
# an interrupted epoch resumed exactly; samples/s and the Trainer's data-wait vs compute split for 0, 1, 2
# workers.

# %%
result = run("p4.scale.pipelines", quick=QUICK)

# %% [markdown]
# ### Distributed training (Horovod, DDP in PyTorch) (`p4.scale.distributed`)
#
# One training run by every engine (train/parallel_check.py): one process at batch G; torchrun with DDP (2
# processes at G/2) and FSDP2; Ray Train's TorchTrainer; Horovod. Final weights compared with the one-process
# run; a one-process run at G/2 shows what a wrong batch would do to them; the all-reduce time beside the
# compute time per step (the scaling model).

# %%
result = run("p4.scale.distributed", quick=QUICK)

# %% [markdown]
# ## Deployment

# %% [markdown]
# ### ONNX, TorchScript, TensorFlow Lite (`p4.deploy.export`)
#
# A LeNet-5 trained through the Trainer on MNIST, exported to ONNX (dynamic batch), TorchScript and, when
# `make tflite` has built its environment, TensorFlow Lite; each file run by its own runtime and compared with
# eager PyTorch; the ONNX model's test accuracy must equal the eager model's

# %%
result = run("p4.deploy.export", quick=QUICK)

# %% [markdown]
# ### Serving with FastAPI, Flask, or TensorFlow Serving (`p4.deploy.serving`)
#
# The exported model served by `dlr serve` in a subprocess on 127.0.0.1 with FastAPI and with Flask: TF
# Serving and KServe v2 predictions equal eager outputs, the whole test split classified over HTTP, a bounded
# load run with zero errors, and ONNX Runtime vs torch eager with micro-batching off and on

# %%
result = run("p4.deploy.serving", quick=QUICK)

# %% [markdown]
# ## Cutting-Edge Research Topics

# %% [markdown]
# ### Diffusion models (`p4.research.diffusion`)
#
# A class-conditional denoising diffusion model (DDPM, Ho et al. 2020) on MNIST: a small U-Net written here
# predicts the noise, trained through the Trainer by step budget with an EMA of its weights and labels dropped
# 10% of the time, so the same network also models digits without a class (classifier-free guidance, Ho &
# Salimans 2022). Then: each digit asked for at the stated guidance scale and judged like the VAE's and the
# GAN's samples beside the floor (real digits) and the ceiling (noise, blur); the guidance scale against FLD
# and generated-digit accuracy; DDPM's ancestral sampler over all T steps against DDIM in 50 (Song et al.
# 2020) on the same digits and starting noise (samples/s and FLD); and the "no class" model alone.

# %%
result = run("p4.research.diffusion", quick=QUICK)

# %% [markdown]
# ### Multimodal models (e.g., CLIP, Flamingo) (`p4.research.multimodal`)
#
# CLIP: an image encoder (a small CNN and a small ViT, ours) and a caption transformer trained with symmetric
# InfoNCE (= pytorch-metric-learning's NTXentLoss in both directions) on MNIST digits paired with captions
# from eight templates; zero-shot classification asked in five held-out templates, one at a time and
# ensembled; image->text and text->image recall and R-precision; a linear probe on the same features.
# Flamingo: a Perceiver Resampler and GATED XATTN-DENSE layers (tanh gates from 0: at initialisation the
# logits are the frozen LM's, bit for bit) between the blocks of a frozen caption GPT, reading the frozen CLIP
# CNN's feature grid, each token seeing only the image just before it; captions of test digits after 0, 1 and
# 2 captioned examples, whose style (words or numerals) only the examples reveal.

# %%
result = run("p4.research.multimodal", quick=QUICK)

# %% [markdown]
# ### Foundation models and prompt engineering (`p4.research.foundation`)
#
# SmolLM2-135M-Instruct read from its GGUF file into our Llama (RMSNorm, rotary embeddings, SwiGLU, grouped-
# query attention) with a KV cache and our decoding loop (greedy, temperature, top-k, top-p): logits and
# greedy tokens equal to transformers'. A prompt study on three shipped tasks (Pang & Lee sentiment, generated
# arithmetic word problems, generated topic sentences): k-shot label scoring, the order of the demonstrations,
# contextual calibration, the chat template, free generation and chain of thought, each with a bootstrap 95%
# interval; MiniLM as a zero-shot classifier by label wording. Each claim is an interval: 'few-shot beats
# zero-shot on topic' is the lower end of the paired bootstrap interval of the difference, above 0. In-context
# learning from pre-training (Garg et al. 2022): a 3-layer GPT trained with a curriculum on prompts of (x, w.x
# + noise) pairs regresses in its forward pass; its error by the number of examples against least squares,
# ridge (the Bayes optimum, which only a leak could beat), 3-nearest-neighbours and averaging (each baseline
# equal to numpy's or sklearn's).

# %%
result = run("p4.research.foundation", quick=QUICK)

# %% [markdown]
# ## Contribute to Open Source & Research

# %% [markdown]
# ### Read arXiv papers (`p4.oss.arxiv`)
#
# Every paper the nodes cite is an entry of `references.bib`, and the code marks the lines that compute its
# equations (`# eq. (1), @vaswani2017attention`): `dlr paper KEY` lists them, the report's `papers.html` shows them
# beside the nodes' results. The arXiv API's Atom feed is read with the standard library and must agree with the
# entry; `dlr papers add ARXIV_ID` adds a new paper (with network).

# %%
result = run("p4.oss.arxiv", quick=QUICK)

# %% [markdown]
# ### Replicate SOTA models (`p4.oss.replicate`)
#
# A published number rerun through the replication harness: FrozenLake's stated optima (0.74 and 0.91), measured at
# three seeds by simulating the optimal policy that backward induction finds on the environment's own transition
# table. `dlr replicate` runs the whole table of claims (`replications.toml`): each claim's node in its full preset
# at three seeds, its mean against the published figure, a missed band shown as missed.

# %%
result = run("p4.oss.replicate", quick=QUICK)

# %% [markdown]
# ### Publish or blog your work (`p4.oss.publish`)
#
# One run written up as a post (`dlr publish RUN`): Markdown with YAML front matter, and a standalone HTML page with
# the figures inside, the metrics against the expectations, the papers, and how to reproduce it. Headless Chromium
# renders the page; the post's own reproduce command, rerun, must give the same numbers.

# %%
result = run("p4.oss.publish", quick=QUICK)
