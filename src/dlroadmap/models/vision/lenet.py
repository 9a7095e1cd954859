"""LeNet-5 (LeCun, Bottou, Bengio & Haffner 1998, "Gradient-based learning applied to document recognition").

Two convolution + subsampling stages, then three fully connected layers. The canonical network
reads 32x32 images; MNIST's 28x28 digits were padded to 32x32 in the paper, which is what
padding=2 on the first convolution does, so both variants have the same 61,706 parameters
(this is the common modern reading: full C3 connections, average pooling, a linear output
layer instead of the paper's RBF units).

    input 1x32x32 -> C1 6@28x28 -> S2 6@14x14 -> C3 16@10x10 -> S4 16@5x5 -> F5 120 -> F6 84 -> 10
"""

from __future__ import annotations

import torch
from torch import nn


class LeNet5(nn.Module):
    def __init__(self, num_classes: int = 10, in_channels: int = 1, input_size: int = 32, activation: str = "tanh", pool: str = "avg"):
        # C1, S2, C3, S4, C5, F6 and the output layer (sec. II.B), @lecun1998gradient
        super().__init__()
        if input_size not in (28, 32):
            raise ValueError("LeNet-5 takes 32x32 inputs (or 28x28, padded by the first convolution)")
        act = {"tanh": nn.Tanh, "relu": nn.ReLU}[activation]
        Pool = {"avg": nn.AvgPool2d, "max": nn.MaxPool2d}[pool]
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5, padding=2 if input_size == 28 else 0), act(), Pool(2),   # C1, S2
            nn.Conv2d(6, 16, 5), act(), Pool(2),                                                 # C3, S4
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(16 * 5 * 5, 120), act(), nn.Linear(120, 84), act(), nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 3:
            x = x.unsqueeze(1)  # (N, H, W) -> (N, 1, H, W)
        return self.classifier(self.features(x))
