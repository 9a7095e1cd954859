"""Muon: momentum, orthogonalised (Jordan et al. 2024; Liu et al. 2025, arXiv:2502.16982).

For a weight matrix W (out x in), SGD with momentum steps along the momentum M, whose few largest
singular directions dominate. Muon steps along the orthogonal matrix nearest to M instead,
O = U V^T where M = U S V^T: every direction of the update gets the same size, so the rare
directions learn as fast as the common ones. O is computed without an SVD, by a few Newton-Schulz
iterations that push every singular value of M / ||M|| towards 1:

    X <- a X + (b X X^T + c (X X^T)^2) X,        (a, b, c) = (3.4445, -4.7750, 2.0315)

(a quintic tuned to grow small singular values fast; it lands them in about [0.7, 1.2], which is
close enough). The iteration is matmuls only, so it runs in bf16, where matmuls are fast.

Muon is for the 2-d matrices inside the network; embeddings, the output layer, biases and norm
gains keep AdamW. One optimizer holds both kinds as param groups (a group with `adam=True` is
updated by AdamW), so a Trainer, an LR scheduler and a checkpoint see one optimizer.
`GPT.configure_optimizer(..., muon_lr=...)` makes the split. Same-shaped matrices (the 4 blocks'
q/k/v projections, ...) are orthogonalised together in one batched matmul: on a CPU the per-call
overhead of 16 separate small matmul chains costs more than their arithmetic.

The updates are torch.optim.Muon's and torch.optim.AdamW's (tests/test_muon.py compares them step by step).
"""

from __future__ import annotations

from collections import defaultdict

import torch

NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
NS_DTYPES = {"bfloat16": torch.bfloat16, "float32": torch.float32}


def orthogonalise(g: torch.Tensor, steps: int = 5, eps: float = 1e-7, dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
    """The approximate U V^T of each matrix in g (n, rows, cols) with rows <= cols, by Newton-Schulz."""
    a, b, c = NS_COEFFICIENTS
    x = g.to(dtype)
    x = x / x.norm(dim=(-2, -1), keepdim=True).clamp(min=eps)    # singular values <= 1, where the iteration converges
    for _ in range(steps):
        gram = x @ x.mT                                            # (n, rows, rows): the small side
        poly = torch.baddbmm(gram, gram, gram, beta=b, alpha=c)    # b XX^T + c (XX^T)^2, rounded once
        x = torch.baddbmm(x, poly, x, beta=a)                      # a X + poly X: the quintic above
    return x


class Muon(torch.optim.Optimizer):
    """Nesterov momentum, orthogonalised, for 2-d parameters; AdamW for the groups marked `adam=True`.

    The step of a (rows x cols) matrix is scaled by sqrt(max(1, rows / cols)), torch's "original"
    adjustment (an orthogonal update of a tall matrix has a smaller RMS per entry).
    """

    def __init__(self, params, lr: float = 0.02, momentum: float = 0.95, nesterov: bool = True, weight_decay: float = 0.0,
                 ns_steps: int = 5, eps: float = 1e-7, ns_dtype: str = "bfloat16", betas=(0.9, 0.95), adam_eps: float = 1e-8):
        if lr <= 0 or not 0 <= momentum < 1 or weight_decay < 0:
            raise ValueError("Muon needs lr > 0, 0 <= momentum < 1 and weight_decay >= 0")
        if ns_dtype not in NS_DTYPES:
            raise ValueError(f"ns_dtype must be one of {', '.join(NS_DTYPES)}")
        super().__init__(params, dict(lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay, ns_steps=ns_steps,
                                      eps=eps, ns_dtype=ns_dtype, adam=False, betas=betas, adam_eps=adam_eps))

    def add_param_group(self, param_group: dict) -> None:
        """Every group comes through here, the constructor's and later ones: a Muon group holds matrices only."""
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        wrong = [tuple(p.shape) for p in group["params"] if not group["adam"] and p.dim() != 2]
        if wrong:
            self.param_groups.pop()
            raise ValueError(f"Muon updates 2-d matrices only; got a parameter of shape {wrong[0]} "
                             "(put it in a group with adam=True)")

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if params:
                (self._adamw if group["adam"] else self._muon)(group, params)
        return loss

    def _muon(self, group: dict, params: list[torch.Tensor]) -> None:
        mu, lr, wd = group["momentum"], group["lr"], group["weight_decay"]
        batches: dict[tuple, list] = defaultdict(list)   # (rows, cols) with rows <= cols -> [(param, update)]
        for p in params:
            state = self.state[p]
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = torch.zeros_like(p)
            buf = state["momentum_buffer"]
            buf.lerp_(p.grad, 1 - mu)                                   # M <- mu M + (1 - mu) G
            u = p.grad.lerp(buf, mu) if group["nesterov"] else buf      # Nesterov: look ahead along M
            u = u if p.size(0) <= p.size(1) else u.mT                   # iterate on the wide orientation
            batches[tuple(u.shape)].append((p, u))
        for items in batches.values():
            ortho = orthogonalise(torch.stack([u for _, u in items]), group["ns_steps"], group["eps"], NS_DTYPES[group["ns_dtype"]])
            for (p, _), o in zip(items, ortho):
                o = o if p.size(0) <= p.size(1) else o.mT
                p.mul_(1 - lr * wd)                                     # decoupled weight decay, as AdamW
                p.add_(o.to(p.dtype), alpha=-lr * max(1.0, p.size(0) / p.size(1)) ** 0.5)

    def _adamw(self, group: dict, params: list[torch.Tensor]) -> None:
        """AdamW (Loshchilov & Hutter 2019) in torch's order of operations, on many tensors at once."""
        by_step: dict[int, list] = defaultdict(list)     # tensors with the same step count share bias corrections
        for p in params:
            if "step" not in self.state[p]:
                self.state[p].update(step=0, exp_avg=torch.zeros_like(p), exp_avg_sq=torch.zeros_like(p))
            self.state[p]["step"] += 1
            by_step[self.state[p]["step"]].append(p)
        (b1, b2), lr, wd = group["betas"], group["lr"], group["weight_decay"]
        for t, ps in by_step.items():
            m = [self.state[p]["exp_avg"] for p in ps]
            v = [self.state[p]["exp_avg_sq"] for p in ps]
            grads = [p.grad for p in ps]
            torch._foreach_mul_(ps, 1 - lr * wd)                            # decoupled weight decay, @loshchilov2019adamw
            torch._foreach_lerp_(m, grads, 1 - b1)                          # m <- b1 m + (1 - b1) g
            torch._foreach_mul_(v, b2)
            torch._foreach_addcmul_(v, grads, grads, 1 - b2)                # v <- b2 v + (1 - b2) g^2
            bc1, bc2 = 1 - b1 ** t, 1 - b2 ** t                              # bias corrections
            denom = torch._foreach_sqrt(v)
            torch._foreach_div_(denom, bc2 ** 0.5)
            torch._foreach_add_(denom, group["adam_eps"])
            torch._foreach_addcdiv_(ps, m, denom, -lr / bc1)                # p <- p - lr m_hat / (sqrt(v_hat) + eps)
