"""EfficientNet: parameter counts, torchvision names, timm key mapping, and the loaders."""

from __future__ import annotations

import pytest
import torch

from dlroadmap.errors import CheckpointError
from dlroadmap.models.families import count_parameters
from dlroadmap.models.vision.efficientnet import EfficientNet, load_state_dict_from, ours_to_timm, round_channels, timm_to_ours
from dlroadmap.models.vision.resnet import resnet18


@pytest.mark.parametrize("variant,count", [("b0", 5_288_548), ("b1", 7_794_184), ("b2", 9_109_994), ("b3", 12_233_232)])
def test_parameter_counts_equal_torchvision(variant, count):
    assert count_parameters(lambda: EfficientNet(variant)) == count


def test_torchvision_layout_and_shapes():
    sd = EfficientNet("b0").state_dict()
    for k, shape in {"features.0.0.weight": (32, 3, 3, 3), "features.1.0.block.0.0.weight": (32, 1, 3, 3),
                     "features.1.0.block.1.fc1.weight": (8, 32, 1, 1), "features.2.0.block.0.0.weight": (96, 16, 1, 1),
                     "features.2.0.block.2.fc1.weight": (4, 96, 1, 1), "features.8.0.weight": (1280, 320, 1, 1),
                     "classifier.1.weight": (1000, 1280)}.items():
        assert tuple(sd[k].shape) == shape, k
    assert round_channels(32 * 1.1) == 32 and round_channels(1280 * 1.2) == 1536


def test_timm_keys_map_to_torchvision_keys():
    assert timm_to_ours("conv_stem.weight") == "features.0.0.weight"
    assert timm_to_ours("bn1.running_var") == "features.0.1.running_var"
    assert timm_to_ours("blocks.0.0.conv_dw.weight") == "features.1.0.block.0.0.weight"
    assert timm_to_ours("blocks.0.0.se.conv_reduce.bias") == "features.1.0.block.1.fc1.bias"
    assert timm_to_ours("blocks.0.0.conv_pw.weight") == "features.1.0.block.2.0.weight"
    assert timm_to_ours("blocks.1.0.conv_pw.weight") == "features.2.0.block.0.0.weight"
    assert timm_to_ours("blocks.1.0.bn2.num_batches_tracked") == "features.2.0.block.1.1.num_batches_tracked"
    assert timm_to_ours("blocks.6.0.conv_pwl.weight") == "features.7.0.block.3.0.weight"
    assert timm_to_ours("conv_head.weight") == "features.8.0.weight" and timm_to_ours("classifier.bias") == "classifier.1.bias"
    with pytest.raises(KeyError):
        timm_to_ours("blocks.1.0.mystery.weight")


@pytest.mark.parametrize("source", ["torchvision", "timm"])
def test_loading_reproduces_outputs(source):
    torch.manual_seed(0)
    donor = EfficientNet("b0").eval()
    sd = donor.state_dict() if source == "torchvision" else ours_to_timm(donor.state_dict())
    if source == "timm":
        assert "blocks.3.2.conv_pwl.weight" in sd and "conv_stem.weight" in sd
    torch.manual_seed(1)
    model = EfficientNet("b0").eval()
    load_state_dict_from(model, sd, source)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(model(x), donor(x))


def test_resnet_loading_with_a_new_head_and_bad_dicts():
    donor = resnet18()
    model = resnet18(num_classes=7)
    info = load_state_dict_from(model, donor.state_dict(), "torchvision", skip_classifier=True)
    assert info["skipped"] == ["fc.bias", "fc.weight"]
    torch.testing.assert_close(model.layer4[1].conv2.weight, donor.layer4[1].conv2.weight)
    with pytest.raises(CheckpointError, match="with other shapes"):
        load_state_dict_from(model, donor.state_dict(), "torchvision")
    bad = dict(donor.state_dict())
    bad.pop("layer1.0.conv1.weight")
    with pytest.raises(CheckpointError, match="1 missing"):
        load_state_dict_from(resnet18(), bad, "timm")
