"""EfficientNet (Tan & Le 2019, arXiv:1905.11946).

Building block: MBConv, the inverted residual of MobileNetV2 (arXiv:1801.04381) with
squeeze-and-excitation (Hu et al. 2017, arXiv:1709.01507):
    1x1 conv expands channels by 6 -> depthwise k x k conv (groups = channels) -> SE: global
    average pool, a small bottleneck MLP, sigmoid gates that rescale each channel -> 1x1 conv
    projects back down (no activation) -> + input when shapes match (with stochastic depth).
Compound scaling: one coefficient phi scales depth, width and resolution together
(alpha^phi, beta^phi, gamma^phi); B0 is the base network found by architecture search, with
5,288,548 parameters for 1000 classes.

Module names follow torchvision's efficientnet_b0 (features.N.M.block...), so its state dicts
load directly; `timm_to_ours` renames timm's efficientnet_b0 keys.
"""

from __future__ import annotations

import math
import re

import torch
from torch import nn

# (expand ratio, kernel, stride, output channels, repeats) per stage of B0.
B0_STAGES = [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1)]
# (width multiplier, depth multiplier, resolution, dropout) for B0..B3.
SCALING = {"b0": (1.0, 1.0, 224, 0.2), "b1": (1.0, 1.1, 240, 0.2), "b2": (1.1, 1.2, 260, 0.3), "b3": (1.2, 1.4, 300, 0.3)}


