"""Global feature importance, three ways, each answering a different question.

  permutation  (Breiman 2001; Fisher, Rudin & Dominici 2019) how much does the held-out score drop when one
               feature's values are shuffled across rows (its link to the target broken, its distribution kept)?
  drop-column  how much worse is a model retrained without the feature? (the honest but costly version:
               one refit per feature; a feature whose information another one carries scores ~0)
  impurity     (Breiman et al. 1984, "Gini importance") how much did the splits on the feature reduce the
               training impurity, summed over a tree's nodes and averaged over a forest? Free, but measured
               on the training data, so it rewards features the trees could split often: Strobl et al. 2007
               show the bias toward high-cardinality features, which a random ID column makes visible.

`permutation_importance` follows scikit-learn's random protocol (one seed drawn from `seed`, then per
feature a fresh generator from it whose shuffles of the row order accumulate), so with the same seed and
repeats its numbers equal `sklearn.inspection.permutation_importance`'s; `impurity_importance` reads the
fitted trees' node arrays and equals `feature_importances_`.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

Score = Callable[[np.ndarray, np.ndarray], float]         # score(X, y): higher is better (accuracy, R^2, ...)


def permutation_importance(score: Score, X: np.ndarray, y: np.ndarray, *, n_repeats: int = 5, seed: int = 0) -> tuple[np.ndarray, float]:
    """(importances (features, n_repeats), baseline score): baseline minus the score with column j shuffled."""
    # model reliance: the loss after permuting a feature over the loss before, @fisher2019model
    # variable importance by permuting one feature's values (sec. 10), @breiman2001rf
    baseline = score(X, y)
    feature_seed = np.random.RandomState(seed).randint(np.iinfo(np.int32).max + 1)
    out = np.zeros((X.shape[1], n_repeats))
    for j in range(X.shape[1]):
        rng = np.random.RandomState(feature_seed)                 # the same stream for every feature
        Xp, order = X.copy(), np.arange(X.shape[0])
        for r in range(n_repeats):
            rng.shuffle(order)
            Xp[:, j] = Xp[order, j]                               # shuffles accumulate, as in scikit-learn
            out[j, r] = baseline - score(Xp, y)
    return out, baseline


def drop_column_importance(fit_score: Callable[[np.ndarray], float], X: np.ndarray) -> tuple[np.ndarray, float]:
    """(importances (features,), baseline): `fit_score(columns)` trains a fresh model on those columns and
    returns its validation score; importance = baseline (all columns) - score without column j."""
    everything = np.arange(X.shape[1])
    baseline = fit_score(everything)
    return np.array([baseline - fit_score(np.delete(everything, j)) for j in everything]), baseline


def tree_impurity_importance(tree: Any, n_features: int) -> np.ndarray:
    """One fitted scikit-learn tree (`estimator.tree_`): for every split node t on feature f,

        imp[f] += w_t i_t - w_left i_left - w_right i_right        (w: weighted samples, i: impurity)

    then divided by the root's weight and normalised to sum 1."""
    left, right = tree.children_left, tree.children_right
    w, impurity, feature = tree.weighted_n_node_samples, tree.impurity, tree.feature
    imp = np.zeros(n_features)
    for t in np.flatnonzero(left != -1):                          # internal nodes only (leaves have no children)
        imp[feature[t]] += w[t] * impurity[t] - w[left[t]] * impurity[left[t]] - w[right[t]] * impurity[right[t]]
    imp /= w[0]
    total = imp.sum()
    return imp / total if total > 0 else imp


def impurity_importance(forest: Any) -> np.ndarray:
    """A fitted forest's impurity importance: the mean of its (non-trivial) trees', renormalised."""
    # impurity importance favours features with many split points, @strobl2007bias
    n = forest.n_features_in_
    per_tree = [tree_impurity_importance(est.tree_, n) for est in forest.estimators_ if est.tree_.node_count > 1]
    if not per_tree:
        return np.zeros(n)
    mean = np.mean(per_tree, axis=0)
    return mean / mean.sum()
