"""Phase 4, Research Topics: p4.research.diffusion.

  p4.research.diffusion  A class-conditional denoising diffusion model (DDPM, Ho et al. 2020) on MNIST:
                         a small U-Net written here predicts the noise, trained through the Trainer by
                         step budget with an EMA of its weights and labels dropped 10% of the time, so
                         the same network also models digits without a class (classifier-free
                         guidance, Ho & Salimans 2022). Then: each digit asked for at the stated
                         guidance scale and judged like the VAE's and the GAN's samples beside the
                         floor (real digits) and the ceiling (noise, blur); the guidance scale against
                         FLD and generated-digit accuracy; DDPM's ancestral sampler over all T steps
                         against DDIM in 50 (Song et al. 2020) on the same digits and starting noise
                         (samples/s and FLD); and the "no class" model alone.

How it fits in minutes on 2 cores, where TeaPearce's Conditional_Diffusion_MNIST trains a 6.6M-parameter
U-Net for ~20 GPU-minutes: T = 400 steps with the cosine schedule (not 1000), a 3-level U-Net of
0.34M parameters whose full-resolution blocks have 16 channels (models/generative/unet.py), 2,000 steps
of batch 64 with a one-cycle learning rate, an EMA of the weights to sample from, and DDIM in 50 steps
for every judged set but the DDPM comparison. bf16 autocast (`precision`) pays only on CPUs with AMX.

Samples are judged by our own LeNet-5 (evaluate/generative.py): no Inception weights exist offline and
Inception never read digits, so FLD numbers compare only with each other and only at the same sample
count (the floor, real digits, is measured with as many images as the generated sets).
"""

from __future__ import annotations

import time
from typing import ClassVar, Literal

import matplotlib.pyplot as plt
import torch
from pydantic import Field

from dlroadmap.data import TensorLoader
from dlroadmap.data.prepare import image_pixels
from dlroadmap.errors import UserError
from dlroadmap.evaluate.generative import floor_and_ceiling, image_grid, judge_and_reference, quality_bars, samples_figure
from dlroadmap.experiments.base import Experiment, ExperimentConfig, PositiveInt, Result
from dlroadmap.models.generative.diffusion import NoiseSchedule, diffusion_loss, sample
from dlroadmap.models.generative.unet import UNet
from dlroadmap.train import EMA, ModelCheckpoint, Tracker, Trainer, seed_everything


class DiffusionConfig(ExperimentConfig):
    dataset: Literal["mnist5k", "mnist"] = Field("mnist", description="mnist5k is embedded; mnist needs DLR_DATA_DIR or a download")
    timesteps: int = Field(400, ge=10, le=4000, description="T, the diffusion steps (DDPM: 1000; 400 as in TeaPearce's MNIST model)")
    schedule: Literal["cosine", "linear"] = Field("cosine", description="noise schedule: cosine (Nichol & Dhariwal) or linear 1e-4..0.02 (Ho et al.)")
    channels: list[PositiveInt] = Field([16, 32, 64], min_length=3, max_length=3, description="U-Net widths at 28x28, 14x14, 7x7 (multiples of 8)")
    steps: int = Field(2000, ge=1, le=1_000_000, description="optimiser steps (training is by step budget, not epochs)")
    batch_size: int = Field(64, ge=2, le=65536)
    lr: float = Field(2e-3, gt=0, le=1, description="peak of the one-cycle schedule (Adam)")
    ema: float = Field(0.999, gt=0, lt=1, description="decay of the weights' moving average that samples are drawn from")
    p_uncond: float = Field(0.1, ge=0, lt=1, description="how often a label is dropped in training (classifier-free guidance)")
    guidance: float = Field(2.0, ge=0, le=50, description="the guidance scale w at which generated-digit accuracy is asserted")
    guidance_sweep: list[float] = Field([0.0, 1.0, 2.0, 4.0], min_length=2, description="scales in the FLD/accuracy trade-off")
    per_class: int = Field(30, ge=5, le=10_000, description="images asked of each digit at each guidance scale")
    samples: int = Field(1000, ge=10, le=100_000, description="digits asked for (a tenth each) at the stated scale, judged by FLD, score and coverage")
    ddpm_samples: int = Field(100, ge=10, le=100_000, description="digits drawn by both DDPM (all T steps) and DDIM for their comparison")
    ddim_steps: int = Field(50, ge=2, le=4000)
    judge_epochs: int = Field(8, ge=1, le=100)

    # Quick: a smaller batch gives more updates for the same seconds (batch 32 x 400 steps reached 0.73
    # accuracy at w = 4 where 64 x 200 reached 0.41); the stated scale is higher for a model this young.
    QUICK: ClassVar[dict] = {"dataset": "mnist5k", "steps": 300, "batch_size": 32, "samples": 60, "ddpm_samples": 10, "guidance": 4.0,
                             "guidance_sweep": [0.0, 4.0], "per_class": 6}


