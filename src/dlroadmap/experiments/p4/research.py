"""Phase 4, Research Topics.

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


# --- p4.research.foundation ----------------------------------------------------------------------


class FoundationConfig(ExperimentConfig):
    tasks: list[Literal["sentiment", "topic", "arithmetic"]] = Field(["sentiment", "topic", "arithmetic"], min_length=1)
    items: int = Field(184, ge=8, le=10_000, description="test items per task (the first 16 of each shuffled task are the demonstration pool)")
    shots: list[int] = Field([0, 1, 4, 8], min_length=1, description="k, the demonstrations in the prompt")
    orderings: int = Field(6, ge=0, le=24, description="random orders of the same 4 demonstrations (Lu et al. 2022); 0 skips")
    chat: bool = Field(True, description="also the zero-shot question in the model's chat template")
    generate_tokens: int = Field(4, ge=0, le=64, description="free generation (greedy) parsed against label scoring; 0 skips")
    cot_items: int = Field(60, ge=0, le=10_000, description="arithmetic items asked with chain of thought (generation: slow); 0 skips")
    cot_tokens: int = Field(80, ge=8, le=512)
    speed_tokens: int = Field(32, ge=4, le=1024, description="greedy tokens timed with and without the KV cache")
    minilm_items: int = Field(184, ge=8, le=10_000, description="items per task for MiniLM's zero-shot classification")
    bootstrap: int = Field(2000, ge=100, le=100_000)

    QUICK: ClassVar[dict] = {"tasks": ["sentiment", "topic"], "items": 48, "shots": [0, 4], "orderings": 0, "chat": False,
                             "generate_tokens": 0, "cot_items": 0, "speed_tokens": 12}


def _demos(task, pool: list[tuple[str, int]], k: int, rng) -> list[tuple[str, int]]:
    """k demonstrations from the pool, the labels as balanced as k allows, in random order."""
    by_label: dict[int, list] = {}
    for item in pool:
        by_label.setdefault(item[1], []).append(item)
    labels = sorted(by_label)
    chosen = [by_label[labels[i % len(labels)]][i // len(labels)] for i in range(k)] if len(labels) <= k or k == 0 else \
        [pool[j] for j in rng.permutation(len(pool))[:k]]
    return [chosen[j] for j in rng.permutation(len(chosen))]


def _shuffled(name: str, seed: int):
    """(task, its items in a seeded random order, the generator that drew it, to draw demonstrations next).
    The first 16 items are the demonstration pool of every study of the task; the rest are test items."""
    import numpy as np

    from dlroadmap.data.prompt_tasks import TASKS

    task = TASKS[name]() if name == "sentiment" else TASKS[name](seed=seed)
    rng = np.random.default_rng(seed)
    return task, [task.items[j] for j in rng.permutation(len(task.items))], rng


def _parse(task, text: str) -> int:
    """The label a free-form answer names (the last number for arithmetic, the first label word otherwise); -1 if none."""
    import re

    if task.name == "arithmetic":
        nums = re.findall(r"-?\d+", text)
        return int(nums[-1]) if nums and nums[-1].lstrip("-").isdigit() and 0 <= int(nums[-1]) < len(task.labels) else -1
    words = re.findall(r"[a-z]+", text.lower())
    return next((task.labels.index(w) for w in words if w in task.labels), -1)


def run_foundation(config: FoundationConfig, tracker: Tracker) -> Result:
    import numpy as np

    from dlroadmap.models.sequence.llama import num_params
    from dlroadmap.nlp.decoding import generate
    from dlroadmap.nlp.llm import load_smollm2
    from dlroadmap.nlp.prompting import Scorer, accuracy, bootstrap_ci, paired_bootstrap_ci, prefix_text, query_text
    from dlroadmap.ui import progress

    torch.manual_seed(config.seed)
    t0 = time.perf_counter()
    model, tok = load_smollm2()
    m: dict[str, float] = {"load_seconds": time.perf_counter() - t0, "parameters": float(num_params(model))}

    # 1. Decoding: the KV cache against re-reading the whole sequence at every step (same greedy tokens).
    prompt = tok.chat("Write one sentence about the sea.")
    timed = {}
    for use_cache in (True, False):
        t = time.perf_counter()
        out = generate(model, prompt, config.speed_tokens, use_cache=use_cache)
        timed[use_cache] = (out, out.shape[1] / (time.perf_counter() - t))
    m["tokens_per_s_cache"], m["tokens_per_s_no_cache"] = timed[True][1], timed[False][1]
    m["kv_cache_speedup"] = timed[True][1] / timed[False][1]
    m["cache_tokens_equal"] = float(torch.equal(timed[True][0], timed[False][0]))
    g = torch.Generator().manual_seed(config.seed)
    samples = {"greedy": tok.decode(timed[True][0][0]),
               "T=0.8, top-p 0.9": tok.decode(generate(model, prompt, config.speed_tokens, temperature=0.8, top_p=0.9, generator=g)[0])}

    # 2. The prompt study: label scoring at k shots, orderings, calibration, chat template, generation, CoT.
    study: dict[str, dict[str, np.ndarray]] = {}
    spreads: dict[str, list[float]] = {}
    with progress() as bar:
        for name in config.tasks:
            task, items, rng = _shuffled(name, config.seed)
            pool, test = items[:16], items[16:16 + config.items]
            y = np.array([label for _, label in test])
            scorer = Scorer(model, tok, task)
            res: dict[str, np.ndarray] = {}
            job = bar.add_task(f"prompting: {name}", total=None) if bar else None
            for k in config.shots:
                demos = _demos(task, pool, k, rng)
                lp = scorer.score(demos, test)
                res[f"{k}shot"] = accuracy(lp, y)
                res[f"{k}shot_calibrated"] = accuracy(lp, y, scorer.content_free(demos))
                if bar:
                    bar.update(job, info=f"{k}-shot")
            if config.orderings:
                demos4 = _demos(task, pool, 4, rng)
                spreads[name] = []
                for o in range(config.orderings):
                    order = [demos4[j] for j in rng.permutation(4)]
                    spreads[name].append(float(accuracy(scorer.score(order, test), y).mean()))
            if config.chat:
                res["0shot_chat"] = accuracy(scorer.score([], test, chat=True), y)
            if config.generate_tokens:
                k = max(config.shots)
                prefix_ids = tok.ids(prefix_text(task, _demos(task, pool, k, rng)))
                answers = []
                for text, _ in test:
                    ids = torch.cat([prefix_ids, tok.ids(query_text(task, text))], 1)
                    answers.append(_parse(task, tok.decode(generate(model, ids, config.generate_tokens, eos_id=tok.eos_id)[0])))
                res[f"{k}shot_generated"] = (np.array(answers) == y).astype(float)
            if config.cot_items and name == "arithmetic":
                sub = test[: config.cot_items]
                direct, cot = [], []
                for text, label in sub:
                    q = f"{text} Think step by step, then end with 'The answer is N.'"
                    cot.append(_parse(task, tok.decode(generate(model, tok.chat(q), config.cot_tokens, eos_id=tok.eos_id)[0])) == label)
                    direct.append(_parse(task, tok.decode(generate(model, tok.chat(f"{text} Reply with the number only."), 6, eos_id=tok.eos_id)[0])) == label)
                res["chat_direct_cot_items"], res["chat_cot"] = np.array(direct, float), np.array(cot, float)
            study[name] = res
            for cond, correct in res.items():
                m[f"{name}_{cond}_accuracy"] = float(correct.mean())
                lo, hi = bootstrap_ci(correct, config.seed, config.bootstrap)
                m[f"{name}_{cond}_ci_low"], m[f"{name}_{cond}_ci_high"] = lo, hi
            m[f"{name}_chance"] = float(np.bincount(y).max() / len(y))
            k = max(config.shots)
            if k > 0 and 0 in config.shots:
                lo, _ = paired_bootstrap_ci(res[f"{k}shot"], res["0shot"], config.seed, config.bootstrap)
                m[f"{name}_fewshot_gain_ci_low"] = lo
            for shots, tag in ((min(config.shots), "zero_shot" if min(config.shots) == 0 else f"{min(config.shots)}shot"), (k, "fewshot")):
                lo, _ = paired_bootstrap_ci(res[f"{shots}shot_calibrated"], res[f"{shots}shot"], config.seed, config.bootstrap)
                m[f"{name}_{tag}_calibration_gain_ci_low"] = lo
                m[f"{name}_{tag}_calibration_gain"] = float(res[f"{shots}shot_calibrated"].mean() - res[f"{shots}shot"].mean())
            if name in spreads:
                m[f"{name}_ordering_min"], m[f"{name}_ordering_max"] = min(spreads[name]), max(spreads[name])
                m[f"{name}_ordering_spread"] = max(spreads[name]) - min(spreads[name])
            if bar:
                bar.remove_task(job)

    # 3. An encoder as a zero-shot classifier: MiniLM similarity to label descriptions, three wordings.
    minilm = _minilm_zero_shot(config, m)
    fig = _foundation_figure(config, study, spreads, minilm, m)
    plot = tracker.log_figure(fig, "prompt_study")
    notes = f"greedy: {samples['greedy']!r}; sampled: {samples['T=0.8, top-p 0.9']!r}; KV cache {m['kv_cache_speedup']:.1f}x faster"
    return Result(metrics=m, artifacts={"prompt_study": str(plot)}, notes=notes)


WORDINGS = {
    "sentiment": {"label word": ["negative", "positive"],
                  "description": ["a negative movie review", "a positive movie review"],
                  "sentence": ["I hated this movie, it was bad.", "I loved this movie, it was great."]},
    "topic": {"label word": ["sports", "weather", "food", "technology"],
              "description": ["news about sports", "news about the weather", "news about food", "news about technology"],
              "sentence": ["The team won the match.", "It will rain tomorrow.", "The chef cooked a delicious meal.",
                           "The company released new software."]},
}


def _minilm_zero_shot(config: FoundationConfig, m: dict) -> dict[str, dict[str, float]]:
    """Each sentence gets the label whose description it is most similar to: no training, the prompt is the
    wording of the labels ("prompt engineering" for an encoder)."""
    import numpy as np

    from dlroadmap.nlp.minilm import embed
    from dlroadmap.nlp.prompting import bootstrap_ci

    out: dict[str, dict[str, float]] = {}
    for name, wordings in WORDINGS.items():
        _, items, _ = _shuffled(name, config.seed)
        items = items[16:16 + config.minilm_items]
        x = embed([t for t, _ in items])
        y = np.array([label for _, label in items])
        out[name] = {}
        for wording, descriptions in wordings.items():
            correct = ((x @ embed(descriptions).T).argmax(1).numpy() == y).astype(float)
            key = f"minilm_{name}_{wording.replace(' ', '_')}"
            m[f"{key}_accuracy"] = out[name][wording] = float(correct.mean())
            m[f"{key}_ci_low"], m[f"{key}_ci_high"] = bootstrap_ci(correct, config.seed, config.bootstrap)
        m[f"minilm_{name}_wording_spread"] = max(out[name].values()) - min(out[name].values())
    return out


def _foundation_figure(config, study, spreads, minilm, m) -> plt.Figure:
    import numpy as np

    fig, axes = plt.subplots(1, len(study) + 1, figsize=(5 * (len(study) + 1), 4))
    for ax, (name, res) in zip(axes, study.items()):
        conds = list(res)
        acc = [res[c].mean() for c in conds]
        lo = [acc[i] - m[f"{name}_{c}_ci_low"] for i, c in enumerate(conds)]
        hi = [m[f"{name}_{c}_ci_high"] - acc[i] for i, c in enumerate(conds)]
        ax.barh(conds, acc, xerr=[lo, hi], color="tab:blue", alpha=0.7)
        ax.axvline(m[f"{name}_chance"], color="grey", ls=":", label="majority class")
        if name in spreads:
            ax.plot(spreads[name], [len(conds) - 0.5] * len(spreads[name]), "k|", ms=12, label="4-shot, other orders")
        ax.set_xlim(0, 1)
        ax.set_title(f"SmolLM2-135M: {name} ({len(next(iter(res.values())))} items, 95% CI)", fontsize=9)
        ax.legend(fontsize=7, loc="lower right")
    ax = axes[-1]
    names = list(minilm)
    wordings = list(next(iter(minilm.values())))
    for j, w in enumerate(wordings):
        ax.bar(np.arange(len(names)) + 0.25 * j, [minilm[n][w] for n in names], 0.25, label=w)
    ax.set_xticks(np.arange(len(names)) + 0.25, names)
    ax.set_ylim(0, 1)
    ax.set_title("MiniLM zero-shot: label wording", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


foundation = Experiment(FoundationConfig, run_foundation)
