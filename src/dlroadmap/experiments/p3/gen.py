"""Phase 3, Generative Models.

  p3.gen.vae   A VAE (Kingma & Welling 2013) in pytorch/examples' configuration (784-400-20, Adam,
               batch 128, 10 epochs), trained twice through the Trainer: with that recipe's constant
               learning rate 1e-3 (its published test loss is about 105.6 on MNIST) and with a
               one-cycle schedule chosen on a validation split (same network, same epochs). Then the
               importance-weighted NLL for k = 1, 50, 5000 samples, a 2-d latent model (the latent
               manifold of the paper's figure 4 and test digits coloured by class), a conditional VAE
               asked for each digit, and 10,000 samples judged by the Fréchet LeNet Distance beside the
               floor (real digits) and the ceiling (noise, blur).

  p3.gen.gan   A DCGAN (Radford et al. 2015) trained through the Trainer with two optimisers
               (discriminator, then generator, per batch): D(x) and D(G(z)) per epoch, a sample grid at
               fixed noise after each epoch, the saturating minimax generator loss against the
               non-saturating one (the generator's gradient norm over the first steps, from the same
               start), and 10,000 samples judged like the VAE's; checkpoints resume bit for bit.

Samples are judged by our own LeNet-5 (evaluate/generative.py): no Inception weights exist offline and
Inception never read digits, so FLD numbers compare only with each other.
"""

from __future__ import annotations

import time
from typing import ClassVar, Literal

import matplotlib.pyplot as plt
import torch
from pydantic import Field

from dlroadmap.data import TensorLoader
from dlroadmap.data.prepare import Pixels, image_pixels
from dlroadmap.deploy.bundle import save_bundle
from dlroadmap.evaluate.generative import DigitJudge, image_grid, judge_and_reference, quality_bars, samples_figure
from dlroadmap.experiments.base import Experiment, ExperimentConfig, PositiveInt, Result
from dlroadmap.models.generative.dcgan import GAN, optimizers, training_step
from dlroadmap.models.generative.vae import VAE, gaussian_kl, importance_weighted_nll, negative_elbo
from dlroadmap.train import Callback, ModelCheckpoint, Tracker, Trainer, seed_everything

DATASETS = Literal["mnist5k", "mnist"]


class VAEConfig(ExperimentConfig):
    dataset: DATASETS = Field("mnist", description="mnist5k is embedded; mnist needs DLR_DATA_DIR or a download")
    latent: int = Field(20, ge=1, le=512)
    hidden: int = Field(400, ge=8, le=8192)
    epochs: int = Field(10, ge=1, le=1000, description="pytorch/examples trains 10")
    batch_size: int = Field(128, ge=1, le=65536)
    lr: float = Field(1e-2, gt=0, le=1, description="peak of the one-cycle schedule (chosen on a validation split: 3e-3, 5e-3, 1e-2)")
    latent2_epochs: int = Field(10, ge=1, le=1000, description="the 2-d latent model")
    cvae_epochs: int = Field(10, ge=1, le=1000, description="the conditional VAEs")
    cvae_latents: list[PositiveInt] = Field([2, 20], min_length=1, description="latent sizes of the conditional VAEs (the first one is judged)")
    iw_images: int = Field(1000, ge=10, le=10_000, description="test images for the importance-weighted bound")
    iw_k: list[PositiveInt] = Field([1, 50, 5000], min_length=2, description="importance samples per image")
    samples: int = Field(10_000, ge=1000, le=100_000, description="generated digits judged by FLD, classifier score and coverage")
    judge_epochs: int = Field(8, ge=1, le=100, description="training epochs of the LeNet-5 judge")

    # Quick: the bound at k = 1,000 is within ~0.5 nats of k = 5,000 at a fifth of the decoder calls.
    QUICK: ClassVar[dict] = {"dataset": "mnist5k", "epochs": 10, "latent2_epochs": 20, "cvae_epochs": 20, "iw_images": 100, "iw_k": [1, 50, 1000]}


def elbo_step(model: VAE, batch) -> tuple[torch.Tensor, None, None]:
    """Per-image -ELBO averaged over the batch (pytorch/examples sums it; Adam does not care about the scale)."""
    x, y = batch[0], batch[1]
    logits, mu, logvar = model(x, y if model.num_classes else None)
    return negative_elbo(logits, x, mu, logvar).mean(), None, None


