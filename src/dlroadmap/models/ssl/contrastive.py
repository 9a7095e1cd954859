"""Contrastive self-supervised learning: SimCLR (Chen et al. 2020, arXiv:2002.05709) and MoCo v2
(He et al. 2019, arXiv:1911.05722; Chen et al. 2020, arXiv:2003.04297).

No labels: each image is augmented twice (data/augment.py), and the network learns to tell which two
views came from the same image among many that did not. What survives every augmentation (the digit,
not its position, slant or stroke) is what the representation keeps.

    x --aug--> v1, v2 --encoder f--> h1, h2 (the representation kept) --head g--> z1, z2 (only for the loss)

The loss is InfoNCE: for a query q with its positive key k+ and negatives k-, all L2-normalised,

    loss = -log  exp(q.k+ / T) / (exp(q.k+ / T) + sum_k- exp(q.k- / T))          (T: temperature)

SimCLR takes the negatives from the batch: the other 2(N - 1) views (NT-Xent, eq. 1 of the paper), so
more negatives need a bigger batch. MoCo keeps the keys of past batches in a FIFO queue (K of them,
independent of the batch size); to keep those keys consistent, they come from a key encoder that is
an exponential moving average of the query encoder (eq. 2 of He et al.), never trained by gradients.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn


class ConvEncoder(nn.Module):
    """x (N, 1, 28, 28) -> h (N, dim): three stride-2 convolutions with batch norm (28 -> 14 -> 7 -> 4),
    then a linear layer. Small on purpose: it is trained on 2 CPU cores."""

    def __init__(self, dim: int = 128, width: int = 32):
        super().__init__()
        w = width
        self.dim = dim
        self.net = nn.Sequential(
            nn.Conv2d(1, w, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(),              # (N, w, 14, 14)
            nn.Conv2d(w, 2 * w, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(2 * w), nn.ReLU(),      # (N, 2w, 7, 7)
            nn.Conv2d(2 * w, 4 * w, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(4 * w), nn.ReLU(),  # (N, 4w, 4, 4)
            nn.Flatten(), nn.Linear(4 * w * 16, dim), nn.BatchNorm1d(dim), nn.ReLU(),                       # (N, dim)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def projection_head(dim: int = 128, hidden: int = 128, out: int = 64) -> nn.Module:
    """SimCLR's g: an MLP on top of h. The loss is computed on z = g(h), and h is what downstream tasks
    use: the paper finds h keeps more information than z (the head may discard what the loss ignores)."""
    return nn.Sequential(nn.Linear(dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, out))


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """SimCLR's normalised temperature-scaled cross-entropy over 2N views.

    z1, z2: (N, d), row i of each from the same image. Each of the 2N views is a query whose positive is
    its partner and whose negatives are the other 2N - 2 views; the loss is the mean over all 2N."""
    # NT-Xent, eq. (1), @chen2020simclr
    n = len(z1)
    z = F.normalize(torch.cat([z1, z2]), dim=1)                         # (2N, d), unit rows
    sim = z @ z.T / temperature                                          # (2N, 2N) cosine / T
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))   # a view is not its own negative
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)             # i <-> i + N
    return F.cross_entropy(sim, partner)


class SimCLR(nn.Module):
    """Encoder + projection head, trained with NT-Xent on two views of each image."""

    def __init__(self, encoder: nn.Module, head: nn.Module, temperature: float = 0.5):
        super().__init__()
        self.encoder, self.head, self.temperature = encoder, head, temperature

    def loss(self, v1: torch.Tensor, v2: torch.Tensor) -> torch.Tensor:
        h = self.encoder(torch.cat([v1, v2]))                           # one pass: batch norm sees both views
        z = self.head(h)
        z1, z2 = z.chunk(2)
        return nt_xent(z1, z2, self.temperature)


def info_nce(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature: float = 0.2) -> torch.Tensor:
    """MoCo's loss (eq. 1 of He et al.). q, k: (N, d) unit queries and their positive keys; queue: (K, d)
    unit negative keys. Logits (N, 1 + K) with the positive in column 0."""
    positive = (q * k).sum(1, keepdim=True)                             # (N, 1)
    negative = q @ queue.T                                               # (N, K)
    logits = torch.cat([positive, negative], dim=1) / temperature
    return F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long, device=q.device))


class MoCo(nn.Module):
    """MoCo v2: a query encoder (+ MLP head) trained by gradients, a key encoder (+ head) that follows it
    as an EMA, and a queue of the last K keys as negatives.

    `bn_splits`: keys are computed on the shuffled batch in that many chunks, each with its own batch-norm
    statistics ("shuffling BN", section 3.3 of He et al.; on 8 GPUs each GPU is a chunk). Without it a
    query and its key share batch statistics, which the network can use to find the positive without
    learning anything about the image."""

    def __init__(self, encoder: nn.Module, head: nn.Module, queue_size: int = 4096, momentum: float = 0.99,
                 temperature: float = 0.2, bn_splits: int = 4):
        # MoCo v2: an MLP projection head and SimCLR's augmentations on MoCo, @chen2020mocov2
        super().__init__()
        self.encoder, self.head = encoder, head
        self.key_encoder, self.key_head = copy.deepcopy(encoder), copy.deepcopy(head)
        for p in self.key_parameters():
            p.requires_grad_(False)                                       # no gradient ever reaches the keys
        self.momentum, self.temperature, self.bn_splits = momentum, temperature, bn_splits
        dim = [m for m in head.modules() if isinstance(m, nn.Linear)][-1].out_features            # d: the head's output size
        self.register_buffer("queue", F.normalize(torch.randn(queue_size, dim), dim=1))   # (K, d) random unit keys to start
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))

    def query_parameters(self):
        return [*self.encoder.parameters(), *self.head.parameters()]

    def key_parameters(self):
        return [*self.key_encoder.parameters(), *self.key_head.parameters()]

    @torch.no_grad()
    def momentum_update(self) -> None:
        """theta_k <- m theta_k + (1 - m) theta_q (eq. 2 of He et al.). The key encoder keeps its own
        batch-norm running statistics: it always runs on batches (train mode), and only the query encoder
        is evaluated."""
        # the key encoder's momentum update, eq. (2), @he2020moco
        for pk, pq in zip(self.key_parameters(), self.query_parameters()):
            pk.mul_(self.momentum).add_(pq.detach(), alpha=1 - self.momentum)

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """Replace the oldest len(keys) entries of the queue (FIFO, written as a ring buffer)."""
        n, size = len(keys), len(self.queue)
        idx = (self.queue_ptr + torch.arange(n, device=keys.device)) % size
        self.queue[idx] = keys.to(self.queue.dtype)                    # (keys may be bf16 under autocast)
        self.queue_ptr.copy_((self.queue_ptr + n) % size)

    @torch.no_grad()
    def keys(self, x: torch.Tensor) -> torch.Tensor:
        """Unit keys (N, d) from the key encoder, batch norm computed on shuffled chunks."""
        perm = torch.randperm(len(x), device=x.device)
        chunks = [self.key_head(self.key_encoder(c)) for c in x[perm].chunk(self.bn_splits)]
        k = torch.empty_like(torch.cat(chunks))
        k[perm] = torch.cat(chunks)                                      # un-shuffle
        return F.normalize(k, dim=1)

    def loss(self, v_query: torch.Tensor, v_key: torch.Tensor) -> torch.Tensor:
        q = F.normalize(self.head(self.encoder(v_query)), dim=1)         # (N, d)
        self.momentum_update()                                           # the key encoder follows the last update
        k = self.keys(v_key)
        loss = info_nce(q, k, self.queue.clone(), self.temperature)      # negatives: the queue before this batch
        self.enqueue(k)
        return loss
