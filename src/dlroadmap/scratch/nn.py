"""Layers for the scratch engine, mirroring torch.nn so the two can be compared weight for weight.

A Module holds Parameters (Tensors with requires_grad) and sub-modules; `parameters()` walks
them in definition order, as torch does, so optimizers see the same list in the same order.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from dlroadmap.scratch.tensor import Tensor


class Parameter(Tensor):
    def __init__(self, data: np.ndarray):
        super().__init__(np.asarray(data), requires_grad=True)


class Module:
    training: bool = True

    def parameters(self) -> Iterator[Parameter]:
        for _, p in self.named_parameters():
            yield p

    def _entries(self) -> Iterator[tuple[str, object]]:
        """Attributes in definition order; modules held in a list are named by their index, as in
        torch.nn.Sequential ("0.weight", "2.bias", ...)."""
        for name, value in vars(self).items():
            if isinstance(value, (list, tuple)):
                yield from ((str(i), m) for i, m in enumerate(value) if isinstance(m, Module))
            else:
                yield name, value

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        for name, value in self._entries():
            if isinstance(value, Parameter):
                yield prefix + name, value
            elif isinstance(value, Module):
                yield from value.named_parameters(f"{prefix}{name}.")

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, np.ndarray]]:
        for name, value in self._entries():
            if name in getattr(self, "_buffers", ()):
                yield prefix + name, value
            elif isinstance(value, Module):
                yield from value.named_buffers(f"{prefix}{name}.")

    def modules(self) -> Iterator["Module"]:
        yield self
        for _, value in self._entries():
            if isinstance(value, Module):
                yield from value.modules()

    def train(self, mode: bool = True) -> "Module":
        for m in self.modules():
            m.training = mode
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    def __call__(self, x: Tensor) -> Tensor:
        return self.forward(x)

    def forward(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def load_torch(self, state_dict: dict) -> "Module":
        """Copy weights from a torch state_dict whose keys match our parameter names."""
        for name, p in self.named_parameters():
            p.data = state_dict[name].detach().cpu().numpy().astype(p.data.dtype).copy()
        for name, buf in self.named_buffers():
            buf[...] = state_dict[name].detach().cpu().numpy()
        return self


class Linear(Module):
    """y = x W^T + b. Init as torch.nn.Linear: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for W and b."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, rng: np.random.Generator | None = None, dtype=np.float32):
        rng = rng or np.random.default_rng()
        bound = 1 / np.sqrt(in_features)
        self.weight = Parameter(rng.uniform(-bound, bound, (out_features, in_features)).astype(dtype))
        self.bias = Parameter(rng.uniform(-bound, bound, out_features).astype(dtype)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        y = x @ self.weight.T
        return y + self.bias if self.bias is not None else y


class ReLU(Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.relu()


class LeakyReLU(Module):
    def __init__(self, slope: float = 0.01):
        self.slope = slope

    def forward(self, x: Tensor) -> Tensor:
        return x.leaky_relu(self.slope)


class Tanh(Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.tanh()


class Sigmoid(Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.sigmoid()


class GELU(Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.gelu()


class Flatten(Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.flatten(1)


class Dropout(Module):
    """Inverted dropout (Srivastava et al. 2014): zero each unit with probability p during training
    and scale the survivors by 1/(1-p), so evaluation needs no rescaling."""

    def __init__(self, p: float = 0.5, rng: np.random.Generator | None = None):
        if not 0 <= p < 1:
            raise ValueError("dropout probability must be in [0, 1)")
        self.p = p
        self.rng = rng or np.random.default_rng()

    def forward(self, x: Tensor) -> Tensor:
        # dropout, scaled at training time (inverted) so inference is unchanged, @srivastava2014dropout
        if not self.training or self.p == 0:
            return x
        mask = (self.rng.random(x.shape) >= self.p).astype(x.dtype) / (1 - self.p)
        return x * mask


class BatchNorm1d(Module):
    """Batch normalisation (Ioffe & Szegedy 2015, arXiv:1502.03167) over the batch axis.

    Training: normalise with the batch mean and (biased) variance, and update running estimates
    with momentum, using the unbiased variance (as torch does). Evaluation: use the running ones.
    """

    _buffers = ("running_mean", "running_var")

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, dtype=np.float32):
        self.eps, self.momentum = eps, momentum
        self.weight = Parameter(np.ones(num_features, dtype=dtype))
        self.bias = Parameter(np.zeros(num_features, dtype=dtype))
        self.running_mean = np.zeros(num_features, dtype=dtype)
        self.running_var = np.ones(num_features, dtype=dtype)

    def forward(self, x: Tensor) -> Tensor:
        if self.training:
            mean = x.mean(axis=0, keepdims=True)
            var = x.var(axis=0, keepdims=True)
            n = x.shape[0]
            m = self.momentum
            self.running_mean[...] = (1 - m) * self.running_mean + m * mean.data[0]
            self.running_var[...] = (1 - m) * self.running_var + m * var.data[0] * n / max(n - 1, 1)
            x_hat = (x - mean) / (var + self.eps).sqrt()
        else:
            x_hat = (x - self.running_mean) / np.sqrt(self.running_var + self.eps)
        return x_hat * self.weight + self.bias


class Sequential(Module):
    def __init__(self, *layers: Module):
        self.layers = list(layers)

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x)
        return x



# --- losses --------------------------------------------------------------------------------------


def mse_loss(pred: Tensor, target: Tensor) -> Tensor:
    diff = pred - target
    return (diff * diff).mean()


def cross_entropy(logits: Tensor, target: np.ndarray | Tensor) -> Tensor:
    """Mean negative log-likelihood of the true class under softmax(logits)."""
    y = target.data if isinstance(target, Tensor) else np.asarray(target)
    logp = logits.log_softmax(axis=1)
    return -logp[np.arange(len(y)), y].mean()
