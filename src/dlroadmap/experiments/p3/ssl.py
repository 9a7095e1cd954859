"""Phase 3, Unsupervised & Self-Supervised Learning.

  p3.ssl.autoencoder   Undercomplete autoencoders on digits, no labels used in training:
                       - a linear autoencoder lands on PCA's subspace (Baldi & Hornik 1989): principal
                         angles between its decoder's columns and the top-k components (sklearn PCA),
                         while its columns are not the components themselves;
                       - test reconstruction error against code size (2, 8, 32) for PCA, the linear, an
                         MLP and a convolutional autoencoder: the nonlinear ones win at small codes
                         (Hinton & Salakhutdinov 2006);
                       - a denoising autoencoder (Vincent et al. 2008) against the noisy input and PCA
                         denoising over noise levels;
                       - anomaly detection by reconstruction error: an autoencoder trained without one
                         digit scores that digit's test images (ROC-AUC, our metric = sklearn), and in
                         full mode MNIST against Fashion-MNIST.

  p3.ssl.contrastive   SimCLR and MoCo v2 pre-training of one small convolutional encoder on unlabelled
                       digits, judged frozen (kNN and linear probe) against raw pixels, a random encoder
                       and the autoencoder's codes; the 100-label experiment (pre-trained + probe or
                       fine-tuning against the same network trained from scratch on the same labels);
                       MoCo against SimCLR at two batch sizes.

What the numbers showed here (full MNIST, seed 0, 2 CPU cores): with 100 labels, the SimCLR encoder and a
linear probe reach 0.938 test accuracy (the published small-scale anchor: 0.919), the same network from
scratch 0.738, and from scratch with the pre-training augmentations 0.920: on digits, augmentation alone
teaches much of what contrastive pre-training does. MoCo's queue did not beat SimCLR at either batch size
(probe 0.980 vs 0.984 at 256, 0.967 vs 0.975 at 32): at batch 32 SimCLR still sees 62 negatives, which is
plenty for ten classes; the queue pays where a batch cannot hold enough negatives (ImageNet's thousand
classes). MoCo's step is ~1.4x cheaper per image (one view back-propagated).
"""

from __future__ import annotations

import time
from typing import ClassVar, Literal

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field

from torch import nn

from dlroadmap.data import TensorLoader
from dlroadmap.data.augment import contrastive_view, gaussian_noise
from dlroadmap.data.prepare import Pixels, image_pixels
from dlroadmap.errors import UserError
from dlroadmap.evaluate.generative import image_grid
from dlroadmap.evaluate.metrics import roc_auc_score, roc_curve
from dlroadmap.evaluate.probe import embed, knn_accuracy, linear_probe_accuracy
from dlroadmap.experiments.base import Experiment, ExperimentConfig, PositiveInt, Result
from dlroadmap.foundations.linalg import principal_angles
from dlroadmap.models.ssl.autoencoder import Autoencoder, conv_autoencoder, linear_autoencoder, mlp_autoencoder, reconstruction_errors
from dlroadmap.models.ssl.contrastive import ConvEncoder, MoCo, SimCLR, projection_head
from dlroadmap.train import Callback, Tracker, Trainer, seed_everything

DATASETS = Literal["mnist5k", "mnist", "fashion-mnist"]


class AutoencoderConfig(ExperimentConfig):
    dataset: DATASETS = Field("mnist", description="mnist5k is embedded; mnist and fashion-mnist need DLR_DATA_DIR or a download")
    codes: list[PositiveInt] = Field([2, 8, 32], min_length=2, description="code sizes compared (the Hinton & Salakhutdinov plot)")
    hidden: list[PositiveInt] = Field([512, 128], min_length=1, description="MLP autoencoder's hidden layers (mirrored in the decoder)")
    conv_width: int = Field(16, ge=1, le=256, description="channels of the convolutional autoencoder's first layer")
    epochs: int = Field(15, ge=1, le=1000)
    linear_epochs: int = Field(10, ge=1, le=10_000, description="the linear autoencoders (convergence to the PCA subspace is slow where eigenvalues are close)")
    batch_size: int = Field(128, ge=1, le=65536)
    lr: float = Field(3e-3, gt=0, le=1, description="peak of the one-cycle schedule (Adam)")
    linear_lr: float = Field(2e-2, gt=0, le=1, description="peak learning rate of the linear autoencoders")
    noise_std: float = Field(0.5, gt=0, le=2, description="Gaussian noise the denoising autoencoder is trained on (pixels in [0, 1], clipped)")
    noise_levels: list[float] = Field([0.2, 0.35, 0.5, 0.65, 0.8], min_length=1, description="noise levels the denoisers are compared at")
    denoise_code: int = Field(32, ge=1, le=784, description="code size of the denoising autoencoder")
    denoise_epochs: int = Field(20, ge=1, le=1000, description="the denoising autoencoder (fresh noise every epoch: it keeps learning longer)")
    anomaly_digits: list[int] = Field(list(range(10)), min_length=1, description="each: an autoencoder trained without that digit scores it")
    anomaly_code: int = Field(8, ge=1, le=784)

    QUICK: ClassVar[dict] = {"dataset": "mnist5k", "codes": [2, 8], "epochs": 15, "linear_epochs": 60, "denoise_epochs": 30, "conv_width": 8, "anomaly_digits": [2, 5]}


