"""A small U-Net that predicts the noise in x_t (Ronneberger et al. 2015, arXiv:1505.04597, as used by
DDPM, Ho et al. 2020), sized for 28x28 digits on a 2-core CPU.

    x_t (N, 1, 28, 28) -> stem -> [res] (28x28, c0) -> down -> [res] (14x14, c1) -> down -> [res, res] (7x7, c2)
        -> up -> [res over the 14x14 skip] -> up -> [res over the 28x28 skip] -> eps (N, 1, 28, 28)

Where the compute goes: a 3x3 convolution costs H*W*C_in*C_out*9 multiply-adds, so a block at 28x28 costs
what one with twice the channels costs at 14x14. Widths double as resolution halves (16, 32, 64), so
every level costs about the same; DDPM's MNIST-sized U-Nets keep 32-64 channels at full resolution and
train ~2x slower per step here for little gain in a few minutes of training. A version that skipped
residual blocks at 28x28 altogether ran faster per step but needed ~3x the steps to reach the same loss.

Each residual block scales and shifts its features by the step embedding (plus the class embedding, for
classifier-free guidance) after its first convolution, so every resolution knows how noisy its input is. The step t is encoded
with the Transformer's sinusoidal code (models/sequence/transformer.py) and an MLP. Class -1 means "no
class": the same network learns the unconditional model when labels are dropped during training (Ho &
Salimans 2022). The output convolution starts at zero, so the untrained net predicts no noise at all.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dlroadmap.models.sequence.transformer import sinusoidal_encoding


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice around a skip; the embedding scales and shifts the normalised features
    in between (adaptive group norm, Dhariwal & Nichol 2021, arXiv:2105.05233, section 3):
    h = GroupNorm(h) * (1 + scale(emb)) + shift(emb). A scale, not only a shift, lets the class switch
    features on and off; it reached higher generated-digit accuracy than a shift alone at equal steps."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, groups: int = 8):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(groups, c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * c_out)
        self.norm2, self.conv2 = nn.GroupNorm(groups, c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        # adaptive group norm: AdaGN(h, y) = y_s GroupNorm(h) + y_b (sec. 3), @dhariwal2021diffusion
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(emb)[:, :, None, None].chunk(2, dim=1)   # (N, 2C) -> 2 x (N, C, 1, 1), at every pixel
        return self.skip(x) + self.conv2(F.silu(self.norm2(h) * (1 + scale) + shift))


class UNet(nn.Module):
    def __init__(self, channels: tuple[int, int, int] = (16, 32, 64), num_classes: int = 0, timesteps: int = 1000, emb_dim: int = 128):
        super().__init__()
        c0, c1, c2 = channels
        self.num_classes = num_classes
        self.register_buffer("t_code", sinusoidal_encoding(timesteps, emb_dim), persistent=False)
        self.t_mlp = nn.Sequential(nn.Linear(emb_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.class_emb = nn.Embedding(num_classes + 1, emb_dim) if num_classes else None   # row 0: no class
        self.stem = nn.Conv2d(1, c0, 3, padding=1)
        self.down0 = ResBlock(c0, c0, emb_dim)
        self.pool0 = nn.Conv2d(c0, c1, 3, stride=2, padding=1)      # 28 -> 14
        self.down1 = ResBlock(c1, c1, emb_dim)
        self.pool1 = nn.Conv2d(c1, c2, 3, stride=2, padding=1)      # 14 -> 7
        self.mid1, self.mid2 = ResBlock(c2, c2, emb_dim), ResBlock(c2, c2, emb_dim)
        self.up1 = ResBlock(c2 + c1, c1, emb_dim)                   # after 7 -> 14, with the 14x14 skip
        self.up0 = ResBlock(c1 + c0, c0, emb_dim)                   # after 14 -> 28, with the 28x28 skip
        self.out_norm, self.out = nn.GroupNorm(8, c0), nn.Conv2d(c0, 1, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        # the contracting path's features concatenated into the expanding path, @ronneberger2015unet
        emb = self.t_mlp(self.t_code[t])                            # (N, E)
        if self.class_emb is not None:
            y = torch.full_like(t, -1) if y is None else y
            emb = emb + self.class_emb(y + 1)                       # -1 (no class) -> row 0
        h0 = self.down0(self.stem(x), emb)                          # (N, c0, 28, 28)
        h1 = self.down1(self.pool0(h0), emb)                        # (N, c1, 14, 14)
        h = self.mid2(self.mid1(self.pool1(h1), emb), emb)          # (N, c2, 7, 7)
        h = self.up1(torch.cat([F.interpolate(h, scale_factor=2, mode="nearest"), h1], 1), emb)   # (N, c1, 14, 14)
        h = self.up0(torch.cat([F.interpolate(h, scale_factor=2, mode="nearest"), h0], 1), emb)   # (N, c0, 28, 28)
        return self.out(F.silu(self.out_norm(h)))