def train_vae(model: VAE, data: Pixels, config: VAEConfig, tracker: Tracker | None, *, epochs: int, lr: float, schedule: str,
              prefix: str) -> tuple[list[dict[str, float]], float]:
    """Train through the Trainer; the test split is the per-epoch evaluation set (it selects nothing). Returns (history, seconds)."""
    train = TensorLoader(data.X_train, data.y_train, batch_size=config.batch_size, shuffle=True, seed=config.seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=epochs * len(train)) if schedule == "one-cycle" else None
    trainer = Trainer(model, opt, step=elbo_step, max_epochs=epochs, scheduler=scheduler, scheduler_interval="step", device="cpu",
                      seed=config.seed, tracker=tracker, log_prefix=prefix, description=prefix)
    t0 = time.perf_counter()
    history = trainer.fit(train, TensorLoader(data.X_test, data.y_test, batch_size=1000))
    return history, time.perf_counter() - t0


def judge_for(config: VAEConfig | GANConfig, tracker: Tracker, data: Pixels) -> tuple[DigitJudge, tuple[torch.Tensor, torch.Tensor], dict]:
    """The judge, the real test statistics, and the floor and ceiling at the test split's size."""
    return judge_and_reference(config.dataset, tracker.root / "_judges", data.X_train, data.X_test, n=len(data.X_test), seed=config.seed,
                               epochs=config.judge_epochs)


