"""Convolution, pooling and padding written out with tensor indexing (im2col).

A 2-D convolution slides a (C_in/groups x KH x KW) filter over the input. im2col turns that
sliding into one big matrix product: gather every receptive field into a column, then multiply
by the flattened filters (Chellapilla et al. 2006, "High performance convolutional neural
networks for document processing"). Only indexing, stacking and einsum are used, so autograd
differentiates through it; tests compare values *and* gradients with F.conv2d / F.max_pool2d.

Output size along one axis (the formula behind every CNN shape):
    out = floor((in + 2 * padding - dilation * (kernel - 1) - 1) / stride) + 1
"""

from __future__ import annotations

import math

import torch
from torch import nn


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    # the output-size relationship for padding, stride and dilation, @dumoulin2016guide
    out = (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1
    if out <= 0:
        raise ValueError(f"input of size {size} is too small for kernel {kernel} (dilation {dilation}, padding {padding})")
    return out


def output_shape(input_shape: tuple[int, ...], layers: list[dict]) -> list[tuple[str, tuple[int, ...]]]:
    """Shape after each layer, for a list like [{"type": "conv", "out": 6, "kernel": 5, "padding": 2},
    {"type": "pool", "kernel": 2}, {"type": "flatten"}, {"type": "linear", "out": 120}]."""
    shape = tuple(input_shape)  # (C, H, W)
    trace = []
    for layer in layers:
        kind = layer["type"]
        if kind in ("conv", "pool"):
            k = _pair(layer.get("kernel", 2))
            s = _pair(layer.get("stride", 1 if kind == "conv" else layer.get("kernel", 2)))
            p, d = _pair(layer.get("padding", 0)), _pair(layer.get("dilation", 1))
            h = conv_output_size(shape[1], k[0], s[0], p[0], d[0])
            w = conv_output_size(shape[2], k[1], s[1], p[1], d[1])
            shape = (layer.get("out", shape[0]) if kind == "conv" else shape[0], h, w)
        elif kind == "flatten":
            shape = (math.prod(shape),)
        elif kind == "linear":
            shape = (layer["out"],)
        else:
            raise ValueError(f"unknown layer type {kind!r}")
        trace.append((kind, shape))
    return trace


def pad2d(x: torch.Tensor, padding: tuple[int, int], value: float = 0.0) -> torch.Tensor:
    """Zero (or constant) padding: a bigger tensor filled with `value`, the input copied into its centre."""
    ph, pw = padding
    if ph == 0 and pw == 0:
        return x
    n, c, h, w = x.shape
    out = x.new_full((n, c, h + 2 * ph, w + 2 * pw), value)
    out[:, :, ph:ph + h, pw:pw + w] = x
    return out


def im2col(x: torch.Tensor, kernel, stride=1, padding=0, dilation=1, pad_value: float = 0.0) -> tuple[torch.Tensor, int, int]:
    """Receptive fields as columns: (N, C, KH*KW, H_out, W_out). Each kernel offset (i, j) picks a
    strided slice of the padded input; stacking the slices gives every patch at once."""
    # unfold every receptive field into a column so the convolution becomes one matrix product, @chellapilla2006im2col
    kh, kw = _pair(kernel)
    sh, sw = _pair(stride)
    ph, pw = _pair(padding)
    dh, dw = _pair(dilation)
    n, c, h, w = x.shape
    ho, wo = conv_output_size(h, kh, sh, ph, dh), conv_output_size(w, kw, sw, pw, dw)
    xp = pad2d(x, (ph, pw), pad_value)
    slices = [xp[:, :, i * dh: i * dh + sh * (ho - 1) + 1: sh, j * dw: j * dw + sw * (wo - 1) + 1: sw]
              for i in range(kh) for j in range(kw)]
    return torch.stack(slices, dim=2), ho, wo


def conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, stride=1, padding=0, dilation=1, groups: int = 1) -> torch.Tensor:
    """Same contract as F.conv2d. weight: (C_out, C_in / groups, KH, KW).

    Groups split the channels into `groups` independent convolutions (groups = C_in is a
    depthwise convolution, as in MobileNet/EfficientNet).
    """
    n, c, _, _ = x.shape
    c_out, c_per_group, kh, kw = weight.shape
    if c % groups or c_out % groups or c // groups != c_per_group:
        raise ValueError(f"channels {c} -> {c_out} with weight {tuple(weight.shape)} do not fit groups={groups}")
    cols, ho, wo = im2col(x, (kh, kw), stride, padding, dilation)          # (N, C, K, Ho, Wo)
    cols = cols.reshape(n, groups, c_per_group * kh * kw, ho * wo)          # (N, G, Cg*K, L)
    w = weight.reshape(groups, c_out // groups, c_per_group * kh * kw)      # (G, Og, Cg*K)
    out = torch.einsum("gok,ngkl->ngol", w, cols).reshape(n, c_out, ho, wo)
    return out if bias is None else out + bias.view(1, -1, 1, 1)


def max_pool2d(x: torch.Tensor, kernel, stride=None, padding=0, dilation=1) -> torch.Tensor:
    """Max over each window; padding uses -inf so it never wins (as torch does)."""
    cols, ho, wo = im2col(x, kernel, stride or kernel, padding, dilation, pad_value=-math.inf)
    return cols.amax(dim=2)


def avg_pool2d(x: torch.Tensor, kernel, stride=None, padding=0) -> torch.Tensor:
    """Mean over each window; zero padding counts in the denominator (torch's count_include_pad=True)."""
    cols, ho, wo = im2col(x, kernel, stride or kernel, padding)
    return cols.mean(dim=2)


class Conv2d(nn.Module):
    """A drop-in layer around `conv2d`, initialised like nn.Conv2d (Kaiming-uniform, a = sqrt(5))."""

    def __init__(self, c_in: int, c_out: int, kernel, stride=1, padding=0, dilation=1, groups: int = 1, bias: bool = True):
        super().__init__()
        kh, kw = _pair(kernel)
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups
        self.weight = nn.Parameter(torch.empty(c_out, c_in // groups, kh, kw))
        self.bias = nn.Parameter(torch.empty(c_out)) if bias else None
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(c_in // groups * kh * kw)
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
