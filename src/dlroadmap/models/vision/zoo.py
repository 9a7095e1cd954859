"""The canonical ImageNet configurations (1000 classes, 224x224 RGB; LeNet-5: 10 classes, 32x32 grey)
with their published parameter counts: what our builders must reproduce exactly."""

from __future__ import annotations

from typing import Callable

from torch import nn

from dlroadmap.models.vision.alexnet import AlexNet
from dlroadmap.models.vision.lenet import LeNet5
from dlroadmap.models.vision.resnet import resnet18, resnet34, resnet50
from dlroadmap.models.vision.vgg import VGG

# LeCun et al. 1998; torchvision's model cards for the others (AlexNet, VGG-11/16, ResNet-18/34/50).
PUBLISHED: dict[str, int] = {"lenet5": 61_706, "alexnet": 61_100_840, "vgg11": 132_863_336, "vgg16": 138_357_544,
                             "resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032}
CANONICAL: dict[str, Callable[[], nn.Module]] = {
    "lenet5": lambda: LeNet5(), "alexnet": lambda: AlexNet(), "vgg11": lambda: VGG("vgg11"), "vgg16": lambda: VGG("vgg16"),
    "resnet18": resnet18, "resnet34": resnet34, "resnet50": resnet50,
}
