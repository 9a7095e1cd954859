"""A Flamingo-style model (Alayrac et al. 2022, "Flamingo: a Visual Language Model for Few-Shot
Learning", arXiv:2204.14198): a frozen language model learns to read images without forgetting text.

    images (B, M, 1, 28, 28) -> frozen vision encoder -> (B*M, S, Dv) visual tokens of each image
        -> Perceiver Resampler -> (B*M, R, C): R learned latents per image, whatever S is
    ids (B, T) with <image> tokens -> frozen LM blocks, each preceded by a GATED XATTN-DENSE layer:
        y = y + tanh(a_xattn) * Attn(q=y, kv=latents of the image just before each token)
        y = y + tanh(a_dense) * FFW(y)

Both gates a start at 0, so at initialisation every new layer adds exactly 0 and the model *is* the
frozen LM (its logits, bit for bit); training opens the gates as far as images help (section 3.1.2).
Only the resampler and the new layers train; the LM and the vision encoder keep their weights.

Each text token attends to the visual tokens of the last <image> at or before it and to no other image
(section 3.1.3): in "<image> a seven . <image> a three ." the words "a three ." see only the second
image. Tokens before any image see none (their cross-attention output is 0). Earlier images still
reach a token through the LM's own causal self-attention over the text that followed them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dlroadmap.models.sequence.attention import MultiHeadAttention


def feed_forward(dim: int, mult: int = 4) -> nn.Sequential:
    return nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, mult * dim, bias=False), nn.GELU(), nn.Linear(mult * dim, dim, bias=False))


class PerceiverResampler(nn.Module):
    """R learned latents attend to [visual tokens, latents] (keys and values: both, as in the paper's
    Figure 5), then a feed-forward layer, `depth` times: any number S of visual tokens in, R out."""

    def __init__(self, visual_dim: int, dim: int, depth: int = 2, num_latents: int = 8, heads: int = 4):
        super().__init__()
        self.num_latents = num_latents
        self.proj = nn.Linear(visual_dim, dim)                   # visual features into the LM's width
        self.latents = nn.Parameter(torch.randn(num_latents, dim) * 0.02)
        self.layers = nn.ModuleList(nn.ModuleDict({"ln_x": nn.LayerNorm(dim), "ln_l": nn.LayerNorm(dim),
                                                   "attn": MultiHeadAttention(dim, heads), "ff": feed_forward(dim)})
                                    for _ in range(depth))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, S, Dv) -> (N, R, dim)."""
        # a fixed set of latent queries cross-attends to a variable number of inputs, @jaegle2021perceiver
        x = self.proj(x)
        lat = self.latents.expand(len(x), -1, -1)                # (N, R, dim)
        for layer in self.layers:
            q = layer["ln_l"](lat)
            kv = torch.cat([layer["ln_x"](x), q], dim=1)         # (N, S + R, dim)
            lat = lat + layer["attn"](q, kv, kv, need_weights=False)[0]
            lat = lat + layer["ff"](lat)
        return self.norm(lat)


def media_index(ids: torch.Tensor, image_token: int) -> torch.Tensor:
    """(B, T): for each token, which image (1-based) it belongs to: the last <image> at or before it; 0: none yet."""
    return (ids == image_token).long().cumsum(dim=1)


def image_attention_mask(media: torch.Tensor, num_images: int, latents: int) -> torch.Tensor:
    """(B, T, M*R) boolean, True = may attend: token t sees the R latents of image media[t] only."""
    owner = torch.arange(num_images, device=media.device).repeat_interleave(latents) + 1   # (M*R,): image of each latent
    return media[:, :, None] == owner[None, None, :]


