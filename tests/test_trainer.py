"""The Trainer: learning, precision, clipping, schedules, callbacks, NaN guard, determinism."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from dlroadmap.data import TensorLoader
from dlroadmap.errors import TrainingDiverged, UserError
from dlroadmap.evaluate.metrics import accuracy
from dlroadmap.train import EMA, EarlyStopping, LearningRateMonitor, ModelCheckpoint, Trainer, latest_checkpoint, seed_everything
from dlroadmap.train.callbacks import Callback


def blobs(n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    centers = torch.tensor([[2.0, 0.0], [-2.0, 0.0], [0.0, 2.5]])
    return centers[y] + 0.5 * torch.randn(n, 2, generator=g), y


def make(seed=0, lr=0.05, **kw):
    seed_everything(seed)
    model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 3))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    return Trainer(model, opt, seed=seed, metrics={"acc": accuracy}, device="cpu", **kw)


def loaders(seed=0):
    X, y = blobs()
    return TensorLoader(X[:192], y[:192], batch_size=16, shuffle=True, seed=seed), TensorLoader(X[192:], y[192:], batch_size=64)


def test_learns_and_records_history():
    tr = make(max_epochs=5, callbacks=[LearningRateMonitor()])
    hist = tr.fit(*loaders())
    assert len(hist) == 5 and hist[-1]["train_loss"] < hist[0]["train_loss"]
    assert hist[-1]["val_acc"] >= 0.95
    assert all(h["lr"] == pytest.approx(0.05) for h in hist)
    assert tr.global_step == 5 * 12


def test_same_seed_same_weights_different_seed_differs():
    def weights(seed):
        tr = make(seed=seed, max_epochs=2)
        tr.fit(*loaders(seed))
        return torch.cat([p.detach().flatten() for p in tr.model.parameters()])

    assert torch.equal(weights(1), weights(1))
    assert not torch.equal(weights(1), weights(2))


def test_bf16_autocast_runs_matmuls_in_bf16():
    seen = []

    class Probe(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 3)

        def forward(self, x):
            out = self.lin(x)
            seen.append(out.dtype)
            return out

    seed_everything(0)
    m = Probe()
    tr = Trainer(m, torch.optim.SGD(m.parameters(), lr=0.1), precision="bf16", max_epochs=1, device="cpu")
    hist = tr.fit(loaders()[0])
    assert seen and all(d == torch.bfloat16 for d in seen)
    assert m.lin.weight.dtype == torch.float32, "master weights stay fp32"
    assert math.isfinite(hist[0]["train_loss"])


def test_bad_precision_and_device():
    m = nn.Linear(2, 2)
    with pytest.raises(UserError, match="precision"):
        Trainer(m, torch.optim.SGD(m.parameters(), lr=0.1), precision="fp8")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="CUDA is not available"):
            Trainer(m, torch.optim.SGD(m.parameters(), lr=0.1), device="cuda")


def test_gradient_clipping_bounds_the_update():
    seed_everything(0)
    m = nn.Linear(2, 3)
    before = m.weight.detach().clone()
    X, y = blobs(16)
    tr = Trainer(m, torch.optim.SGD(m.parameters(), lr=1.0), loss_fn=lambda out, t: 1e6 * nn.functional.cross_entropy(out, t),
                 grad_clip=0.01, max_epochs=1, device="cpu")
    tr.fit(TensorLoader(X, y, batch_size=16))
    step = torch.cat([(m.weight - before).flatten()])
    assert step.norm() <= 0.01 + 1e-6


def test_step_scheduler_and_plateau_scheduler():
    tr = make(max_epochs=2)
    tr.schedulers["main"] = torch.optim.lr_scheduler.StepLR(tr.optimizer, step_size=1, gamma=0.5)
    tr.fit(*loaders())
    assert tr.optimizer.param_groups[0]["lr"] == pytest.approx(0.05 * 0.25)
    tr = make(max_epochs=3, lr=0.05)
    tr.schedulers["main"] = torch.optim.lr_scheduler.ReduceLROnPlateau(tr.optimizer, patience=0, factor=0.1, threshold=10.0)
    tr.fit(*loaders())
    assert tr.optimizer.param_groups[0]["lr"] < 0.05


def test_early_stopping_stops():
    es = EarlyStopping("val_loss", patience=2, min_delta=10.0)  # nothing improves by 10: stop after 1 + 2 epochs
    tr = make(max_epochs=20, callbacks=[es])
    hist = tr.fit(*loaders())
    assert len(hist) == 3 and es.stopped_epoch == 3


def test_nan_guard_stops_and_keeps_last_good_checkpoint(tmp_path):
    class Poison(Callback):
        def on_train_batch_end(self, trainer):
            if trainer.global_step == 15:  # after the first epoch's checkpoint (12 steps)
                with torch.no_grad():
                    trainer.model[0].weight.fill_(float("nan"))

    tr = make(max_epochs=3, callbacks=[Poison(), ModelCheckpoint(tmp_path / "ck")])
    with pytest.raises(TrainingDiverged, match=r"loss became nan.*last good checkpoint: .*step-00000012"):
        tr.fit(*loaders())
    latest = latest_checkpoint(tmp_path / "ck")
    assert latest.name == "step-00000012"
    from dlroadmap.train import load_checkpoint

    weights, state = load_checkpoint(latest)
    assert all(torch.isfinite(w).all() for w in weights.values()) and state["global_step"] == 12


def test_nonfinite_gradients_with_clipping():
    """A finite loss whose gradient is not (d sqrt(x)/dx at 0): caught by the clipping norm check."""
    seed_everything(0)
    m = nn.Linear(2, 3)
    X, y = blobs(16)
    tr = Trainer(m, torch.optim.SGD(m.parameters(), lr=0.1), step=lambda model, batch: ((model.weight * 0).sqrt().sum(), None, None),
                 grad_clip=1.0, max_epochs=1, device="cpu")
    with pytest.raises(TrainingDiverged, match="gradient norm became nan"):
        tr.fit(TensorLoader(X, y, batch_size=16))


def test_in_process_resume_is_exact(tmp_path):
    """Stop after 1 epoch + 5 steps, resume, and compare with an uninterrupted run, bit for bit."""
    class StopAt(Callback):
        def __init__(self, step):
            self.step = step

        def on_train_batch_end(self, trainer):
            if trainer.global_step == self.step:
                trainer.should_stop = True

    ref = make(max_epochs=3, callbacks=[ModelCheckpoint(tmp_path / "ref", every_n_steps=1)])
    ref.fit(*loaders())

    part = make(max_epochs=3, callbacks=[ModelCheckpoint(tmp_path / "part", every_n_steps=1), StopAt(17)])
    part.fit(*loaders())
    assert part.global_step == 17

    resumed = make(seed=0, max_epochs=3, callbacks=[ModelCheckpoint(tmp_path / "part", every_n_steps=1)])
    resumed.fit(*loaders(), resume=True)
    assert resumed.global_step == ref.global_step == 36
    for a, b in zip(ref.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
    assert [h["train_loss"] for h in resumed.history] == [h["train_loss"] for h in ref.history]


def test_resume_without_checkpoint_callback_is_an_error():
    tr = make(max_epochs=1)
    with pytest.raises(UserError, match="ModelCheckpoint"):
        tr.fit(*loaders(), resume=True)


def test_ema_equals_torch_averaged_model():
    """Without warm-up, the EMA callback is torch's AveragedModel with the EMA rule, started from the same weights."""
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    class Reference(Callback):
        def on_fit_start(self, trainer):
            self.avg = AveragedModel(trainer.model, multi_avg_fn=get_ema_multi_avg_fn(0.9))
            self.avg.update_parameters(trainer.model)           # the first call copies: the initial weights

        def on_train_batch_end(self, trainer):
            self.avg.update_parameters(trainer.model)

    ema, ref = EMA(0.9, warmup=False), Reference()
    tr = make(max_epochs=2, callbacks=[ema, ref])
    tr.fit(*loaders())
    assert ema.updates == tr.global_step == 24
    for a, b, p in zip(ema.module.parameters(), ref.avg.module.parameters(), tr.model.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
        assert not torch.allclose(a, p)                         # an average, not a copy of the weights


def test_ema_warmup_and_resume(tmp_path):
    """Warm-up: the first update uses d = 2/11. The shadow is checkpointed: a resumed run averages on exactly."""
    seed_everything(0)
    model = nn.Linear(2, 1)
    w0 = model.weight.detach().clone()
    ema = EMA(0.99)
    tr = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), loss_fn=nn.functional.mse_loss, max_steps=1, callbacks=[ema], device="cpu")
    X = torch.randn(8, 2)
    tr.fit(TensorLoader(X, X.sum(1, keepdim=True), batch_size=8))
    torch.testing.assert_close(ema.module.weight, 2 / 11 * w0 + 9 / 11 * model.weight, rtol=0, atol=1e-7)

    class StopAt(Callback):
        def on_train_batch_end(self, trainer):
            trainer.should_stop = trainer.global_step == 17

    def run(name, *extra, resume=False):
        e = EMA(0.95)
        t = make(max_epochs=3, callbacks=[e, ModelCheckpoint(tmp_path / name, every_n_steps=1), *extra])
        t.fit(*loaders(), resume=resume)
        return e

    ref = run("ref")
    run("part", StopAt())
    resumed = run("part", resume=True)
    assert resumed.updates == ref.updates == 36
    for a, b in zip(ref.module.state_dict().values(), resumed.module.state_dict().values()):
        assert torch.equal(a, b)
