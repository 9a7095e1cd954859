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
# # Phase 2: Core Deep Learning (Intermediate)
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/dlroadmap/dlroadmap/blob/main/notebooks/p2_core_deep_learning.ipynb)
#
# Feedforward networks with backpropagation written out, the optimisers, PyTorch and Keras, what makes training
# work (capacity, regularisation, batch normalisation), CNNs and RNNs, and the metrics that judge a classifier.
# Every layer and optimiser here is ours and is checked against `torch.nn` / `torch.optim` (values and gradients)
# before it trains anything; the metrics are checked against scikit-learn. Each cell runs one node through the
# same runner as `dlr run NODE --quick`, then shows its checks and plots. About five minutes on two CPU cores
# with the quick presets.

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
# ## Feedforward Neural Networks (FNN)

# %% [markdown]
# ### Backpropagation (`p2.fnn.backprop`)
#
# Backpropagation written out (models/mlp.py: manual_backward) compared with torch.autograd on the same MLP
# and batch in float64; then an MLP trained through the Trainer on the embedded 5,000-image MNIST subset
# (stratified 70/15/15 split) with AdamW and a one-cycle LR schedule (Smith & Topin 2017, arXiv:1708.07120);
# learning curves and the test confusion matrix go to the report

# %%
result = run("p2.fnn.backprop", quick=QUICK)

# %% [markdown]
# ### Gradient descent variants: SGD, Adam, RMSProp (`p2.fnn.optimizers`)
#
# Gradient descent variants. From scratch: the same MLP (same initial weights, same batches) trained on
# MNIST-5k by each optimizer of scratch/optim.py (SGD, momentum, Nesterov, RMSProp, Adam, AdamW); each one's
# first steps are replayed with torch.optim on identical weights and batches and the largest relative weight
# difference is reported: the scratch versions are the torch algorithms, not look-alikes. In PyTorch:
# torch.optim's versions train the same torch MLP through the Trainer, same seed and batches.

# %%
result = run("p2.fnn.optimizers", quick=QUICK)

# %% [markdown]
# ## Frameworks

# %% [markdown]
# ### PyTorch (preferred) (`p2.frameworks.pytorch`)
#
# The core of PyTorch in one place: tensors, autograd, nn.Module, an optimizer and a plain training loop. The
# same models trained by the Trainer end with bit-identical weights: the Trainer is that loop plus
# engineering, nothing hidden.

# %%
result = run("p2.frameworks.pytorch", quick=QUICK)

# %% [markdown]
# ### TensorFlow + Keras (optional alternative) (`p2.frameworks.keras`)
#
# The same MLP and small CNN written in Keras 3 on its torch backend (KERAS_BACKEND=torch, no TensorFlow),
# trained with the same hyperparameters; accuracies must agree within a stated margin.

# %%
result = run("p2.frameworks.keras", quick=QUICK)

# %% [markdown]
# ## Training Deep Models

# %% [markdown]
# ### Overfitting & underfitting (`p2.training.fit`)
#
# Under- and overfitting made visible: a capacity sweep, learning curves over epochs (validation loss turns
# up) and over training-set size

# %%
result = run("p2.training.fit", quick=QUICK)

# %% [markdown]
# ### Regularization: L1, L2, dropout (`p2.training.regularization`)
#
# An ablation in a small-data regime (500 training images): L1 and L2 penalties written into the loss,
# decoupled weight decay, dropout, batch norm, early stopping; L1's sparsity shown on the weights

# %%
result = run("p2.training.regularization", quick=QUICK)

# %% [markdown]
# ### Batch normalization (`p2.training.batchnorm`)
#
# Our BatchNorm (models/batchnorm.py) = nn.BatchNorm1d; a deep MLP trained with and without it at a high
# learning rate

# %%
result = run("p2.training.batchnorm", quick=QUICK)

# %% [markdown]
# ## Convolutional Neural Networks (CNNs)

# %% [markdown]
# ### Filters, pooling, padding (`p2.cnn.filters`)
#
# Convolution / pooling / padding from scratch (models/convolution.py) vs F.conv2d and F.max_pool2d on random
# configurations (values and gradients); a CNN built from those layers trained through the Trainer; its
# learned filters and feature maps

# %%
result = run("p2.cnn.filters", quick=QUICK)

# %% [markdown]
# ### Architectures: LeNet, AlexNet, VGG, ResNet (`p2.cnn.architectures`)
#
# LeNet-5, AlexNet, VGG-11/16, ResNet-18/34/50 built in their canonical ImageNet form (parameter counts = the
# published figures), and small-input variants trained on MNIST (MNIST-5k in quick mode, full MNIST otherwise)

# %%
result = run("p2.cnn.architectures", quick=QUICK)

# %% [markdown]
# ## Recurrent Neural Networks (RNNs)

# %% [markdown]
# ### Basic RNNs (`p2.rnn.basic`)
#
# The vanilla RNN written out = nn.RNN (outputs, states, gradients); trained through the Trainer to classify
# MNIST digits read row by row (28 steps of 28 pixels)

# %%
result = run("p2.rnn.basic", quick=QUICK)

# %% [markdown]
# ### Vanishing gradients problem (`p2.rnn.vanishing`)
#
# How much gradient reaches the first input as sequences get longer (RNN vs LSTM vs GRU), and the adding
# problem (Hochreiter & Schmidhuber 1997): add the two marked numbers of a long sequence. LSTM/GRU solve it;
# the vanilla RNN stays at the trivial baseline (MSE 1/6)

# %%
result = run("p2.rnn.vanishing", quick=QUICK)

# %% [markdown]
# ### LSTM and GRU units (`p2.rnn.lstm_gru`)
#
# LSTM and GRU written out = nn.LSTM / nn.GRU; both trained on row-by-row MNIST

# %%
result = run("p2.rnn.lstm_gru", quick=QUICK)

# %% [markdown]
# ## Model Evaluation

# %% [markdown]
# ### Accuracy, Precision, Recall, F1-score (`p2.eval.prf`)
#
# Accuracy, precision, recall, F1 (binary, macro, micro, weighted)

# %%
result = run("p2.eval.prf", quick=QUICK)

# %% [markdown]
# ### Confusion matrix (`p2.eval.confusion`)
#
# The confusion matrix, counts and row-normalised

# %%
result = run("p2.eval.confusion", quick=QUICK)

# %% [markdown]
# ### ROC-AUC (`p2.eval.rocauc`)
#
# ROC curve and ROC-AUC (binary, one-vs-rest), PR curve and average precision

# %%
result = run("p2.eval.rocauc", quick=QUICK)
