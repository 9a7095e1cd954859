"""Phase 1, Probability and Statistics: experiments for dlroadmap/foundations/probability.py.

  p1.prob.bayes        a diagnostic test (closed form vs simulation) and naive Bayes vs sklearn's GaussianNB
  p1.prob.expectation  Monte Carlo estimates of E[X] and Var[X]; error ~ 1/sqrt(n), plotted
  p1.prob.gaussian     density, Box-Muller sampling, MLE fit and KL divergence vs scipy.stats
"""

from __future__ import annotations

from typing import ClassVar

import matplotlib.pyplot as plt
import numpy as np
from pydantic import Field
from scipy import stats

from dlroadmap.data import load, split
from dlroadmap.experiments.base import Experiment, ExperimentConfig, Result
from dlroadmap.foundations import probability as P
from dlroadmap.train import Tracker


class Config(ExperimentConfig):
    samples: int = Field(200_000, ge=1000, le=50_000_000, description="Monte Carlo sample size")
    trials: int = Field(300, ge=10, le=100_000, description="repetitions for the error-vs-n curve")

    QUICK: ClassVar[dict] = {"samples": 100_000, "trials": 150}


def run_bayes(config: Config, tracker: Tracker) -> Result:
    from sklearn.naive_bayes import GaussianNB

    post = P.bayes_posterior(prior=0.01, sensitivity=0.95, specificity=0.95)
    sim = P.simulate_diagnostic(0.01, 0.95, 0.95, config.samples * 4, seed=config.seed)
    tr, _, te = split(load("wine"), val=0.0, test=0.3, seed=config.seed)
    ours, ref = P.GaussianNaiveBayes().fit(tr.X.astype(float), tr.y), GaussianNB().fit(tr.X.astype(float), tr.y)
    proba_diff = float(np.abs(ours.predict_proba(te.X.astype(float)) - ref.predict_proba(te.X.astype(float))).max())
    acc = float((ours.predict(te.X.astype(float)) == te.y).mean())
    priors = np.logspace(-4, -0.3, 60)
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for sens_spec in (0.9, 0.95, 0.99):
        ax.semilogx(priors, [P.bayes_posterior(p, sens_spec, sens_spec)["p_disease_given_positive"] for p in priors],
                    label=f"sensitivity = specificity = {sens_spec}")
    ax.axvline(0.01, color="k", ls=":", lw=0.8)
    ax.set_xlabel("prior P(disease)")
    ax.set_ylabel("P(disease | positive test)")
    ax.set_title("Bayes: a positive test means little when the disease is rare", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    plot = tracker.log_figure(fig, "bayes_posterior")
    metrics = {"posterior_closed_form": post["p_disease_given_positive"], "posterior_simulated": sim,
               "posterior_abs_diff": abs(sim - post["p_disease_given_positive"]),
               "naive_bayes_max_proba_diff_vs_sklearn": proba_diff, "naive_bayes_wine_test_accuracy": acc}
    return Result(metrics=metrics, artifacts={"bayes_posterior": str(plot)})


def run_expectation(config: Config, tracker: Tracker) -> Result:
    rng = np.random.default_rng(config.seed)
    # A die: exact E = 3.5, Var = 35/12; an exponential(scale 2): E = 2, Var = 4.
    die = rng.integers(1, 7, config.samples)
    expo = rng.exponential(2.0, config.samples)
    ns = np.unique(np.logspace(1, 4, 10).astype(int))
    errs = P.monte_carlo_errors(lambda r, n: r.exponential(2.0, n), 2.0, ns, trials=config.trials, seed=config.seed)
    slope = P.fit_power_law(ns, errs)
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    ax.loglog(ns, errs, "o-", label=f"RMS error of the sample mean (slope {slope:.3f})")
    ax.loglog(ns, 2.0 / np.sqrt(ns), "k--", lw=0.8, label="sigma / sqrt(n)")
    ax.set_xlabel("samples n")
    ax.set_ylabel("error")
    ax.set_title("Monte Carlo: E[X] of an exponential, error ~ 1/sqrt(n)", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, which="both")
    plot = tracker.log_figure(fig, "monte_carlo_rate")
    v, p = np.arange(1, 7), np.full(6, 1 / 6)
    metrics = {"die_mean_exact": P.expectation(v, p), "die_var_exact": P.variance(v, p),
               "die_var_exact_abs_err": abs(P.variance(v, p) - 35 / 12),   # Var = E[X^2] - E[X]^2 = 91/6 - 49/4
               "die_mean_mc_abs_err": abs(die.mean() - 3.5), "die_var_mc_abs_err": abs(die.var() - 35 / 12),
               "exponential_var_mc_rel_err": abs(expo.var() - 4.0) / 4.0, "mc_error_slope": slope}
    return Result(metrics=metrics, artifacts={"monte_carlo_rate": str(plot)})


def run_gaussian(config: Config, tracker: Tracker) -> Result:
    rng = np.random.default_rng(config.seed)
    x = np.linspace(-5, 7, 241)
    pdf_err = float(np.abs(P.gaussian_pdf(x, 1.0, 1.5) - stats.norm(1.0, 1.5).pdf(x)).max())
    cdf_err = float(np.abs(P.gaussian_cdf(x, 1.0, 1.5) - stats.norm(1.0, 1.5).cdf(x)).max())
    z = P.box_muller(config.samples, rng)
    ks = stats.kstest(z, "norm")
    data = 1.0 + 1.5 * z[:2000]
    fit = P.fit_gaussian_mle(data)
    mu_s, sigma_s = stats.norm.fit(data)
    kl = P.kl_gaussians(0.0, 1.0, 1.0, 2.0)
    kl_mc = P.kl_monte_carlo(0.0, 1.0, 1.0, 2.0, config.samples, seed=config.seed)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    axes[0].hist(data, bins=50, density=True, alpha=0.5, label="2,000 Box-Muller samples of N(1, 1.5^2)")
    axes[0].plot(x, P.gaussian_pdf(x, 1.0, 1.5), "k", label="true density")
    axes[0].plot(x, P.gaussian_pdf(x, fit.mu, fit.sigma), "r--", label=f"MLE fit mu={fit.mu:.2f}, sigma={fit.sigma:.2f}")
    axes[0].legend(fontsize=7)
    axes[0].set_title("sampling and maximum likelihood", fontsize=9)
    axes[1].plot(x, P.gaussian_pdf(x, 0, 1), label="p = N(0, 1)")
    axes[1].plot(x, P.gaussian_pdf(x, 1, 2), label="q = N(1, 2^2)")
    axes[1].set_title(f"KL(p||q) = {kl:.4f} (closed form), {kl_mc:.4f} (Monte Carlo)", fontsize=9)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    plot = tracker.log_figure(fig, "gaussian")
    metrics = {"pdf_max_abs_err_vs_scipy": pdf_err, "cdf_max_abs_err_vs_scipy": cdf_err, "box_muller_ks_pvalue": float(ks.pvalue),
               "mle_mu_abs_diff_vs_scipy": abs(fit.mu - mu_s), "mle_sigma_abs_diff_vs_scipy": abs(fit.sigma - sigma_s),
               "kl_closed_form": kl, "kl_monte_carlo_rel_err": abs(kl_mc - kl) / kl}
    return Result(metrics=metrics, artifacts={"gaussian": str(plot)})


bayes = Experiment(Config, run_bayes)
expectation = Experiment(Config, run_expectation)
gaussian = Experiment(Config, run_gaussian)
