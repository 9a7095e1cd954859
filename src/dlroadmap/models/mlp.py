"""The multilayer perceptron, and backpropagation written out by hand.

An MLP is a stack of affine maps with a non-linearity between them:
    h_0 = x,   z_l = h_{l-1} W_l^T + b_l,   h_l = relu(z_l),   logits = z_L
Backpropagation (Rumelhart, Hinton & Williams 1986) applies the chain rule from the loss back to
every weight. `manual_backward` does it with plain tensor ops so it can be compared, number for
number, with torch.autograd (tests/test_mlp.py and the p2.fnn.backprop experiment do that).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MLP(nn.Module):
    def __init__(self, in_features: int, hidden: list[int] | tuple[int, ...], out_features: int, dropout: float = 0.0):
        super().__init__()
        dims = [in_features, *hidden]
        layers: list[nn.Module] = [nn.Flatten()]
        for d_in, d_out in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(d_in, d_out), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(dims[-1], out_features))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    @property
    def linears(self) -> list[nn.Linear]:
        return [m for m in self.net if isinstance(m, nn.Linear)]


def manual_forward(model: MLP, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Forward pass (no dropout) keeping what backward needs: the input of every layer."""
    h = x.flatten(1)
    inputs = []
    linears = model.linears
    for i, lin in enumerate(linears):
        inputs.append(h)
        z = h @ lin.weight.T + lin.bias          # (N, d_in) @ (d_in, d_out) -> (N, d_out)
        h = z.clamp_min(0) if i < len(linears) - 1 else z
    return h, inputs


def manual_backward(model: MLP, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Cross-entropy loss and its gradient with respect to every weight and bias, by hand."""
    # back-propagation: dE/dy of each layer from the one above, @rumelhart1986learning
    logits, inputs = manual_forward(model, x)
    n = x.shape[0]
    # Softmax + cross-entropy together have the simple gradient (p - onehot(y)) / N.
    p = torch.softmax(logits, dim=1)
    loss = -torch.log(p[torch.arange(n), y]).mean()
    delta = p.clone()
    delta[torch.arange(n), y] -= 1
    delta /= n                                    # dL/dz_L, shape (N, C)
    grads: dict[str, torch.Tensor] = {}
    linears = model.linears
    names = {id(m): name for name, m in model.named_modules()}
    for i in reversed(range(len(linears))):
        lin, h_in = linears[i], inputs[i]
        name = names[id(lin)]
        grads[f"{name}.weight"] = delta.T @ h_in  # dL/dW = delta^T h_{l-1}   (d_out, d_in)
        grads[f"{name}.bias"] = delta.sum(0)      # dL/db = sum over the batch
        if i > 0:
            # Back through the affine map, then through ReLU: its derivative is 1 where the input was > 0.
            delta = (delta @ lin.weight) * (h_in > 0)
    return loss, grads


def autograd_grads(model: MLP, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The same loss and gradients from torch.autograd, for comparison."""
    model.zero_grad(set_to_none=True)
    was_training = model.training
    model.eval()  # no dropout: the manual pass has none
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    model.train(was_training)
    return loss.detach(), {k: p.grad.detach().clone() for k, p in model.named_parameters()}