def fit_autoencoder(model: Autoencoder, X: torch.Tensor, *, epochs: int, lr: float, batch_size: int, seed: int, device: str,
                    tracker: Tracker | None, prefix: str, noise_std: float = 0.0, precision: str = "fp32") -> list[dict[str, float]]:
    """Train through the Trainer on mean squared error (Adam, one-cycle); with noise_std > 0 the input is
    corrupted afresh at every step (the Trainer's seeded RNG) and the target stays clean: a denoising
    autoencoder. The model comes back on the CPU in eval mode."""
    # a denoising autoencoder: corrupt the input, reconstruct the clean one, @vincent2008extracting
    seed_everything(seed)

    def step(m: Autoencoder, batch) -> tuple[torch.Tensor, None, None]:
        x = batch[0]
        return F.mse_loss(m(gaussian_noise(x, std=noise_std) if noise_std > 0 else x), x), None, None

    loader = TensorLoader(X, batch_size=batch_size, shuffle=True, seed=seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=epochs * len(loader))
    trainer = Trainer(model, opt, step=step, max_epochs=epochs, scheduler=scheduler, scheduler_interval="step", device=device,
                      precision=precision, seed=seed, tracker=tracker, log_prefix=prefix, description=prefix)
    history = trainer.fit(loader)
    model.cpu().eval()
    return history


class PCA:
    """PCA as the baseline every autoencoder is measured against: sklearn's, on flattened pixels. The top-k
    components of one full fit are the k-component PCA (the SVD is nested), so `fits` decomposes once."""

    def __init__(self, mean: np.ndarray, components: np.ndarray):
        self.mean, self.components = mean, components                  # (784,), (784, k) orthonormal columns

    @staticmethod
    def fits(ks, X: torch.Tensor) -> dict[int, PCA]:
        from sklearn.decomposition import PCA as SkPCA

        pca = SkPCA(max(ks), svd_solver="full").fit(X.flatten(1).double().numpy())
        return {k: PCA(pca.mean_, pca.components_[:k].T) for k in ks}

    def transform(self, X: torch.Tensor) -> np.ndarray:
        return (X.flatten(1).double().numpy() - self.mean) @ self.components      # (N, k) codes

    def reconstruct(self, X: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.transform(X) @ self.components.T + self.mean).float().view_as(X)

    def errors(self, X: torch.Tensor) -> torch.Tensor:
        return (self.reconstruct(X) - X).square().flatten(1).mean(1)


def _fit_args(config: ExperimentConfig, tracker: Tracker, prefix: str) -> dict:
    return {"batch_size": config.batch_size, "seed": config.seed, "device": config.device, "precision": config.precision,
            "tracker": tracker, "prefix": prefix}


