"""In-context learning of linear functions (Garg et al. 2022, "What can transformers learn in-context?",
arXiv:2208.01066).

Each prompt is a fresh task: w ~ N(0, I_d), points x_i ~ N(0, I_d), labels y_i = w.x_i (+ noise). The
transformer reads (x_1, y_1, ..., x_k, y_k, x_{k+1}) and must predict y_{k+1}: it never sees w, and no
weight changes at test time, so whatever regression it does happens inside one forward pass. Trained
on many such prompts, its error against the number of examples k follows least squares, the optimal
estimator here, and beats nearest neighbours and averaging (the paper's Figure 2).

    prompt (B, 2n, d): x_i as is, y_i as (y_i, 0, ..., 0)  -> read-in Linear(d, C) + position embedding
        -> GPT blocks (causal) -> read-out Linear(C, 1) at the x positions: prediction of y_i   (B, n)

The paper's curriculum starts with few dimensions and short prompts and grows both: the other
coordinates of x are zero until their turn, which makes the early task easy and speeds training. How
soon it is done matters most here: at d = 3 the model left its plateau (error ~ averaging's) at step
~750 with the curriculum done by 30% of 2,000 steps, and only after the curriculum ended at 50%.
"""

from __future__ import annotations

import torch
from torch import nn

from dlroadmap.data.loader import SampledBatches
from dlroadmap.models.sequence.gpt import Block, GPTConfig


class InContextRegressor(nn.Module):
    def __init__(self, d: int, n_points: int, n_layer: int = 3, n_head: int = 2, n_embd: int = 64):
        super().__init__()
        self.d, self.n_points = d, n_points
        self.cfg = GPTConfig(vocab_size=1, block_size=2 * n_points, n_layer=n_layer, n_head=n_head, n_embd=n_embd)
        self.read_in = nn.Linear(d, n_embd)
        self.wpe = nn.Embedding(2 * n_points, n_embd)
        self.h = nn.ModuleList(Block(self.cfg) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(n_embd)
        self.read_out = nn.Linear(n_embd, 1)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x (B, n, d), y (B, n) -> predictions (B, n): entry i from x_1, y_1, ..., x_i only."""
        # the prompt (x_1, f(x_1), ..., x_k) read by a causal transformer, f(x_k) predicted at x_k (sec. 2), @garg2022incontext
        B, n, d = x.shape
        ys = torch.zeros_like(x)
        ys[..., 0] = y                                                        # y_i padded to d dimensions
        z = torch.stack([x, ys], dim=2).reshape(B, 2 * n, d)                  # (B, 2n, d): x_1, y_1, x_2, ...
        h = self.read_in(z) + self.wpe(torch.arange(2 * n, device=x.device))  # (B, 2n, C)
        for block in self.h:
            h = block(h)
        return self.read_out(self.ln_f(h))[:, ::2, 0]                         # at each x_i: (B, n)


def sample_tasks(batch: int, n_points: int, d: int, active: int | None = None, noise: float = 0.0,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """x (B, n, d) with only the first `active` coordinates non-zero (the curriculum), y = w.x + noise (B, n)."""
    x = torch.randn(batch, n_points, d, generator=generator)
    if active is not None and active < d:
        x[..., active:] = 0.0
    w = torch.randn(batch, d, 1, generator=generator)
    y = (x @ w)[..., 0]
    if noise > 0:
        y = y + noise * torch.randn(y.shape, generator=generator)
    return x, y


def curriculum(step: int, total: int, d: int, n_points: int, start_dims: int = 1, start_points: int = 3,
               ramp: float = 0.3) -> tuple[int, int]:
    """(active dimensions, prompt length) at `step`: both grow linearly over the first `ramp` of training
    from (start_dims, start_points) to (d, n_points), as the paper's curriculum does in increments."""
    f = min(1.0, step / max(1, int(total * ramp)))
    return round(start_dims + f * (d - start_dims)), round(start_points + f * (n_points - start_points))


# --- the estimators the transformer is compared with (each predicts y_{k+1} from the first k pairs) ---------

def least_squares(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Minimum-norm least squares on the first k pairs, for every k: (B, n) predictions (0 at k = 0)."""
    B, n, d = x.shape
    pred = torch.zeros(B, n, dtype=x.dtype)
    for k in range(1, n):
        w = torch.linalg.pinv(x[:, :k]) @ y[:, :k, None]                      # (B, d, 1)
        pred[:, k] = (x[:, k:k + 1] @ w)[:, 0, 0]
    return pred


def ridge(x: torch.Tensor, y: torch.Tensor, noise: float) -> torch.Tensor:
    """The posterior mean of w under the prior N(0, I) and noise N(0, noise^2): ridge with lambda = noise^2,
    the Bayes-optimal prediction here. No estimator (the transformer included) can beat it on average,
    so a model that does has seen the label it predicts (a leak in the causal mask)."""
    B, n, d = x.shape
    pred = torch.zeros(B, n, dtype=x.dtype)
    eye = torch.eye(d, dtype=x.dtype)
    for k in range(1, n):
        xk = x[:, :k]                                                         # (B, k, d)
        w = torch.linalg.solve(xk.mT @ xk + noise**2 * eye, xk.mT @ y[:, :k, None])
        pred[:, k] = (x[:, k:k + 1] @ w)[:, 0, 0]
    return pred


def nearest_neighbours(x: torch.Tensor, y: torch.Tensor, k_nn: int = 3) -> torch.Tensor:
    """Mean label of the k_nn nearest earlier points (all of them while there are fewer)."""
    B, n, _ = x.shape
    pred = torch.zeros(B, n, dtype=x.dtype)
    for k in range(1, n):
        dist = torch.cdist(x[:, k:k + 1], x[:, :k])[:, 0]                     # (B, k)
        idx = dist.topk(min(k_nn, k), largest=False).indices
        pred[:, k] = y[:, :k].gather(1, idx).mean(1)
    return pred


def averaging(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """w estimated as the mean of y_i x_i (unbiased for x ~ N(0, I)), then w.x_{k+1}."""
    B, n, _ = x.shape
    pred = torch.zeros(B, n, dtype=x.dtype)
    for k in range(1, n):
        w = (y[:, :k, None] * x[:, :k]).mean(1)                               # (B, d)
        pred[:, k] = (w * x[:, k]).sum(-1)
    return pred


def error_by_k(pred: torch.Tensor, y: torch.Tensor, d: int) -> torch.Tensor:
    """Squared error at each number of in-context examples k, divided by d as in the paper: (n,)."""
    return (pred - y).square().mean(0) / d


def task_batches(d: int, n_points: int, batch_size: int, steps: int, total_steps: int, noise: float = 0.0, seed: int = 0,
                 ramp: float = 0.3) -> SampledBatches:
    """Fresh regression prompts for the Trainer, `steps` batches a round; the curriculum follows the global step."""

    def make(generator: torch.Generator, step: int):
        active, points = curriculum(step, total_steps, d, n_points, ramp=ramp)
        return sample_tasks(batch_size, points, d, active, noise, generator)

    return SampledBatches(make, steps, seed)
