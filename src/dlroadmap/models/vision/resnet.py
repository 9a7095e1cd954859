"""ResNet (He, Zhang, Ren & Sun 2015, "Deep residual learning for image recognition", arXiv:1512.03385).

Each block learns a residual F(x) and outputs relu(F(x) + x): the identity path lets gradients
and information pass through very deep stacks. Two block types:
  BasicBlock  3x3 -> 3x3                      (ResNet-18/34)
  Bottleneck  1x1 (reduce) -> 3x3 -> 1x1 (x4)  (ResNet-50/101/152); the stride sits on the 3x3
              convolution ("ResNet v1.5", as in torchvision).
When a stage changes resolution or width, the shortcut is a strided 1x1 convolution + BN.
Module names follow torchvision (conv1, bn1, layer1.0.conv1, downsample.0, fc) so pretrained
state dicts map one to one. Parameters for 1000 classes: ResNet-18 11,689,512; ResNet-34
21,797,672; ResNet-50 25,557,032.
"""

from __future__ import annotations

import torch
from torch import nn


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, c_in: int, width: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, width, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # y = F(x, {W_i}) + x, eq. (1), @he2016resnet
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, c_in: int, width: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, width * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(width * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    def __init__(self, block: type[BasicBlock] | type[Bottleneck], layers: list[int], num_classes: int = 1000, in_channels: int = 3,
                 widths: tuple[int, ...] = (64, 128, 256, 512), small_input: bool = False):
        super().__init__()
        self.c = widths[0]
        if small_input:  # 28x28 / 32x32 inputs: a 3x3 stem and no max pool keep the resolution
            self.conv1 = nn.Conv2d(in_channels, self.c, 3, 1, 1, bias=False)
            self.maxpool = nn.Identity()
        else:             # ImageNet stem: 7x7 stride 2, then 3x3 max pool stride 2 (224 -> 56)
            self.conv1 = nn.Conv2d(in_channels, self.c, 7, 2, 3, bias=False)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.bn1 = nn.BatchNorm2d(self.c)
        self.relu = nn.ReLU(inplace=True)
        stages = []
        for i, (w, n) in enumerate(zip(widths, layers)):
            stages.append(self._make_layer(block, w, n, stride=1 if i == 0 else 2))
        self.layer1, self.layer2, self.layer3, self.layer4 = (stages + [nn.Identity()] * 4)[:4]
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(widths[len(layers) - 1] * block.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_layer(self, block, width: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.c != width * block.expansion:
            downsample = nn.Sequential(nn.Conv2d(self.c, width * block.expansion, 1, stride, bias=False), nn.BatchNorm2d(width * block.expansion))
        layers = [block(self.c, width, stride, downsample)]
        self.c = width * block.expansion
        layers += [block(self.c, width) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 3:
            x = x.unsqueeze(1)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.forward_features(x))


def resnet18(num_classes: int = 1000, **kw) -> ResNet:
    return ResNet(BasicBlock, [2, 2, 2, 2], num_classes, **kw)


def resnet34(num_classes: int = 1000, **kw) -> ResNet:
    return ResNet(BasicBlock, [3, 4, 6, 3], num_classes, **kw)


def resnet50(num_classes: int = 1000, **kw) -> ResNet:
    return ResNet(Bottleneck, [3, 4, 6, 3], num_classes, **kw)


def resnet_small(num_classes: int = 10, in_channels: int = 1, widths=(16, 32, 64), blocks=(1, 1, 1)) -> ResNet:
    """A ResNet for 28x28 digits: 3x3 stem, three stages of BasicBlocks (28 -> 14 -> 7)."""
    return ResNet(BasicBlock, list(blocks), num_classes, in_channels, widths=tuple(widths), small_input=True)