class GatedCrossAttentionDense(nn.Module):
    def __init__(self, dim: int, heads: int = 4, ff_mult: int = 4):
        super().__init__()
        self.heads = heads
        self.ln = nn.LayerNorm(dim)
        self.attn = MultiHeadAttention(dim, heads)
        self.ff = feed_forward(dim, ff_mult)
        self.attn_gate = nn.Parameter(torch.zeros(1))            # tanh(0) = 0: the layer starts as the identity
        self.ff_gate = nn.Parameter(torch.zeros(1))

    def forward(self, y: torch.Tensor, visual: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """y (B, T, C), visual (B, M*R, C), allowed (B, T, M*R) -> (B, T, C)."""
        # the tanh-gated cross-attention and dense layers of fig. 4 (gates start at 0), @alayrac2022flamingo
        has_image = allowed.any(-1, keepdim=True)                # (B, T, 1)
        # A token with no image yet would softmax over nothing (NaN); let it attend anywhere, then zero it.
        blocked = ~(allowed | ~has_image)                        # MultiHeadAttention: True = not allowed
        out = self.attn(self.ln(y), visual, visual, attn_mask=blocked.repeat_interleave(self.heads, 0), need_weights=False)[0]
        y = y + torch.tanh(self.attn_gate) * out * has_image
        return y + torch.tanh(self.ff_gate) * self.ff(y)


class Flamingo(nn.Module):
    """A frozen GPT (models/sequence/gpt.py) and a frozen vision encoder ((N, 1, H, W) -> (N, S, Dv)),
    joined by a resampler and a gated cross-attention layer before every `every`-th LM block."""

    def __init__(self, lm: nn.Module, vision: nn.Module, visual_dim: int, image_token: int, every: int = 1,
                 num_latents: int = 8, depth: int = 2, heads: int = 4):
        super().__init__()
        self.lm, self.vision, self.image_token = lm, vision, image_token
        for p in list(lm.parameters()) + list(vision.parameters()):
            p.requires_grad_(False)
        lm.eval()                                               # and no running statistics move either
        vision.eval()
        dim = lm.cfg.n_embd
        self.resampler = PerceiverResampler(visual_dim, dim, depth, num_latents, heads)
        self.xattn = nn.ModuleDict({str(i): GatedCrossAttentionDense(dim, heads) for i in range(0, lm.cfg.n_layer, every)})

    def train(self, mode: bool = True) -> "Flamingo":
        super().train(mode)
        self.lm.eval()                                          # frozen parts stay in inference mode (batch norm, dropout)
        self.vision.eval()
        return self

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    @torch.no_grad()
    def visual_features(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, M, C, H, W) -> (B, M, S, Dv). The encoder is frozen, so a training set's features can
        be computed once and passed to forward as `features`."""
        B, M = images.shape[:2]
        feats = self.vision(images.flatten(0, 1))                # (B*M, S, Dv)
        return feats.view(B, M, *feats.shape[1:])

    def forward(self, ids: torch.Tensor, images: torch.Tensor | None = None, features: torch.Tensor | None = None) -> torch.Tensor:
        """ids (B, T), images (B, M, C, H, W) or their `features` (B, M, S, Dv): the m-th <image> of row b is
        images[b, m] -> logits (B, T, vocab)."""
        feats = self.visual_features(images) if features is None else features
        B, M = feats.shape[:2]
        T = ids.shape[1]
        if T > self.lm.cfg.block_size:
            raise ValueError(f"sequence of length {T} exceeds the LM's block_size {self.lm.cfg.block_size}")
        lat = self.resampler(feats.flatten(0, 1))                # (B*M, R, C)
        visual = lat.reshape(B, M * lat.shape[1], -1)            # (B, M*R, C)
        allowed = image_attention_mask(media_index(ids, self.image_token), M, lat.shape[1])
        x = self.lm.drop(self.lm.wte(ids) + self.lm.wpe(torch.arange(T, device=ids.device)))   # (B, T, C)
        for i, block in enumerate(self.lm.h):
            if str(i) in self.xattn:
                x = self.xattn[str(i)](x, visual, allowed)
            x = block(x)
        return self.lm.lm_head(self.lm.ln_f(x))                  # (B, T, vocab)


def caption_loss(logits: torch.Tensor, targets: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """Next-token cross-entropy: logits (B, T, V) at t predict targets[:, t] (ids shifted by one, -100 = not scored)."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=ignore_index)
