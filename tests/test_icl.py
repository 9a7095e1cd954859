"""In-context regression (Garg et al. 2022): the baselines against numpy/sklearn, and the model's causality."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import Ridge
from sklearn.neighbors import KNeighborsRegressor

from dlroadmap.models.sequence import icl


@pytest.fixture
def tasks():
    return icl.sample_tasks(6, 9, 4, noise=0.3, generator=torch.Generator().manual_seed(0))


def test_least_squares_is_numpys_minimum_norm_solution_at_every_k(tasks):
    x, y = tasks
    pred = icl.least_squares(x.double(), y.double())
    for b in range(x.shape[0]):
        for k in range(1, x.shape[1]):      # k < d: underdetermined, lstsq's minimum-norm answer
            w = np.linalg.lstsq(x[b, :k].double().numpy(), y[b, :k].double().numpy(), rcond=None)[0]
            assert pred[b, k].item() == pytest.approx(float(x[b, k].double().numpy() @ w), abs=1e-8)


def test_ridge_is_sklearns_with_lambda_noise_squared(tasks):
    x, y = tasks
    pred = icl.ridge(x.double(), y.double(), 0.3)
    for b in range(x.shape[0]):
        for k in range(1, x.shape[1]):
            r = Ridge(alpha=0.09, fit_intercept=False).fit(x[b, :k].double().numpy(), y[b, :k].double().numpy())
            assert pred[b, k].item() == pytest.approx(float(r.predict(x[b, k:k + 1].double().numpy())[0]), abs=1e-8)


def test_nearest_neighbours_is_sklearns_knn_regressor(tasks):
    x, y = tasks
    pred = icl.nearest_neighbours(x, y, 3)
    for b in range(x.shape[0]):
        for k in range(1, x.shape[1]):
            knn = KNeighborsRegressor(n_neighbors=min(3, k)).fit(x[b, :k].numpy(), y[b, :k].numpy())
            assert pred[b, k].item() == pytest.approx(float(knn.predict(x[b, k:k + 1].numpy())[0]), abs=1e-5)


def test_averaging_estimates_w_as_the_mean_of_y_x():
    x = torch.tensor([[[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]]])
    y = torch.tensor([[3.0, 4.0, 0.0]])
    pred = icl.averaging(x, y)
    assert pred[0, 1].item() == pytest.approx(0.0)          # w = (3, 0), x_2 = (0, 2)
    assert pred[0, 2].item() == pytest.approx(3.0 / 2 + 8.0 / 2)   # w = ((3, 0) + (0, 8)) / 2, x_3 = (1, 1)


def test_prediction_i_depends_only_on_earlier_pairs_and_x_i():
    torch.manual_seed(0)
    model = icl.InContextRegressor(3, 6, n_layer=2, n_head=2, n_embd=16).eval()
    x, y = icl.sample_tasks(2, 6, 3, generator=torch.Generator().manual_seed(1))
    base = model(x, y)
    for i in range(6):
        y2 = y.clone()
        y2[:, i:] += 5.0                                     # its own label and everything after it
        x2 = x.clone()
        x2[:, i + 1:] += 5.0
        out = model(x2, y2)
        torch.testing.assert_close(out[:, : i + 1], base[:, : i + 1])
        if i + 1 < 6:
            assert not torch.allclose(out[:, i + 1:], base[:, i + 1:])


def test_curriculum_grows_dimensions_and_length_then_holds():
    assert icl.curriculum(0, 1000, 5, 11) == (1, 3)
    assert icl.curriculum(300, 1000, 5, 11) == (5, 11)
    assert icl.curriculum(999, 1000, 5, 11) == (5, 11)
    mid = icl.curriculum(150, 1000, 5, 11)
    assert 1 < mid[0] < 5 and 3 < mid[1] < 11
    x, _ = icl.sample_tasks(4, 3, 5, active=2, generator=torch.Generator().manual_seed(0))
    assert x[..., 2:].abs().sum() == 0 and x[..., :2].abs().sum() > 0


def test_task_loader_resumes_with_the_same_prompts():
    loader = icl.task_batches(4, 9, 8, steps=5, total_steps=20, noise=0.1, seed=3)
    loader.set_epoch(1)
    full = list(loader)
    rest = list(loader.iter_from(2))
    for (xa, ya), (xb, yb) in zip(full[2:], rest):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    loader.set_epoch(2)
    assert not torch.equal(next(iter(loader))[1], full[0][1])
