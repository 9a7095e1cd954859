"""DCGAN for 28x28 digits (Goodfellow et al. 2014, arXiv:1406.2661; Radford et al. 2015, arXiv:1511.06434).

Two networks play a game. The discriminator D(x) gives the probability that x is real; the
generator G(z) maps noise z ~ N(0, I) to an image. The minimax value (eq. 1 of Goodfellow et al.):

    min_G max_D  E_x[log D(x)] + E_z[log(1 - D(G(z)))]

D's side is a binary cross-entropy: real labelled 1, generated labelled 0. For G, minimising
log(1 - D(G(z))) "saturates": early on D rejects fakes with confidence, D(G(z)) ~ 0, and the gradient
of log(1 - D) with respect to D's logit is -D(G(z)) ~ 0. The paper therefore trains G to maximise
log D(G(z)) instead (the "non-saturating" loss, gradient -(1 - D(G(z))) ~ -1 there): same fixed point,
strong gradients when G is bad.

DCGAN's architecture rules: strided (transposed) convolutions instead of pooling, batch norm in both
networks (not on G's output or D's input), ReLU in G with tanh on its output, LeakyReLU(0.2) in D,
weights initialised N(0, 0.02), Adam with learning rate 2e-4 and beta1 = 0.5.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn


class Generator(nn.Module):
    """z (N, z_dim) -> image (N, 1, 28, 28) in [-1, 1]."""

    def __init__(self, z_dim: int = 100, width: int = 64):
        super().__init__()
        self.z_dim = z_dim
        self.net = nn.Sequential(
            nn.Linear(z_dim, 2 * width * 7 * 7, bias=False), nn.BatchNorm1d(2 * width * 7 * 7), nn.ReLU(),
            nn.Unflatten(1, (2 * width, 7, 7)),                                                         # (N, 2w, 7, 7)
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),  # (N, w, 14, 14)
            nn.ConvTranspose2d(width, 1, 4, stride=2, padding=1), nn.Tanh(),                            # (N, 1, 28, 28)
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class MinibatchStd(nn.Module):
    """Appends one feature map: the standard deviation of each feature across the batch, averaged
    (Karras et al. 2018, arXiv:1710.10196, section 3). A generator that draws the same few digits makes
    batches with little variety, and D can now see that, so it pushes G towards all the modes."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # minibatch standard deviation (sec. 3), @karras2018progressive
        std = x.std(dim=0, unbiased=False).mean()                            # one number per batch
        return torch.cat([x, std.expand(x.shape[0], 1, *x.shape[2:])], dim=1)  # (N, C + 1, H, W)


class Discriminator(nn.Module):
    """image (N, 1, 28, 28) in [-1, 1] -> logit (N,) of "real"."""

    def __init__(self, width: int = 64, minibatch_std: bool = False):
        super().__init__()
        extra = 1 if minibatch_std else 0
        self.net = nn.Sequential(
            nn.Conv2d(1, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2),                              # (N, w, 14, 14)
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(2 * width), nn.LeakyReLU(0.2),  # (N, 2w, 7, 7)
            *([MinibatchStd()] if minibatch_std else []),                                               # (N, 2w + 1, 7, 7)
            nn.Flatten(), nn.Linear((2 * width + extra) * 7 * 7, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)


class GAN(nn.Module):
    """The pair, so one Trainer (with one optimiser per network) checkpoints and resumes both."""

    def __init__(self, z_dim: int = 100, width: int = 64, minibatch_std: bool = False):
        super().__init__()
        self.generator, self.discriminator = Generator(z_dim, width), Discriminator(width, minibatch_std)
        self.apply(dcgan_init)

    @torch.no_grad()
    def generate(self, z: torch.Tensor, batch: int = 1000) -> torch.Tensor:
        """Images (N, 1, 28, 28) in [0, 1] for noise z (N, z_dim), from G in eval mode (batch norm uses its
        running statistics); G's own mode is restored afterwards, so this can run in the middle of training."""
        was_training = self.generator.training
        self.generator.eval()
        out = torch.cat([self.generator(z[i: i + batch]) for i in range(0, len(z), batch)])
        self.generator.train(was_training)
        return (out + 1) / 2

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n images from z ~ N(0, I)."""
        return self.generate(torch.randn(n, self.generator.z_dim, generator=generator))


def dcgan_init(m: nn.Module) -> None:
    """Radford et al.: all weights from N(0, 0.02); batch-norm scales from N(1, 0.02)."""
    # weights from N(0, 0.02) (sec. 4), @radford2015dcgan
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """-E[log D(x)] - E[log(1 - D(G(z)))]: BCE with real = 1, fake = 0."""
    # the discriminator's side of the value function V(D, G), eq. (1), @goodfellow2014gan
    return (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
            + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))


def generator_loss(fake_logits: torch.Tensor, saturating: bool = False) -> torch.Tensor:
    """Non-saturating: -E[log D(G(z))]. Saturating (the minimax form): E[log(1 - D(G(z)))] = -BCE(logit, 0)."""
    if saturating:
        return -F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def training_step(saturating: bool = False, grad_norms: list[float] | None = None) -> Callable[[Any, Any], dict[str, float]]:
    """The Trainer's manual step for a `GAN` with optimisers "d" and "g": one discriminator update, then one
    generator update, per batch of real images in [0, 1] (Algorithm 1 of Goodfellow et al. with k = 1).
    `grad_norms`, if given, collects the generator's gradient norm after each update."""

    def step(trainer: Any, batch: Any) -> dict[str, float]:
        gan = trainer.model
        real = batch[0] * 2 - 1                                                  # [0, 1] -> G's tanh range [-1, 1]
        z = torch.randn(len(real), gan.generator.z_dim)                          # the Trainer's seeded RNG: resumable
        fake = gan.generator(z)
        real_logits, fake_logits = gan.discriminator(real), gan.discriminator(fake.detach())
        d_loss = trainer.optimize("d", discriminator_loss(real_logits, fake_logits))
        # G's update sees D after D's step.
        g_loss = trainer.optimize("g", generator_loss(gan.discriminator(fake), saturating))
        g_norm = float(torch.sqrt(sum(p.grad.square().sum() for p in gan.generator.parameters())))
        if grad_norms is not None:
            grad_norms.append(g_norm)
        return {"d_loss": d_loss, "g_loss": g_loss, "d_real": float(torch.sigmoid(real_logits.detach()).mean()),
                "d_fake": float(torch.sigmoid(fake_logits.detach()).mean()), "g_grad_norm": g_norm}

    return step


def optimizers(gan: GAN, lr: float = 2e-4, beta1: float = 0.5) -> dict[str, torch.optim.Optimizer]:
    """DCGAN's Adam for each network (lr 2e-4, beta1 0.5: momentum 0.9 made training oscillate, per the paper)."""
    return {"d": torch.optim.Adam(gan.discriminator.parameters(), lr=lr, betas=(beta1, 0.999), fused=True),
            "g": torch.optim.Adam(gan.generator.parameters(), lr=lr, betas=(beta1, 0.999), fused=True)}
