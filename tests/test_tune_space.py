"""Search spaces for `dlr tune`: parsing, one-line errors, validation against a node's Config, grid and random."""

from __future__ import annotations


import numpy as np
import pytest

from dlroadmap import registry
from dlroadmap.errors import UserError
from dlroadmap.tune.space import grid, parse_dimension, parse_space, random_configs


def mlp_config():
    return registry.load().get("p2.fnn.backprop").load_experiment().Config


def test_parse_each_kind():
    assert parse_dimension("lr=loguniform(1e-4, 1e-1)").args == (1e-4, 0.1)
    assert parse_dimension("hidden=int(32,256)").args == (32, 256)
    assert parse_dimension("batch_size=choice(32,64,128)").args == (32, 64, 128)
    assert parse_dimension("optimizer=choice(adam,sgd)").args == ("adam", "sgd")


@pytest.mark.parametrize("spec, says", [
    ("lr", "cannot read"), ("lr=gauss(0,1)", "unknown distribution"), ("lr=uniform(1)", "two numbers"),
    ("lr=uniform(0.5,0.1)", "low must be below high"), ("lr=loguniform(0,1)", "low > 0"), ("hidden=int(1.5,4)", "whole numbers"),
    ("x=choice()", "at least one"),
])
def test_bad_specs_are_one_line(spec, says):
    with pytest.raises(UserError, match=says) as e:
        parse_dimension(spec)
    assert "\n" not in str(e.value)


def test_space_is_checked_against_the_config():
    cls = mlp_config()
    assert [d.name for d in parse_space(["lr=loguniform(1e-4,1e-1)", "batch_size=choice(32,64)"], cls)] == ["lr", "batch_size"]
    with pytest.raises(UserError, match="did you mean 'lr'"):
        parse_space(["lrr=loguniform(1e-4,1e-1)"], cls)
    with pytest.raises(UserError, match=r"reaches 100.0, which the node refuses.*lr"):
        parse_space(["lr=loguniform(1e-4,100)"], cls)          # the MLP's lr must be <= 10
    with pytest.raises(UserError, match="appears twice"):
        parse_space(["lr=uniform(0.1,0.2)", "lr=uniform(0.2,0.3)"], cls)


def test_grid_spends_the_budget_evenly():
    dims = parse_space(["lr=loguniform(1e-4,1e-2)", "dropout=uniform(0,0.5)", "opt=choice(adam,sgd)"])
    g = grid(dims, 20)                                          # 2 choices x 3 x 3 points = 18 <= 20
    assert len(g) == 18 and len({tuple(c.values()) for c in g}) == 18
    assert sorted({c["lr"] for c in g}) == pytest.approx([1e-4, 1e-3, 1e-2])    # geometric spacing on a log range
    assert sorted({c["dropout"] for c in g}) == pytest.approx([0.0, 0.25, 0.5])


def test_random_draws_follow_their_distributions():
    dims = parse_space(["lr=loguniform(1e-4,1e-0)", "h=int(1,4)", "c=choice(a,b)"])
    draws = random_configs(dims, 20_000, seed=0)
    assert draws[:5] == random_configs(dims, 5, seed=0)         # reproducible
    logs = np.log10([d["lr"] for d in draws])
    assert logs.min() >= -4 and logs.max() <= 0 and abs(logs.mean() + 2) < 0.03      # uniform in log10: mean -2
    hs = np.array([d["h"] for d in draws])
    assert set(hs) == {1, 2, 3, 4} and all(abs((hs == v).mean() - 0.25) < 0.015 for v in range(1, 5))
    assert abs(np.mean([d["c"] == "a" for d in draws]) - 0.5) < 0.015
