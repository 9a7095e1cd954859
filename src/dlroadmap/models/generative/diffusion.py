"""Denoising diffusion: the noise schedule, DDPM's forward process and ancestral sampler (Ho et al. 2020,
arXiv:2006.11239) and DDIM's deterministic sampler with fewer steps (Song et al. 2020, arXiv:2010.02502).

Forward process: T small Gaussian steps q(x_t | x_{t-1}) = N(sqrt(1 - beta_t) x_{t-1}, beta_t I) destroy an
image. With alpha_t = 1 - beta_t and abar_t = prod_{s<=t} alpha_s, any step has a closed form (eq. 4):

    x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps,   eps ~ N(0, I)

A network eps_theta(x_t, t) learns to predict eps with the "simple" loss |eps - eps_theta(x_t, t)|^2 (eq. 14).
Reversing: from x_t, the predicted x_0 = (x_t - sqrt(1 - abar_t) eps_theta) / sqrt(abar_t) gives the
posterior q(x_{t-1} | x_t, x_0) = N(mu_t, beta~_t I) (eqs. 6-7):

    mu_t    = sqrt(abar_{t-1}) beta_t / (1 - abar_t) x_0 + sqrt(alpha_t) (1 - abar_{t-1}) / (1 - abar_t) x_t
    beta~_t = (1 - abar_{t-1}) / (1 - abar_t) beta_t

and ancestral sampling draws x_{t-1} = mu_t + sqrt(beta~_t) z, T network calls per image.

DDIM (eq. 12) uses the same trained network but a non-Markovian process that can skip steps:

    x_prev = sqrt(abar_prev) x_0 + sqrt(1 - abar_prev - sigma^2) eps_theta + sigma z,
    sigma  = eta sqrt((1 - abar_prev) / (1 - abar_t)) sqrt(1 - abar_t / abar_prev)

eta = 0 is deterministic; 50 steps instead of 1000 give similar samples, 20x faster.

Schedules: linear betas 1e-4 .. 0.02 (Ho et al.) or cosine (Nichol & Dhariwal 2021, arXiv:2102.09672,
eq. 17): abar(t) = f(t) / f(0), f(t) = cos^2(((t / T) + s) / (1 + s) * pi / 2), s = 0.008, with each
beta_t = 1 - abar(t) / abar(t - 1) capped at 0.999. Predicted x_0 is clipped to [-1, 1] (images live there).
"""

from __future__ import annotations

import math

import torch


