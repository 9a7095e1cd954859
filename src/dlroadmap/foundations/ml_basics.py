"""Machine-learning basics: supervised vs unsupervised, data splits, losses, optimisation.

 1. Supervised learning fits inputs to given targets: linear regression (least squares) and
    logistic regression (maximum likelihood), each solved here from scratch.
    Unsupervised learning finds structure without targets: k-means clustering (Lloyd 1982,
    k-means++ seeding by Arthur & Vassilvitskii 2007) and PCA (foundations/linalg.py).
 2. Splits: fit on train, choose on validation, report on test, once. k-fold cross-validation
    reuses small data. Picking the best of many models by *test* accuracy makes that accuracy
    an optimistic estimate (`test_set_tuning_optimism` measures how much).
 3. Loss functions and their gradients: MSE, MAE, Huber, cross-entropy, hinge.
 4. Optimisation: gradient descent and momentum on a 2-D loss surface; the learning rate decides
    between crawling, converging and diverging (for a quadratic: diverges once lr > 2 / L).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

# --- 1a. supervised: linear regression -------------------------------------------------------------


def add_bias(X: np.ndarray) -> np.ndarray:
    return np.hstack([X, np.ones((len(X), 1))])


def linear_regression_normal_equations(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """Least squares: minimise ||X w + b - y||^2. Setting the gradient 2 X^T (X w - y) to zero gives
    the normal equations X^T X w = X^T y (solved, not inverted, for numerical stability)."""
    Xb = add_bias(X)
    theta = np.linalg.solve(Xb.T @ Xb, Xb.T @ y)
    return theta[:-1], float(theta[-1])


def linear_regression_gd(X: np.ndarray, y: np.ndarray, lr: float = 0.1, epochs: int = 2000) -> tuple[np.ndarray, float, list[float]]:
    """The same model by gradient descent on the mean squared error (X should be standardised)."""
    n, d = X.shape
    w, b, losses = np.zeros(d), 0.0, []
    for _ in range(epochs):
        r = X @ w + b - y
        losses.append(float(np.mean(r**2)))
        w -= lr * 2 * X.T @ r / n
        b -= lr * 2 * r.mean()
    return w, b, losses


# --- 1b. supervised: logistic regression -------------------------------------------------------------


def sigmoid(z: np.ndarray) -> np.ndarray:
    return np.where(z >= 0, 1 / (1 + np.exp(-np.abs(z))), np.exp(-np.abs(z)) / (1 + np.exp(-np.abs(z))))


def logistic_regression_newton(X: np.ndarray, y: np.ndarray, C: float = 1.0, iters: int = 50, tol: float = 1e-12) -> tuple[np.ndarray, float]:
    """Binary logistic regression with sklearn's objective, C * sum(log-loss) + ||w||^2 / 2
    (the intercept is not penalised), minimised by Newton's method (a.k.a. IRLS).

    gradient = C X^T (p - y) + [w, 0];   Hessian = C X^T diag(p (1 - p)) X + diag([1.., 0])
    """
    Xb = add_bias(X)
    d = Xb.shape[1]
    theta = np.zeros(d)
    reg = np.ones(d)
    reg[-1] = 0.0
    for _ in range(iters):
        p = sigmoid(Xb @ theta)
        grad = C * Xb.T @ (p - y) + reg * theta
        H = C * (Xb.T * (p * (1 - p))) @ Xb + np.diag(reg)
        step = np.linalg.solve(H, grad)
        theta -= step
        if np.abs(step).max() < tol:
            break
    return theta[:-1], float(theta[-1])


# --- 1c. unsupervised: k-means ------------------------------------------------------------------------


def kmeans_plus_plus(X: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Seeding: the first centre uniformly, each next one with probability proportional to the
    squared distance to the nearest centre chosen so far (spreads the centres out)."""
    # D^2 seeding: the next centre drawn with probability proportional to D(x)^2, @arthur2007kmeanspp
    centres = [X[rng.integers(len(X))]]
    for _ in range(1, k):
        d2 = np.min(((X[:, None, :] - np.array(centres)[None]) ** 2).sum(-1), axis=1)
        centres.append(X[rng.choice(len(X), p=d2 / d2.sum())])
    return np.array(centres)


def kmeans(X: np.ndarray, k: int, init: np.ndarray | None = None, iters: int = 300, seed: int = 0, tol: float = 1e-10) -> tuple[np.ndarray, np.ndarray, float]:
    """Lloyd's algorithm: assign each point to its nearest centre, move each centre to the mean of
    its points, repeat. Each step can only lower the inertia (sum of squared distances).
    Returns (labels, centres, inertia)."""
    # Lloyd's iteration: assign each point to its nearest centre, move each centre to its points' mean, @lloyd1982least
    rng = np.random.default_rng(seed)
    centres = np.array(init if init is not None else kmeans_plus_plus(X, k, rng), dtype=np.float64)
    for _ in range(iters):
        d2 = ((X[:, None, :] - centres[None]) ** 2).sum(-1)
        labels = d2.argmin(axis=1)
        new = np.array([X[labels == c].mean(axis=0) if np.any(labels == c) else centres[c] for c in range(k)])
        shift = np.abs(new - centres).max()
        centres = new
        if shift < tol:
            break
    d2 = ((X[:, None, :] - centres[None]) ** 2).sum(-1)
    labels = d2.argmin(axis=1)
    return labels, centres, float(d2[np.arange(len(X)), labels].sum())


