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
# # Phase 1: Foundations (Beginner)
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/dlroadmap/dlroadmap/blob/main/notebooks/p1_foundations.ipynb)
#
# The mathematics and tools that everything later stands on, each written from scratch and checked against the
# library a practitioner would use (NumPy, SciPy, scikit-learn, torch.autograd). Every cell below runs one roadmap
# node through the same runner as `dlr run NODE --quick`: it trains or computes, checks the node's declared
# expectations (the table: what was expected, what this run got) and shows the plots it wrote. The whole notebook
# takes about half a minute on a laptop CPU.
#
# Reading order: a node's code is in `src/dlroadmap/foundations/` (the concept) and
# `src/dlroadmap/experiments/p1/` (the experiment); `dlr show NODE` prints both paths.

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
# ## Linear Algebra

# %% [markdown]
# ### Vectors, matrices, and tensors (`p1.linalg.tensors`)
#
# Broadcasting, strides, views and einsum, checked against NumPy, on digit images

# %%
result = run("p1.linalg.tensors", quick=QUICK)

# %% [markdown]
# ### Matrix multiplication (`p1.linalg.matmul`)
#
# Naive vs blocked vs BLAS: agreement and GFLOP/s against this machine's GEMM peak

# %%
result = run("p1.linalg.matmul", quick=QUICK)

# %% [markdown]
# ### Eigenvalues and eigenvectors (`p1.linalg.eigen`)
#
# Power iteration and the QR algorithm vs numpy.linalg; PCA on digits vs sklearn

# %%
result = run("p1.linalg.eigen", quick=QUICK)

# %% [markdown]
# ## Calculus

# %% [markdown]
# ### Derivatives and gradients (`p1.calculus.derivatives`)
#
# Finite differences: error vs step size (O(h) vs O(h^2), then rounding)

# %%
result = run("p1.calculus.derivatives", quick=QUICK)

# %% [markdown]
# ### Chain rule (`p1.calculus.chain_rule`)
#
# A composed function's gradient by hand = product of Jacobians = autograd

# %%
result = run("p1.calculus.chain_rule", quick=QUICK)

# %% [markdown]
# ### Partial derivatives (`p1.calculus.partials`)
#
# Gradient, Jacobian, Hessian numerically vs analytic vs torch.autograd.functional

# %%
result = run("p1.calculus.partials", quick=QUICK)

# %% [markdown]
# ## Probability and Statistics

# %% [markdown]
# ### Bayes' theorem (`p1.prob.bayes`)
#
# A diagnostic test (closed form vs simulation) and naive Bayes vs sklearn's GaussianNB

# %%
result = run("p1.prob.bayes", quick=QUICK)

# %% [markdown]
# ### Expectation and variance (`p1.prob.expectation`)
#
# Monte Carlo estimates of E[X] and Var[X]; error ~ 1/sqrt(n), plotted

# %%
result = run("p1.prob.expectation", quick=QUICK)

# %% [markdown]
# ### Gaussian distribution (`p1.prob.gaussian`)
#
# Density, Box-Muller sampling, MLE fit and KL divergence vs scipy.stats

# %%
result = run("p1.prob.gaussian", quick=QUICK)

# %% [markdown]
# ## Python & Libraries

# %% [markdown]
# ### NumPy, Matplotlib (`p1.python.numpy_matplotlib`)
#
# NumPy: vectorised statistics (and how much faster than Python loops), a from-scratch correlation matrix;
# Matplotlib: per-class distributions

# %%
result = run("p1.python.numpy_matplotlib", quick=QUICK)

# %% [markdown]
# ### Basics of Pandas and Seaborn (`p1.python.pandas_seaborn`)
#
# Pandas: a DataFrame, describe(), groupby summaries; Seaborn: the correlation heatmap and a pair plot; our
# NumPy numbers must equal pandas'

# %%
result = run("p1.python.pandas_seaborn", quick=QUICK)

# %% [markdown]
# ## Machine Learning Basics

# %% [markdown]
# ### Supervised vs. unsupervised learning (`p1.ml.supervised`)
#
# Supervised (linear and logistic regression) vs unsupervised (k-means, PCA), each from scratch and compared
# with sklearn

# %%
result = run("p1.ml.supervised", quick=QUICK)

# %% [markdown]
# ### Train/validation/test splits (`p1.ml.splits`)
#
# Stratified splits, k-fold cross-validation, and how much tuning on the test set overstates accuracy

# %%
result = run("p1.ml.splits", quick=QUICK)

# %% [markdown]
# ### Loss functions, optimization (`p1.ml.loss_optim`)
#
# Losses (MSE, MAE, Huber, cross-entropy, hinge) with gradients checked; gradient descent and momentum on a
# 2-D surface at several learning rates

# %%
result = run("p1.ml.loss_optim", quick=QUICK)

# %% [markdown]
# ## Intro to Neural Networks

# %% [markdown]
# ### Perceptron (`p1.nn.perceptron`)
#
# Rosenblatt's rule converges on separable data (within Novikoff's bound, same weights as sklearn's
# Perceptron), never on XOR; a hidden layer solves XOR

# %%
result = run("p1.nn.perceptron", quick=QUICK)

# %% [markdown]
# ### Activation functions: Sigmoid, ReLU, Tanh (`p1.nn.activations`)
#
# Sigmoid, tanh, ReLU, leaky ReLU, GELU and their derivatives vs torch; saturation, and how much gradient
# survives 20 layers of each

# %%
result = run("p1.nn.activations", quick=QUICK)

# %% [markdown]
# ### Cost functions (`p1.nn.cost`)
#
# MSE vs cross-entropy on a saturated sigmoid neuron: which one learns

# %%
result = run("p1.nn.cost", quick=QUICK)
