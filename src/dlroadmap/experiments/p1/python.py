"""Phase 1, Python & Libraries: a data-exploration lesson on the wine dataset (178 wines, 13 measurements, 3 cultivars).

  p1.python.numpy_matplotlib  NumPy: vectorised statistics (and how much faster than Python loops),
                              a from-scratch correlation matrix; Matplotlib: per-class distributions
  p1.python.pandas_seaborn    Pandas: a DataFrame, describe(), groupby summaries; Seaborn: the
                              correlation heatmap and a pair plot; our NumPy numbers must equal pandas'
"""

from __future__ import annotations

import time
from typing import ClassVar

import matplotlib.pyplot as plt
import numpy as np
from pydantic import Field

from dlroadmap.experiments.base import Experiment, ExperimentConfig, Result
from dlroadmap.train import Tracker


class Config(ExperimentConfig):
    repeats: int = Field(20, ge=1, le=10_000, description="repeats when timing loops vs vectorised code")
    pairplot_features: list[str] = Field(["alcohol", "flavanoids", "color_intensity", "proline"], min_length=2, max_length=6)

    QUICK: ClassVar[dict] = {"repeats": 5}


def wine_frame():
    import pandas as pd
    from sklearn.datasets import load_wine

    bunch = load_wine()
    df = pd.DataFrame(bunch.data, columns=bunch.feature_names)
    df["cultivar"] = pd.Categorical.from_codes(bunch.target, [f"class_{i}" for i in range(3)])
    return df


def correlation_numpy(X: np.ndarray) -> np.ndarray:
    """Pearson correlation: standardise each column, then average the products of columns."""
    Z = (X - X.mean(axis=0)) / X.std(axis=0)
    return Z.T @ Z / len(X)


def column_means_loops(rows: list[list[float]]) -> list[float]:
    sums = [0.0] * len(rows[0])
    for row in rows:
        for j, v in enumerate(row):
            sums[j] += v
    return [s / len(rows) for s in sums]


def run_numpy_matplotlib(config: Config, tracker: Tracker) -> Result:
    df = wine_frame()
    X = df.drop(columns="cultivar").to_numpy()
    big = np.tile(X, (50, 1))                     # 8,900 rows so the timing means something
    rows = big.tolist()
    t0 = time.perf_counter()
    for _ in range(config.repeats):
        loop_means = column_means_loops(rows)
    t_loop = (time.perf_counter() - t0) / config.repeats
    t0 = time.perf_counter()
    for _ in range(config.repeats):
        vec_means = big.mean(axis=0)
    t_vec = (time.perf_counter() - t0) / config.repeats
    corr_err = float(np.abs(correlation_numpy(X) - np.corrcoef(X, rowvar=False)).max())
    feats = ["alcohol", "flavanoids", "color_intensity", "proline"]
    fig, axes = plt.subplots(1, 4, figsize=(13, 3))
    for ax, f in zip(axes, feats):
        for c, group in df.groupby("cultivar", observed=True):
            ax.hist(group[f], bins=15, alpha=0.55, label=str(c))
        ax.set_title(f, fontsize=9)
    axes[0].legend(fontsize=7)
    fig.suptitle("wine: per-cultivar distributions (matplotlib histograms)", fontsize=9)
    fig.tight_layout()
    plot = tracker.log_figure(fig, "distributions")
    metrics = {"loop_vs_numpy_mean_max_abs_diff": float(np.abs(np.array(loop_means) - vec_means).max()),
               "vectorised_speedup": t_loop / t_vec, "correlation_max_abs_err_vs_numpy_corrcoef": corr_err}
    return Result(metrics=metrics, artifacts={"distributions": str(plot)})


def run_pandas_seaborn(config: Config, tracker: Tracker) -> Result:
    import seaborn as sns

    from dlroadmap.io import write_text

    df = wine_frame()
    num = df.drop(columns="cultivar")
    summary = num.describe().T[["mean", "std", "min", "50%", "max"]]
    X = num.to_numpy()
    # Our NumPy numbers against pandas': same mean, sample std (ddof=1), median, correlation.
    diffs = [np.abs(summary["mean"].to_numpy() - X.mean(axis=0)).max(),
             np.abs(summary["std"].to_numpy() - X.std(axis=0, ddof=1)).max(),
             np.abs(summary["50%"].to_numpy() - np.median(X, axis=0)).max(),
             np.abs(num.corr().to_numpy() - correlation_numpy(X)).max()]
    by_class = df.groupby("cultivar", observed=True)[["alcohol", "flavanoids", "proline"]].mean()
    table = tracker.run_dir / "summary_table.html"
    write_text(table, summary.round(3).to_html() + "\n" + by_class.round(3).to_html())
    tracker.log_artifact(table)
    corr = num.corr()
    fig, ax = plt.subplots(figsize=(8, 6.5))
    sns.heatmap(corr, cmap="vlag", center=0, annot=True, fmt=".1f", annot_kws={"size": 6}, ax=ax, cbar_kws={"shrink": 0.7})
    ax.set_title("wine: correlation heatmap (seaborn)", fontsize=10)
    fig.tight_layout()
    heat = tracker.log_figure(fig, "correlation_heatmap")
    grid = sns.pairplot(df[[*config.pairplot_features, "cultivar"]], hue="cultivar", height=1.7, plot_kws={"s": 10})
    grid.figure.suptitle("wine: pair plot by cultivar (seaborn)", y=1.02, fontsize=10)
    pair = tracker.log_figure(grid.figure, "pairplot")
    strongest = corr.where(~np.eye(len(corr), dtype=bool)).abs().stack().idxmax()
    metrics = {"numpy_vs_pandas_max_abs_diff": float(max(diffs)), "rows": float(len(df)), "features": float(num.shape[1]),
               "strongest_abs_correlation": float(abs(corr.loc[strongest])),
               "classes_differ_in_flavanoids": float(by_class["flavanoids"].max() / by_class["flavanoids"].min())}
    return Result(metrics=metrics, artifacts={"summary_table": str(table), "correlation_heatmap": str(heat), "pairplot": str(pair)},
                  notes=f"strongest correlation: {strongest[0]} ~ {strongest[1]} ({corr.loc[strongest]:+.2f})")


numpy_matplotlib = Experiment(Config, run_numpy_matplotlib)
pandas_seaborn = Experiment(Config, run_pandas_seaborn)
