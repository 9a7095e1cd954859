"""Trainer(compile=True): compiled training agrees with eager, falls back to eager when compiling
fails, keeps its cache under the user's cache folder, and resumes bit-identically after kill -9
(the last in test_resume.py)."""

from __future__ import annotations

import os

import pytest
import torch
from torch import nn

from dlroadmap.data import TensorLoader
from dlroadmap.train import Trainer
from dlroadmap.train.compiled import cache_dir, compiling


def train(compile: bool, sizes=(10, 32, 4), epochs: int = 2) -> tuple[nn.Module, Trainer]:
    torch.manual_seed(0)
    # dropout: a compiled run must draw the same masks as an eager one (Inductor's fallback_random)
    model = nn.Sequential(nn.Linear(sizes[0], sizes[1]), nn.ReLU(), nn.Dropout(0.2), nn.Linear(sizes[1], sizes[2]))
    g = torch.Generator().manual_seed(1)
    X, y = torch.randn(96, sizes[0], generator=g), torch.randint(0, sizes[2], (96,), generator=g)
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), 0.1, momentum=0.9), max_epochs=epochs, device="cpu", compile=compile, seed=3)
    trainer.fit(TensorLoader(X, y, batch_size=16, shuffle=True, seed=3))
    return model, trainer


@pytest.fixture
def own_cache(tmp_path, monkeypatch):
    """Compile into a cache of this test's own: XDG_CACHE_HOME in tmp_path, TORCHINDUCTOR_CACHE_DIR unset."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "unset-below")
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR")   # recorded, so compile_model's setting is undone afterwards
    return tmp_path / "dlroadmap" / "inductor"


def test_compiled_training_agrees_with_eager_and_caches_under_the_user_cache(own_cache):
    from torch._dynamo.utils import counters

    assert cache_dir() == own_cache
    eager, _ = train(False)
    graphs = counters["stats"]["unique_graphs"]
    compiled, trainer = train(True)
    assert counters["stats"]["unique_graphs"] > graphs, "the model was not compiled"
    assert trainer.timing["first_step_s"] > 0
    assert not hasattr(trainer._train_model, "_orig_mod"), "the compiled wrapper is released after fit"
    # The same dropout masks and batches, reassociated float sums: equal within float32 rounding.
    for (name, a), b in zip(eager.state_dict().items(), compiled.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5, msg=f"{name}: compiled and eager training differ")
    assert own_cache.is_dir() and any(own_cache.rglob("*")), "Inductor's cache is not under the user's cache folder"


def test_a_model_that_cannot_compile_trains_eagerly_after_one_warning(own_cache, monkeypatch, capsys):
    import torch._inductor.config as inductor

    monkeypatch.setattr(inductor.cpp, "cxx", ("/nonexistent/c++",))   # as on a machine without a C++ compiler
    sizes = (11, 17, 5)       # shapes compiled nowhere else in this process: nothing to reuse from memory
    model, trainer = train(True, sizes)
    captured = capsys.readouterr()
    lines = [l for l in (captured.out + captured.err).splitlines() if "torch.compile failed" in l]
    assert len(lines) == 1, lines
    assert "training on eagerly" in lines[0]
    # The failed step was redone eagerly with the same random draws: the run is the eager run, bit for bit.
    eager, _ = train(False, sizes)
    for a, b in zip(eager.state_dict().values(), model.state_dict().values()):
        assert a.equal(b)


def test_compiling_context_sets_the_default(monkeypatch):
    m = nn.Linear(2, 2)
    opt = torch.optim.SGD(m.parameters(), 0.1)
    assert Trainer(m, opt, device="cpu").compile is False
    with compiling(True):
        assert Trainer(m, opt, device="cpu").compile is True
        assert Trainer(m, opt, device="cpu", compile=False).compile is False
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", os.fspath("/somewhere/else"))
    assert str(cache_dir()) == "/somewhere/else"
