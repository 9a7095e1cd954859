"""Phase 2, Recurrent Neural Networks: experiments for dlroadmap/models/rnn.py.

  p2.rnn.basic      the vanilla RNN written out = nn.RNN (outputs, states, gradients); trained
                    through the Trainer to classify MNIST digits read row by row (28 steps of 28 pixels)
  p2.rnn.vanishing  how much gradient reaches the first input as sequences get longer (RNN vs LSTM
                    vs GRU), and the adding problem (Hochreiter & Schmidhuber 1997): add the two
                    marked numbers of a long sequence. LSTM/GRU solve it; the vanilla RNN stays at
                    the trivial baseline (MSE 1/6)
  p2.rnn.lstm_gru   LSTM and GRU written out = nn.LSTM / nn.GRU; both trained on row-by-row MNIST
"""

from __future__ import annotations

import time
from typing import ClassVar

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from dlroadmap.data import classification_tensors
from dlroadmap.evaluate.plots import learning_curves
from dlroadmap.experiments.base import Experiment, ExperimentConfig, Result
from dlroadmap.models.sequence.rnn import Recurrent, SequenceClassifier
from dlroadmap.train import Tracker, Trainer, seed_everything
from dlroadmap.train.fit import fit_classifier, one_cycle

TORCH = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


class Config(ExperimentConfig):
    hidden: int = Field(128, ge=1, le=4096)
    epochs: int = Field(15, ge=1, le=500)
    lr: float = Field(3e-3, gt=0, le=1)
    adding_length: int = Field(100, ge=5, le=10_000, description="sequence length of the adding problem")
    adding_steps: int = Field(3000, ge=10, le=1_000_000, description="training steps (batch 64) per model on the adding problem")
    adding_hidden: int = Field(64, ge=1, le=4096)

    QUICK: ClassVar[dict] = {"epochs": 10, "adding_length": 50, "adding_steps": 1600}


def agreement_with_torch(kind: str, seed: int) -> float:
    """Largest |ours - torch| over outputs, final state and all gradients, 2 layers, float64."""
    torch.manual_seed(seed)
    ref = TORCH[kind](6, 9, 2, batch_first=True).double()
    ours = Recurrent(kind, 6, 9, 2).double().load_from_torch(ref)
    x = torch.randn(4, 13, 6, dtype=torch.float64, requires_grad=True)
    (out_o, fin_o), (out_r, fin_r) = ours(x), ref(x)
    h_o, h_r = (fin_o[0], fin_r[0]) if kind == "lstm" else (fin_o, fin_r)
    g_o = torch.autograd.grad(out_o.sum() + h_o.pow(2).sum(), [x, *ours.parameters()])
    g_r = torch.autograd.grad(out_r.sum() + h_r.pow(2).sum(), [x, *[getattr(ref, f"{n}_l{l}") for l in range(2) for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]])
    diffs = [(out_o - out_r).abs().max(), (h_o - h_r).abs().max(), *[(a - b).abs().max() for a, b in zip(g_o, g_r)]]
    return float(max(diffs))


def train_row_reader(kind: str, config: Config, tracker: Tracker, data) -> tuple[float, list[dict]]:
    """Classify 28x28 digits read one row per time step; returns test accuracy and history."""
    seed_everything(config.seed)
    model = SequenceClassifier(kind, 28, config.hidden, data.num_classes)
    # AdamW on a one-cycle schedule; clipping the gradient norm keeps exploding gradients in check.
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=1e-4)
    fitted = fit_classifier(model, data, opt, schedule=one_cycle(config.lr), epochs=config.epochs, config=config, tracker=tracker,
                            prefix=kind, grad_clip=1.0, description=f"{kind} rows")
    return fitted.test_accuracy, fitted.history


def run_basic(config: Config, tracker: Tracker) -> Result:
    data = classification_tensors("mnist5k", seed=config.seed)
    acc, history = train_row_reader("rnn", config, tracker, data)
    plot = tracker.log_figure(learning_curves(history, title="vanilla RNN reading MNIST row by row"), "learning_curves")
    return Result(metrics={"max_abs_diff_vs_torch": agreement_with_torch("rnn", config.seed), "rnn_test_accuracy": acc,
                           "rnn_best_val_accuracy": max(h["val_acc"] for h in history)},     # what `dlr tune` selects on
                  artifacts={"learning_curves": str(plot)}, history=history)


# --- p2.rnn.vanishing ----------------------------------------------------------------------------------


