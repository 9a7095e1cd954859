"""CNN architectures: canonical parameter counts, shapes, and torchvision-compatible names."""

from __future__ import annotations

import pytest
import torch

from dlroadmap.models.families import SMALL_CNNS, count_parameters, small_cnn
from dlroadmap.models.vision.zoo import CANONICAL, PUBLISHED
from dlroadmap.models.vision.resnet import Bottleneck, resnet18, resnet50


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_parameter_counts_equal_published(name):
    assert count_parameters(CANONICAL[name]) == PUBLISHED[name]


@pytest.mark.parametrize("name", list(SMALL_CNNS))
def test_small_variants_run_on_digits(name):
    model = small_cnn(name, 10)[0].eval()
    with torch.no_grad():
        assert model(torch.randn(3, 28, 28)).shape == (3, 10)
        assert model(torch.randn(3, 1, 28, 28)).shape == (3, 10)


def test_imagenet_shapes_and_torchvision_names():
    with torch.no_grad():
        assert resnet18().eval()(torch.zeros(1, 3, 224, 224)).shape == (1, 1000)
    keys = set(resnet50().state_dict())
    for k in ("conv1.weight", "bn1.running_mean", "layer1.0.conv3.weight", "layer1.0.downsample.0.weight",
              "layer2.0.downsample.1.running_var", "layer4.2.bn3.weight", "fc.weight", "fc.bias"):
        assert k in keys
    block = resnet50().layer2[0]
    assert isinstance(block, Bottleneck) and block.conv2.stride == (2, 2) and block.conv1.stride == (1, 1)  # ResNet v1.5
