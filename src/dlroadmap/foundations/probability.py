"""Probability and statistics: Bayes' theorem, expectation and variance, the Gaussian.

 1. Bayes: P(A | B) = P(B | A) P(A) / P(B). A rare disease and an accurate test still give many
    false alarms, because the prior P(disease) is small. Naive Bayes classifies by assuming the
    features are independent given the class, with a Gaussian per feature and class.
 2. Expectation E[X] = sum x p(x) (or an integral); variance Var[X] = E[(X - E X)^2]. Monte Carlo
    estimates them by sample averages; the error shrinks like sigma / sqrt(n) (central limit theorem).
 3. The Gaussian N(mu, sigma^2): density, sampling (Box-Muller), maximum-likelihood fit (sample
    mean, biased sample variance), and the KL divergence between two Gaussians in closed form.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# --- 1. Bayes' theorem ---------------------------------------------------------------------------


def bayes_posterior(prior: float, sensitivity: float, specificity: float) -> dict[str, float]:
    """Diagnostic test. prior = P(D); sensitivity = P(+ | D); specificity = P(- | not D).

    P(+) = P(+ | D) P(D) + P(+ | not D) P(not D)       (law of total probability)
    P(D | +) = P(+ | D) P(D) / P(+)                    (Bayes)
    """
    # Bayes' theorem, eq. (1.12), @bishop2006prml
    p_pos = sensitivity * prior + (1 - specificity) * (1 - prior)
    p_neg = 1 - p_pos
    return {
        "p_positive": p_pos,
        "p_disease_given_positive": sensitivity * prior / p_pos,
        "p_disease_given_negative": (1 - sensitivity) * prior / p_neg,
    }


def simulate_diagnostic(prior: float, sensitivity: float, specificity: float, n: int, seed: int = 0) -> float:
    """The same posterior by counting: simulate n people and look at those who test positive."""
    rng = np.random.default_rng(seed)
    sick = rng.random(n) < prior
    positive = np.where(sick, rng.random(n) < sensitivity, rng.random(n) > specificity)
    return float(sick[positive].mean())


class GaussianNaiveBayes:
    """p(c | x) is proportional to p(c) prod_j N(x_j; mu_cj, var_cj). Work in log space: products of
    many small densities underflow. var_smoothing adds a fraction of the largest feature variance
    to every variance, as sklearn's GaussianNB does, so constant features do not divide by zero."""

    def __init__(self, var_smoothing: float = 1e-9):
        self.var_smoothing = var_smoothing

    def fit(self, X: np.ndarray, y: np.ndarray) -> "GaussianNaiveBayes":
        self.classes_ = np.unique(y)
        eps = self.var_smoothing * X.var(axis=0).max()
        self.theta_ = np.array([X[y == c].mean(axis=0) for c in self.classes_])
        self.var_ = np.array([X[y == c].var(axis=0) for c in self.classes_]) + eps
        self.class_prior_ = np.array([(y == c).mean() for c in self.classes_])
        return self

    def joint_log_likelihood(self, X: np.ndarray) -> np.ndarray:
        # log N(x; mu, var) = -0.5 log(2 pi var) - (x - mu)^2 / (2 var), summed over features.
        ll = -0.5 * np.sum(np.log(2 * np.pi * self.var_), axis=1)[None, :] - 0.5 * np.sum(
            (X[:, None, :] - self.theta_[None]) ** 2 / self.var_[None], axis=2)
        return ll + np.log(self.class_prior_)[None, :]

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        jll = self.joint_log_likelihood(X)
        jll -= jll.max(axis=1, keepdims=True)    # log-sum-exp trick
        p = np.exp(jll)
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes_[self.joint_log_likelihood(X).argmax(axis=1)]


# --- 2. expectation and variance -------------------------------------------------------------------


def expectation(values: np.ndarray, probs: np.ndarray) -> float:
    # the Monte Carlo estimate of E[h(X)] (ch. 3), @robert2004monte
    return float(np.sum(values * probs))


def variance(values: np.ndarray, probs: np.ndarray) -> float:
    mu = expectation(values, probs)
    return float(np.sum((values - mu) ** 2 * probs))


def monte_carlo_errors(sampler, true_mean: float, ns: np.ndarray, trials: int = 200, seed: int = 0) -> np.ndarray:
    """RMS error of the sample mean over `trials` repetitions, for each sample size n."""
    rng = np.random.default_rng(seed)
    return np.array([np.sqrt(np.mean([(sampler(rng, n).mean() - true_mean) ** 2 for _ in range(trials)])) for n in ns])


def fit_power_law(ns: np.ndarray, errors: np.ndarray) -> float:
    """Slope of log(error) against log(n): -0.5 for the 1/sqrt(n) Monte Carlo rate."""
    slope, _ = np.polyfit(np.log(ns), np.log(errors), 1)
    return float(slope)


# --- 3. the Gaussian --------------------------------------------------------------------------------


def gaussian_pdf(x: np.ndarray, mu: float = 0.0, sigma: float = 1.0) -> np.ndarray:
    return np.exp(-0.5 * ((x - mu) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))


def gaussian_logpdf(x: np.ndarray, mu: float = 0.0, sigma: float = 1.0) -> np.ndarray:
    return -0.5 * ((x - mu) / sigma) ** 2 - math.log(sigma) - 0.5 * math.log(2 * math.pi)


def gaussian_cdf(x: np.ndarray, mu: float = 0.0, sigma: float = 1.0) -> np.ndarray:
    from scipy.special import erf

    return 0.5 * (1 + erf((x - mu) / (sigma * math.sqrt(2))))


def box_muller(n: int, rng: np.random.Generator) -> np.ndarray:
    """Two independent uniforms -> two independent standard normals (Box & Muller 1958):
    radius sqrt(-2 ln U1) and angle 2 pi U2."""
    # the transform of two uniforms into two independent normals, @box1958note
    m = (n + 1) // 2
    u1, u2 = 1.0 - rng.random(m), rng.random(m)   # 1 - U keeps U1 in (0, 1]: log never sees 0
    r, theta = np.sqrt(-2 * np.log(u1)), 2 * np.pi * u2
    return np.concatenate([r * np.cos(theta), r * np.sin(theta)])[:n]


@dataclass
class GaussianFit:
    mu: float
    sigma: float

    def log_likelihood(self, x: np.ndarray) -> float:
        return float(np.sum(gaussian_logpdf(x, self.mu, self.sigma)))


def fit_gaussian_mle(x: np.ndarray) -> GaussianFit:
    """Maximum likelihood: setting d/dmu and d/dsigma of the log-likelihood to zero gives the
    sample mean and the *biased* sample standard deviation (divide by n, not n - 1)."""
    mu = float(np.mean(x))
    return GaussianFit(mu, float(np.sqrt(np.mean((x - mu) ** 2))))


def kl_gaussians(mu1: float, s1: float, mu2: float, s2: float) -> float:
    """KL(N(mu1, s1^2) || N(mu2, s2^2)) = log(s2/s1) + (s1^2 + (mu1 - mu2)^2) / (2 s2^2) - 1/2."""
    return math.log(s2 / s1) + (s1**2 + (mu1 - mu2) ** 2) / (2 * s2**2) - 0.5


def kl_monte_carlo(mu1: float, s1: float, mu2: float, s2: float, n: int, seed: int = 0) -> float:
    """KL as an expectation under p: E_p[log p(x) - log q(x)], estimated by sampling."""
    x = mu1 + s1 * box_muller(n, np.random.default_rng(seed))
    return float(np.mean(gaussian_logpdf(x, mu1, s1) - gaussian_logpdf(x, mu2, s2)))