def run_vae(config: VAEConfig, tracker: Tracker) -> Result:
    seed_everything(config.seed)
    data = image_pixels(config.dataset, seed=config.seed)
    judge, reference, bounds = judge_for(config, tracker, data)

    # 1. The pytorch/examples recipe (constant 1e-3), then the same network with a one-cycle schedule.
    seed_everything(config.seed)
    examples = VAE(config.latent, config.hidden)
    hist_examples, _ = train_vae(examples, data, config, tracker, epochs=config.epochs, lr=1e-3, schedule="constant", prefix="examples_recipe")
    seed_everything(config.seed)
    vae = VAE(config.latent, config.hidden)
    history, train_s = train_vae(vae, data, config, tracker, epochs=config.epochs, lr=config.lr, schedule="one-cycle", prefix="vae")
    vae.eval()

    # 2. The closed-form KL against torch.distributions on the encoder's real outputs, and the IW bound.
    sub_x = data.X_test[: config.iw_images]
    with torch.no_grad():
        mu, logvar = vae.encode(sub_x)
        q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
        p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
        kl_err = float((gaussian_kl(mu, logvar) - torch.distributions.kl_divergence(q, p).sum(1)).abs().max())
    g = torch.Generator().manual_seed(config.seed)
    iw = {k: float(importance_weighted_nll(vae, sub_x, k, generator=g).mean()) for k in config.iw_k}

    # 3. Samples judged beside the floor and the ceiling.
    t0 = time.perf_counter()
    samples = vae.sample(config.samples, generator=torch.Generator().manual_seed(config.seed + 1))
    samples_per_s = config.samples / (time.perf_counter() - t0)
    quality = judge.judge(samples, reference)

    # 4. The 2-d latent model and the conditional VAE.
    seed_everything(config.seed)
    vae2 = VAE(2, config.hidden)
    hist2, _ = train_vae(vae2, data, config, tracker, epochs=config.latent2_epochs, lr=config.lr, schedule="one-cycle", prefix="vae_2d")
    # A conditional VAE is asked for each digit 100 times. With a large code, the encoder can put the
    # class into z as well, the decoder learns to read it from there, and a prior sample then carries a
    # random class that competes with the label; a small code leaves room for style only.
    asked = torch.arange(10).repeat_interleave(100)
    cvae_acc, cvae_loss, drawn_by = {}, {}, {}
    for latent in config.cvae_latents:
        seed_everything(config.seed)
        cvae = VAE(latent, config.hidden, num_classes=10)
        hist_c, _ = train_vae(cvae, data, config, tracker, epochs=config.cvae_epochs, lr=config.lr, schedule="one-cycle", prefix=f"cvae_{latent}d")
        drawn_by[latent] = cvae.eval().sample(len(asked), asked, generator=torch.Generator().manual_seed(config.seed + 2))
        cvae_acc[latent], cvae_loss[latent] = judge.accuracy_on(drawn_by[latent], asked), hist_c[-1]["val_loss"]
    c_samples = drawn_by[config.cvae_latents[0]]   # the one the expectation judges is the one shown

    plots = {"vae_report": tracker.log_figure(_report_figure(vae, vae2, data, samples, c_samples, config), "vae_report"),
             "vae_quality": tracker.log_figure(_quality_figure(history, hist_examples, iw, bounds | {"VAE samples": quality}, config), "vae_quality"),
             "samples": tracker.log_figure(samples_figure(samples, f"VAE: z ~ N(0, I) (FLD {quality['fld']:.1f})"), "samples")}
    metrics = {
        "vae_test_loss": history[-1]["val_loss"], "examples_recipe_test_loss": hist_examples[-1]["val_loss"],
        "vae_2d_test_loss": hist2[-1]["val_loss"], **{f"cvae_{k}d_test_loss": v for k, v in cvae_loss.items()},
        "kl_max_abs_err_vs_torch_distributions": kl_err,
        **{f"iw_nll_k{k}": v for k, v in iw.items()},
        "iw_nll_gain_largest_k": iw[min(config.iw_k)] - iw[max(config.iw_k)],
        "judge_test_accuracy": judge.test_accuracy,
        "fld_vae": quality["fld"], "classifier_score_vae": quality["classifier_score"], "vae_classes_present": float(quality["classes_present"]),
        "vae_max_min_class_ratio": quality["max_min_ratio"],
        "fld_real_train": bounds["real train digits"]["fld"], "fld_gaussian_noise": bounds["Gaussian noise"]["fld"],
        "fld_blurred": bounds["blurred digits"]["fld"], "classifier_score_real_train": bounds["real train digits"]["classifier_score"],
        "fld_vae_over_noise": quality["fld"] / bounds["Gaussian noise"]["fld"],
        **{f"cvae_{k}d_judge_accuracy": v for k, v in cvae_acc.items()}, "vae_train_seconds": train_s, "vae_samples_per_second": samples_per_s,
        "vae_parameters": float(sum(p.numel() for p in vae.parameters())),
    }
    # The one-cycle VAE as a bundle (safetensors + family "vae"): torch.hub's `vae` entry point and the Hub layout read it.
    bundle = save_bundle(tracker.run_dir / "model", vae, name=f"vae-{config.dataset}", family="vae",
                         kwargs={"latent": config.latent, "hidden": config.hidden}, input_shape=[1, 28, 28], classes=[], dataset=config.dataset,
                         preprocessing={"divide_by": 255.0, "output": "Bernoulli logits of the 784 pixels in [0, 1]"},
                         source={"node": "p3.gen.vae", "run_dir": str(tracker.run_dir), "vae_test_loss": metrics["vae_test_loss"]})
    plots["model"] = bundle
    return Result(metrics=metrics, artifacts={k: str(v) for k, v in plots.items()}, history=history,
                  notes=f"FLD: VAE {quality['fld']:.1f}, real digits {bounds['real train digits']['fld']:.1f}, noise {bounds['Gaussian noise']['fld']:.0f}; "
                        f"the judge is our LeNet-5 ({judge.test_accuracy:.3f} on the real test split), not Inception")