def round_channels(c: float, divisor: int = 8) -> int:
    """Round to a multiple of 8 (hardware friendly), never dropping more than 10%."""
    new = max(divisor, int(c + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * c else new


class ConvBNAct(nn.Sequential):
    """conv -> BN -> activation; indices 0, 1, 2 as torchvision's Conv2dNormActivation."""

    def __init__(self, c_in: int, c_out: int, k: int, stride: int = 1, groups: int = 1, act: bool = True):
        layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, k, stride, (k - 1) // 2, groups=groups, bias=False),
                                   nn.BatchNorm2d(c_out)]
        if act:
            layers.append(nn.SiLU(inplace=True))
        super().__init__(*layers)


class SqueezeExcitation(nn.Module):
    def __init__(self, channels: int, squeeze: int):
        super().__init__()
        self.fc1, self.fc2 = nn.Conv2d(channels, squeeze, 1), nn.Conv2d(squeeze, channels, 1)
        self.act = nn.SiLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # squeeze, eq. (2), then excitation, eq. (3), @hu2018senet
        s = x.mean((2, 3), keepdim=True)                      # squeeze: one number per channel
        return x * torch.sigmoid(self.fc2(self.act(self.fc1(s))))   # excite: gate each channel


class MBConv(nn.Module):
    def __init__(self, c_in: int, c_out: int, expand: int, k: int, stride: int, drop_path: float):
        super().__init__()
        mid = c_in * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(ConvBNAct(c_in, mid, 1))
        layers += [ConvBNAct(mid, mid, k, stride, groups=mid),         # depthwise
                   SqueezeExcitation(mid, max(1, c_in // 4)),           # SE ratio 0.25 of the block's input
                   ConvBNAct(mid, c_out, 1, act=False)]                 # linear projection
        self.block = nn.Sequential(*layers)
        self.use_residual = stride == 1 and c_in == c_out
        self.drop_path = drop_path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the inverted residual with a linear bottleneck, @sandler2018mobilenetv2
        out = self.block(x)
        if not self.use_residual:
            return out
        if self.training and self.drop_path > 0:                       # stochastic depth, per sample
            keep = torch.rand(x.shape[0], 1, 1, 1, device=x.device) >= self.drop_path
            out = out * keep / (1 - self.drop_path)
        return out + x


class EfficientNet(nn.Module):
    def __init__(self, variant: str = "b0", num_classes: int = 1000, in_channels: int = 3, width: float | None = None,
                 depth: float | None = None, dropout: float | None = None, stochastic_depth: float = 0.2, stem_stride: int = 2):
        # compound scaling of depth, width and resolution, eq. (3), @tan2019efficientnet
        super().__init__()
        w_mult, d_mult, _, drop = SCALING[variant]
        w_mult, d_mult, drop = width or w_mult, depth or d_mult, drop if dropout is None else dropout
        stages = [(e, k, s, round_channels(c * w_mult), int(math.ceil(r * d_mult))) for e, k, s, c, r in B0_STAGES]
        total = sum(r for *_, r in stages)
        c = round_channels(32 * w_mult)
        features: list[nn.Module] = [ConvBNAct(in_channels, c, 3, stem_stride)]
        i = 0
        for e, k, s, c_out, r in stages:
            blocks = []
            for j in range(r):
                blocks.append(MBConv(c, c_out, e, k, s if j == 0 else 1, stochastic_depth * i / total))
                c = c_out
                i += 1
            features.append(nn.Sequential(*blocks))
        head = round_channels(1280 * w_mult) if w_mult >= 1 else max(round_channels(1280 * w_mult), 4 * c)
        features.append(ConvBNAct(c, head, 1))
        self.features = nn.Sequential(*features)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(drop), nn.Linear(head, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                bound = 1 / math.sqrt(m.out_features)
                nn.init.uniform_(m.weight, -bound, bound)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 3:
            x = x.unsqueeze(1)
        return torch.flatten(self.avgpool(self.features(x)), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.forward_features(x))

    @classmethod
    def small(cls, num_classes: int = 10, in_channels: int = 1) -> "EfficientNet":
        """B0's design at a quarter of its width and half its depth, stride-1 stem: for 28x28 digits."""
        return cls("b0", num_classes, in_channels, width=0.25, depth=0.5, dropout=0.1, stochastic_depth=0.0, stem_stride=1)


# --- loading pretrained weights in other libraries' layouts ----------------------------------------------


def timm_to_ours(key: str) -> str:
    """Rename one key of timm's efficientnet_b0 state dict to this module's (= torchvision's) names."""
    rules = [
        (r"^conv_stem\.", "features.0.0."), (r"^bn1\.", "features.0.1."),
        (r"^conv_head\.", "features.8.0."), (r"^bn2\.", "features.8.1."), (r"^classifier\.", "classifier.1."),
    ]
    for pat, rep in rules:
        if re.match(pat, key):
            return re.sub(pat, rep, key)
    m = re.match(r"^blocks\.(\d+)\.(\d+)\.(.+)$", key)
    if not m:
        raise KeyError(f"unrecognised timm EfficientNet key {key!r}")
    stage, idx, rest = int(m.group(1)), m.group(2), m.group(3)
    prefix = f"features.{stage + 1}.{idx}.block."
    if stage == 0:  # DepthwiseSeparableConv: conv_dw, bn1, se, conv_pw, bn2
        table = {"conv_dw": "0.0", "bn1": "0.1", "se.conv_reduce": "1.fc1", "se.conv_expand": "1.fc2", "conv_pw": "2.0", "bn2": "2.1"}
    else:           # InvertedResidual: conv_pw, bn1, conv_dw, bn2, se, conv_pwl, bn3
        table = {"conv_pw": "0.0", "bn1": "0.1", "conv_dw": "1.0", "bn2": "1.1", "se.conv_reduce": "2.fc1",
                 "se.conv_expand": "2.fc2", "conv_pwl": "3.0", "bn3": "3.1"}
    for src, dst in table.items():
        if rest.startswith(src + "."):
            return prefix + dst + rest[len(src):]
    raise KeyError(f"unrecognised timm EfficientNet key {key!r}")


def ours_to_timm(ours: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our (torchvision-layout) EfficientNet state dict re-keyed the way timm writes it."""
    inverse = {}
    for stage, n_blocks in ((0, 1), (1, 2), (2, 2), (3, 3), (4, 3), (5, 4), (6, 1)):
        for i in range(n_blocks):
            parts = ["conv_dw", "bn1", "se.conv_reduce", "se.conv_expand", "conv_pw", "bn2"] if stage == 0 else \
                ["conv_pw", "bn1", "conv_dw", "bn2", "se.conv_reduce", "se.conv_expand", "conv_pwl", "bn3"]
            for part in parts:
                for suffix in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
                    key = f"blocks.{stage}.{i}.{part}.{suffix}"
                    try:
                        inverse[timm_to_ours(key)] = key
                    except KeyError:
                        pass
    for a, b in (("conv_stem", "features.0.0"), ("bn1", "features.0.1"), ("conv_head", "features.8.0"), ("bn2", "features.8.1"), ("classifier", "classifier.1")):
        for suffix in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
            inverse[f"{b}.{suffix}"] = f"{a}.{suffix}"
    return {inverse[k]: v for k, v in ours.items()}


def load_state_dict_from(model: nn.Module, state_dict: dict[str, torch.Tensor], source: str = "torchvision",
                         skip_classifier: bool = False) -> dict[str, list[str]]:
    """Load a torchvision- or timm-format state dict into our EfficientNet or ResNet.

    ResNet keys are the same in torchvision and timm (conv1, layer1.0..., fc). EfficientNet keys are
    torchvision's here; timm's are renamed. With skip_classifier the final layer is left as it is
    (a new task's head). Shapes are checked; anything missing or unexpected raises a clear error."""
    from dlroadmap.errors import CheckpointError

    if source not in ("torchvision", "timm"):
        raise ValueError("source must be 'torchvision' or 'timm'")
    rename = timm_to_ours if source == "timm" and isinstance(model, EfficientNet) else (lambda k: k)
    ours = model.state_dict()
    mapped = {rename(k): v for k, v in state_dict.items()}
    head = {k for k in ours if k.startswith(("fc.", "classifier."))}
    if skip_classifier:
        mapped = {k: v for k, v in mapped.items() if k not in head}
    missing = sorted(set(ours) - set(mapped) - (head if skip_classifier else set()))
    unexpected = sorted(set(mapped) - set(ours))
    wrong = sorted(k for k in set(mapped) & set(ours) if mapped[k].shape != ours[k].shape)
    if missing or unexpected or wrong:
        raise CheckpointError(f"state dict does not fit {type(model).__name__}: {len(missing)} missing (e.g. {missing[:2]}), "
                              f"{len(unexpected)} unexpected (e.g. {unexpected[:2]}), {len(wrong)} with other shapes (e.g. {wrong[:2]})")
    model.load_state_dict(mapped, strict=not skip_classifier)
    return {"loaded": sorted(mapped), "skipped": sorted(head) if skip_classifier else []}