def run_diffusion(config: DiffusionConfig, tracker: Tracker) -> Result:
    problems = [f"ddim_steps={config.ddim_steps} must be <= timesteps={config.timesteps}"] if config.ddim_steps > config.timesteps else []
    problems += [f"channels={config.channels}: every width must be a multiple of 8 (group norm uses 8 groups)"] if any(c % 8 for c in config.channels) else []
    problems += [f"samples={config.samples} must be >= 10 x per_class={config.per_class} (the sweep reuses those samples)"] \
        if config.samples // 10 < config.per_class else []
    if problems:
        raise UserError("; ".join(problems))
    seed_everything(config.seed)
    data = image_pixels(config.dataset, seed=config.seed)
    judge, reference, bounds = judge_and_reference(config.dataset, tracker.root / "_judges", data.X_train, data.X_test, n=config.samples,
                                                   seed=config.seed, epochs=config.judge_epochs)
    schedule = NoiseSchedule(config.timesteps, config.schedule)

    # 1. Train eps_theta(x_t, t, y) by step budget; images scaled to [-1, 1] as in DDPM.
    seed_everything(config.seed)
    net = UNet(tuple(config.channels), num_classes=10, timesteps=config.timesteps)
    opt = torch.optim.Adam(net.parameters(), lr=config.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, config.lr, total_steps=config.steps, pct_start=0.1)
    ema = EMA(config.ema)
    losses: list[float] = []

    def step(model, batch):
        loss = diffusion_loss(model, schedule, batch[0] * 2 - 1, batch[1], config.p_uncond)
        losses.append(loss.item())
        return loss, None, None

    trainer = Trainer(net, opt, step=step, max_steps=config.steps, scheduler=sched, scheduler_interval="step", precision=config.precision,
                      device=config.device, seed=config.seed, tracker=tracker, log_prefix="ddpm", description="DDPM U-Net",
                      callbacks=[ema, ModelCheckpoint(tracker.run_dir / "checkpoints", monitor=None)])
    t0 = time.perf_counter()
    history = trainer.fit(TensorLoader(data.X_train, data.y_train, batch_size=config.batch_size, shuffle=True, seed=config.seed),
                          resume=config.resume)
    train_s = time.perf_counter() - t0
    losses = losses or [h["train_loss"] for h in history]     # a resumed, finished run trains no step here
    model = ema.module.eval()                    # sampled on the training device; images come back on the CPU
    gen = lambda k: torch.Generator().manual_seed(config.seed + k)  # noqa: E731

    # 2. The model's digits: each class asked for samples/10 times, guided at the stated scale w. The
    #    sweep asks per_class of each digit at every other scale (accuracy and FLD at equal n).
    def ask(per_class: int, w: float, steps: int | None, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        asked = torch.arange(10).repeat(per_class)      # 0..9, 0..9, ...: every slice holds every digit (the score's splits need that)
        return sample(model, schedule, len(asked), y=asked, guidance=w, steps=steps, generator=gen(seed)), asked

    digits, asked = ask(config.samples // 10, config.guidance, config.ddim_steps, 2)
    quality = judge.judge(digits, reference, asked)
    guided_acc = quality["accuracy"]
    first = torch.arange(len(asked)) < 10 * config.per_class      # the first per_class of each digit
    sweep = {}
    for w in config.guidance_sweep:
        images, labels = (digits[first], asked[first]) if w == config.guidance else ask(config.per_class, w, config.ddim_steps, 3)
        judged = judge.judge(images, reference, labels)
        sweep[w] = {"accuracy": judged["accuracy"], "fld": judged["fld"]}

    # 3. DDPM over all T steps against DDIM in ddim_steps: the same digits asked, the same scale, the same
    #    starting noise; and the "no class" model alone (the 10% of training without labels).
    timed = {}
    for name, steps in (("ddpm", None), ("ddim", config.ddim_steps)):
        t0 = time.perf_counter()
        images, _ = ask(config.ddpm_samples // 10, config.guidance, steps, 1)
        timed[name] = (images, len(images) / (time.perf_counter() - t0))
    timed["no class"] = (sample(model, schedule, len(images), steps=config.ddim_steps, generator=gen(1)), 0.0)
    pair_bounds = floor_and_ceiling(judge, data.X_train, reference, n=len(images), seed=config.seed)
    pair = {name: judge.judge(images, reference) for name, (images, _) in timed.items()}

    fig = _report_figure(losses, data.X_test[:1], schedule, timed, pair | pair_bounds, sweep, digits, bounds | {"DDIM samples": quality}, config)
    plots = {"diffusion_report": tracker.log_figure(fig, "diffusion_report"),
             "samples": tracker.log_figure(samples_figure(digits,
                                                          f"diffusion: DDIM-{config.ddim_steps}, w={config.guidance:g} (FLD {quality['fld']:.1f})"), "samples")}
    no_guidance = sweep.get(0.0, {}).get("accuracy", float("nan"))
    metrics = {
        "fld_ddim": quality["fld"], "classifier_score_ddim": quality["classifier_score"], "ddim_classes_present": float(quality["classes_present"]),
        "ddim_max_min_class_ratio": quality["max_min_ratio"], "fld_ddim_over_noise": quality["fld"] / bounds["Gaussian noise"]["fld"],
        "fld_real_train": bounds["real train digits"]["fld"], "fld_gaussian_noise": bounds["Gaussian noise"]["fld"], "fld_blurred": bounds["blurred digits"]["fld"],
        "pair_fld_ddpm": pair["ddpm"]["fld"], "pair_fld_ddim": pair["ddim"]["fld"], "pair_fld_no_class": pair["no class"]["fld"],
        "pair_fld_real": pair_bounds["real train digits"]["fld"],
        "pair_fld_noise": pair_bounds["Gaussian noise"]["fld"], "pair_fld_ddim_over_ddpm": pair["ddim"]["fld"] / pair["ddpm"]["fld"],
        "classifier_score_ddpm": pair["ddpm"]["classifier_score"], "ddpm_classes_present": float(pair["ddpm"]["classes_present"]),
        "ddpm_max_min_class_ratio": pair["ddpm"]["max_min_ratio"],
        "ddpm_samples_per_second": timed["ddpm"][1], "ddim_samples_per_second": timed["ddim"][1],
        "ddim_speedup": timed["ddim"][1] / timed["ddpm"][1],
        "guided_accuracy": guided_acc, "unguided_accuracy": no_guidance, "guidance_accuracy_gain": guided_acc - no_guidance,
        **{f"accuracy_w{w:g}": v["accuracy"] for w, v in sweep.items()}, **{f"fld_w{w:g}": v["fld"] for w, v in sweep.items()},
        "final_train_loss": history[-1]["train_loss"], "judge_test_accuracy": judge.test_accuracy,
        "diffusion_train_seconds": train_s, "unet_parameters": float(sum(p.numel() for p in net.parameters())),
    }
    return Result(metrics=metrics, artifacts={k: str(v) for k, v in plots.items()} | {"checkpoints": str(tracker.run_dir / "checkpoints")},
                  history=history,
                  notes=f"guidance w={config.guidance:g}: the judge reads the asked digit {guided_acc:.3f} of the time (w=0: {no_guidance:.3f}); "
                        f"FLD DDIM-{config.ddim_steps} {pair['ddim']['fld']:.1f} vs DDPM-{config.timesteps} {pair['ddpm']['fld']:.1f} "
                        f"on {config.ddpm_samples} images, {metrics['ddim_speedup']:.1f}x the samples/s")


def _report_figure(losses: list[float], x0, schedule: NoiseSchedule, timed, pair, sweep, digits, judged, config: DiffusionConfig) -> plt.Figure:
    fig = plt.figure(figsize=(15, 9.5))
    grid = fig.add_gridspec(3, 4)
    # The forward process q(x_t | x_0) on one test digit, at evenly spaced t.
    ts = torch.linspace(0, schedule.timesteps - 1, 10).long()
    noisy = schedule.add_noise(x0.repeat(10, 1, 1, 1) * 2 - 1, torch.randn(10, 1, 28, 28, generator=torch.Generator().manual_seed(0)), ts)
    image_grid(fig.add_subplot(grid[0, 0:2]), ((noisy + 1) / 2).clamp(0, 1), rows=1,
               title=f"forward process x_t, t = {', '.join(str(int(t)) for t in ts[::3])}, ... ({config.schedule} schedule, T={schedule.timesteps})")
    ax = fig.add_subplot(grid[0, 2])
    loss = torch.tensor(losses)
    k = max(1, min(50, len(loss) // 10))
    ax.plot(range(k, len(loss) + 1), loss.unfold(0, k, 1).mean(1), lw=1)    # running mean over k steps
    ax.set_yscale("log")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("|eps - eps_theta|^2")
    ax.set_title(f"training loss (running mean of {k} steps)", fontsize=8)
    ax = fig.add_subplot(grid[0, 3])
    ws = list(sweep)
    ax.plot(ws, [sweep[w]["accuracy"] for w in ws], "o-", label="asked digit read by the judge")
    ax.axhline(0.9, color="k", ls="--", lw=0.8)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("guidance scale w")
    ax.set_ylabel("accuracy")
    twin = ax.twinx()
    twin.plot(ws, [sweep[w]["fld"] for w in ws], "s--", color="tab:red")
    twin.set_ylabel(f"FLD of {10 * config.per_class} images (red)", fontsize=7)
    ax.set_title("classifier-free guidance: accuracy against FLD", fontsize=8)
    ax.legend(fontsize=7, loc="lower right")
    image_grid(fig.add_subplot(grid[1:, 0]), digits.view(-1, 10, 1, 28, 28)[:10].transpose(0, 1).reshape(-1, 1, 28, 28), rows=10,
               title=f"asked for 0..9 (one row each), w = {config.guidance:g}, DDIM-{config.ddim_steps}")
    for k, (name, (images, per_s)) in enumerate(timed.items()):
        steps = schedule.timesteps if name == "ddpm" else config.ddim_steps
        what = f"{name.upper()}, {steps} steps, w = {config.guidance:g}: {per_s:.1f} samples/s" if per_s else f"no class, DDIM-{steps}"
        image_grid(fig.add_subplot(grid[1, 1 + k]), images[:40], rows=4, title=f"{what}\nFLD {pair[name]['fld']:.1f} (n={len(images)})")
    quality_bars(fig.add_subplot(grid[2, 1:3]), judged, title=f"FLD of {config.samples} images to the real test digits (lower is better)")
    ax = fig.add_subplot(grid[2, 3])
    ax.axis("off")
    ax.text(0, 0.5, f"U-Net widths {config.channels}, T={schedule.timesteps},\n{config.steps} steps of {config.batch_size} images\n"
            "FLD: Fréchet distance on our LeNet-5's features\n(no Inception weights offline; compare FLDs\nonly with each other, at equal n)",
            fontsize=8, va="center")
    fig.suptitle(f"Class-conditional DDPM on {config.dataset}", fontsize=10)
    fig.tight_layout()
    return fig


diffusion = Experiment(DiffusionConfig, run_diffusion)
