"""VGG (Simonyan & Zisserman 2014, "Very deep convolutional networks for large-scale image
recognition", arXiv:1409.1556): only 3x3 convolutions and 2x2 max pooling, depth as the lever.
Two stacked 3x3 convolutions see a 5x5 field with fewer parameters and one more non-linearity.

Configurations from the paper's Table 1 (numbers = output channels, "M" = max pool):
VGG-11 (A) has 132,863,336 parameters and VGG-16 (D) 138,357,544 for 1000 classes.
"""

from __future__ import annotations

import torch
from torch import nn

CONFIGS: dict[str, list[int | str]] = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg13": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


def make_features(cfg: list[int | str], in_channels: int = 3, batch_norm: bool = False, width: float = 1.0) -> nn.Sequential:
    # configurations A (VGG-11) and D (VGG-16) of table 1, @simonyan2014vgg
    layers: list[nn.Module] = []
    c = in_channels
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
            continue
        out = max(1, int(v * width))
        layers.append(nn.Conv2d(c, out, 3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(out))
        layers.append(nn.ReLU(inplace=True))
        c = out
    return nn.Sequential(*layers)


class VGG(nn.Module):
    def __init__(self, cfg: str | list = "vgg16", num_classes: int = 1000, in_channels: int = 3, batch_norm: bool = False,
                 width: float = 1.0, hidden: int = 4096, pool_out: int = 7, dropout: float = 0.5):
        super().__init__()
        cfg = CONFIGS[cfg] if isinstance(cfg, str) else cfg
        self.features = make_features(cfg, in_channels, batch_norm, width)
        last = max(1, int([v for v in cfg if v != "M"][-1] * width))
        self.avgpool = nn.AdaptiveAvgPool2d((pool_out, pool_out))
        self.classifier = nn.Sequential(
            nn.Linear(last * pool_out * pool_out, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    @classmethod
    def small(cls, num_classes: int = 10, in_channels: int = 1) -> "VGG":
        """VGG-11's pattern at 1/8 width with three pooling stages, for 28x28 digits."""
        cfg = [8, "M", 16, "M", 32, 32, "M", 64, 64]
        return cls(cfg, num_classes, in_channels, batch_norm=True, hidden=128, pool_out=1, dropout=0.3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 3:
            x = x.unsqueeze(1)
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))
