"""Judging generated digits: the Fréchet LeNet Distance, the classifier score and class coverage.

FID (Heusel et al. 2017, arXiv:1706.08500) compares real and generated images through the
activations of an ImageNet Inception-v3. No Inception weights can be downloaded here, and Inception
never saw a handwritten digit anyway, so the features come from our own LeNet-5 trained on MNIST
(its 84-unit penultimate layer): the "Fréchet LeNet Distance", FLD. An FLD is comparable only with
other FLDs from the same classifier, never with a published FID.

Each set of features is summarised by a Gaussian (mean mu, covariance S); the distance between two
Gaussians in the Wasserstein-2 sense (Dowson & Landau 1982) is

    FD^2 = |mu_1 - mu_2|^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2))

Classifier score, the Inception Score of Salimans et al. 2016 (arXiv:1606.03498) with our classifier:

    CS = exp( E_x KL(p(y|x) || p(y)) )

between 1 and the number of classes: high when each sample is confidently one digit and all digits
appear equally often. Coverage is the histogram of predicted digits; a generator that collapsed
onto a few modes shows it at once (max/min class frequency).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn

# --- the statistics ------------------------------------------------------------------------------


def gaussian_stats(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (D,) and unbiased covariance (D, D) of features (N, D), in float64 (the covariance of a
    few thousand 84-d vectors loses digits in float32)."""
    f = features.double()
    mu = f.mean(0)
    centred = f - mu
    return mu, centred.T @ centred / (len(f) - 1)


def sqrtm_psd(a: torch.Tensor) -> torch.Tensor:
    """The symmetric square root of a symmetric positive semi-definite matrix: V diag(sqrt(l)) V^T.
    Round-off can make tiny eigenvalues negative; they are clamped to 0."""
    eigval, eigvec = torch.linalg.eigh(a)
    return (eigvec * eigval.clamp_min(0).sqrt()) @ eigvec.T


def frechet_distance(mu1: torch.Tensor, s1: torch.Tensor, mu2: torch.Tensor, s2: torch.Tensor) -> float:
    """FD^2 between N(mu1, s1) and N(mu2, s2).

    S_1 S_2 is not symmetric, but it is similar to the symmetric PSD matrix R S_2 R with R = S_1^(1/2)
    (S_1 S_2 = R (R S_2 R) R^-1), so both have the same eigenvalues and
    Tr (S_1 S_2)^(1/2) = sum of sqrt(eigenvalues of R S_2 R): no complex arithmetic needed."""
    # the Frechet distance of two Gaussians: |mu1 - mu2|^2 + Tr(C1 + C2 - 2 (C1 C2)^(1/2)), @heusel2017fid
    r = sqrtm_psd(s1)
    tr_covmean = torch.linalg.eigvalsh(r @ s2 @ r).clamp_min(0).sqrt().sum()
    return float((mu1 - mu2).square().sum() + s1.trace() + s2.trace() - 2 * tr_covmean)


def classifier_score(probs: torch.Tensor, splits: int = 10) -> tuple[float, float]:
    """exp(E_x KL(p(y|x) || p(y))) over `splits` equal chunks (the Inception Score protocol): (mean, std)."""
    # the Inception Score: exp(E_x KL(p(y|x) || p(y))), @salimans2016improved
    scores = []
    for chunk in probs.double().chunk(splits):
        p_y = chunk.mean(0, keepdim=True)                                             # marginal p(y) of the chunk
        kl = (chunk * (chunk.clamp_min(1e-12).log() - p_y.clamp_min(1e-12).log())).sum(1)
        scores.append(math.exp(float(kl.mean())))
    t = torch.tensor(scores)
    return float(t.mean()), float(t.std()) if len(scores) > 1 else 0.0


def class_coverage(predicted: torch.Tensor, num_classes: int = 10) -> dict[str, Any]:
    """Histogram of predicted classes: counts, how many classes appear, and max/min frequency (inf if one is missing)."""
    counts = torch.bincount(predicted.flatten(), minlength=num_classes)
    present = int((counts > 0).sum())
    ratio = float(counts.max() / counts.min()) if counts.min() > 0 else math.inf
    return {"counts": counts.tolist(), "classes_present": present, "max_min_ratio": ratio}


# --- the judge ------------------------------------------------------------------------------------


