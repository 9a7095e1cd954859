"""Feature importance: permutation importance and impurity importance against scikit-learn's, drop-column on
a problem whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from dlroadmap.interpret.importance import drop_column_importance, impurity_importance, permutation_importance, tree_impurity_importance


def r2(model):
    def score(X, y):
        residual = y - model.predict(X)
        return float(1 - residual @ residual / ((y - y.mean()) @ (y - y.mean())))
    return score


@pytest.mark.parametrize("seed, repeats", [(0, 3), (7, 10)])
def test_permutation_importance_equals_sklearn(seed, repeats):
    from sklearn.datasets import load_diabetes
    from sklearn.inspection import permutation_importance as sk
    from sklearn.linear_model import Ridge

    X, y = load_diabetes(return_X_y=True)
    model = Ridge(alpha=0.1).fit(X[:300], y[:300])
    ours, base = permutation_importance(r2(model), X[300:], y[300:], n_repeats=repeats, seed=seed)
    ref = sk(model, X[300:], y[300:], n_repeats=repeats, random_state=seed, scoring="r2")
    assert ours.shape == ref.importances.shape
    assert np.abs(ours - ref.importances).max() < 1e-12
    assert abs(base - model.score(X[300:], y[300:])) < 1e-12


def test_impurity_importance_equals_feature_importances():
    from sklearn.datasets import load_wine
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.tree import DecisionTreeClassifier

    X, y = load_wine(return_X_y=True)
    tree = DecisionTreeClassifier(random_state=0, max_depth=4).fit(X, y)
    assert np.abs(tree_impurity_importance(tree.tree_, X.shape[1]) - tree.feature_importances_).max() < 1e-12
    forest = RandomForestRegressor(n_estimators=20, random_state=0, max_depth=6).fit(X, y.astype(float))
    assert np.abs(impurity_importance(forest) - forest.feature_importances_).max() < 1e-12


def test_drop_column_finds_the_one_feature_that_matters():
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 3))
    y = 2 * X[:, 0] + 0.1 * rng.normal(size=400)

    def fit_score(cols):
        m = LinearRegression().fit(X[:300][:, cols], y[:300])
        return r2(m)(X[300:][:, cols], y[300:])

    drop, base = drop_column_importance(fit_score, X)
    assert base > 0.99 and drop[0] > 0.9 and np.abs(drop[1:]).max() < 0.01
