"""AlexNet (Krizhevsky, Sutskever & Hinton 2012, "ImageNet classification with deep convolutional
neural networks"), in the single-tower form of Krizhevsky 2014 (arXiv:1404.5997) that most
libraries ship: 5 convolutions (ReLU, overlapping max pooling), then 3 fully connected layers
with dropout. 61,100,840 parameters for 1000 classes at 224x224.

`AlexNet.small()` keeps the shape of the design (wide-stride stem, 5 convs, 3 FC + dropout)
at a size that trains on 28x28 digits on a CPU.
"""

from __future__ import annotations

import torch
from torch import nn


class AlexNet(nn.Module):
    def __init__(self, num_classes: int = 1000, in_channels: int = 3, widths=(64, 192, 384, 256, 256), hidden: int = 4096,
                 stem_kernel: int = 11, stem_stride: int = 4, stem_padding: int = 2, pool_out: int = 6, dropout: float = 0.5):
        # the single-tower widths (64, 192, 384, 256, 256), @krizhevsky2014weird
        # five convolutional and three fully connected layers (sec. 3.5), @krizhevsky2012imagenet
        super().__init__()
        w1, w2, w3, w4, w5 = widths
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, w1, stem_kernel, stride=stem_stride, padding=stem_padding), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2),
            nn.Conv2d(w1, w2, 5, padding=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2),
            nn.Conv2d(w2, w3, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(w3, w4, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(w4, w5, 3, padding=1), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((pool_out, pool_out))
        self.classifier = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(w5 * pool_out * pool_out, hidden), nn.ReLU(inplace=True),
            nn.Dropout(dropout), nn.Linear(hidden, hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, num_classes),
        )

    @classmethod
    def small(cls, num_classes: int = 10, in_channels: int = 1) -> "AlexNet":
        """For 28x28 inputs: 3x3 stride-1 stem, narrower layers, 1x1 pooled output."""
        return cls(num_classes, in_channels, widths=(32, 64, 96, 64, 64), hidden=256, stem_kernel=3, stem_stride=1,
                   stem_padding=1, pool_out=2, dropout=0.3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 3:
            x = x.unsqueeze(1)
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))