class NoiseSchedule:
    """The betas and their products; every tensor float32 (as diffusers keeps them), indexed by t = 0 .. T-1."""

    def __init__(self, timesteps: int = 1000, kind: str = "linear", beta_start: float = 1e-4, beta_end: float = 0.02,
                 clip_sample: bool = True):
        if kind == "linear":
            betas = torch.linspace(beta_start, beta_end, timesteps, dtype=torch.float32)
        elif kind == "cosine":
            f = lambda t: math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2   # noqa: E731  (the ratio makes f(0) cancel)
            betas = torch.tensor([min(1 - f((i + 1) / timesteps) / f(i / timesteps), 0.999) for i in range(timesteps)], dtype=torch.float32)
        else:
            raise ValueError("kind must be 'linear' or 'cosine'")
        self.timesteps, self.kind, self.clip_sample = timesteps, kind, clip_sample
        self.betas = betas
        self.alphas = 1.0 - betas
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)

    def _abar(self, t: torch.Tensor | int, like: torch.Tensor) -> torch.Tensor:
        """abar_t shaped to broadcast over an image batch like `like` (N, C, H, W)."""
        # the cosine schedule, eq. (17), @nichol2021improved
        a = self.alphas_cumprod.to(like.device)[torch.as_tensor(t, device=like.device)]
        return a.view(-1, *([1] * (like.ndim - 1))) if a.ndim else a

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """q(x_t | x_0) sampled with the given noise (eq. 4); t (N,) integer steps."""
        # q(x_t | x_0) in closed form, eq. (4), @ho2020ddpm
        abar = self._abar(t, x0)
        return abar.sqrt() * x0 + (1 - abar).sqrt() * noise

    def predict_x0(self, eps: torch.Tensor, t: int, x_t: torch.Tensor) -> torch.Tensor:
        abar = self.alphas_cumprod[t]
        x0 = (x_t - (1 - abar).sqrt() * eps) / abar.sqrt()
        return x0.clamp(-1, 1) if self.clip_sample else x0

    def ddpm_step(self, eps: torch.Tensor, t: int, x_t: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """One ancestral step x_t -> x_{t-1} (eqs. 6-7, variance beta~_t); no noise is added at t = 0."""
        abar_t = self.alphas_cumprod[t]
        abar_prev = self.alphas_cumprod[t - 1] if t > 0 else torch.tensor(1.0)
        beta_t = 1 - abar_t / abar_prev
        x0 = self.predict_x0(eps, t, x_t)
        mean = (abar_prev.sqrt() * beta_t / (1 - abar_t)) * x0 + ((1 - beta_t).sqrt() * (1 - abar_prev) / (1 - abar_t)) * x_t
        if t == 0:
            return mean
        variance = ((1 - abar_prev) / (1 - abar_t) * beta_t).clamp_min(1e-20)
        z = torch.randn(eps.shape, generator=generator, dtype=eps.dtype).to(eps.device)   # CPU generator, any device
        return mean + variance.sqrt() * z

    def ddim_timesteps(self, steps: int) -> list[int]:
        """The `steps` visited, evenly spaced from the start ("leading" spacing): e.g. 980, 960, ..., 0 for 50 of 1000."""
        ratio = self.timesteps // steps
        return [i * ratio for i in range(steps)][::-1]

    def ddim_step(self, eps: torch.Tensor, t: int, t_prev: int, x_t: torch.Tensor, eta: float = 0.0,
                  generator: torch.Generator | None = None, clipped_eps: bool = True) -> torch.Tensor:
        """One DDIM step x_t -> x_{t_prev} (eq. 12); t_prev < 0 means the end (abar = 1).

        clipped_eps: once x_0 is clipped to [-1, 1], the noise direction is re-derived from it,
        eps = (x_t - sqrt(abar_t) x_0) / sqrt(1 - abar_t), so both terms of eq. 12 describe the same x_0
        (diffusers: use_clipped_model_output=True). Without it, the guided eps of classifier-free
        guidance, larger than any noise the network saw, is carried into x_{t_prev} unclipped and the
        digits break up; DDPM's posterior mean uses x_0 and x_t only, so it never has this problem."""
        # the DDIM step, eq. (12), @song2021ddim
        abar_t = self.alphas_cumprod[t]
        abar_prev = self.alphas_cumprod[t_prev] if t_prev >= 0 else torch.tensor(1.0)
        x0 = self.predict_x0(eps, t, x_t)
        if clipped_eps and self.clip_sample:
            eps = (x_t - abar_t.sqrt() * x0) / (1 - abar_t).sqrt()
        sigma = eta * ((1 - abar_prev) / (1 - abar_t) * (1 - abar_t / abar_prev)).sqrt()
        x_prev = abar_prev.sqrt() * x0 + (1 - abar_prev - sigma**2).sqrt() * eps
        if eta > 0:
            x_prev = x_prev + sigma * torch.randn(eps.shape, generator=generator, dtype=eps.dtype).to(eps.device)
        return x_prev


def diffusion_loss(model, schedule: NoiseSchedule, x0: torch.Tensor, y: torch.Tensor | None = None, p_uncond: float = 0.0) -> torch.Tensor:
    """Ho et al.'s simple loss: a random step per image, noise it, predict the noise (eq. 14). With labels,
    each is dropped to -1 ("no class") with probability p_uncond, so one network also learns the
    unconditional model that classifier-free guidance needs (Ho & Salimans 2022, section 3.2)."""
    t = torch.randint(schedule.timesteps, (len(x0),), device=x0.device)
    noise = torch.randn_like(x0)
    if y is not None and p_uncond > 0:
        y = torch.where(torch.rand(len(y), device=y.device) < p_uncond, torch.full_like(y, -1), y)
    return ((model(schedule.add_noise(x0, noise, t), t, y) - noise) ** 2).mean()


@torch.no_grad()
def sample(model, schedule: NoiseSchedule, n: int, *, y: torch.Tensor | None = None, guidance: float = 0.0,
           steps: int | None = None, generator: torch.Generator | None = None, shape: tuple[int, ...] = (1, 28, 28),
           batch: int = 250) -> torch.Tensor:
    """n images in [0, 1], (n, *shape), on the CPU. steps=None: DDPM's ancestral sampler over all T steps;
    steps=k: DDIM (eta 0) in k steps. With labels y and guidance w > 0, classifier-free guidance (Ho &
    Salimans 2022, arXiv:2207.12598, eq. 6): eps = (1 + w) eps(x, t, y) - w eps(x, t, no class).
    Images are made `batch` at a time (the activations of 1,000 at once would not fit a small machine's
    cache); noise comes from `generator` on the CPU, so a seed gives the same digits on any device."""
    if y is not None and len(y) != n:
        raise ValueError(f"y holds {len(y)} labels for {n} images")
    device = next(model.parameters()).device
    out = []
    for start in range(0, n, batch):
        labels = None if y is None else y[start: start + batch].to(device)
        out.append(_sample_batch(model, schedule, min(batch, n - start), labels, guidance, steps, generator, shape, device))
    return torch.cat(out)


def _sample_batch(model, schedule: NoiseSchedule, n: int, y, guidance: float, steps: int | None, generator, shape, device) -> torch.Tensor:
    x = torch.randn(n, *shape, generator=generator).to(device)       # x_T ~ N(0, I)

    def eps(x_t: torch.Tensor, t: int) -> torch.Tensor:
        # classifier-free guidance, eq. (6), @ho2022cfg
        tt = torch.full((n,), t, dtype=torch.long, device=device)
        if y is None or guidance == 0:
            return model(x_t, tt, y)
        both = model(torch.cat([x_t, x_t]), torch.cat([tt, tt]), torch.cat([y, torch.full_like(y, -1)]))  # -1: no class
        cond, uncond = both.chunk(2)
        return (1 + guidance) * cond - guidance * uncond

    if steps is None:
        for t in range(schedule.timesteps - 1, -1, -1):
            x = schedule.ddpm_step(eps(x, t), t, x, generator)
    else:
        ts = schedule.ddim_timesteps(steps)
        for i, t in enumerate(ts):
            x = schedule.ddim_step(eps(x, t), t, ts[i + 1] if i + 1 < len(ts) else -1, x)
    return ((x + 1) / 2).clamp(0, 1).cpu()
