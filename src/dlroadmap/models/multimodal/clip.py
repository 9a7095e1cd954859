"""CLIP (Radford et al. 2021, "Learning Transferable Visual Models From Natural Language Supervision",
arXiv:2103.00020): an image encoder and a text encoder trained so that an image and its caption land
close together in one embedding space, and every other caption in the batch far away.

    images (N, 1, 28, 28) -> image encoder -> (N, Di) -> W_i -> L2-normalise -> I (N, E)
    captions (N, L) ids   -> text encoder  -> (N, Dt) -> W_t -> L2-normalise -> T (N, E)
    logits = exp(t) * I @ T^T   (N, N): row i scores image i against every caption in the batch

The loss is InfoNCE in both directions (the paper's Figure 3 pseudocode): cross-entropy of each row
(image -> which caption?) and each column (caption -> which image?) against the diagonal. The
temperature is learned as t = log(1 / T), started at T = 0.07 and clipped so exp(t) <= 100.

Once trained, a classifier is written, not trained: embed one caption per class ("a photo of the number
k"), and an image's class is the caption it is closest to (zero-shot). Prompt ensembling averages the
embeddings of several templates per class before comparing (section 3.1.4 of the paper).

On MNIST many captions in a batch are the same sentence ("the digit seven" for several sevens), so some
"negatives" are really positives; CLIP does not correct for that and neither does this lesson: the
loss cannot reach 0, the embedding still learns what the captions share.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from dlroadmap.models.sequence.transformer import EncoderBlock


class TextEncoder(nn.Module):
    """ids (N, L) -> (N, width): a pre-norm transformer with a causal mask (as CLIP's), read at the end
    token, which has seen the whole caption. Padding after the end token is never seen by it."""

    def __init__(self, vocab_size: int, length: int, width: int = 64, layers: int = 2, heads: int = 4):
        super().__init__()
        self.width = width
        self.tok = nn.Embedding(vocab_size, width)
        self.pos = nn.Parameter(torch.randn(length, width) * 0.01)
        self.blocks = nn.ModuleList(EncoderBlock(width, heads, 4 * width, dropout=0.0, norm_first=True, activation="gelu")
                                    for _ in range(layers))
        self.ln = nn.LayerNorm(width)

    def forward(self, ids: torch.Tensor, ends: torch.Tensor) -> torch.Tensor:
        h = self.tok(ids) + self.pos[: ids.shape[1]]                        # (N, L, width)
        for block in self.blocks:
            h = block(h, is_causal=True)
        h = self.ln(h)
        return h[torch.arange(len(ids), device=ids.device), ends]          # (N, width): the end token


class ViTEncoder(nn.Module):
    """A Vision Transformer (Dosovitskiy et al. 2020): the image cut into patch x patch squares, each a
    token (a strided convolution is a linear map of each patch), a learned class token in front, position
    embeddings, pre-norm transformer blocks; the class token's output is the image's feature."""

    def __init__(self, image_size: int = 28, patch: int = 7, width: int = 64, layers: int = 2, heads: int = 4, channels: int = 1):
        super().__init__()
        if image_size % patch:
            raise ValueError(f"patch {patch} must divide the image size {image_size}")
        self.dim = width
        self.patchify = nn.Conv2d(channels, width, patch, stride=patch)     # (N, width, S/p, S/p)
        n = (image_size // patch) ** 2
        self.cls = nn.Parameter(torch.zeros(1, 1, width))
        self.pos = nn.Parameter(torch.randn(n + 1, width) * 0.02)
        self.blocks = nn.ModuleList(EncoderBlock(width, heads, 4 * width, dropout=0.0, norm_first=True, activation="gelu")
                                    for _ in range(layers))
        self.ln = nn.LayerNorm(width)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Every output token, (N, 1 + patches, width): what a model that reads the grid (Flamingo) takes."""
        # patch embeddings plus position embeddings, eq. (1), @dosovitskiy2020vit
        p = self.patchify(x).flatten(2).transpose(1, 2)                    # (N, patches, width)
        h = torch.cat([self.cls.expand(len(x), -1, -1), p], 1) + self.pos  # (N, 1 + patches, width)
        for block in self.blocks:
            h = block(h)
        return self.ln(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tokens(x)[:, 0]                                        # (N, width): the class token


class CLIP(nn.Module):
    def __init__(self, image_encoder: nn.Module, image_dim: int, text_encoder: TextEncoder, embed_dim: int = 64,
                 temperature: float = 0.07):
        super().__init__()
        self.visual, self.text = image_encoder, text_encoder
        self.image_proj = nn.Linear(image_dim, embed_dim, bias=False)      # W_i
        self.text_proj = nn.Linear(text_encoder.width, embed_dim, bias=False)  # W_t
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / temperature)))   # t, learned

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.image_proj(self.visual(x)), dim=-1)         # (N, E), unit rows

    def encode_text(self, ids: torch.Tensor, ends: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text_proj(self.text(ids, ends)), dim=-1)    # (N, E), unit rows

    def scale(self) -> torch.Tensor:
        return self.logit_scale.exp().clamp(max=100.0)                     # exp(t), clipped as in the paper

    def forward(self, x: torch.Tensor, ids: torch.Tensor, ends: torch.Tensor) -> torch.Tensor:
        """Image-text logits (N, N); row i: image i against caption j."""
        return self.scale() * self.encode_image(x) @ self.encode_text(ids, ends).T


def clip_loss(logits_per_image: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE: (CE over rows + CE over columns) / 2, the diagonal being the true pairs."""
    # the symmetric cross-entropy over the similarity matrix (fig. 3), @radford2021clip
    target = torch.arange(len(logits_per_image), device=logits_per_image.device)
    return (F.cross_entropy(logits_per_image, target) + F.cross_entropy(logits_per_image.T, target)) / 2


def class_embeddings(model: CLIP, ids: torch.Tensor, ends: torch.Tensor) -> torch.Tensor:
    """Zero-shot classifier weights from captions (T templates, C classes, L): each template's caption
    embedded, averaged over templates, normalised again (prompt ensembling). One template: (C, E) as is."""
    T, C, L = ids.shape
    emb = model.encode_text(ids.reshape(T * C, L), ends.reshape(T * C)).view(T, C, -1)
    return F.normalize(emb.mean(0), dim=-1)                                # (C, E)