def adding_batch(n: int, length: int, g: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs (n, T, 2): a random value in [0, 1] and a marker (1 at two positions, one in each half).
    Target: the sum of the two marked values. Predicting the mean (1.0) scores MSE 1/6."""
    vals = torch.rand(n, length, generator=g)
    mark = torch.zeros(n, length)
    first = torch.randint(0, length // 2, (n,), generator=g)
    second = torch.randint(length // 2, length, (n,), generator=g)
    mark[torch.arange(n), first] = 1
    mark[torch.arange(n), second] = 1
    return torch.stack([vals, mark], dim=-1), (vals * mark).sum(1, keepdim=True)


def first_input_gradient(model: SequenceClassifier, lengths: list[int], seed: int, batch: int = 32) -> list[float]:
    """Mean |d output / d x_1| over a batch, for sequences of each length."""
    # the norm of dLoss/dx_1 through T steps: vanishing (sec. 2), @pascanu2013difficulty
    g = torch.Generator().manual_seed(seed)
    norms = []
    for t in lengths:
        x, _ = adding_batch(batch, t, g)
        x.requires_grad_(True)
        model(x).sum().backward()
        norms.append(float(x.grad[:, 0].norm(dim=1).mean()))
    return norms


def run_vanishing(config: Config, tracker: Tracker) -> Result:
    lengths = [5, 10, 20, 40, 80, 160]
    metrics: dict[str, float] = {}
    curves, grads_init, grads_trained = {}, {}, {}
    for kind in ("rnn", "lstm", "gru"):
        seed_everything(config.seed)
        # torch's fused kernels here (the same cells as ours: p2.rnn.basic and p2.rnn.lstm_gru check that
        # to ~1e-15), since thousands of steps of a Python loop over time would dominate the tour.
        model = SequenceClassifier(kind, 2, config.adding_hidden, 1, use_torch=True)
        grads_init[kind] = first_input_gradient(model, lengths, config.seed)
        model.zero_grad()

        def adding_step(m, batch, length=config.adding_length):
            x, y = adding_batch(64, length, None)   # fresh sequences every step, from the Trainer's seeded RNG
            return F.mse_loss(m(x), y), None, None

        trainer = Trainer(model, torch.optim.Adam(model.parameters(), lr=config.lr), step=adding_step, max_steps=config.adding_steps,
                          eval_every=100, grad_clip=1.0, device="cpu", precision=config.precision, seed=config.seed, tracker=tracker,
                          log_prefix=f"adding/{kind}", description=f"adding {kind}")
        t0 = time.perf_counter()
        history = trainer.fit(None)
        metrics[f"{kind}_seconds"] = time.perf_counter() - t0
        x, y = adding_batch(2000, config.adding_length, torch.Generator().manual_seed(config.seed + 1))
        with torch.no_grad():
            metrics[f"{kind}_adding_test_mse"] = F.mse_loss(model(x), y).item()
        curves[kind] = ([h["step"] for h in history], [h["train_loss"] for h in history])
        grads_trained[kind] = first_input_gradient(model, lengths, config.seed)
    metrics["baseline_mse"] = 1 / 6
    metrics["rnn_grad_ratio_160_vs_5"] = grads_trained["rnn"][-1] / grads_trained["rnn"][0]
    metrics["lstm_grad_ratio_160_vs_5"] = grads_trained["lstm"][-1] / grads_trained["lstm"][0]
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    for kind, (steps, loss) in curves.items():
        axes[0].semilogy(steps, loss, "o-", ms=2, label=f"{kind} (test MSE {metrics[f'{kind}_adding_test_mse']:.4f})")
    axes[0].axhline(1 / 6, color="k", ls="--", lw=0.8, label="baseline 1/6")
    axes[0].set_title(f"adding problem, T = {config.adding_length}", fontsize=9)
    axes[0].set_xlabel("step (mean training MSE over each 100 steps)")
    axes[0].legend(fontsize=7)
    for ax, grads, title in ((axes[1], grads_init, "at initialisation"), (axes[2], grads_trained, "after training")):
        for kind, v in grads.items():
            ax.semilogy(lengths, np.maximum(v, 1e-30), "o-", label=kind)
        ax.set_xlabel("sequence length T")
        ax.set_title(f"|d output / d x_1| {title}", fontsize=9)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    plot = tracker.log_figure(fig, "vanishing_gradients")
    return Result(metrics=metrics, artifacts={"vanishing_gradients": str(plot)})


def run_lstm_gru(config: Config, tracker: Tracker) -> Result:
    data = classification_tensors("mnist5k", seed=config.seed)
    metrics = {"lstm_max_abs_diff_vs_torch": agreement_with_torch("lstm", config.seed),
               "gru_max_abs_diff_vs_torch": agreement_with_torch("gru", config.seed)}
    histories = {}
    for kind in ("lstm", "gru"):
        metrics[f"{kind}_test_accuracy"], histories[kind] = train_row_reader(kind, config, tracker, data)
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for kind, hist in histories.items():
        ax.plot([h["epoch"] for h in hist], [h["val_acc"] for h in hist], "o-", ms=3, label=f"{kind} ({metrics[f'{kind}_test_accuracy']:.3f} test)")
    ax.set_xlabel("epoch")
    ax.set_title("LSTM vs GRU reading MNIST row by row: validation accuracy", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    plot = tracker.log_figure(fig, "lstm_vs_gru")
    return Result(metrics=metrics, artifacts={"lstm_vs_gru": str(plot)})


basic = Experiment(Config, run_basic)
vanishing = Experiment(Config, run_vanishing)
lstm_gru = Experiment(Config, run_lstm_gru)