def _report_figure(vae: VAE, vae2: VAE, data: Pixels, samples: torch.Tensor, c_samples: torch.Tensor, config: VAEConfig) -> plt.Figure:
    """Reconstructions, samples, an interpolation, the 2-d manifold and latent space, conditional samples."""
    fig = plt.figure(figsize=(13, 8.5))
    grid = fig.add_gridspec(3, 3)
    with torch.no_grad():
        x = data.X_test[:10]
        recon = torch.sigmoid(vae.decode(vae.encode(x)[0])).view(-1, 1, 28, 28)
        image_grid(fig.add_subplot(grid[0, 0]), torch.cat([x, recon]), rows=2, title="test digits (top) and their reconstructions (mean code)")
        image_grid(fig.add_subplot(grid[0, 1]), samples[:40], rows=4, title="samples z ~ N(0, I)")
        a, b = vae.encode(data.X_test[:2])[0]
        t = torch.linspace(0, 1, 10)[:, None]
        path = torch.sigmoid(vae.decode((1 - t) * a + t * b)).view(-1, 1, 28, 28)
        image_grid(fig.add_subplot(grid[0, 2]), path, rows=1, title="linear interpolation between two test digits' codes")
        # Figure 4 of the paper: decode a grid of z placed at Gaussian quantiles, so equal areas of prior mass.
        q = torch.distributions.Normal(0, 1).icdf(torch.linspace(0.05, 0.95, 15))
        zz = torch.stack(torch.meshgrid(q, q.flip(0), indexing="xy"), -1).reshape(-1, 2)
        image_grid(fig.add_subplot(grid[1:, 0]), torch.sigmoid(vae2.decode(zz)).view(-1, 1, 28, 28), rows=15,
                   title="2-d latent manifold (z at Gaussian quantiles 0.05..0.95)")
        mu2 = vae2.encode(data.X_test)[0]
    ax = fig.add_subplot(grid[1:, 1])
    pts = ax.scatter(mu2[:, 0], mu2[:, 1], c=data.y_test, cmap="tab10", s=4)
    fig.colorbar(pts, ax=ax, ticks=range(10))
    ax.set_title("test digits' 2-d codes (mean of q(z|x)), coloured by class", fontsize=8)
    image_grid(fig.add_subplot(grid[1:, 2]), c_samples.view(10, 100, 1, 28, 28)[:, :10].reshape(-1, 1, 28, 28), rows=10,
               title=f"conditional VAE (latent {config.cvae_latents[0]}) asked for 0..9 (one row each)")
    fig.suptitle(f"VAE on {config.dataset}: latent {config.latent}, hidden {config.hidden}", fontsize=10)
    fig.tight_layout()
    return fig


def _quality_figure(history, hist_examples, iw: dict[int, float], judged: dict, config: VAEConfig) -> plt.Figure:
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
    for h, name in ((hist_examples, "constant 1e-3 (pytorch/examples)"), (history, f"one-cycle, peak {config.lr:g}")):
        axes[0].plot([r["epoch"] for r in h], [r["val_loss"] for r in h], "o-", ms=3, label=f"{name}: {h[-1]['val_loss']:.2f}")
    if config.dataset == "mnist":
        axes[0].axhline(105.6, color="k", ls="--", lw=0.8, label="published, 10 epochs: 105.6")
    axes[0].set_xlabel("epoch")
    axes[0].set_ylabel("test -ELBO per image (nats)")
    axes[0].legend(fontsize=7)
    ks = sorted(iw)
    axes[1].plot(ks, [iw[k] for k in ks], "o-")
    axes[1].set_xscale("log")
    axes[1].set_xlabel("importance samples k")
    axes[1].set_ylabel("NLL estimate (nats)")
    axes[1].set_title(f"importance-weighted bound on {config.iw_images} test digits (k=1 is the ELBO)", fontsize=8)
    quality_bars(axes[2], judged)
    fig.tight_layout()
    return fig


# --- p3.gen.gan ---------------------------------------------------------------------------------------


class GANConfig(ExperimentConfig):
    dataset: DATASETS = Field("mnist", description="mnist5k is embedded; mnist needs DLR_DATA_DIR or a download")
    epochs: int = Field(5, ge=1, le=1000)
    batch_size: int = Field(64, ge=2, le=65536)
    lr: float = Field(2e-4, gt=0, le=1, description="Adam, both networks (DCGAN)")
    beta1: float = Field(0.5, ge=0, lt=1, description="Adam's beta1 (DCGAN: 0.5, not 0.9)")
    z_dim: int = Field(100, ge=1, le=4096)
    width: int = Field(32, ge=4, le=1024, description="channels of the first D layer / last G layer (64: 4x the compute, ~85 ms a step here)")
    loss: Literal["non-saturating", "saturating"] = Field("non-saturating", description="generator loss of the main run")
    compare_steps: int = Field(200, ge=10, le=100_000, description="steps of each generator loss in the saturating vs non-saturating comparison")
    samples: int = Field(10_000, ge=1000, le=100_000)
    judge_epochs: int = Field(8, ge=1, le=100)

    QUICK: ClassVar[dict] = {"dataset": "mnist5k", "epochs": 12, "compare_steps": 80}