def run_autoencoder(config: AutoencoderConfig, tracker: Tracker) -> Result:
    if any(d < 0 or d > 9 for d in config.anomaly_digits):
        raise UserError(f"anomaly_digits must be digits 0-9, got {config.anomaly_digits}")
    if max(config.codes) >= 784:
        raise UserError(f"codes must be below the 784 pixels (an autoencoder needs a bottleneck), got {config.codes}")
    data = image_pixels(config.dataset, seed=config.seed)
    Xtr, Xte = data.X_train, data.X_test
    metrics: dict[str, float] = {}

    # 1. Code size: PCA, linear, MLP and convolutional autoencoders, each reconstructing the test split.
    mse: dict[str, dict[int, float]] = {"PCA": {}, "linear AE": {}, "MLP AE": {}, "conv AE": {}}
    models: dict[tuple[str, int], Autoencoder] = {}
    pcas = PCA.fits(config.codes, Xtr)
    t0 = time.perf_counter()
    for k in config.codes:
        mse["PCA"][k] = float(pcas[k].errors(Xte).mean())
        for name, build in (("linear AE", lambda: linear_autoencoder(k, center=Xtr.mean(0))),
                            ("MLP AE", lambda: mlp_autoencoder(k, tuple(config.hidden))), ("conv AE", lambda: conv_autoencoder(k, config.conv_width))):
            seed_everything(config.seed)
            model = build()
            linear = name == "linear AE"
            fit_autoencoder(model, Xtr, epochs=config.linear_epochs if linear else config.epochs, lr=config.linear_lr if linear else config.lr,
                            **_fit_args(config, tracker, f"{name.split()[0].lower()}_ae_{k}"))
            models[name, k] = model
            mse[name][k] = float(reconstruction_errors(model, Xte).mean())
    train_s = time.perf_counter() - t0
    for name, by_code in mse.items():
        tag = name.split()[0].lower()
        for k, v in by_code.items():
            metrics[f"test_mse_{tag}_code{k}"] = v
            if name != "PCA":
                metrics[f"{tag}_ae_over_pca_mse_code{k}"] = v / mse["PCA"][k]

    # 2. Baldi & Hornik: the linear decoder's columns span the top-k principal subspace (angles ~ 0), but
    #    they are not the components: each column's best cosine with any single component stays well below 1.
    angles = {}
    for k in config.codes:
        W = models["linear AE", k].decoder.weight.detach().double().numpy()           # (784, k): one column per code unit
        angles[k] = np.degrees(principal_angles(W, pcas[k].components))
        cosines = np.abs((W / np.linalg.norm(W, axis=0)).T @ pcas[k].components)      # (k, k) |cos| column vs component
        metrics[f"linear_ae_max_angle_deg_code{k}"] = float(angles[k].max())
        metrics[f"linear_ae_mean_best_cosine_code{k}"] = float(cosines.max(1).mean())
    metrics["linear_ae_max_angle_deg"] = max(metrics[f"linear_ae_max_angle_deg_code{k}"] for k in config.codes)
    k_mid = sorted(config.codes)[len(config.codes) // 2]
    metrics["linear_ae_mean_best_cosine"] = metrics[f"linear_ae_mean_best_cosine_code{k_mid}"]

    # 3. Denoising: an MLP autoencoder trained on noisy inputs, against the noisy input itself and against
    #    PCA denoising (project onto the top-m components; m picked per noise level on the training split).
    seed_everything(config.seed)
    dae = mlp_autoencoder(config.denoise_code, tuple(config.hidden))
    fit_autoencoder(dae, Xtr, epochs=config.denoise_epochs, lr=config.lr, noise_std=config.noise_std, **_fit_args(config, tracker, "denoising_ae"))
    g = torch.Generator().manual_seed(config.seed + 1)
    pca_sizes = [m for m in (8, 16, 32, 64, 128, 256) if m < min(784, len(Xtr))]
    pca_fits = PCA.fits(pca_sizes, Xtr)
    denoise: dict[str, list[float]] = {"noisy input": [], "PCA projection": [], "denoising AE": []}
    shown: dict[str, torch.Tensor] = {}
    for std in config.noise_levels:
        noisy_tr, noisy_te = gaussian_noise(Xtr[:2000], g, std), gaussian_noise(Xte, g, std)
        best_m = min(pca_sizes, key=lambda m: float((pca_fits[m].reconstruct(noisy_tr) - Xtr[:2000]).square().mean()))
        with torch.no_grad():
            out = dae(noisy_te)
        denoise["noisy input"].append(float((noisy_te - Xte).square().mean()))
        denoise["PCA projection"].append(float((pca_fits[best_m].reconstruct(noisy_te) - Xte).square().mean()))
        denoise["denoising AE"].append(float((out - Xte).square().mean()))
        if abs(std - config.noise_std) < 1e-9 or not shown:
            shown = {"clean": Xte[:10], f"noisy (std {std:g})": noisy_te[:10], f"PCA, {best_m} components": pca_fits[best_m].reconstruct(noisy_te[:10]),
                     "denoising AE": out[:10]}
    at = min(range(len(config.noise_levels)), key=lambda i: abs(config.noise_levels[i] - config.noise_std))
    metrics |= {"dae_mse": denoise["denoising AE"][at], "noisy_input_mse": denoise["noisy input"][at], "pca_denoise_mse": denoise["PCA projection"][at],
                "dae_over_noisy_mse": denoise["denoising AE"][at] / denoise["noisy input"][at],
                "dae_over_pca_denoise_mse": denoise["denoising AE"][at] / denoise["PCA projection"][at]}

    # 4. Anomaly detection: trained without digit d, the autoencoder reconstructs d worse than the digits it saw.
    roc: dict[str, tuple[np.ndarray, np.ndarray, float]] = {}
    for d in config.anomaly_digits:
        seed_everything(config.seed)
        model = mlp_autoencoder(config.anomaly_code, tuple(config.hidden))
        fit_autoencoder(model, Xtr[data.y_train != d], epochs=config.epochs, lr=config.lr, **_fit_args(config, tracker, f"anomaly_without_{d}"))
        scores = reconstruction_errors(model, Xte).numpy()
        is_anomaly = (data.y_test == d).numpy().astype(int)
        metrics[f"anomaly_auc_digit{d}"] = roc_auc_score(is_anomaly, scores)
        fpr, tpr, _ = roc_curve(is_anomaly, scores)
        roc[f"digit {d} held out"] = (fpr, tpr, metrics[f"anomaly_auc_digit{d}"])
    from sklearn.metrics import roc_auc_score as sk_auc     # the reference, compared with our metric on the same scores

    metrics["auc_abs_err_vs_sklearn"] = abs(metrics[f"anomaly_auc_digit{d}"] - float(sk_auc(is_anomaly, scores)))
    metrics["anomaly_auc_mean"] = float(np.mean([metrics[f"anomaly_auc_digit{d}"] for d in config.anomaly_digits]))
    if config.dataset == "mnist":                              # full mode: digits against clothes
        fashion = image_pixels("fashion-mnist", seed=config.seed).X_test
        main = models["MLP AE", k_mid]
        scores = torch.cat([reconstruction_errors(main, Xte), reconstruction_errors(main, fashion)]).numpy()
        is_anomaly = np.r_[np.zeros(len(Xte), int), np.ones(len(fashion), int)]
        metrics["anomaly_auc_fashion"] = roc_auc_score(is_anomaly, scores)
        fpr, tpr, _ = roc_curve(is_anomaly, scores)
        roc["Fashion-MNIST vs MNIST"] = (fpr, tpr, metrics["anomaly_auc_fashion"])
    metrics["train_seconds_code_sweep"] = train_s

    plots = {"autoencoder_codes": tracker.log_figure(_codes_figure(mse, models, pcas, angles, data, config), "autoencoder_codes"),
             "autoencoder_denoising": tracker.log_figure(_denoise_figure(denoise, shown, roc, config), "autoencoder_denoising")}
    return Result(metrics=metrics, artifacts={k: str(v) for k, v in plots.items()},
                  notes=f"code {config.codes[0]}: MLP AE / PCA MSE {metrics[f'mlp_ae_over_pca_mse_code{config.codes[0]}']:.2f}; "
                        f"linear AE to PCA subspace: max angle {metrics['linear_ae_max_angle_deg']:.2f} deg; "
                        f"denoising AE {metrics['dae_over_noisy_mse']:.2f} of the noisy input's MSE; anomaly AUC {metrics['anomaly_auc_mean']:.3f}")


def _codes_figure(mse, models, pcas, angles, data: Pixels, config: AutoencoderConfig) -> plt.Figure:
    fig = plt.figure(figsize=(15, 8))
    grid = fig.add_gridspec(2, 3)
    ax = fig.add_subplot(grid[0, 0])
    for name, by_code in mse.items():
        ks = sorted(by_code)
        ax.plot(ks, [by_code[k] for k in ks], "o-" if name != "PCA" else "s--", label=name)
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(config.codes), [str(k) for k in sorted(config.codes)])
    ax.set_xlabel("code size k")
    ax.set_ylabel("test MSE per pixel")
    ax.set_title("reconstruction error vs code size (Hinton & Salakhutdinov 2006)", fontsize=8)
    ax.legend(fontsize=7)
    ax = fig.add_subplot(grid[0, 1])
    for k, a in angles.items():
        ax.plot(range(1, len(a) + 1), sorted(a), "o-", ms=3, label=f"k = {k}")
    ax.set_xlabel("principal angle (smallest to largest)")
    ax.set_ylabel("degrees")
    ax.set_title("linear AE decoder vs top-k PCA subspace: angles ~0 = same subspace", fontsize=8)
    ax.legend(fontsize=7)
    k_mid = sorted(config.codes)[len(config.codes) // 2]
    x = data.X_test[:10]
    with torch.no_grad():
        rows = [x, pcas[k_mid].reconstruct(x)] + [models[name, k_mid](x) for name in ("linear AE", "MLP AE", "conv AE")]
    image_grid(fig.add_subplot(grid[0, 2]), torch.cat(rows), rows=len(rows),
               title=f"test digits; reconstructions at k = {k_mid}: PCA, linear, MLP, conv AE (rows)")
    k2 = min(config.codes)
    with torch.no_grad():
        codes = {"PCA": torch.from_numpy(pcas[k2].transform(data.X_test)),
                 "MLP AE": models["MLP AE", k2].encode(data.X_test)}
    for i, (name, c) in enumerate(codes.items()):
        ax = fig.add_subplot(grid[1, i])
        pts = ax.scatter(c[:, 0], c[:, 1], c=data.y_test, cmap="tab10", s=3)
        ax.set_title(f"{name}: first two of the {k2}-number codes of the test digits, coloured by class", fontsize=8)
        fig.colorbar(pts, ax=ax, ticks=range(10))
    ax = fig.add_subplot(grid[1, 2])
    W = models["linear AE", k_mid].decoder.weight.detach()[:, :5].T.reshape(-1, 1, 28, 28)
    P = torch.from_numpy(pcas[k_mid].components[:, :5].T).float().reshape(-1, 1, 28, 28)
    scale = lambda t: (t - t.amin((1, 2, 3), keepdim=True)) / (t.amax((1, 2, 3), keepdim=True) - t.amin((1, 2, 3), keepdim=True))  # noqa: E731
    image_grid(ax, torch.cat([scale(P), scale(W)]), rows=2, title="top: first 5 principal components; bottom: 5 linear-AE decoder columns\n(same subspace, another basis)")
    fig.suptitle(f"Autoencoders on {config.dataset}: no labels used in training", fontsize=10)
    fig.tight_layout()
    return fig


def _denoise_figure(denoise, shown, roc, config: AutoencoderConfig) -> plt.Figure:
    fig = plt.figure(figsize=(15, 4.5))
    grid = fig.add_gridspec(1, 3)
    ax = fig.add_subplot(grid[0, 0])
    for name, values in denoise.items():
        ax.plot(config.noise_levels, values, "o-", label=name)
    ax.axvline(config.noise_std, color="k", ls=":", lw=0.8, label="training noise of the AE")
    ax.set_xlabel("noise std (pixels in [0, 1])")
    ax.set_ylabel("test MSE to the clean digit")
    ax.set_title("denoising (Vincent et al. 2008)", fontsize=8)
    ax.legend(fontsize=7)
    image_grid(fig.add_subplot(grid[0, 1]), torch.cat(list(shown.values())), rows=len(shown), title="rows: " + "; ".join(shown))
    ax = fig.add_subplot(grid[0, 2])
    for name, (fpr, tpr, area) in roc.items():
        ax.plot(fpr, tpr, label=f"{name}: AUC {area:.3f}")
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title("anomaly detection by reconstruction error", fontsize=8)
    ax.legend(fontsize=6)
    fig.tight_layout()
    return fig


# --- p3.ssl.contrastive ----------------------------------------------------------------------------------


class ContrastiveConfig(ExperimentConfig):
    dataset: DATASETS = Field("mnist", description="mnist5k is embedded; mnist and fashion-mnist need DLR_DATA_DIR or a download")
    epochs: int = Field(20, ge=1, le=1000, description="pre-training epochs of SimCLR and of MoCo at the main batch size")
    batch_size: int = Field(256, ge=4, le=65536, description="main pre-training batch (SimCLR's negatives: 2 x batch - 2)")
    moco_epochs: int | None = Field(None, ge=1, le=1000, description="MoCo's pre-training epochs (default: epochs; benchmarks/self_supervised.py sets it for equal wall time)")
    small_batch: int = Field(32, ge=4, le=65536, description="the second batch size, where MoCo's queue should matter")
    small_batch_epochs: int = Field(3, ge=0, le=1000, description="pre-training epochs at the small batch size (8x the steps of an epoch at 256); "
                                    "0 skips the comparison (quick mode: one epoch at batch 32 showed no difference, 1-2 points either way)")
    lr: float = Field(2e-3, gt=0, le=1, description="AdamW peak (one-cycle) at the main batch size; scaled linearly with the batch size")
    width: int = Field(32, ge=4, le=512, description="channels of the encoder's first convolution")
    dim: int = Field(128, ge=8, le=4096, description="representation size h")
    proj_dim: int = Field(64, ge=8, le=4096, description="projection size z (the loss's space)")
    simclr_temperature: float = Field(0.5, gt=0, le=10)
    moco_temperature: float = Field(0.2, gt=0, le=10, description="MoCo v2: 0.2")
    moco_momentum: float = Field(0.99, ge=0, lt=1, description="key encoder EMA (MoCo: 0.999 on ImageNet's 5,000 steps an epoch; 0.99 suits short runs)")
    queue_size: int = Field(4096, ge=16, le=1_000_000, description="MoCo's negatives (keep well below the training set's size)")
    labels_per_class: int = Field(10, ge=1, le=1000, description="the semi-supervised experiment: 10 x 10 classes = 100 labels")
    finetune_steps: int = Field(400, ge=1, le=100_000, description="fine-tuning and from-scratch training steps on the labelled images")
    ae_code: int = Field(128, ge=1, le=784, description="code size of the autoencoder baseline (= dim: same feature count)")
    ae_epochs: int = Field(10, ge=1, le=1000)
    knn_k: int = Field(200, ge=1, le=10_000, description="kNN neighbours (lightly's benchmark protocol: 200)")
    knn_temperature: float = Field(0.1, gt=0, le=10, description="kNN vote weight exp(similarity / T)")
    tsne_points: int = Field(2000, ge=100, le=20_000)

    # Quick: 10 epochs and 200 fine-tuning steps keep every claim at seeds 0-2 (15 and 300 scored 1-2 points higher; the
    # tightest, MoCo's probe over pixels at seed 2, 0.039 against 0.056, bound 0.03) in three quarters of the time.
    QUICK: ClassVar[dict] = {"dataset": "mnist5k", "width": 16, "batch_size": 128, "epochs": 10, "queue_size": 1024, "small_batch_epochs": 0,
                             "finetune_steps": 200, "tsne_points": 750}


def labelled_subset(y: torch.Tensor, per_class: int, seed: int) -> torch.Tensor:
    """Indices of `per_class` images of every class, drawn at random (seeded): the few labels we pay for."""
    g = torch.Generator().manual_seed(seed)
    picks = []
    for c in torch.unique(y).tolist():
        members = torch.nonzero(y == c).flatten()
        if len(members) < per_class:
            raise UserError(f"class {c} has {len(members)} training images, fewer than labels_per_class={per_class}")
        picks.append(members[torch.randperm(len(members), generator=g)[:per_class]])
    return torch.cat(picks)


class KnnMonitor(Callback):
    """kNN accuracy of the encoder after every pre-training epoch: is the unlabelled training teaching it
    anything about classes? (A bank of up to 10,000 training images; labels are used only here.)"""

    def __init__(self, encoder: nn.Module, data: Pixels, config: "ContrastiveConfig"):
        self.encoder, self.config = encoder, config
        self.bank, self.bank_y = data.X_train[:10_000], data.y_train[:10_000]
        self.query, self.query_y = data.X_test[:2000], data.y_test[:2000]
        self.curve: list[float] = []
        self.seconds = 0.0                           # spent here, not training

    def on_epoch_metrics(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        t0 = time.perf_counter()
        f = lambda x: embed(self.encoder, x, device=trainer.device)  # noqa: E731
        metrics["knn_accuracy"] = knn_accuracy(f(self.bank), self.bank_y, f(self.query), self.query_y, self.config.knn_k, self.config.knn_temperature)
        self.curve.append(metrics["knn_accuracy"])
        self.seconds += time.perf_counter() - t0

    def state_dict(self) -> dict:
        return {"curve": self.curve}

    def load_state_dict(self, state: dict) -> None:
        self.curve = list(state["curve"])


def pretrain(method: str, data: Pixels, config: ContrastiveConfig, tracker: Tracker | None, *, batch_size: int, epochs: int,
             prefix: str) -> tuple[ConvEncoder, list[float], float]:
    """SimCLR or MoCo pre-training on the unlabelled training images, through the Trainer. Returns the
    encoder, its kNN accuracy after each epoch, and images per second of pre-training."""
    seed_everything(config.seed)
    encoder = ConvEncoder(config.dim, config.width)
    head = projection_head(config.dim, config.dim, config.proj_dim)
    model: SimCLR | MoCo = (SimCLR(encoder, head, config.simclr_temperature) if method == "simclr" else
                            MoCo(encoder, head, config.queue_size, config.moco_momentum, config.moco_temperature))
    lr = config.lr * batch_size / config.batch_size
    loader = TensorLoader(data.X_train, data.y_train, batch_size=batch_size, shuffle=True, seed=config.seed, drop_last=True)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=epochs * len(loader), pct_start=0.1)

    def step(m, batch) -> tuple[torch.Tensor, None, None]:
        x = batch[0]                                                      # labels unused
        return m.loss(contrastive_view(x), contrastive_view(x)), None, None   # two views, from the Trainer's seeded RNG

    monitor = KnnMonitor(encoder, data, config)
    trainer = Trainer(model, opt, step=step, max_epochs=epochs, scheduler=scheduler, scheduler_interval="step", device=config.device,
                      precision=config.precision, seed=config.seed, tracker=tracker, log_prefix=prefix, callbacks=[monitor],
                      description=f"{prefix} (batch {batch_size})")
    t0 = time.perf_counter()
    trainer.fit(loader)
    seconds = time.perf_counter() - t0 - monitor.seconds
    model.cpu()
    return encoder, monitor.curve, epochs * len(loader) * batch_size / seconds


def train_classifier(encoder: nn.Module, data: Pixels, idx: torch.Tensor, config: ContrastiveConfig, tracker: Tracker | None, prefix: str,
                     augment: bool = False) -> float:
    """Encoder + a linear layer trained end to end on the labelled images only: fine-tuning when the encoder
    is pre-trained, from scratch when it is fresh. `augment`: each step sees random views (the
    pre-training augmentations at half strength) instead of the 100 images themselves. Returns test accuracy."""
    seed_everything(config.seed)
    model = nn.Sequential(encoder, nn.Linear(config.dim, len(data.classes)))
    loader = TensorLoader(data.X_train[idx], data.y_train[idx], batch_size=len(idx), shuffle=True, seed=config.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(opt, 1e-3, total_steps=config.finetune_steps)

    def step(m, batch):
        out = m(contrastive_view(batch[0], strength=0.5) if augment else batch[0])
        return F.cross_entropy(out, batch[1]), out, batch[1]

    Trainer(model, opt, step=step, max_steps=config.finetune_steps, scheduler=scheduler, scheduler_interval="step", device=config.device,
            seed=config.seed, tracker=tracker, log_prefix=prefix, description=prefix).fit(loader)
    model.cpu()
    return float((embed(model, data.X_test).argmax(1) == data.y_test).float().mean())


def run_contrastive(config: ContrastiveConfig, tracker: Tracker) -> Result:
    data = image_pixels(config.dataset, seed=config.seed)
    if config.queue_size > len(data.X_train) // 2:
        raise UserError(f"queue_size {config.queue_size} is over half the {len(data.X_train)} training images: stale keys of the "
                        "query's own image would be its negatives; use a smaller --set queue_size")
    idx = labelled_subset(data.y_train, config.labels_per_class, config.seed)
    metrics: dict[str, float] = {}

    def judge(name: str, f_train: torch.Tensor, f_test: torch.Tensor) -> None:
        metrics[f"knn_{name}"] = knn_accuracy(f_train, data.y_train, f_test, data.y_test, config.knn_k, config.knn_temperature)
        metrics[f"probe_{name}"] = linear_probe_accuracy(f_train, data.y_train, f_test, data.y_test)
        metrics[f"probe100_{name}"] = linear_probe_accuracy(f_train[idx], data.y_train[idx], f_test, data.y_test)

    # 1. Baselines: raw pixels, a random (untrained) encoder, and an autoencoder's codes of the same size.
    judge("pixels", data.X_train.flatten(1), data.X_test.flatten(1))
    seed_everything(config.seed)
    random_encoder = ConvEncoder(config.dim, config.width)
    judge("random_encoder", embed(random_encoder, data.X_train), embed(random_encoder, data.X_test))
    seed_everything(config.seed)
    ae = conv_autoencoder(config.ae_code, config.width // 2)
    fit_autoencoder(ae, data.X_train, epochs=config.ae_epochs, lr=3e-3, **_fit_args(config, tracker, "autoencoder"))
    judge("autoencoder", embed(ae.encoder, data.X_train), embed(ae.encoder, data.X_test))

    # 2. SimCLR and MoCo at the main batch size, then both at the small one.
    encoders, curves = {}, {}
    for method in ("simclr", "moco"):
        epochs = config.moco_epochs or config.epochs if method == "moco" else config.epochs
        encoders[method], curves[method], speed = pretrain(method, data, config, tracker, batch_size=config.batch_size, epochs=epochs, prefix=method)
        judge(method, embed(encoders[method], data.X_train), embed(encoders[method], data.X_test))
        metrics[f"{method}_images_per_second"] = speed
        metrics[f"{method}_pretrain_seconds"] = epochs * (len(data.X_train) // config.batch_size) * config.batch_size / speed
    small = config.small_batch
    for method in ("simclr", "moco") if config.small_batch_epochs else ():
        enc, _, _ = pretrain(method, data, config, tracker, batch_size=small, epochs=config.small_batch_epochs, prefix=f"{method}_batch{small}")
        judge(f"{method}_batch{small}", embed(enc, data.X_train), embed(enc, data.X_test))
    if config.small_batch_epochs:
        metrics["moco_minus_simclr_probe_small_batch"] = metrics[f"probe_moco_batch{small}"] - metrics[f"probe_simclr_batch{small}"]
    metrics["moco_minus_simclr_probe_main_batch"] = metrics["probe_moco"] - metrics["probe_simclr"]

    # 3. 100 labels: the pre-trained encoder (linear probe; fine-tuned) against the same network trained from
    #    scratch on the same images by the same recipe, and from scratch with augmentation (the strong baseline:
    #    the augmentations alone teach much of what pre-training does).
    import copy

    metrics["finetune100_simclr"] = train_classifier(copy.deepcopy(encoders["simclr"]), data, idx, config, tracker, "finetune_simclr")
    for name, augment in (("scratch100", False), ("scratch100_augmented", True)):
        seed_everything(config.seed)
        metrics[name] = train_classifier(ConvEncoder(config.dim, config.width), data, idx, config, tracker, name, augment=augment)
    metrics["probe100_gain_over_scratch"] = metrics["probe100_simclr"] - metrics["scratch100"]
    metrics["finetune100_gain_over_scratch"] = metrics["finetune100_simclr"] - metrics["scratch100"]
    metrics["probe100_gain_over_scratch_augmented"] = metrics["probe100_simclr"] - metrics["scratch100_augmented"]
    metrics["knn_simclr_minus_random"] = metrics["knn_simclr"] - metrics["knn_random_encoder"]
    metrics["knn_simclr_minus_pixels"] = metrics["knn_simclr"] - metrics["knn_pixels"]
    metrics["knn_moco_minus_random"] = metrics["knn_moco"] - metrics["knn_random_encoder"]
    for method in ("simclr", "moco"):
        metrics[f"probe_{method}_minus_pixels"] = metrics[f"probe_{method}"] - metrics["probe_pixels"]
    metrics["labelled_images"] = float(len(idx))

    plots = {"contrastive_report": tracker.log_figure(_contrastive_figure(metrics, curves, encoders["simclr"], data, config), "contrastive_report")}
    return Result(metrics=metrics, artifacts={k: str(v) for k, v in plots.items()},
                  notes=f"100 labels: SimCLR + linear probe {metrics['probe100_simclr']:.3f}, fine-tuned {metrics['finetune100_simclr']:.3f}, "
                        f"from scratch {metrics['scratch100']:.3f}; kNN: SimCLR {metrics['knn_simclr']:.3f}, MoCo {metrics['knn_moco']:.3f}, "
                        f"pixels {metrics['knn_pixels']:.3f}")


def _contrastive_figure(metrics, curves, encoder, data: Pixels, config: ContrastiveConfig) -> plt.Figure:
    from sklearn.manifold import TSNE

    fig = plt.figure(figsize=(16, 9))
    grid = fig.add_gridspec(2, 3)
    ax = fig.add_subplot(grid[0, 0])
    for method, curve in curves.items():
        ax.plot(range(1, len(curve) + 1), curve, "o-", ms=3, label=f"{'SimCLR' if method == 'simclr' else 'MoCo v2'}, batch {config.batch_size}")
    for name, ls in (("pixels", "--"), ("random_encoder", ":"), ("autoencoder", "-.")):
        ax.axhline(metrics[f"knn_{name}"], color="k", ls=ls, lw=0.8, label=name.replace("_", " "))
    ax.set_xlabel("pre-training epoch")
    ax.set_ylabel(f"kNN accuracy (k={config.knn_k}, 2,000 test digits)")
    ax.set_title("what the unlabelled training teaches, epoch by epoch", fontsize=8)
    ax.legend(fontsize=7)
    ax = fig.add_subplot(grid[0, 1:])
    names = ["pixels", "random_encoder", "autoencoder", "simclr", "moco"]
    names += [f"{m}_batch{config.small_batch}" for m in ("simclr", "moco") if f"knn_{m}_batch{config.small_batch}" in metrics]
    x = np.arange(len(names))
    for i, (kind, label) in enumerate((("knn", "kNN, all labels"), ("probe", "linear probe, all labels"), ("probe100", "linear probe, 100 labels"))):
        vals = [metrics[f"{kind}_{n}"] for n in names]
        ax.bar(x + (i - 1) * 0.27, vals, 0.27, label=label)
    ax.set_xticks(x, [n.replace("_", "\n") for n in names], fontsize=7)
    ax.set_ylim(max(0.0, min(metrics[f"probe100_{n}"] for n in names) - 0.1), 1.0)
    ax.set_ylabel("test accuracy")
    small = f"; batch {config.small_batch} for {config.small_batch_epochs} epochs" if config.small_batch_epochs else ""
    ax.set_title(f"frozen features judged (SimCLR/MoCo at batch {config.batch_size}{small})", fontsize=8)
    ax.legend(fontsize=7)
    ax = fig.add_subplot(grid[1, 0])
    rows = {"from scratch": metrics["scratch100"], "from scratch, augmented": metrics["scratch100_augmented"],
            "SimCLR + linear probe": metrics["probe100_simclr"], "SimCLR fine-tuned": metrics["finetune100_simclr"]}
    ax.barh(list(rows), list(rows.values()), color=["tab:gray", "silver", "tab:blue", "tab:green"])
    for i, v in enumerate(rows.values()):
        ax.text(v, i, f" {v:.3f}", va="center", fontsize=8)
    if config.dataset == "mnist":
        ax.axvline(0.846, color="k", ls=":", lw=0.8, label="published: supervised 0.846")
        ax.axvline(0.919, color="k", ls="--", lw=0.8, label="published: SimCLR 0.919")
        ax.legend(fontsize=7, loc="lower right")
    ax.set_xlim(min(rows.values()) - 0.1, 1.0)
    ax.set_title(f"{int(metrics['labelled_images'])} labels ({config.labels_per_class} per class), same network", fontsize=8)
    n = min(config.tsne_points, len(data.X_test))
    emb = TSNE(2, init="pca", random_state=config.seed, perplexity=30).fit_transform(embed(encoder, data.X_test[:n]).numpy())
    ax = fig.add_subplot(grid[1, 1])
    pts = ax.scatter(emb[:, 0], emb[:, 1], c=data.y_test[:n], cmap="tab10", s=3)
    fig.colorbar(pts, ax=ax, ticks=range(10))
    ax.set_title(f"t-SNE of SimCLR representations h of {n} test digits (labels only colour them)", fontsize=8)
    image_grid(fig.add_subplot(grid[1, 2]), torch.cat([data.X_test[:8]] + [contrastive_view(data.X_test[:8], torch.Generator().manual_seed(i)) for i in range(4)]),
               rows=5, title="test digits (top) and four random views of each (what the loss must match)")
    fig.suptitle(f"Contrastive pre-training on {config.dataset}, no labels until the probes", fontsize=10)
    fig.tight_layout()
    return fig


autoencoder = Experiment(AutoencoderConfig, run_autoencoder)
contrastive = Experiment(ContrastiveConfig, run_contrastive)
