"""Batch normalisation written out (Ioffe & Szegedy 2015, arXiv:1502.03167).

Training: normalise each channel with the mean and (biased) variance of the current batch,
then scale and shift with learned gamma, beta:  y = gamma * (x - mean) / sqrt(var + eps) + beta.
Running estimates of mean and (unbiased) variance are kept with momentum for evaluation, where
the batch statistics are replaced by them, so a prediction does not depend on its batch-mates.
Channels are axis 1: (N, C) for BatchNorm1d, (N, C, H, W) for BatchNorm2d (statistics over N, H, W).
"""

from __future__ import annotations

import torch
from torch import nn


class BatchNorm(nn.Module):
    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.weight = nn.Parameter(torch.ones(num_features))   # gamma
        self.bias = nn.Parameter(torch.zeros(num_features))    # beta
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the batch normalising transform, Algorithm 1, @ioffe2015batchnorm
        axes = [0] + list(range(2, x.ndim))           # every axis but the channel axis
        shape = [1, -1] + [1] * (x.ndim - 2)          # broadcast (C,) against x
        if self.training:
            mean = x.mean(dim=axes)
            var = x.var(dim=axes, unbiased=False)
            n = x.numel() // x.shape[1]
            with torch.no_grad():
                self.running_mean.lerp_(mean, self.momentum)
                self.running_var.lerp_(var * n / max(n - 1, 1), self.momentum)
                self.num_batches_tracked += 1
        else:
            mean, var = self.running_mean, self.running_var
        x_hat = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + self.eps)
        return x_hat * self.weight.view(shape) + self.bias.view(shape)