class EpochSamples(Callback):
    """After every epoch: G(z) at the same noise (how the samples form, one row per epoch) and the FLD of
    2,000 fresh samples with the seconds trained so far (sample quality against training time)."""

    def __init__(self, z: torch.Tensor, judge: DigitJudge, reference: tuple[torch.Tensor, torch.Tensor], seed: int):
        self.z, self.judge, self.reference, self.seed = z, judge, reference, seed
        self.rows: list[torch.Tensor] = []
        self.fld: list[tuple[float, float]] = []     # (seconds of training, FLD)
        self.seconds = 0.0

    def on_fit_start(self, trainer: Trainer) -> None:
        self.t0 = time.perf_counter()

    def on_epoch_metrics(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        self.seconds += time.perf_counter() - self.t0
        self.rows.append(trainer.model.generate(self.z))
        fld = self.judge.judge(trainer.model.sample(2000, generator=torch.Generator().manual_seed(self.seed)), self.reference)["fld"]
        self.fld.append((self.seconds, fld))
        metrics["fld_2000"] = fld
        self.t0 = time.perf_counter()                # judging is not training time

    def state_dict(self) -> dict:
        return {"fld": [list(p) for p in self.fld], "seconds": self.seconds}

    def load_state_dict(self, state: dict) -> None:
        self.fld, self.seconds = [tuple(p) for p in state["fld"]], float(state["seconds"])


def gan_trainer(config: GANConfig, gan: GAN, *, saturating: bool, tracker: Tracker | None = None, max_steps: int | None = None,
                callbacks: list[Callback] = (), grad_norms: list[float] | None = None) -> Trainer:
    """The Trainer for one GAN run: optimisers "d" and "g", and a manual step that updates D then G on each batch."""
    return Trainer(gan, optimizers(gan, config.lr, config.beta1), manual_step=training_step(saturating, grad_norms),
                   max_epochs=None if max_steps else config.epochs, max_steps=max_steps, device="cpu", seed=config.seed,
                   tracker=tracker, log_prefix="gan" if tracker else "", callbacks=callbacks,
                   description=f"DCGAN ({'saturating' if saturating else 'non-saturating'} G loss)")


def run_gan(config: GANConfig, tracker: Tracker) -> Result:
    seed_everything(config.seed)
    data = image_pixels(config.dataset, seed=config.seed)
    judge, reference, bounds = judge_for(config, tracker, data)
    train = lambda: TensorLoader(data.X_train, data.y_train, batch_size=config.batch_size, shuffle=True, seed=config.seed)  # noqa: E731

    # 1. Why the paper switches losses: from the same initial networks and batches, the generator's
    #    gradient norm over the first steps under each loss.
    norms: dict[str, list[float]] = {}
    for name, saturating in (("saturating", True), ("non-saturating", False)):
        seed_everything(config.seed)
        norms[name] = []
        gan_trainer(config, GAN(config.z_dim, config.width), saturating=saturating, max_steps=config.compare_steps,
                    grad_norms=norms[name]).fit(train())

    # 2. The main run, checkpointed (dlr run p3.gen.gan --resume continues it exactly).
    seed_everything(config.seed)
    gan = GAN(config.z_dim, config.width)
    grid = EpochSamples(torch.randn(10, config.z_dim, generator=torch.Generator().manual_seed(config.seed + 3)), judge, reference, config.seed + 4)
    trainer = gan_trainer(config, gan, saturating=config.loss == "saturating", tracker=tracker,
                          callbacks=[ModelCheckpoint(tracker.run_dir / "checkpoints", monitor=None), grid])
    t0 = time.perf_counter()
    history = trainer.fit(train(), resume=config.resume)
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    samples = gan.sample(config.samples, generator=torch.Generator().manual_seed(config.seed + 1))
    samples_per_s = config.samples / (time.perf_counter() - t0)
    quality = judge.judge(samples, reference)

    fig = _gan_figure(history, norms, grid.rows, samples, bounds | {"GAN samples": quality}, config)
    plot = tracker.log_figure(fig, "gan_report")
    tracker.log_figure(samples_figure(samples, f"DCGAN: G(z) (FLD {quality['fld']:.1f})"), "samples")
    # Once D has learned to reject the first fakes (the second half of the comparison window), the
    # saturating loss's gradient has collapsed while the non-saturating one keeps its size.
    late = slice(config.compare_steps // 2, config.compare_steps)
    mean = lambda v: sum(v) / len(v)  # noqa: E731
    metrics = {
        "fld_gan": quality["fld"], "classifier_score_gan": quality["classifier_score"], "gan_classes_present": float(quality["classes_present"]),
        "gan_max_min_class_ratio": quality["max_min_ratio"], "fld_gan_over_noise": quality["fld"] / bounds["Gaussian noise"]["fld"],
        "fld_real_train": bounds["real train digits"]["fld"], "fld_gaussian_noise": bounds["Gaussian noise"]["fld"],
        "fld_blurred": bounds["blurred digits"]["fld"], "judge_test_accuracy": judge.test_accuracy,
        "g_grad_norm_saturating": mean(norms["saturating"][late]), "g_grad_norm_non_saturating": mean(norms["non-saturating"][late]),
        "d_real_final": history[-1]["train_d_real"], "d_fake_final": history[-1]["train_d_fake"],
        "gan_train_seconds": train_s, "gan_samples_per_second": samples_per_s,
        "fld_gan_after_first_epoch": grid.fld[0][1], "gan_first_epoch_seconds": grid.fld[0][0],
        "generator_parameters": float(sum(p.numel() for p in gan.generator.parameters())),
        "discriminator_parameters": float(sum(p.numel() for p in gan.discriminator.parameters())),
    }
    metrics["g_grad_norm_ratio"] = metrics["g_grad_norm_non_saturating"] / max(metrics["g_grad_norm_saturating"], 1e-12)
    return Result(metrics=metrics, artifacts={"gan_report": str(plot), "checkpoints": str(tracker.run_dir / "checkpoints")}, history=history,
                  notes=f"FLD: GAN {quality['fld']:.1f}, real digits {bounds['real train digits']['fld']:.1f}, noise {bounds['Gaussian noise']['fld']:.0f}; "
                        f"{quality['classes_present']} digits, max/min class frequency {quality['max_min_ratio']:.2f}")


def _gan_figure(history, norms, rows, samples, judged, config: GANConfig) -> plt.Figure:
    fig = plt.figure(figsize=(14, 8))
    grid = fig.add_gridspec(2, 3)
    ax = fig.add_subplot(grid[0, 0])
    for name, values in norms.items():
        ax.plot(range(1, len(values) + 1), values, label=name)
    ax.set_yscale("log")
    ax.set_xlabel("step (same start, same batches)")
    ax.set_ylabel("|grad of the generator loss wrt G|")
    ax.axvspan(config.compare_steps // 2, config.compare_steps, color="k", alpha=0.06, label="steps averaged for the ratio")
    ax.set_title("generator gradient early in training", fontsize=8)
    ax.legend(fontsize=7)
    ax = fig.add_subplot(grid[0, 1])
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [h["train_d_real"] for h in history], "o-", ms=3, label="D(x), real")
    ax.plot(epochs, [h["train_d_fake"] for h in history], "o-", ms=3, label="D(G(z)), generated")
    ax.axhline(0.5, color="k", ls="--", lw=0.8, label="the game's equilibrium")
    ax.set_ylim(0, 1)
    ax.set_xlabel("epoch")
    twin = ax.twinx()
    twin.plot(epochs, [h["fld_2000"] for h in history], "s--", ms=3, color="tab:green", label="FLD of 2,000 samples")
    twin.set_yscale("log")
    twin.set_ylabel("FLD (green)", fontsize=7)
    ax.set_title(f"discriminator outputs (mean over each epoch), {config.loss} G loss", fontsize=8)
    ax.legend(fontsize=7)
    quality_bars(fig.add_subplot(grid[0, 2]), judged)
    image_grid(fig.add_subplot(grid[1, 0:2]), torch.cat(rows), rows=len(rows), title="G(z) at fixed noise after each epoch (one row per epoch)")
    image_grid(fig.add_subplot(grid[1, 2]), samples[:64], rows=8, title="64 samples of the final generator")
    fig.suptitle(f"DCGAN on {config.dataset}", fontsize=10)
    fig.tight_layout()
    return fig


vae = Experiment(VAEConfig, run_vae)
gan = Experiment(GANConfig, run_gan)
