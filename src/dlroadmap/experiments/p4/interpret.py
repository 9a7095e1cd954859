"""Phase 4, Model Interpretability.

  p4.interpret.importance   Global feature importance of a random forest on breast_cancer and wine, three ways
                            (interpret/importance.py): permutation importance on held-out rows (= scikit-learn's
                            with the same seed and repeats), drop-column importance (one refit per feature) and
                            impurity importance (= the forest's feature_importances_, from its node arrays). A random
                            ID column (unique per row) and a coin-flip column, both unrelated to the label, show
                            Strobl et al. 2007's bias: impurity importance gives the ID many times the coin's share
                            (it offers a split point between every pair of rows); held-out permutation gives both ~0.
                            Drop-column and permutation both miss what a group of correlated features carries
                            (breast_cancer's radius / perimeter / area): dropping the whole group shows it.
"""

from __future__ import annotations

from typing import ClassVar

import matplotlib.pyplot as plt
import numpy as np
from pydantic import Field

from dlroadmap.data import load, split
from dlroadmap.experiments.base import Experiment, ExperimentConfig, Result
from dlroadmap.interpret.importance import drop_column_importance, impurity_importance, permutation_importance
from dlroadmap.train import Tracker


class ImportanceConfig(ExperimentConfig):
    trees: int = Field(300, ge=1, le=10_000, description="trees in each random forest")
    n_repeats: int = Field(20, ge=1, le=1_000, description="shuffles per feature for permutation importance")
    test: float = Field(0.3, gt=0, lt=1, description="held-out fraction (permutation and drop-column are measured there)")

    QUICK: ClassVar[dict] = {"trees": 100, "n_repeats": 5}


def _names(dataset: str) -> list[str]:
    from sklearn import datasets

    return list(getattr(datasets, f"load_{dataset}")().feature_names)


def _forest(config: ImportanceConfig):
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=config.trees, random_state=config.seed, n_jobs=1)


def _study(dataset: str, config: ImportanceConfig, rng: np.random.Generator) -> dict:
    from sklearn.inspection import permutation_importance as sk_permutation

    ds = load(dataset)
    tr, _, te = split(ds, val=0.0, test=config.test, seed=config.seed)
    # Two columns with no information about y, drawn independently of everything: a random ID (a distinct
    # number per row: as many split points as rows) and a coin flip (one split point).
    n = len(tr.X) + len(te.X)
    noise = np.column_stack([rng.permutation(n).astype(float), rng.integers(0, 2, n).astype(float)])
    Xtr, Xte = np.column_stack([tr.X, noise[: len(tr.X)]]), np.column_stack([te.X, noise[len(tr.X):]])
    names = _names(dataset) + ["random_id", "coin"]
    forest = _forest(config).fit(Xtr, tr.y)
    accuracy = lambda X, y: float((forest.predict(X) == y).mean())                # noqa: E731

    impurity = impurity_importance(forest)
    perm, base = permutation_importance(accuracy, Xte, te.y, n_repeats=config.n_repeats, seed=config.seed)
    ref = sk_permutation(forest, Xte, te.y, n_repeats=config.n_repeats, random_state=config.seed, scoring="accuracy")

    def fit_score(cols: np.ndarray) -> float:
        f = _forest(config).fit(Xtr[:, cols], tr.y)
        return float((f.predict(Xte[:, cols]) == te.y).mean())

    drop, _ = drop_column_importance(fit_score, Xtr)
    out = {"names": names, "impurity": impurity, "permutation": perm.mean(1), "permutation_std": perm.std(1), "drop": drop,
           "accuracy": base, "impurity_diff": float(np.abs(impurity - forest.feature_importances_).max()),
           "permutation_diff": float(np.abs(perm - ref.importances).max())}
    if dataset == "breast_cancer":
        # Correlated features: each of radius / perimeter / area (mean, se, worst) stands in for the others.
        group = np.array([i for i, n in enumerate(names) if any(w in n for w in ("radius", "perimeter", "area"))])
        out["group_drop"] = fit_score(np.arange(Xtr.shape[1])) - fit_score(np.setdiff1d(np.arange(Xtr.shape[1]), group))
        out["group_single_max"] = float(drop[group].max())
    return out


