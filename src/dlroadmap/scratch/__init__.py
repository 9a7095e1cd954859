"""The from-scratch track: a NumPy autograd engine (tensor.py), layers and losses (nn.py), optimizers (optim.py)."""

from dlroadmap.scratch import nn, optim
from dlroadmap.scratch.tensor import Tensor, no_grad, stack, tensor

__all__ = ["Tensor", "nn", "no_grad", "optim", "stack", "tensor"]
