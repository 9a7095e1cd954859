"""Channels-last for conv nets: measured once per machine and model, cached, and the same training either way."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from dlroadmap.data import TensorLoader
from dlroadmap.train import Trainer
from dlroadmap.train import memory_format as layout


def convnet() -> nn.Module:
    torch.manual_seed(0)
    # (no dropout: in NHWC the same random draws land on other elements, a different but equally valid run;
    # no bias before BatchNorm: its gradient is ~0, and Adam would blow its rounding noise up to full steps)
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))


def fit(monkeypatch, fmt: str) -> tuple[nn.Module, Trainer]:
    monkeypatch.setenv("DLR_MEMORY_FORMAT", fmt)
    model = convnet()
    g = torch.Generator().manual_seed(1)
    X, y = torch.randn(64, 1, 12, 12, generator=g), torch.randint(0, 10, (64,), generator=g)
    trainer = Trainer(model, torch.optim.Adam(model.parameters(), 1e-2), max_epochs=2, device="cpu", seed=2)
    trainer.fit(TensorLoader(X, y, batch_size=16, shuffle=True, seed=2))
    return model, trainer


def test_channels_last_trains_the_same_network(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    nchw, t1 = fit(monkeypatch, "contiguous")
    nhwc, t2 = fit(monkeypatch, "channels_last")
    assert t1.memory_format == torch.contiguous_format and t2.memory_format == torch.channels_last
    assert nhwc[4].weight.is_contiguous(memory_format=torch.channels_last) and not nhwc[4].weight.is_contiguous()
    for (name, a), b in zip(nchw.state_dict().items(), nhwc.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5, msg=f"{name} differs between NCHW and NHWC training")


def test_auto_measures_once_caches_and_leaves_model_and_rng_alone(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("DLR_MEMORY_FORMAT", "auto")
    calls = []
    real = layout.measure

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(layout, "measure", counted)
    model = convnet()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    batch = (torch.randn(16, 1, 12, 12), torch.randint(0, 10, (16,)))
    loss_of = lambda m, b: nn.functional.cross_entropy(m(b[0]), b[1])  # noqa: E731
    rng = torch.get_rng_state()
    first = layout.pick(model, batch, loss_of, lambda: torch.autocast("cpu", enabled=False), torch.device("cpu"), "fp32")
    assert torch.equal(torch.get_rng_state(), rng), "measuring drew from the global RNG"
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()), "measuring changed the model"
    assert all(p.grad is None for p in model.parameters())
    again = layout.pick(model, batch, loss_of, lambda: torch.autocast("cpu", enabled=False), torch.device("cpu"), "fp32")
    assert first == again and len(calls) == 1, "the cached decision was measured again"
    saved = json.loads(layout.cache_file().read_text())["decisions"]
    (entry,) = saved.values()
    assert entry["choice"] in ("contiguous", "channels_last") and entry["contiguous_ms"] > 0 and entry["channels_last_ms"] > 0
    # an MLP has no convolution: nothing to measure
    assert layout.pick(nn.Linear(3, 2), (torch.randn(4, 3),), loss_of, lambda: torch.autocast("cpu", enabled=False),
                       torch.device("cpu"), "fp32") == torch.contiguous_format and len(calls) == 1


def test_the_cache_key_tells_a_host_with_amx_from_one_without(monkeypatch):
    # The same VM reports the same CPU name and "AVX512" on hosts with and without AMX: a decision measured on one
    # must not be reused on the other.
    from dlroadmap import environment

    batch = (torch.randn(4, 1, 12, 12),)
    keys = set()
    for amx, avx512_bf16 in ((False, False), (True, True), (False, True)):
        monkeypatch.setattr(environment, "bf16_units", lambda a=amx, b=avx512_bf16: {"amx": a, "avx512_bf16": b})
        keys.add(layout.cache_key(convnet(), batch, torch.device("cpu"), "fp32"))
    assert len(keys) == 3, keys


def test_a_bad_memory_format_setting_is_one_clear_error(monkeypatch):
    from dlroadmap.errors import UserError

    monkeypatch.setenv("DLR_MEMORY_FORMAT", "nhwc")
    with pytest.raises(UserError, match="DLR_MEMORY_FORMAT"):
        layout.requested()


def test_the_trainers_own_setting_wins_over_the_environment(monkeypatch):
    from dlroadmap.errors import UserError

    monkeypatch.setenv("DLR_MEMORY_FORMAT", "channels_last")
    model = convnet()
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), 0.1), max_epochs=1, device="cpu", memory_format="contiguous")
    trainer.fit(TensorLoader(torch.randn(8, 1, 12, 12), torch.randint(0, 10, (8,)), batch_size=4))
    assert trainer.memory_format == torch.contiguous_format and model[4].weight.is_contiguous()
    with pytest.raises(UserError, match="memory_format"):
        Trainer(model, torch.optim.SGD(model.parameters(), 0.1), device="cpu", memory_format="nhwc")


def test_a_channels_last_run_resumes_bit_identically(monkeypatch, tmp_path):
    """Stop mid-epoch, resume in a new Trainer (NHWC again, the optimiser state loaded from a checkpoint), and
    end with the uninterrupted run's weights, bit for bit; with dropout, whose draws land in NHWC order."""
    from dlroadmap.train import ModelCheckpoint
    from dlroadmap.train.callbacks import Callback

    monkeypatch.setenv("DLR_MEMORY_FORMAT", "channels_last")

    class StopAt(Callback):
        def on_train_batch_end(self, trainer):
            if trainer.global_step == 6:
                trainer.should_stop = True

    def run(ck, *extra, resume=False):
        layers = list(convnet())
        model = nn.Sequential(*layers[:3], nn.Dropout(0.2), *layers[3:])
        g = torch.Generator().manual_seed(1)
        X, y = torch.randn(64, 1, 12, 12, generator=g), torch.randint(0, 10, (64,), generator=g)
        trainer = Trainer(model, torch.optim.Adam(model.parameters(), 1e-2), max_epochs=3, device="cpu", seed=2,
                          callbacks=[ModelCheckpoint(tmp_path / ck, every_n_steps=1), *extra])
        trainer.fit(TensorLoader(X, y, batch_size=16, shuffle=True, seed=2), resume=resume)
        return trainer

    ref = run("ref")
    assert run("part", StopAt()).global_step == 6
    resumed = run("part", resume=True)
    assert resumed.memory_format == torch.channels_last and resumed.global_step == ref.global_step == 12
    for a, b in zip(ref.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)


