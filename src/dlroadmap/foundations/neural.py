"""Intro to neural networks: the perceptron, activation functions, cost functions.

 1. The perceptron (Rosenblatt 1958): predict sign(w . x + b); on a mistake, w += y x, b += y.
    On linearly separable data it stops making mistakes after at most (R / gamma)^2 updates
    (Novikoff 1962; R = max |x|, gamma = the margin). On XOR no line separates the classes, so
    it never stops (Minsky & Papert 1969); one hidden layer solves it.
 2. Activations and their derivatives: sigmoid and tanh saturate (derivative -> 0 for large |z|),
    which starves deep stacks of gradient; ReLU does not saturate for z > 0 (Nair & Hinton 2010);
    leaky ReLU keeps a small slope for z < 0; GELU (Hendrycks & Gimpel 2016) is smooth.
 3. Cost functions: with a sigmoid output, MSE's gradient carries a sigma'(z) factor that vanishes
    when the neuron is confidently wrong; cross-entropy's gradient is simply (a - y), so it learns
    fastest exactly when it is most wrong.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import erf

# --- 1. perceptron --------------------------------------------------------------------------------


class Perceptron:
    """Rosenblatt's rule. Labels are 0/1 at the interface and -1/+1 inside."""

    def __init__(self, lr: float = 1.0, epochs: int = 100, shuffle: bool = False, seed: int = 0):
        self.lr, self.epochs, self.shuffle, self.seed = lr, epochs, shuffle, seed

    def fit(self, X: np.ndarray, y: np.ndarray) -> "Perceptron":
        # the perceptron rule: on a mistake, w += y x, @rosenblatt1958perceptron
        s = np.where(y > 0, 1.0, -1.0)
        self.w, self.b = np.zeros(X.shape[1]), 0.0
        self.mistakes_per_epoch: list[int] = []
        rng = np.random.default_rng(self.seed)
        for _ in range(self.epochs):
            order = rng.permutation(len(X)) if self.shuffle else range(len(X))
            mistakes = 0
            for i in order:
                if s[i] * (X[i] @ self.w + self.b) <= 0:   # wrong side of (or on) the boundary
                    self.w += self.lr * s[i] * X[i]
                    self.b += self.lr * s[i]
                    mistakes += 1
            self.mistakes_per_epoch.append(mistakes)
            if mistakes == 0:
                break
        return self

    @property
    def converged(self) -> bool:
        return bool(self.mistakes_per_epoch) and self.mistakes_per_epoch[-1] == 0

    @property
    def total_updates(self) -> int:
        return int(sum(self.mistakes_per_epoch))

    def predict(self, X: np.ndarray) -> np.ndarray:
        return (X @ self.w + self.b > 0).astype(int)


def novikoff_bound(X: np.ndarray, y: np.ndarray, w_star: np.ndarray, b_star: float) -> float:
    """(R / gamma)^2 for a separating hyperplane (w*, b*), in the augmented space [x, 1]."""
    # at most (R / gamma)^2 mistakes on separable data, @novikoff1962convergence
    Xa = np.hstack([X, np.ones((len(X), 1))])
    u = np.r_[w_star, b_star]
    u = u / np.linalg.norm(u)
    s = np.where(y > 0, 1.0, -1.0)
    gamma = float(np.min(s * (Xa @ u)))
    R = float(np.max(np.linalg.norm(Xa, axis=1)))
    return (R / gamma) ** 2 if gamma > 0 else math.inf


def linearly_separable(n: int = 200, margin: float = 0.3, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Points on either side of a random line, none closer than `margin`. Returns X, y, w*, b*."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=2)
    w /= np.linalg.norm(w)
    b = rng.uniform(-0.5, 0.5)
    X = rng.uniform(-3, 3, size=(4 * n, 2))
    dist = X @ w + b
    keep = np.abs(dist) > margin
    X, dist = X[keep][:n], dist[keep][:n]
    return X, (dist > 0).astype(int), w, b


def xor_data() -> tuple[np.ndarray, np.ndarray]:
    # XOR: no single threshold unit separates it, @minsky1969perceptrons
    return np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]), np.array([0, 1, 1, 0])