# --- 2. splits and cross-validation ---------------------------------------------------------------------


def kfold_indices(y: np.ndarray, k: int = 5, stratified: bool = True, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """k (train, validation) index pairs; every sample is in exactly one validation fold.
    Stratified: each class is dealt round-robin over the folds, so each fold keeps the class mix."""
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(y), dtype=int)
    groups = [np.flatnonzero(y == c) for c in np.unique(y)] if stratified else [np.arange(len(y))]
    offset = 0
    for idx in groups:
        idx = rng.permutation(idx)
        fold_of[idx] = (np.arange(len(idx)) + offset) % k
        offset += len(idx)
    return [(np.flatnonzero(fold_of != f), np.flatnonzero(fold_of == f)) for f in range(k)]


def cross_val_score(fit_predict: Callable, X: np.ndarray, y: np.ndarray, k: int = 5, seed: int = 0) -> np.ndarray:
    """Accuracy on each fold of model `fit_predict(X_train, y_train, X_val) -> predictions`."""
    # a score used to select a model is optimistic for it: keep a split the selection never saw, @cawley2010overfitting
    return np.array([np.mean(fit_predict(X[tr], y[tr], X[va]) == y[va]) for tr, va in kfold_indices(y, k, True, seed)])


# --- 3. loss functions and their gradients ------------------------------------------------------------------
# Each returns (mean loss, gradient with respect to the prediction), so tests can grad-check them.


def mse(pred: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    r = pred - y
    return float(np.mean(r**2)), 2 * r / r.size


def mae(pred: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    r = pred - y
    return float(np.mean(np.abs(r))), np.sign(r) / r.size


def huber(pred: np.ndarray, y: np.ndarray, delta: float = 1.0) -> tuple[float, np.ndarray]:
    """Quadratic near zero, linear beyond delta: MSE's smoothness with MAE's robustness to outliers."""
    # quadratic near zero, linear beyond delta, @huber1964robust
    r = pred - y
    small = np.abs(r) <= delta
    loss = np.where(small, 0.5 * r**2, delta * (np.abs(r) - 0.5 * delta))
    grad = np.where(small, r, delta * np.sign(r))
    return float(loss.mean()), grad / r.size


def cross_entropy(logits: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Softmax cross-entropy; gradient (softmax - onehot) / N."""
    z = logits - logits.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    n = len(y)
    grad = np.exp(logp)
    grad[np.arange(n), y] -= 1
    return float(-logp[np.arange(n), y].mean()), grad / n


def hinge(scores: np.ndarray, y: np.ndarray, margin: float = 1.0) -> tuple[float, np.ndarray]:
    """Multi-class hinge (Weston & Watkins / torch's multi_margin_loss): mean over samples of
    sum_{j != y} max(0, margin - s_y + s_j) / C. Only margin violations contribute."""
    n, c = scores.shape
    sy = scores[np.arange(n), y][:, None]
    viol = np.maximum(0, margin - sy + scores)
    viol[np.arange(n), y] = 0
    active = (viol > 0).astype(float)
    grad = active.copy()
    grad[np.arange(n), y] = -active.sum(axis=1)
    return float(viol.sum() / (n * c)), grad / (n * c)


# --- 4. optimisation on a 2-D surface ----------------------------------------------------------------------


def quadratic(a: float = 1.0, b: float = 20.0) -> tuple[Callable, Callable]:
    """f(x, y) = (a x^2 + b y^2) / 2: an elongated bowl; the Hessian's eigenvalues are a and b,
    so gradient descent converges only for lr < 2 / max(a, b)."""
    return (lambda p: 0.5 * (a * p[0] ** 2 + b * p[1] ** 2)), (lambda p: np.array([a * p[0], b * p[1]]))


def gradient_descent(grad: Callable, x0: np.ndarray, lr: float, steps: int, momentum: float = 0.0) -> np.ndarray:
    """Heavy-ball momentum (Polyak 1964): v <- mu v + g, x <- x - lr v. momentum=0 is plain GD.
    Returns the path, one row per step (stops early if it diverges)."""
    # heavy-ball momentum, @polyak1964some
    x, v = np.array(x0, dtype=float), np.zeros(len(x0))
    path = [x.copy()]
    for _ in range(steps):
        v = momentum * v + grad(x)
        x = x - lr * v
        path.append(x.copy())
        if not np.all(np.isfinite(x)) or np.abs(x).max() > 1e6:
            break
    return np.array(path)


def steps_to_converge(f: Callable, path: np.ndarray, tol: float = 1e-6) -> int | None:
    """First step whose loss is below tol (None if never)."""
    for i, p in enumerate(path):
        if f(p) < tol:
            return i
    return None
