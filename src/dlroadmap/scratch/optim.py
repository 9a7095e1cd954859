"""Optimizers for the scratch engine, written to match torch.optim's update rules exactly.

Each `step()` reads p.grad and updates p.data in place. The formulas follow torch's
documentation for SGD, RMSprop, Adam and AdamW, so tests can compare trajectories step by step.
"""

from __future__ import annotations

import math
from typing import Iterable

import numpy as np

from dlroadmap.scratch.tensor import Tensor


class Optimizer:
    def __init__(self, params: Iterable[Tensor], lr: float):
        self.params = [p for p in params]
        if lr <= 0:
            raise ValueError("learning rate must be positive")
        self.lr = lr
        self.t = 0  # steps taken
        self.state: list[dict[str, np.ndarray]] = [{} for _ in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        self.t += 1
        for p, state in zip(self.params, self.state):
            if p.grad is not None:
                self.update(p, p.grad, state)

    def update(self, p: Tensor, g: np.ndarray, state: dict) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    """v <- mu v + g;  p <- p - lr (g + mu v) with Nesterov, p <- p - lr v without (Sutskever et al. 2013)."""

    def __init__(self, params, lr: float, momentum: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0, dampening: float = 0.0):
        super().__init__(params, lr)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum needs momentum > 0 and no dampening")
        self.momentum, self.nesterov, self.weight_decay, self.dampening = momentum, nesterov, weight_decay, dampening

    def update(self, p, g, state):
        # Nesterov's accelerated gradient in momentum form, eqs. (3)-(4), @sutskever2013importance
        if self.weight_decay:
            g = g + self.weight_decay * p.data
        if self.momentum:
            if "buf" not in state:
                state["buf"] = g.copy()
            else:
                state["buf"] = self.momentum * state["buf"] + (1 - self.dampening) * g
            g = g + self.momentum * state["buf"] if self.nesterov else state["buf"]
        p.data -= self.lr * g


class RMSprop(Optimizer):
    """Divide the step by a running RMS of recent gradients (Hinton, Coursera lecture 6e, 2012)."""

    def __init__(self, params, lr: float = 0.01, alpha: float = 0.99, eps: float = 1e-8, momentum: float = 0.0,
                 centered: bool = False, weight_decay: float = 0.0):
        super().__init__(params, lr)
        self.alpha, self.eps, self.momentum, self.centered, self.weight_decay = alpha, eps, momentum, centered, weight_decay

    def update(self, p, g, state):
        # divide the gradient by a running average of its recent magnitude, @hinton2012rmsprop
        if self.weight_decay:
            g = g + self.weight_decay * p.data
        sq = state["square_avg"] = self.alpha * state.get("square_avg", 0) + (1 - self.alpha) * g * g
        if self.centered:
            ga = state["grad_avg"] = self.alpha * state.get("grad_avg", 0) + (1 - self.alpha) * g
            avg = np.sqrt(sq - ga * ga) + self.eps
        else:
            avg = np.sqrt(sq) + self.eps
        if self.momentum:
            buf = state["buf"] = self.momentum * state.get("buf", 0) + g / avg
            p.data -= self.lr * buf
        else:
            p.data -= self.lr * g / avg


class Adam(Optimizer):
    """Adam (Kingma & Ba 2014, arXiv:1412.6980): bias-corrected first and second moment estimates.

    weight_decay here is an L2 term added to the gradient (torch.optim.Adam); see AdamW.
    """

    decoupled = False

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0):
        super().__init__(params, lr)
        self.b1, self.b2 = betas
        self.eps, self.weight_decay = eps, weight_decay

    def update(self, p, g, state):
        # Algorithm 1: bias-corrected first and second moments, @kingma2014adam
        if self.weight_decay:
            if self.decoupled:
                p.data *= 1 - self.lr * self.weight_decay
            else:
                g = g + self.weight_decay * p.data
        m = state["m"] = self.b1 * state.get("m", 0) + (1 - self.b1) * g
        v = state["v"] = self.b2 * state.get("v", 0) + (1 - self.b2) * g * g
        bc1, bc2 = 1 - self.b1**self.t, 1 - self.b2**self.t
        denom = np.sqrt(v) / math.sqrt(bc2) + self.eps  # Python floats keep float32 arrays float32
        p.data -= (self.lr / bc1) * m / denom


class AdamW(Adam):
    """AdamW (Loshchilov & Hutter 2017, arXiv:1711.05101): weight decay applied to the weights
    directly, not through the gradient, so it is not rescaled by Adam's denominator."""

    decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 1e-2):
        # decoupled weight decay, Algorithm 2, @loshchilov2019adamw
        super().__init__(params, lr, betas, eps, weight_decay)