def run_importance(config: ImportanceConfig, tracker: Tracker) -> Result:
    rng = np.random.default_rng(config.seed)
    m: dict[str, float] = {}
    studies = {}
    for dataset, key in (("breast_cancer", "bc"), ("wine", "wine")):
        s = studies[dataset] = _study(dataset, config, rng)
        imp, perm = s["impurity"], s["permutation"]
        real = imp[:-2]
        m[f"{key}_forest_accuracy"] = s["accuracy"]
        m[f"{key}_impurity_max_abs_diff_sklearn"] = s["impurity_diff"]
        m[f"{key}_permutation_max_abs_diff_sklearn"] = s["permutation_diff"]
        m[f"{key}_id_impurity_rank"] = float(1 + (real > imp[-2]).sum())           # among the real features; 1 = first
        m[f"{key}_id_impurity_over_median"] = float(imp[-2] / np.median(real))
        m[f"{key}_id_over_coin_impurity"] = float(imp[-2] / max(imp[-1], 1e-12))    # the cardinality bias
        m[f"{key}_id_permutation"], m[f"{key}_coin_permutation"] = float(perm[-2]), float(perm[-1])
        m[f"{key}_id_drop"] = float(s["drop"][-2])
        top = int(np.argmax(perm[:-2]))
        m[f"{key}_top_permutation_feature_drop"] = float(s["drop"][top])
        m[f"{key}_noise_permutation_max_abs"] = float(np.abs(perm[-2:]).max())
    m["bc_size_group_drop"] = studies["breast_cancer"]["group_drop"]
    m["bc_size_single_drop_max"] = studies["breast_cancer"]["group_single_max"]
    m["bc_size_group_minus_single"] = m["bc_size_group_drop"] - m["bc_size_single_drop_max"]

    fig = _figure(studies, m, config)
    plots = {"importance_report": tracker.log_figure(fig, "importance_report")}
    plt.close(fig)
    return Result(metrics=m, artifacts={k: str(v) for k, v in plots.items()},
                  notes=f"two noise columns on breast_cancer: impurity importance of the random ID {m['bc_id_over_coin_impurity']:.1f}x "
                        f"the coin flip's; permutation importance {m['bc_id_permutation']:+.3f} and {m['bc_coin_permutation']:+.3f}")


def _figure(studies: dict, m: dict, config: ImportanceConfig) -> plt.Figure:
    fig, axes = plt.subplots(1, 2, figsize=(15, 8))
    for ax, (dataset, s) in zip(axes, studies.items()):
        names = s["names"]
        order = [i for i in np.argsort(s["impurity"][:-2])[::-1][:13]] + [len(names) - 2, len(names) - 1]   # + the two noise columns
        order = np.asarray(order)
        y = np.arange(len(order))[::-1]
        scale = lambda v: v / max(np.abs(v).max(), 1e-12)                          # noqa: E731  each method on its own scale
        for k, (key, label, colour) in enumerate((("impurity", "impurity (training)", "tab:red"),
                                                   ("permutation", f"permutation (held out, {config.n_repeats} repeats)", "tab:blue"),
                                                   ("drop", "drop-column (held out)", "tab:green"))):
            ax.barh(y + (k - 1) * 0.27, scale(s[key])[order], height=0.27, color=colour, label=label)
        ax.set_yticks(y, [names[i] for i in order], fontsize=8)
        ax.axvline(0, color="k", lw=0.6)
        ax.set_xlabel("importance, each method scaled to its largest value")
        ax.set_title(f"{dataset}: random forest ({config.trees} trees), held-out accuracy {s['accuracy']:.3f}\n"
                     f"noise columns: random_id's impurity importance {m[('bc' if dataset == 'breast_cancer' else 'wine') + '_id_over_coin_impurity']:.1f}x "
                     f"the coin's; permutation {s['permutation'][-2]:+.3f} and {s['permutation'][-1]:+.3f}", fontsize=9)
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


importance = Experiment(ImportanceConfig, run_importance)
