"""Explanations against the reference packages (shap, lime, captum) and against answers known in closed form."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dlroadmap.interpret.faithfulness import auc, deletion_insertion, pixel_order, randomisation_test
from dlroadmap.interpret.gradients import (completeness_gap, gradient_shap, gradient_x_input, integrated_gradients, saliency,
                                           smoothgrad)
from dlroadmap.interpret.lime import lime_image, lime_tabular, weighted_ridge
from dlroadmap.interpret.shapley import exact_shapley, kernel_shap
from dlroadmap.models.vision.lenet import LeNet5


@pytest.fixture(scope="module")
def tabular():
    """A non-linear, interacting model of 6 features and a background sample."""
    rng = np.random.default_rng(0)
    W = rng.normal(size=(6, 8))

    def f(Z):
        return np.tanh(Z @ W).sum(1) + Z[:, 0] * Z[:, 1]
    return f, rng.normal(size=6), rng.normal(size=(15, 6))


def test_exact_shapley_of_a_linear_model_is_weight_times_centred_input():
    rng = np.random.default_rng(1)
    w, x, bg = rng.normal(size=5), rng.normal(size=5), rng.normal(size=(9, 5))
    phi, base = exact_shapley(lambda Z: Z @ w + 3.0, x, bg)
    assert np.allclose(phi, w * (x - bg.mean(0)), atol=1e-12)
    assert base == pytest.approx((bg @ w).mean() + 3.0)


def test_exact_shapley_is_efficient_and_equals_shap_kernel_explainer(tabular):
    import shap

    f, x, bg = tabular
    phi, base = exact_shapley(f, x, bg)
    assert phi.sum() == pytest.approx(f(x[None])[0] - base, abs=1e-12)          # efficiency
    ref = shap.KernelExplainer(f, bg).shap_values(x[None], nsamples=2 ** 6, l1_reg=False, silent=True)[0]
    assert np.abs(phi - ref).max() < 1e-9
    # KernelSHAP's regression over every coalition is Shapley's formula.
    assert np.abs(kernel_shap(f, x, bg, n_samples=2 ** 6)[0] - phi).max() < 1e-9


def test_kernel_shap_converges_as_samples_grow():
    rng = np.random.default_rng(2)
    W = rng.normal(size=(12, 6))
    f = lambda Z: np.tanh(Z @ W).sum(1)                                         # noqa: E731
    x, bg = rng.normal(size=12), rng.normal(size=(5, 12))
    phi, _ = exact_shapley(f, x, bg)
    err = {n: np.mean([np.abs(kernel_shap(f, x, bg, n, np.random.default_rng(s))[0] - phi).max() for s in range(6)]) for n in (40, 2000)}
    assert err[2000] < err[40] / 4


def test_weighted_ridge_equals_sklearn():
    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(3)
    X, y, w = rng.normal(size=(50, 4)), rng.normal(size=50), rng.random(50)
    coef, intercept, r2 = weighted_ridge(X, y, w, alpha=0.7)
    ref = Ridge(alpha=0.7).fit(X, y, sample_weight=w)
    assert np.abs(coef - ref.coef_).max() < 1e-12 and intercept == pytest.approx(ref.intercept_)
    assert r2 == pytest.approx(ref.score(X, y, sample_weight=w))


@pytest.mark.parametrize("seed", [0, 11])
def test_lime_tabular_equals_lime_package(tabular, seed):
    from lime.lime_tabular import LimeTabularExplainer

    f, x, bg = tabular
    train = np.random.default_rng(4).normal(2.0, 3.0, size=(80, 6))
    ours = lime_tabular(f, x, train.mean(0), train.std(0), n_samples=700, seed=seed)
    ref = LimeTabularExplainer(train, mode="regression", discretize_continuous=False, random_state=seed,
                               feature_selection="none").explain_instance(x, f, num_features=6, num_samples=700)
    coef = np.zeros(6)
    for i, c in ref.local_exp[1]:
        coef[i] = c
    assert np.abs(coef - ours.coef).max() < 1e-6
    assert ref.intercept[1] == pytest.approx(ours.intercept, abs=1e-6)


def test_lime_image_equals_lime_package():
    from lime.lime_image import LimeImageExplainer

    rng = np.random.default_rng(5)
    image = rng.random((12, 12))
    segments = (np.arange(12)[:, None] // 4) * 3 + np.arange(12)[None, :] // 4     # a 3x3 grid of superpixels
    w = rng.normal(size=(12, 12))
    f = lambda ims: np.tanh((ims.reshape(len(ims), -1) * w.reshape(-1)).sum(1))   # noqa: E731
    ours = lime_image(f, image, segments, n_samples=300, seed=7, fill=0.2)
    ref = LimeImageExplainer(kernel_width=0.25, feature_selection="none", random_state=7).explain_instance(
        image, lambda ims: np.column_stack([f(ims[..., 0]), -f(ims[..., 0])]), labels=(0,), top_labels=None, hide_color=0.2,
        num_features=9, num_samples=300, segmentation_fn=lambda _: segments, random_seed=0, batch_size=300)
    coef = np.zeros(9)
    for i, c in ref.local_exp[0]:
        coef[i] = c
    assert np.abs(coef - ours.coef).max() < 1e-6


@pytest.fixture(scope="module")
def cnn():
    torch.manual_seed(0)
    net = LeNet5(input_size=28, activation="relu", pool="max").double().eval()
    return net, torch.randn(3, 28, 28, dtype=torch.float64), torch.tensor([1, 4, 7])


def test_gradient_methods_equal_captum(cnn):
    from captum.attr import GradientShap, InputXGradient, IntegratedGradients, NoiseTunnel, Saliency

    net, x, t = cnn
    close = lambda a, b: (a - b).abs().max().item() < 1e-6                     # noqa: E731
    assert close(saliency(net, x, t), Saliency(net).attribute(x, target=t))
    assert close(gradient_x_input(net, x, t), InputXGradient(net).attribute(x, target=t))
    assert close(integrated_gradients(net, x, t, baseline=-0.4, steps=20),
                 IntegratedGradients(net).attribute(x, baselines=-0.4, target=t, n_steps=20))
    ours = smoothgrad(net, x, t, samples=6, sigma=0.3, generator=torch.Generator().manual_seed(3))
    torch.manual_seed(3)
    assert close(ours, NoiseTunnel(Saliency(net)).attribute(x, nt_type="smoothgrad", nt_samples=6, stdevs=0.3, target=t))
    baselines = torch.randn(10, 28, 28, dtype=torch.float64)
    ours = gradient_shap(net, x, t, baselines, samples=7, sigma=0.1, seed=9, generator=torch.Generator().manual_seed(5))
    torch.manual_seed(5)
    np.random.seed(9)
    assert close(ours, GradientShap(net).attribute(x, baselines, n_samples=7, stdevs=0.1, target=t))


def test_integrated_gradients_completeness():
    """On a smooth (tanh) network Gauss-Legendre quadrature converges fast: the attributions then add up to
    f(x) - f(baseline) to machine precision (Sundararajan et al.'s completeness axiom)."""
    torch.manual_seed(0)
    net = LeNet5(input_size=28).double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(3)                                                           # outputs that move by ~1 along the path
    x, t = torch.randn(3, 28, 28, dtype=torch.float64), torch.tensor([1, 4, 7])
    gaps = [completeness_gap(net, x, t, integrated_gradients(net, x, t, baseline=0.0, steps=s)).abs().max().item() for s in (4, 16, 64)]
    assert gaps[0] > 1e-3 and gaps[1] < 1e-7 and gaps[2] < 1e-12


def test_deletion_insertion_reward_the_right_order():
    """A 'model' whose probability is the fraction of the top-left quadrant still lit: deleting those pixels first
    drops it fastest; a random order is far behind."""
    x = torch.ones(8, 8)
    important = torch.zeros(8, 8)
    important[:4, :4] = 1.0
    prob = lambda b: (b[:, :4, :4].reshape(len(b), -1).mean(1))                 # noqa: E731
    rng = np.random.default_rng(0)
    good_d, good_i = deletion_insertion(prob, x, pixel_order(important.numpy(), rng), fill=0.0, steps=16)
    bad_d, bad_i = deletion_insertion(prob, x, rng.permutation(64), fill=0.0, steps=16)
    assert good_d[0] == 1 and good_d[-1] == 0 and good_i[0] == 0 and good_i[-1] == 1
    assert auc(good_d) < auc(bad_d) - 0.3 and auc(good_i) > auc(bad_i) + 0.3


def test_randomisation_test_leaves_the_model_alone_and_decorrelates_saliency(cnn):
    net, x, t = cnn
    before = {k: v.clone() for k, v in net.state_dict().items()}
    layers, curves = randomisation_test(net, {"saliency": saliency}, x, t)
    assert layers[0].startswith("classifier") and layers[-1].startswith("features")
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert len(curves["saliency"]) == len(layers) and curves["saliency"][-1] < 0.9


@pytest.fixture
def bundle(tmp_path):
    """A LeNet-5 bundle as the shap_lime node writes it (weights made here, not trained: the CLI is under test)."""
    from dlroadmap.deploy.bundle import normalisation, save_bundle

    torch.manual_seed(0)
    kwargs = {"num_classes": 10, "input_size": 28, "activation": "relu", "pool": "max"}
    path = save_bundle(tmp_path / "run" / "model", LeNet5(**kwargs), name="lenet5-test", family="lenet5", kwargs=kwargs,
                       input_shape=[28, 28], classes=[str(i) for i in range(10)], preprocessing=normalisation(33.4, 78.6), source={})
    digit = np.zeros((28, 28), dtype=np.float32)
    digit[6:22, 12:16] = 255.0                                                  # a "1"
    np.save(tmp_path / "digit.npy", digit)
    return path.parent, tmp_path / "digit.npy"


@pytest.mark.parametrize("method", ["ig", "saliency", "shap", "lime", "smoothgrad", "gradient_shap", "gradient_x_input"])
def test_dlr_explain_writes_the_figure(cli, bundle, method, tmp_path):
    run, digit = bundle
    code, out, err = cli("explain", str(run), "--input", str(digit), "--method", method, "--samples", "200", "--out", str(tmp_path / "e.png"))
    assert code == 0, out + err
    assert (tmp_path / "e.png").stat().st_size > 5000 and "wrote" in out + err


def test_explain_attributions_add_up(bundle):
    """IG (many steps) and KernelSHAP over superpixels both split f(x) - f(black) among the pixels."""
    from dlroadmap.deploy.bundle import find_bundle
    from dlroadmap.interpret.explain import explain_bundle, read_input

    run, digit = bundle
    b = find_bundle(run)
    raw = read_input(digit, b.input_shape)
    net = b.build()
    x = (torch.from_numpy(raw) - 33.4) / 78.6
    with torch.no_grad():
        delta = (net(x[None]) - net(torch.full((1, 28, 28), -33.4 / 78.6)))[0]
    for method in ("ig", "shap"):
        e = explain_bundle(b, raw, method, samples=3000, steps=200)
        assert e.attribution.shape == (28, 28)
        assert e.attribution.sum() == pytest.approx(float(delta[e.target]), abs=2e-3)


@pytest.mark.parametrize("args, message", [
    (["--method", "gradcam"], "unknown --method 'gradcam'"),
    (["--input", "wrong.npy"], "has shape (3, 3), but the model takes (28, 28)"),
    (["--input", "missing.npy"], "does not exist"),
    (["--target", "12"], "--target 12 is not a class"),
])
def test_dlr_explain_bad_input_is_one_line_exit_2(cli, bundle, tmp_path, args, message):
    run, digit = bundle
    np.save(tmp_path / "wrong.npy", np.zeros((3, 3)))
    if "--input" not in args:
        args = ["--input", str(digit), *args]
    code, out, err = cli("explain", str(run), *args)
    assert code == 2 and message in (out + err).replace("\n", " ")
    assert "Traceback" not in out + err and len((out + err).strip().splitlines()) <= 2
