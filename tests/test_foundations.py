"""Phase 1 lessons against their references: numpy.linalg, sklearn, scipy.stats, torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis.extra import numpy as hnp

from dlroadmap.foundations import calculus as C
from dlroadmap.foundations import linalg as L
from dlroadmap.foundations import ml_basics as ML
from dlroadmap.foundations import neural as N
from dlroadmap.foundations import probability as P

# --- linear algebra ---------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(hnp.mutually_broadcastable_shapes(num_shapes=3, max_dims=4, max_side=4))
def test_broadcast_shape_matches_numpy(shapes):
    assert L.broadcast_shape(*shapes.input_shapes) == np.broadcast_shapes(*shapes.input_shapes)


def test_broadcast_shape_error_and_strides_and_views():
    with pytest.raises(ValueError, match="cannot be broadcast"):
        L.broadcast_shape((2, 3), (4, 3))
    a = np.zeros((3, 4, 5), dtype=np.float32)
    assert L.strides_for(a.shape, 4) == a.strides
    assert L.is_view(a.T, a) and L.is_view(a[:, 1], a) and L.is_view(a.reshape(12, 5), a)
    assert not L.is_view(a[[0, 2]], a)  # fancy indexing copies
    assert max(L.einsum_examples(np.random.default_rng(0)).values()) < 1e-12


@pytest.mark.parametrize("fn", [L.matmul_naive, L.matmul_blocked, L.matmul_blas])
def test_matmul_variants_agree(fn):
    rng = np.random.default_rng(0)
    for shape in ((7, 5, 3), (33, 70, 65), (1, 1, 1)):
        n, m, p = shape
        A, B = rng.normal(size=(n, m)), rng.normal(size=(m, p))
        np.testing.assert_allclose(fn(A, B), A @ B, rtol=1e-10, atol=1e-10)


def test_power_iteration_finds_dominant_eigenpair():
    rng = np.random.default_rng(1)
    Q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    A = Q @ np.diag([5.0, 2, 1, 0.5, -0.3, 0.1]) @ Q.T
    lam, v, est = L.power_iteration(A)
    assert lam == pytest.approx(5.0, abs=1e-10)
    assert abs(abs(v @ Q[:, 0]) - 1) < 1e-10


@pytest.mark.parametrize("n", [2, 5, 12, 30])
def test_qr_algorithm_symmetric_matches_eigh(n):
    rng = np.random.default_rng(n)
    A = rng.normal(size=(n, n))
    S = A + A.T
    vals, vecs = L.eig_symmetric(S)
    ref_vals, ref_vecs = np.linalg.eigh(S)
    np.testing.assert_allclose(vals, ref_vals, atol=1e-10)
    np.testing.assert_allclose(np.abs(vecs.T @ ref_vecs), np.eye(n), atol=1e-7)  # same vectors up to sign
    np.testing.assert_allclose(vecs.T @ vecs, np.eye(n), atol=1e-10)


@pytest.mark.parametrize("n", [2, 4, 9, 20])
def test_qr_algorithm_nonsymmetric_matches_eig(n):
    rng = np.random.default_rng(100 + n)
    A = rng.normal(size=(n, n))  # generally has complex-conjugate eigenvalue pairs
    vals, _ = L.qr_algorithm(A)
    ref = np.linalg.eig(A)[0]
    for lam in vals:
        assert np.min(np.abs(ref - lam)) < 1e-8
    assert np.sort_complex(vals).real == pytest.approx(np.sort_complex(ref).real, abs=1e-8)
    for lam in vals:
        v = L.eigvec_inverse_iteration(A, lam)
        assert np.linalg.norm(A @ v - lam * v) < 1e-8


def test_householder_qr():
    A = np.random.default_rng(3).normal(size=(6, 4))
    Q, R = L.householder_qr(A)
    np.testing.assert_allclose(Q @ R, A, atol=1e-12)
    np.testing.assert_allclose(Q.T @ Q, np.eye(6), atol=1e-12)
    assert np.allclose(np.tril(R, -1), 0)


def test_pca_matches_sklearn():
    from sklearn.datasets import load_digits
    from sklearn.decomposition import PCA

    X = load_digits().data
    Z, comps, var = L.pca(X, 10)
    ref = PCA(10).fit(X)
    np.testing.assert_allclose(var, ref.explained_variance_, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(np.abs(comps), np.abs(ref.components_), atol=1e-6)
    np.testing.assert_allclose(np.abs(Z), np.abs(ref.transform(X)), atol=1e-6)


# --- calculus ------------------------------------------------------------------------------------------


def test_central_difference_is_second_order():
    errs = C.finite_difference_errors(np.sin, np.cos, 0.7, np.array([1e-2, 1e-3]))
    assert errs["central"][0] / errs["central"][1] == pytest.approx(100, rel=0.05)  # O(h^2)
    assert errs["forward"][0] / errs["forward"][1] == pytest.approx(10, rel=0.05)   # O(h)


def test_gradient_jacobian_hessian_against_analytic_and_torch():
    p = np.array([-0.7, 1.3])
    np.testing.assert_allclose(C.gradient(C.rosenbrock, p), C.rosenbrock_grad(p), rtol=1e-7)
    np.testing.assert_allclose(C.hessian(C.rosenbrock, p), C.rosenbrock_hessian(p), rtol=1e-5)
    np.testing.assert_allclose(C.jacobian(C.polar_to_cartesian, np.array([2.0, 0.4])), C.polar_jacobian(np.array([2.0, 0.4])), atol=1e-9)
    rosen_t = lambda t: (1 - t[0]) ** 2 + 100 * (t[1] - t[0] ** 2) ** 2  # noqa: E731
    H_torch = torch.autograd.functional.hessian(rosen_t, torch.tensor(p))
    np.testing.assert_allclose(C.rosenbrock_hessian(p), H_torch.numpy(), rtol=1e-12)
    J_torch = torch.autograd.functional.jacobian(lambda t: torch.stack([t[0] * torch.cos(t[1]), t[0] * torch.sin(t[1])]), torch.tensor([2.0, 0.4], dtype=torch.float64))
    np.testing.assert_allclose(C.polar_jacobian(np.array([2.0, 0.4])), J_torch.numpy(), rtol=1e-12)


def test_chain_rule_by_hand_equals_autograd():
    rng = np.random.default_rng(0)
    W, b, x = rng.normal(size=(4, 3)), rng.normal(size=4), rng.normal(size=3)
    f, grad = C.composed(W, b)
    assert C.grad_check(f, grad, x) < 1e-8
    J = C.chain_rule_jacobians(W, b, x)["J_total"]
    xt = torch.tensor(x, requires_grad=True)
    torch.sum(torch.tanh(torch.tensor(W) @ xt + torch.tensor(b)) ** 2).backward()
    np.testing.assert_allclose(J[0], xt.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(grad(x), xt.grad.numpy(), rtol=1e-12)
    assert C.grad_check(f, lambda z: grad(z) * 1.01, x) > 1e-3  # a wrong gradient is caught


# --- probability ------------------------------------------------------------------------------------------


def test_bayes_closed_form_and_simulation():
    post = P.bayes_posterior(prior=0.01, sensitivity=0.95, specificity=0.95)
    assert post["p_disease_given_positive"] == pytest.approx(0.95 * 0.01 / (0.95 * 0.01 + 0.05 * 0.99))
    assert P.simulate_diagnostic(0.01, 0.95, 0.95, 400_000) == pytest.approx(post["p_disease_given_positive"], abs=0.01)


def test_naive_bayes_matches_sklearn():
    from sklearn.datasets import load_wine
    from sklearn.naive_bayes import GaussianNB

    X, y = load_wine(return_X_y=True)
    ours, ref = P.GaussianNaiveBayes().fit(X, y), GaussianNB().fit(X, y)
    np.testing.assert_allclose(ours.theta_, ref.theta_, rtol=1e-12)
    np.testing.assert_allclose(ours.var_, ref.var_, rtol=1e-12)
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X), atol=1e-10)
    assert np.array_equal(ours.predict(X), ref.predict(X))


def test_gaussian_against_scipy():
    from scipy import stats

    x = np.linspace(-4, 6, 41)
    np.testing.assert_allclose(P.gaussian_pdf(x, 1.0, 1.7), stats.norm(1.0, 1.7).pdf(x), rtol=1e-12)
    np.testing.assert_allclose(P.gaussian_logpdf(x, 1.0, 1.7), stats.norm(1.0, 1.7).logpdf(x), rtol=1e-12)
    np.testing.assert_allclose(P.gaussian_cdf(x, 1.0, 1.7), stats.norm(1.0, 1.7).cdf(x), rtol=1e-10, atol=1e-14)
    samples = P.box_muller(200_000, np.random.default_rng(0))
    assert stats.kstest(samples, "norm").pvalue > 0.01
    data = 3.0 + 2.0 * P.box_muller(5000, np.random.default_rng(1))
    fit = P.fit_gaussian_mle(data)
    mu, sigma = stats.norm.fit(data)  # scipy's MLE
    assert fit.mu == pytest.approx(mu, rel=1e-12) and fit.sigma == pytest.approx(sigma, rel=1e-12)
    kl = P.kl_gaussians(0.5, 1.2, -0.3, 0.8)
    xs = np.linspace(-15, 15, 200_001)
    p, q = stats.norm(0.5, 1.2).pdf(xs), stats.norm(-0.3, 0.8).pdf(xs)
    assert kl == pytest.approx(np.trapezoid(p * np.log(p / q), xs), rel=1e-6)
    assert P.kl_monte_carlo(0.5, 1.2, -0.3, 0.8, 400_000) == pytest.approx(kl, rel=0.02)


def test_monte_carlo_rate_is_one_over_sqrt_n():
    ns = np.array([10, 40, 160, 640, 2560])
    errs = P.monte_carlo_errors(lambda rng, n: rng.exponential(2.0, n), 2.0, ns, trials=300)
    assert P.fit_power_law(ns, errs) == pytest.approx(-0.5, abs=0.08)
    v, p = np.arange(1, 7), np.full(6, 1 / 6)
    assert P.expectation(v, p) == pytest.approx(3.5) and P.variance(v, p) == pytest.approx(35 / 12)


# --- ML basics ----------------------------------------------------------------------------------------------


def test_linear_regression_matches_sklearn():
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import LinearRegression

    X, y = load_diabetes(return_X_y=True)
    w, b = ML.linear_regression_normal_equations(X, y)
    ref = LinearRegression().fit(X, y)
    np.testing.assert_allclose(w, ref.coef_, rtol=1e-8)
    assert b == pytest.approx(ref.intercept_, rel=1e-10)
    Xs = (X - X.mean(0)) / X.std(0)
    w_gd, b_gd, losses = ML.linear_regression_gd(Xs, y, lr=0.1, epochs=3000)
    w_ne, b_ne = ML.linear_regression_normal_equations(Xs, y)
    best = np.mean((Xs @ w_ne + b_ne - y) ** 2)
    # Collinear features (s1..s3) make the valley flat: GD reaches the optimal loss long before the exact weights.
    assert losses[-1] == pytest.approx(best, rel=1e-4) and b_gd == pytest.approx(b_ne, rel=1e-6)
    np.testing.assert_allclose(w_gd, w_ne, atol=0.5)


def test_logistic_regression_matches_sklearn():
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression

    X, y = load_breast_cancer(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)
    w, b = ML.logistic_regression_newton(X, y, C=1.0)
    ref = LogisticRegression(C=1.0, tol=1e-12, max_iter=10_000).fit(X, y)
    np.testing.assert_allclose(w, ref.coef_[0], rtol=1e-4, atol=1e-5)
    assert b == pytest.approx(ref.intercept_[0], abs=1e-5)


def test_kmeans_matches_sklearn_from_the_same_init():
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score

    from dlroadmap.data import load

    X = load("blobs", n=600, centers=4, seed=3).X.astype(np.float64)
    init = ML.kmeans_plus_plus(X, 4, np.random.default_rng(0))
    labels, centres, inertia = ML.kmeans(X, 4, init=init)
    ref = KMeans(4, init=init, n_init=1, tol=0, algorithm="lloyd").fit(X)
    assert inertia == pytest.approx(ref.inertia_, rel=1e-9)
    assert adjusted_rand_score(labels, ref.labels_) == pytest.approx(1.0)


def test_kfold_partitions_and_stratifies():
    y = np.repeat([0, 1, 2], [30, 20, 10])
    folds = ML.kfold_indices(y, 5)
    val = np.concatenate([v for _, v in folds])
    assert sorted(val.tolist()) == list(range(60))
    for tr, va in folds:
        assert np.bincount(y[va]).tolist() == [6, 4, 2] and len(set(tr) & set(va)) == 0


LOSSES = [
    ("mse", lambda p, y: ML.mse(p, y), lambda p, y: torch.nn.functional.mse_loss(p, y), "reg"),
    ("mae", lambda p, y: ML.mae(p, y), lambda p, y: torch.nn.functional.l1_loss(p, y), "reg"),
    ("huber", lambda p, y: ML.huber(p, y, 0.7), lambda p, y: torch.nn.functional.huber_loss(p, y, delta=0.7), "reg"),
    ("cross_entropy", lambda p, y: ML.cross_entropy(p, y), lambda p, y: torch.nn.functional.cross_entropy(p, y), "cls"),
    ("hinge", lambda p, y: ML.hinge(p, y), lambda p, y: torch.nn.functional.multi_margin_loss(p, y), "cls"),
]


@pytest.mark.parametrize("name,ours,theirs,kind", LOSSES, ids=[l[0] for l in LOSSES])
def test_losses_and_gradients_match_torch(name, ours, theirs, kind):
    rng = np.random.default_rng(7)
    pred = rng.normal(size=(12, 4))
    y = rng.normal(size=(12, 4)) if kind == "reg" else rng.integers(0, 4, 12)
    loss, grad = ours(pred, y)
    pt = torch.tensor(pred, requires_grad=True)
    lt = theirs(pt, torch.tensor(y))
    lt.backward()
    assert loss == pytest.approx(lt.item(), rel=1e-12)
    np.testing.assert_allclose(grad, pt.grad.numpy(), rtol=1e-10, atol=1e-14)
    assert C.grad_check(lambda p: ours(p, y)[0], lambda p: ours(p, y)[1], pred) < 1e-6


def test_gradient_descent_learning_rates_on_a_quadratic():
    f, g = ML.quadratic(1.0, 20.0)
    x0 = np.array([1.0, 1.0])
    assert ML.steps_to_converge(f, ML.gradient_descent(g, x0, lr=0.09, steps=500)) is not None
    diverged = ML.gradient_descent(g, x0, lr=0.11, steps=500)  # > 2 / 20
    assert f(diverged[-1]) > f(x0)
    slow = ML.steps_to_converge(f, ML.gradient_descent(g, x0, lr=0.05, steps=2000))
    fast = ML.steps_to_converge(f, ML.gradient_descent(g, x0, lr=0.05, steps=2000, momentum=0.8))
    assert fast < slow


# --- intro to neural networks ---------------------------------------------------------------------------------


def test_perceptron_converges_within_novikoff_bound_and_matches_sklearn():
    from sklearn.linear_model import Perceptron as SkPerceptron

    X, y, w, b = N.linearly_separable(200, margin=0.3, seed=1)
    p = N.Perceptron(epochs=1000).fit(X, y)
    assert p.converged and np.all(p.predict(X) == y)
    assert p.total_updates <= N.novikoff_bound(X, y, w, b)
    ref = SkPerceptron(eta0=1.0, shuffle=False, max_iter=1, tol=None, penalty=None).fit(X, y)
    one = N.Perceptron(epochs=1).fit(X, y)
    np.testing.assert_allclose(one.w, ref.coef_[0], rtol=1e-12)
    assert one.b == pytest.approx(ref.intercept_[0])


def test_perceptron_fails_on_xor_and_mlp_solves_it():
    X, y = N.xor_data()
    p = N.Perceptron(epochs=500).fit(X, y)
    assert not p.converged and min(p.mistakes_per_epoch) >= 1
    loss, pred = N.train_xor_mlp()
    assert np.array_equal(pred, y) and loss < 0.05


@pytest.mark.parametrize("name,torch_fn", [("sigmoid", torch.sigmoid), ("tanh", torch.tanh), ("relu", torch.relu),
                                           ("leaky_relu", torch.nn.functional.leaky_relu), ("gelu", torch.nn.functional.gelu)])
def test_activation_values_and_derivatives_match_torch(name, torch_fn):
    f, df = N.ACTIVATIONS[name]
    z = np.linspace(-6, 6, 121)
    z = z[np.abs(z) > 1e-9]
    zt = torch.tensor(z, requires_grad=True)
    out = torch_fn(zt)
    out.sum().backward()
    np.testing.assert_allclose(f(z), out.detach().numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(df(z), zt.grad.numpy(), rtol=1e-10, atol=1e-15)


def test_saturating_activations_starve_deep_gradients_and_ce_beats_mse():
    assert N.gradient_through_depth("sigmoid", 20) < 1e-6 < N.gradient_through_depth("relu", 20)
    ce, mse = N.train_single_neuron("cross_entropy"), N.train_single_neuron("mse")
    assert ce[0] == mse[0] > 0.98
    assert ce[50] < 0.2 < mse[50]  # cross-entropy escapes the saturated start; MSE crawls