class LeNetFeatures(nn.Module):
    """Images in [0, 1], (N, 1, 28, 28) -> the judge's 84 penultimate features. `num_features` tells
    torchmetrics the feature size (so it does not probe the module with a random image)."""

    def __init__(self, net: nn.Module, mean: float, std: float, pixel_scale: float = 255.0):
        super().__init__()
        self.net, self.mean, self.std, self.pixel_scale = net, mean, std, pixel_scale
        self.num_features = net.classifier[-1].in_features

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim == 3:
            images = images.unsqueeze(1)
        return (images.float() * self.pixel_scale - self.mean) / self.std    # the training data's standardisation

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.net.features(self.normalise(images))
        return self.net.classifier[:-1](x)                                     # everything but the last linear layer


@dataclass
class DigitJudge:
    """Scores sets of generated digits against real ones. `test_accuracy` is the judge's own accuracy
    on the real test split: a judge that cannot read digits cannot grade them."""
    features: LeNetFeatures
    test_accuracy: float

    @torch.no_grad()
    def features_of(self, images: torch.Tensor, batch: int = 1000) -> torch.Tensor:
        """The judge's 84 features of `images` in [0, 1], (N, 84), computed in batches."""
        self.features.eval()
        return torch.cat([self.features(images[i: i + batch]) for i in range(0, len(images), batch)])

    def feature_stats(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return gaussian_stats(self.features_of(images))

    @torch.no_grad()
    def _classify(self, features: torch.Tensor) -> torch.Tensor:
        return self.features.net.classifier[-1](features).softmax(-1)    # the last layer on the features

    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """Class probabilities (N, 10) of `images` in [0, 1]."""
        return self._classify(self.features_of(images))

    def judge(self, images: torch.Tensor, reference: tuple[torch.Tensor, torch.Tensor], labels: torch.Tensor | None = None) -> dict[str, Any]:
        """FLD to the reference statistics, classifier score and coverage of `images` in [0, 1]; with the
        `labels` a conditional generator was asked for, also its "accuracy". The network runs once."""
        features = self.features_of(images)
        probs = self._classify(features)
        predicted = probs.argmax(1)
        cs, cs_std = classifier_score(probs)
        coverage = class_coverage(predicted, probs.shape[1])
        out = {"fld": frechet_distance(*gaussian_stats(features), *reference), "classifier_score": cs, "classifier_score_std": cs_std,
               "classes_present": coverage["classes_present"], "max_min_ratio": coverage["max_min_ratio"], "counts": coverage["counts"]}
        if labels is not None:
            out["accuracy"] = _agreement(predicted, labels)
        return out

    def accuracy_on(self, images: torch.Tensor, labels: torch.Tensor) -> float:
        """How often the judge reads the digit a conditional generator was asked for."""
        return _agreement(self.probabilities(images).argmax(1), labels)


def _agreement(predicted: torch.Tensor, labels: torch.Tensor) -> float:
    return float((predicted == labels).float().mean())


JUDGE_RECIPE = 1   # bump when the judge's training changes, so no run loads a judge trained the old way


def digit_judge(dataset: str, cache: str | Path, *, seed: int = 0, epochs: int = 8, device: str = "cpu") -> DigitJudge:
    """Our LeNet-5 trained once on `dataset` (mnist5k or mnist) and kept as a model bundle under `cache`;
    later runs (and the other generative nodes) load it instead of training again. Training is seeded
    and deterministic, so a judge trained twice is the same judge."""
    from dlroadmap.data.prepare import classification_tensors
    from dlroadmap.deploy.bundle import CONFIG, read_bundle, save_trained
    from dlroadmap.models.families import small_cnn
    from dlroadmap.train.fit import fit_classifier, one_cycle
    from dlroadmap.train.trainer import seed_everything

    path = Path(cache) / f"judge-v{JUDGE_RECIPE}-lenet5-{dataset}-seed{seed}-epochs{epochs}"
    if (path / CONFIG).is_file():
        bundle = read_bundle(path)
        pre = bundle.config["preprocessing"]
        return DigitJudge(LeNetFeatures(bundle.build(), pre["mean"], pre["std"]), bundle.config["source"]["test_accuracy"])
    seed_everything(seed)
    data = classification_tensors(dataset, seed=seed)
    net, family, kwargs = small_cnn("lenet5", data.num_classes)
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
    config = SimpleNamespace(device=device, precision="fp32", seed=seed)
    fitted = fit_classifier(net, data, opt, epochs=epochs, config=config, batch_size=128, schedule=one_cycle(3e-3),
                            description=f"judge LeNet-5 on {dataset}")
    save_trained(path, net, data, name=f"judge-lenet5-{dataset}", family=family, kwargs=kwargs,
                 source={"purpose": "judge of generated digits (FLD, classifier score)", "test_accuracy": fitted.test_accuracy})
    # fit_classifier hands it back NCHW, as a judge read back from its bundle is: the judge that trained is the one later runs load.
    return DigitJudge(LeNetFeatures(net.eval(), data.mean, data.std), fitted.test_accuracy)


def judge_and_reference(dataset: str, cache: str | Path, train: torch.Tensor, test: torch.Tensor, *, n: int, seed: int = 0,
                        epochs: int = 8) -> tuple[DigitJudge, tuple[torch.Tensor, torch.Tensor], dict[str, dict[str, Any]]]:
    """What every generative node starts with: the judge (trained once, cached under `cache`), the real
    test digits' feature statistics, and the floor and ceiling judged with n images."""
    judge = digit_judge(dataset, cache, seed=seed, epochs=epochs)
    reference = judge.feature_stats(test)
    return judge, reference, floor_and_ceiling(judge, train, reference, n=n, seed=seed)


def floor_and_ceiling(judge: DigitJudge, train: torch.Tensor, reference: tuple[torch.Tensor, torch.Tensor], n: int,
                      seed: int = 0) -> dict[str, dict[str, Any]]:
    """What every generator is shown beside, judged against the same real test statistics:
    real training digits (the floor a perfect generator would reach with n samples), Gaussian noise with
    the digits' pixel mean and spread, and digits blurred by a 7x7 box filter (right classes, wrong texture)."""
    g = torch.Generator().manual_seed(seed)
    real = train[torch.randperm(len(train), generator=g)[:n]]
    noise = (real.mean() + real.std() * torch.randn(real.shape, generator=g)).clamp(0, 1)
    blurred = torch.nn.functional.avg_pool2d(real, 7, stride=1, padding=3, count_include_pad=False)
    return {name: judge.judge(images, reference) for name, images in (("real train digits", real), ("Gaussian noise", noise),
                                                                       ("blurred digits", blurred))}


def image_grid(ax: Any, images: torch.Tensor, rows: int, title: str = "") -> None:
    """Draw (N, 1, H, W) images in [0, 1] as one `rows` x N/rows mosaic on a matplotlib axis."""
    n, _, h, w = images.shape
    cols = math.ceil(n / rows)
    canvas = torch.ones(rows * (h + 1), cols * (w + 1))
    for i in range(n):
        r, c = divmod(i, cols)
        canvas[r * (h + 1): r * (h + 1) + h, c * (w + 1): c * (w + 1) + w] = images[i, 0]
    ax.imshow(canvas.numpy(), cmap="gray_r", vmin=0, vmax=1)
    ax.set_title(title, fontsize=8)
    ax.axis("off")


def samples_figure(images: torch.Tensor, title: str) -> Any:
    """Up to 100 samples, 10 a row, on a figure of their own: the plot the report sets beside the other generators'."""
    import matplotlib.pyplot as plt

    images = images[:100]
    fig, ax = plt.subplots(figsize=(4, 4.2))
    image_grid(ax, images, rows=math.ceil(len(images) / 10), title=title)
    fig.tight_layout()
    return fig


def quality_bars(ax: Any, results: dict[str, dict[str, Any]], title: str = "FLD to the real test digits (lower is better)") -> None:
    """Horizontal bars of FLD (log scale) with each set's classifier score written beside it."""
    names = list(results)
    values = [max(results[k]["fld"], 1e-3) for k in names]
    ax.barh(names, values, color=["tab:gray" if k in ("real train digits", "Gaussian noise", "blurred digits") else "tab:blue" for k in names])
    for i, k in enumerate(names):
        ax.text(values[i], i, f" {results[k]['fld']:.1f}  (score {results[k]['classifier_score']:.2f}, {results[k]['classes_present']} digits)",
                va="center", fontsize=7)
    ax.set_xscale("log")
    ax.set_title(title, fontsize=8)
    ax.set_xlabel("FLD: Fréchet distance of our LeNet-5's features (not comparable with Inception FID)", fontsize=7)