def test_fit_classifier_hands_back_a_model_that_a_copy_reproduces_exactly(monkeypatch, tmp_path):
    """Trained in channels-last (the layout measured faster on some machines), the model comes back in the
    default layout: a copy rebuilt from its state_dict (what a bundle or torch.hub loads) gives bit-identical
    logits. Left in NHWC, the two differ by ~1e-6 (tools.hub.pytorch_hub declares a difference of exactly 0)."""
    from types import SimpleNamespace

    from dlroadmap.train.fit import fit_classifier

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("DLR_MEMORY_FORMAT", "channels_last")
    g = torch.Generator().manual_seed(3)
    X, y = torch.randn(96, 1, 12, 12, generator=g), torch.randint(0, 10, (96,), generator=g)
    data = SimpleNamespace(X_train=X[:64], y_train=y[:64], X_val=X[64:80], y_val=y[64:80], X_test=X[80:], y_test=y[80:])
    model = convnet()
    fitted = fit_classifier(model, data, torch.optim.Adam(model.parameters(), 1e-2), epochs=2,
                            config=SimpleNamespace(device="cpu", precision="fp32", seed=0), batch_size=16)
    assert fitted.trainer.memory_format == torch.channels_last        # it did train in NHWC
    copy = convnet()
    copy.load_state_dict(model.state_dict())
    model.eval(), copy.eval()
    with torch.no_grad():
        assert torch.equal(model(X), copy(X))
