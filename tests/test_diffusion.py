"""DDPM/DDIM written out (models/generative/diffusion.py) against Hugging Face diffusers' schedulers given
the same noise and model output, and the U-Net's contract."""

from __future__ import annotations

import pytest
import torch

from dlroadmap.models.generative.diffusion import NoiseSchedule, diffusion_loss, sample
from dlroadmap.models.generative.unet import UNet

KINDS = {"linear": "linear", "cosine": "squaredcos_cap_v2"}


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_schedule_and_forward_noising_equal_diffusers(kind):
    from diffusers import DDPMScheduler

    ref = DDPMScheduler(num_train_timesteps=1000, beta_schedule=KINDS[kind])
    ours = NoiseSchedule(1000, kind)
    torch.testing.assert_close(ours.betas, ref.betas, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(ours.alphas_cumprod, ref.alphas_cumprod, rtol=1e-6, atol=1e-7)
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.rand(8, 1, 28, 28, generator=g) * 2 - 1, torch.randn(8, 1, 28, 28, generator=g)
    t = torch.tensor([0, 1, 10, 100, 400, 700, 998, 999])
    torch.testing.assert_close(ours.add_noise(x0, noise, t), ref.add_noise(x0, noise, t), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_ddpm_steps_equal_diffusers_given_the_same_noise(kind):
    from diffusers import DDPMScheduler

    ref = DDPMScheduler(num_train_timesteps=1000, beta_schedule=KINDS[kind])
    ours = NoiseSchedule(1000, kind)
    g = torch.Generator().manual_seed(1)
    for t in (999, 500, 37, 1, 0):
        x_t, eps = torch.randn(4, 1, 28, 28, generator=g), torch.randn(4, 1, 28, 28, generator=g)
        expected = ref.step(eps, t, x_t, generator=torch.Generator().manual_seed(t)).prev_sample
        got = ours.ddpm_step(eps, t, x_t, generator=torch.Generator().manual_seed(t))
        torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6, msg=f"t={t}")


@pytest.mark.parametrize("eta", [0.0, 0.5])
def test_ddim_steps_and_timesteps_equal_diffusers(eta):
    from diffusers import DDIMScheduler

    ref = DDIMScheduler(num_train_timesteps=1000, beta_schedule="linear")
    ref.set_timesteps(50)
    ours = NoiseSchedule(1000, "linear")
    assert ours.ddim_timesteps(50) == ref.timesteps.tolist()
    g = torch.Generator().manual_seed(2)
    ts = ours.ddim_timesteps(50)
    for i in (0, 1, 25, 49):
        t, t_prev = ts[i], ts[i + 1] if i + 1 < len(ts) else -1
        x_t, eps = torch.randn(4, 1, 28, 28, generator=g), torch.randn(4, 1, 28, 28, generator=g)
        for clipped in (True, False):
            expected = ref.step(eps, t, x_t, eta=eta, use_clipped_model_output=clipped, generator=torch.Generator().manual_seed(i)).prev_sample
            got = ours.ddim_step(eps, t, t_prev, x_t, eta=eta, generator=torch.Generator().manual_seed(i), clipped_eps=clipped)
            torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6, msg=f"step {i}, t={t}, clipped eps {clipped}")


def test_a_perfect_noise_predictor_recovers_x0_with_ddim():
    """If eps_theta returned the true noise, one DDIM step from any t lands exactly on x_0."""
    s = NoiseSchedule(1000, "cosine")
    x0 = torch.rand(3, 1, 28, 28) * 2 - 1
    noise = torch.randn_like(x0)
    x_t = s.add_noise(x0, noise, torch.full((3,), 600))
    torch.testing.assert_close(s.ddim_step(noise, 600, -1, x_t), x0, rtol=1e-5, atol=1e-5)


def test_unet_shapes_conditioning_and_zero_start():
    torch.manual_seed(0)
    net = UNet(channels=(8, 16, 32), num_classes=10, timesteps=100)
    x, t = torch.randn(4, 1, 28, 28), torch.tensor([0, 5, 50, 99])
    assert torch.equal(net(x, t, torch.tensor([1, 2, 3, -1])), torch.zeros(4, 1, 28, 28))   # zero-initialised output layer
    torch.nn.init.normal_(net.out.weight, 0, 0.1)
    a, b = net(x, t, torch.tensor([1, 1, 1, 1])), net(x, t, torch.tensor([2, 2, 2, 2]))
    assert a.shape == (4, 1, 28, 28) and not torch.allclose(a, b)
    loss = diffusion_loss(net, NoiseSchedule(100), x.clamp(-1, 1), torch.tensor([1, 2, 3, -1]))
    loss.backward()
    assert all(p.grad is not None for p in net.parameters())


def test_sampling_runs_both_samplers_and_guidance_changes_the_output():
    torch.manual_seed(0)
    net = UNet(channels=(8, 16, 16), num_classes=10, timesteps=20).eval()
    torch.nn.init.normal_(net.out.weight, 0, 0.1)
    s = NoiseSchedule(20)
    y = torch.arange(3)
    ddpm = sample(net, s, 3, y=y, generator=torch.Generator().manual_seed(0))
    ddim = sample(net, s, 3, y=y, steps=5, generator=torch.Generator().manual_seed(0))
    guided = sample(net, s, 3, y=y, steps=5, guidance=3.0, generator=torch.Generator().manual_seed(0))
    assert ddpm.shape == ddim.shape == (3, 1, 28, 28) and float(ddim.min()) >= 0 and float(ddim.max()) <= 1
    assert not torch.allclose(ddim, guided)


class _ByClass(torch.nn.Module):
    """A stand-in noise predictor: eps = 1 for a labelled image, 0.25 without a class; records the labels it saw."""
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))
        self.seen = []

    def forward(self, x, t, y):
        self.seen.append(y)
        return torch.where(y >= 0, 1.0, 0.25).view(-1, 1, 1, 1).expand_as(x) + self.w


def test_classifier_free_guidance_combines_conditional_and_unconditional():
    """eps = (1 + w) eps(x, y) - w eps(x, no class) (Ho & Salimans 2022, eq. 6), checked through one DDIM step to x_0."""
    s = NoiseSchedule(50, clip_sample=False)
    for w in (0.0, 0.5, 3.0):
        got = sample(_ByClass(), s, 4, y=torch.arange(4), guidance=w, steps=1, generator=torch.Generator().manual_seed(0))
        x_t = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
        eps = (1 + w) * 1.0 - w * 0.25
        abar = s.alphas_cumprod[0]
        expected = ((x_t - (1 - abar).sqrt() * eps) / abar.sqrt() + 1) / 2
        torch.testing.assert_close(got, expected.clamp(0, 1), rtol=1e-6, atol=1e-6)


def test_label_dropout_for_guidance():
    net, s = _ByClass(), NoiseSchedule(50)
    y = torch.arange(10).repeat(100)
    torch.manual_seed(0)
    diffusion_loss(net, s, torch.zeros(1000, 1, 28, 28), y, p_uncond=0.2)
    dropped = net.seen[-1] == -1
    assert 0.15 < float(dropped.float().mean()) < 0.25 and torch.equal(net.seen[-1][~dropped], y[~dropped])
    diffusion_loss(net, s, torch.zeros(1000, 1, 28, 28), y)
    assert torch.equal(net.seen[-1], y)                          # p_uncond = 0: every label kept