def train_xor_mlp(hidden: int = 8, steps: int = 3000, lr: float = 1.0, seed: int = 0) -> tuple[float, np.ndarray]:
    """A small tanh network (2 hidden units suffice in principle; 8 make training reliable) on XOR, trained by full-batch gradient descent with
    backprop written out. Returns (final loss, predictions)."""
    rng = np.random.default_rng(seed)
    X, y = xor_data()
    W1, b1 = rng.normal(0, 1, (2, hidden)), np.zeros(hidden)
    W2, b2 = rng.normal(0, 1, hidden), 0.0
    for _ in range(steps):
        h = np.tanh(X @ W1 + b1)
        p = sigmoid(h @ W2 + b2)
        dz2 = (p - y) / len(X)                 # cross-entropy through the sigmoid
        dW2, db2 = h.T @ dz2, dz2.sum()
        dz1 = np.outer(dz2, W2) * (1 - h**2)   # through tanh
        dW1, db1 = X.T @ dz1, dz1.sum(0)
        W1 -= lr * dW1
        b1 -= lr * db1
        W2 -= lr * dW2
        b2 -= lr * db2
    p = sigmoid(np.tanh(X @ W1 + b1) @ W2 + b2)
    loss = float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    return loss, (p > 0.5).astype(int)


# --- 2. activation functions and their derivatives --------------------------------------------------


def sigmoid(z):
    z = np.asarray(z, dtype=float)
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


def d_sigmoid(z):
    s = sigmoid(z)
    return s * (1 - s)            # at most 1/4, at z = 0


def tanh(z):
    return np.tanh(z)


def d_tanh(z):
    return 1 - np.tanh(z) ** 2    # at most 1, at z = 0


def relu(z):
    # max(0, z), @nair2010relu
    return np.maximum(z, 0)


def d_relu(z):
    return (np.asarray(z) > 0).astype(float)   # 0 at z = 0, as torch's autograd


def leaky_relu(z, slope: float = 0.01):
    return np.where(np.asarray(z) > 0, z, slope * np.asarray(z))


def d_leaky_relu(z, slope: float = 0.01):
    return np.where(np.asarray(z) > 0, 1.0, slope)


def gelu(z):
    """z * Phi(z), Phi the standard normal CDF."""
    # GELU(x) = x Phi(x), @hendrycks2016gelu
    z = np.asarray(z, dtype=float)
    return z * 0.5 * (1 + erf(z / math.sqrt(2)))


def d_gelu(z):
    z = np.asarray(z, dtype=float)
    return 0.5 * (1 + erf(z / math.sqrt(2))) + z * np.exp(-0.5 * z**2) / math.sqrt(2 * math.pi)


ACTIVATIONS = {
    "sigmoid": (sigmoid, d_sigmoid),
    "tanh": (tanh, d_tanh),
    "relu": (relu, d_relu),
    "leaky_relu": (leaky_relu, d_leaky_relu),
    "gelu": (gelu, d_gelu),
}


def gradient_through_depth(activation: str, depth: int, width: int = 64, seed: int = 0) -> float:
    """Norm of d(output)/d(input) through `depth` random layers (Xavier-scaled weights) with the
    given activation: how much gradient survives the trip back through the stack."""
    # how much gradient survives a deep stack of saturating units, @glorot2010understanding
    f, df = ACTIVATIONS[activation]
    rng = np.random.default_rng(seed)
    x = rng.normal(size=width)
    J = np.eye(width)
    for _ in range(depth):
        W = rng.normal(0, 1 / math.sqrt(width), (width, width))
        z = W @ x
        J = (df(z)[:, None] * W) @ J      # chain rule: diag(f'(z)) W times what came before
        x = f(z)
    return float(np.linalg.norm(J, 2))


# --- 3. cost functions ---------------------------------------------------------------------------------


def train_single_neuron(cost: str, w0: float = 2.0, b0: float = 2.0, lr: float = 0.15, epochs: int = 300) -> list[float]:
    """One sigmoid neuron, input 1, target 0, started confidently wrong (output ~0.98).
    Returns the output after each epoch. cost: "mse" or "cross_entropy"."""
    # ch. 3: the cross-entropy cost cancels sigma'(z), so a saturated neuron still learns, @nielsen2015nndl
    w, b, x, y = w0, b0, 1.0, 0.0
    outputs = []
    for _ in range(epochs):
        z = w * x + b
        a = float(sigmoid(z))
        # dC/dz: MSE (a - y) sigma'(z) -- tiny when saturated; cross-entropy: (a - y).
        dz = (a - y) * a * (1 - a) if cost == "mse" else (a - y)
        w -= lr * dz * x
        b -= lr * dz
        outputs.append(a)
    return outputs


def binary_cross_entropy(a: np.ndarray, y: np.ndarray, eps: float = 1e-12) -> float:
    a = np.clip(a, eps, 1 - eps)
    return float(-np.mean(y * np.log(a) + (1 - y) * np.log(1 - a)))
