"""Variational autoencoder (Kingma & Welling 2013, arXiv:1312.6114), optionally class-conditional.

A latent variable model p(x) = integral p(x|z) p(z) dz with p(z) = N(0, I) and a decoder network for
p(x|z) (here independent Bernoullis, one per pixel, parameterised by logits). The posterior is
intractable, so an encoder q(z|x) = N(mu(x), diag sigma^2(x)) approximates it, and both are trained by
maximising the evidence lower bound (ELBO, eq. 3 of the paper):

    log p(x) >= E_q[log p(x|z)] - KL(q(z|x) || p(z))

The expectation is estimated with one sample drawn as z = mu + sigma * eps, eps ~ N(0, I) (the
reparameterisation trick, eq. 4), so gradients flow through mu and sigma. The KL between two
Gaussians is closed-form (Appendix B):  KL = -1/2 sum_j (1 + log sigma_j^2 - mu_j^2 - sigma_j^2).

A tighter bound for evaluation, the importance-weighted bound (Burda et al. 2015, arXiv:1509.00519):

    log p(x) >= E[ log 1/k sum_i p(x, z_i) / q(z_i|x) ],  z_i ~ q(z|x)

equal to the ELBO at k = 1 and tending to log p(x) as k grows: its negative is the NLL estimate.

Conditional VAE (Sohn et al. 2015): the class, one-hot, is concatenated to the encoder's input and to
the decoder's latent code, so the decoder can be asked for a given digit.

Pixels are in [0, 1] and the "Bernoulli" likelihood is the binary cross-entropy on those grey levels,
as in pytorch/examples' VAE whose test loss (about 105.6 after 10 epochs) we compare with.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class VAE(nn.Module):
    """784 -> hidden -> (mu, log sigma^2) of `latent` dims -> hidden -> 784 logits; `num_classes` > 0 makes it conditional."""

    def __init__(self, latent: int = 20, hidden: int = 400, pixels: int = 784, num_classes: int = 0):
        super().__init__()
        self.latent, self.pixels, self.num_classes = latent, pixels, num_classes
        self.enc = nn.Linear(pixels + num_classes, hidden)
        self.mu = nn.Linear(hidden, latent)
        self.logvar = nn.Linear(hidden, latent)
        self.dec1 = nn.Linear(latent + num_classes, hidden)
        self.dec2 = nn.Linear(hidden, pixels)

    def _with_class(self, v: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        # the conditional VAE: the label given to encoder and decoder, @sohn2015learning
        if self.num_classes == 0:
            return v
        if y is None:
            raise ValueError("a conditional VAE needs the class y")
        return torch.cat([v, F.one_hot(y, self.num_classes).to(v.dtype)], dim=1)

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """x (N, 1, 28, 28) or (N, 784) in [0, 1] -> mu, log sigma^2, each (N, latent)."""
        h = F.relu(self.enc(self._with_class(x.flatten(1), y)))
        return self.mu(h), self.logvar(h)

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """z (N, latent) -> Bernoulli logits (N, 784)."""
        return self.dec2(F.relu(self.dec1(self._with_class(z, y))))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode(x, y)
        z = reparameterise(mu, logvar)
        return self.decode(z, y), mu, logvar

    @torch.no_grad()
    def sample(self, n: int, y: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """n images (n, 1, 28, 28) in [0, 1]: z ~ p(z), then the decoder's Bernoulli means."""
        z = torch.randn(n, self.latent, generator=generator)
        return torch.sigmoid(self.decode(z, y)).view(n, 1, 28, 28)


def reparameterise(mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """z = mu + sigma * eps (eq. 4): the sample is a differentiable function of (mu, sigma)."""
    eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
    return mu + torch.exp(0.5 * logvar) * eps


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, I)) per example (N,), closed form (Appendix B)."""
    # -KL(q || N(0, I)) = 1/2 sum(1 + log sigma^2 - mu^2 - sigma^2), appendix B, @kingma2013vae
    return -0.5 * (1 + logvar - mu.square() - logvar.exp()).sum(1)


def negative_elbo(logits: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """-ELBO per example (N,): summed binary cross-entropy over pixels + KL, the loss pytorch/examples reports."""
    reconstruction = F.binary_cross_entropy_with_logits(logits, x.flatten(1), reduction="none").sum(1)
    return reconstruction + gaussian_kl(mu, logvar)


@torch.no_grad()
def importance_weighted_nll(model: VAE, x: torch.Tensor, k: int, y: torch.Tensor | None = None, rows: int = 50_000,
                            generator: torch.Generator | None = None) -> torch.Tensor:
    """-log p(x) estimated with k importance samples per image (Burda et al. eq. 8), (N,) in nats.

    log w_i = log p(x|z_i) + log p(z_i) - log q(z_i|x); the bound is logsumexp_i(log w_i) - log k.
    Samples are drawn in chunks of at most `rows` decoded images and combined with a running logsumexp,
    so memory stays flat however large k is."""
    # the k-sample importance-weighted bound L_k, eq. (8), @burda2015iwae
    chunk = max(1, rows // len(x))
    mu, logvar = model.encode(x, y)                                          # (N, D)
    std = torch.exp(0.5 * logvar)
    target = x.flatten(1)
    log_normal = lambda v, m, s: (-0.5 * ((v - m) / s).square() - s.log() - 0.5 * math.log(2 * math.pi)).sum(-1)  # noqa: E731
    total = torch.full((len(x),), -math.inf, dtype=torch.float64)
    for start in range(0, k, chunk):
        m = min(chunk, k - start)
        eps = torch.randn(m, *mu.shape, generator=generator)                 # (m, N, D)
        z = mu + std * eps
        logits = model.decode(z.flatten(0, 1), None if y is None else y.repeat(m)).view(m, len(x), -1)
        log_px_z = -F.binary_cross_entropy_with_logits(logits, target.expand(m, -1, -1), reduction="none").sum(-1)
        log_w = log_px_z + log_normal(z, 0.0, torch.ones_like(std)) - log_normal(z, mu, std)   # (m, N)
        total = torch.logaddexp(total, torch.logsumexp(log_w.double(), 0))
    return -(total - math.log(k)).float()
