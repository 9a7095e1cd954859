"""Judging samples (FLD = torchmetrics' FID given the same feature module, classifier score, coverage)
and the VAE's pieces (closed-form KL = torch.distributions, the importance-weighted bound)."""

from __future__ import annotations

import math

import pytest
import torch

from dlroadmap.evaluate.generative import (LeNetFeatures, class_coverage, classifier_score, digit_judge, frechet_distance,
                                           gaussian_stats, sqrtm_psd)
from dlroadmap.models.generative.vae import VAE, gaussian_kl, importance_weighted_nll, negative_elbo, reparameterise
from dlroadmap.models.vision.lenet import LeNet5


def _features() -> LeNetFeatures:
    torch.manual_seed(0)
    return LeNetFeatures(LeNet5(input_size=28, activation="relu", pool="max").eval(), mean=33.0, std=78.0)


def _digits(n: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    """Blobs of ink at random places: two sets differ when `shift` moves the blobs."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    c = 8 + 12 * torch.rand(n, 2, 1, 1, generator=g) + shift
    return torch.exp(-((yy - c[:, 0]) ** 2 + (xx - c[:, 1]) ** 2) / 18).unsqueeze(1).clamp(0, 1)


@pytest.mark.parametrize("shift", [0.0, 3.0])
def test_fld_equals_torchmetrics_fid_with_the_same_feature_module(shift):
    from torchmetrics.image.fid import FrechetInceptionDistance

    features = _features()
    real, fake = _digits(600, 0), _digits(500, 1, shift)
    fid = FrechetInceptionDistance(feature=features, input_img_size=(1, 28, 28), normalize=True)
    fid.update(real, real=True)
    fid.update(fake, real=False)
    reference = float(fid.compute())
    with torch.no_grad():
        ours = frechet_distance(*gaussian_stats(features(fake)), *gaussian_stats(features(real)))
    assert reference > 0
    assert ours == pytest.approx(reference, rel=1e-4)


def test_frechet_distance_of_known_gaussians():
    # Closed form for commuting covariances: |mu1-mu2|^2 + sum (sqrt(a) - sqrt(b))^2 over the eigenvalues.
    a, b = torch.tensor([4.0, 1.0, 9.0]).double(), torch.tensor([1.0, 1.0, 4.0]).double()
    mu1, mu2 = torch.tensor([1.0, 0.0, 0.0]).double(), torch.tensor([0.0, 2.0, 0.0]).double()
    expected = 1 + 4 + float(((a.sqrt() - b.sqrt()) ** 2).sum())
    assert frechet_distance(mu1, torch.diag(a), mu2, torch.diag(b)) == pytest.approx(expected, rel=1e-12)
    # A rotation of both leaves it unchanged; the covariances then do not commute with the axes.
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(0)).double())
    rotated = frechet_distance(q @ mu1, q @ torch.diag(a) @ q.T, q @ mu2, q @ torch.diag(b) @ q.T)
    assert rotated == pytest.approx(expected, rel=1e-10)
    s = sqrtm_psd(q @ torch.diag(a) @ q.T)
    assert torch.allclose(s @ s, q @ torch.diag(a) @ q.T, atol=1e-12)


def test_classifier_score_and_coverage_bounds():
    confident_uniform = torch.eye(10).repeat(100, 1)              # every sample sure, all classes equally often
    assert classifier_score(confident_uniform)[0] == pytest.approx(10.0, rel=1e-9)
    one_class = torch.zeros(1000, 10)
    one_class[:, 3] = 1
    assert classifier_score(one_class)[0] == pytest.approx(1.0, rel=1e-9)
    unsure = torch.full((1000, 10), 0.1)
    assert classifier_score(unsure)[0] == pytest.approx(1.0, rel=1e-9)
    cov = class_coverage(torch.tensor([0, 0, 0, 1, 2]), 3)
    assert cov == {"counts": [3, 1, 1], "classes_present": 3, "max_min_ratio": 3.0}
    assert math.isinf(class_coverage(torch.tensor([0, 1]), 3)["max_min_ratio"])


def test_judge_is_trained_once_then_loaded(tmp_path):
    first = digit_judge("mnist5k", tmp_path, seed=0, epochs=2)
    assert len(list(tmp_path.iterdir())) == 1
    again = digit_judge("mnist5k", tmp_path, seed=0, epochs=2)
    images = _digits(50, 3)
    with torch.no_grad():
        assert torch.equal(first.features(images), again.features(images))
    assert again.test_accuracy == first.test_accuracy > 0.8
    # One pass gives FLD, score and, given the asked labels, the accuracy: the same as reading the digits alone.
    labels = torch.arange(50) % 10
    judged = again.judge(images, again.feature_stats(images), labels)
    assert judged["accuracy"] == again.accuracy_on(images, labels)
    assert judged["accuracy"] == float((again.probabilities(images).argmax(1) == labels).float().mean())


def test_closed_form_kl_equals_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(64, 20, generator=g).double() * 2, torch.randn(64, 20, generator=g).double()
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    torch.testing.assert_close(gaussian_kl(mu, logvar), torch.distributions.kl_divergence(q, p).sum(1), rtol=1e-12, atol=1e-12)


def test_reparameterisation_passes_gradients_to_mu_and_sigma():
    mu = torch.zeros(5, 3, requires_grad=True)
    logvar = torch.zeros(5, 3, requires_grad=True)
    reparameterise(mu, logvar, torch.Generator().manual_seed(0)).square().sum().backward()
    assert mu.grad.abs().sum() > 0 and logvar.grad.abs().sum() > 0


def test_importance_weighted_bound_tightens_and_k1_is_an_elbo_estimate():
    torch.manual_seed(0)
    model = VAE(latent=4, hidden=32).eval()
    x = torch.rand(40, 1, 28, 28).round()
    with torch.no_grad():
        logits, mu, logvar = model(x)
        # The ELBO with the analytic KL vs the k=1 estimate (Monte Carlo KL): equal in expectation.
        elbo = float(torch.stack([negative_elbo(model.decode(reparameterise(mu, logvar)), x, mu, logvar) for _ in range(200)]).mean())
    g = torch.Generator().manual_seed(1)
    k1 = float(importance_weighted_nll(model, x, 1, generator=g).mean())
    k1_many = float(torch.stack([importance_weighted_nll(model, x, 1, generator=g) for _ in range(200)]).mean())
    k500 = float(importance_weighted_nll(model, x, 500, rows=3000, generator=g).mean())   # several chunks
    assert k1_many == pytest.approx(elbo, rel=2e-3)
    assert k500 < k1_many - 0.5
    assert math.isfinite(k1)


def test_conditional_vae_needs_and_uses_the_class():
    torch.manual_seed(0)
    cvae = VAE(latent=2, hidden=16, num_classes=10)
    with pytest.raises(ValueError, match="needs the class"):
        cvae.sample(4)
    z = torch.zeros(2, 2)
    out = cvae.decode(z, torch.tensor([1, 7]))
    assert not torch.allclose(out[0], out[1])


def test_importance_weighted_bound_is_exact_when_every_weight_is_equal():
    """q(z|x) = p(z) and a decoder that ignores z make every weight p(x|z) p(z) / q(z|x) = p(x): then the
    estimate is exactly -log p(x) for any k (the - log k term cancels the k equal terms of the sum)."""
    torch.manual_seed(0)
    model = VAE(latent=3, hidden=8).eval()
    with torch.no_grad():
        for layer in (model.mu, model.logvar, model.dec2):
            layer.weight.zero_()
        model.mu.bias.zero_()
        model.logvar.bias.zero_()                                   # q = N(0, I) = p(z)
        model.dec2.bias.copy_(torch.randn(784))                     # logits independent of z
    x = torch.rand(5, 1, 28, 28).round()
    exact = torch.nn.functional.binary_cross_entropy_with_logits(model.dec2.bias.expand(5, -1), x.flatten(1), reduction="none").sum(1)
    for k in (1, 7, 300):
        torch.testing.assert_close(importance_weighted_nll(model, x, k, rows=40, generator=torch.Generator().manual_seed(k)), exact,
                                   rtol=1e-5, atol=1e-4)
