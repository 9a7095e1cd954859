"""What the Trainer carries beyond one optimiser per batch: (a) several optimisers driven by a manual
step, (b) training by step budget (with and without a dataset), (c) kill -9 + resume of a
two-optimiser run ending bit-identical."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlroadmap.data import TensorLoader
from dlroadmap.errors import TrainingDiverged
from dlroadmap.train import Trainer, seed_everything


class TinyGAN(nn.Module):
    """A generator and a discriminator on 2-d points: the smallest two-optimiser problem."""

    def __init__(self):
        super().__init__()
        self.g = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
        self.d = nn.Sequential(nn.Linear(2, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1))


def gan_losses(m: TinyGAN, x: torch.Tensor):
    z = torch.randn(len(x), 4)
    fake = m.g(z)
    real_logit, fake_logit = m.d(x), m.d(fake.detach())
    d_loss = F.binary_cross_entropy_with_logits(real_logit, torch.ones_like(real_logit)) + \
        F.binary_cross_entropy_with_logits(fake_logit, torch.zeros_like(fake_logit))
    return fake, d_loss


def gan_step(trainer: Trainer, batch):
    m = trainer.model
    fake, d_loss = gan_losses(m, batch[0])
    trainer.optimize("d", d_loss)
    logit = m.d(fake)
    g_loss = F.binary_cross_entropy_with_logits(logit, torch.ones_like(logit))  # non-saturating generator loss
    trainer.optimize("g", g_loss)
    return {"d_loss": d_loss, "g_loss": g_loss}


def points(n: int = 256, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 2, generator=g) * 0.5 + torch.tensor([2.0, -1.0])


def test_two_optimisers_manual_step_equals_a_hand_written_loop():
    x = points()
    seed_everything(0)
    a = TinyGAN()
    b = TinyGAN()
    b.load_state_dict(a.state_dict())
    opts = {"d": torch.optim.Adam(a.d.parameters(), 2e-3, betas=(0.5, 0.999)), "g": torch.optim.Adam(a.g.parameters(), 2e-3, betas=(0.5, 0.999))}
    tr = Trainer(a, opts, manual_step=gan_step, max_epochs=3, device="cpu", seed=0)
    hist = tr.fit(TensorLoader(x, batch_size=32, shuffle=True, seed=0))
    assert tr.global_step == 3 * 8 and set(hist[-1]) == {"epoch", "train_d_loss", "train_g_loss"}

    # The same updates by hand: D step, then G step, per batch, same seeding and batches.
    od, og = torch.optim.Adam(b.d.parameters(), 2e-3, betas=(0.5, 0.999)), torch.optim.Adam(b.g.parameters(), 2e-3, betas=(0.5, 0.999))
    seed_everything(0)
    loader = TensorLoader(x, batch_size=32, shuffle=True, seed=0)
    for epoch in range(3):
        loader.set_epoch(epoch)
        for (xb,) in loader:
            fake, d_loss = gan_losses(b, xb)
            od.zero_grad()
            d_loss.backward()
            od.step()
            logit = b.d(fake)
            g_loss = F.binary_cross_entropy_with_logits(logit, torch.ones_like(logit))
            og.zero_grad()
            b.d.zero_grad()
            g_loss.backward()
            og.step()
    for (k, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(p, q), f"{k} differs from the hand-written loop"


def test_several_optimisers_need_a_manual_step_and_nan_stops():
    m = TinyGAN()
    with pytest.raises(ValueError, match="manual_step"):
        Trainer(m, {"d": torch.optim.SGD(m.d.parameters(), 0.1), "g": torch.optim.SGD(m.g.parameters(), 0.1)})

    def bad_step(trainer, batch):
        trainer.optimize("g", m.g(torch.randn(4, 4)).sum() * float("nan"))
        return {}

    tr = Trainer(m, {"d": torch.optim.SGD(m.d.parameters(), 0.1), "g": torch.optim.SGD(m.g.parameters(), 0.1)}, manual_step=bad_step,
                 max_steps=3, device="cpu")
    with pytest.raises(TrainingDiverged, match="loss g became nan"):
        tr.fit(None)


def test_step_budget_without_a_dataset():
    """RL / diffusion style: no loader, the step draws its own data; eval_every steps make one round."""
    seed_everything(0)
    model = nn.Linear(3, 1)
    target = torch.tensor([[1.0], [-2.0], [0.5]])

    def step(m, batch):
        assert batch == ()
        x = torch.randn(16, 3)
        return F.mse_loss(m(x), x @ target), None, None

    tr = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), step=step, max_steps=25, eval_every=10, device="cpu")
    hist = tr.fit(None)
    assert tr.global_step == 25
    assert [h["step"] for h in hist] == [10, 20, 25]
    assert hist[-1]["train_loss"] < hist[0]["train_loss"] / 10
    with pytest.raises(ValueError, match="max_steps"):
        Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1)).fit(None)


def test_step_budget_stops_mid_epoch_on_the_same_batches_as_a_loop():
    x, y = torch.randn(70, 5), torch.randint(0, 3, (70,))
    seed_everything(0)
    a = nn.Linear(5, 3)
    b = nn.Linear(5, 3)
    b.load_state_dict(a.state_dict())
    tr = Trainer(a, torch.optim.SGD(a.parameters(), lr=0.1), max_steps=17, device="cpu")   # 7 batches an epoch: 2 epochs + 3 batches
    hist = tr.fit(TensorLoader(x, y, batch_size=10, shuffle=True, seed=3))
    assert tr.global_step == 17 and len(hist) == 3 and hist[-1]["step"] == 17
    opt = torch.optim.SGD(b.parameters(), lr=0.1)
    loader = TensorLoader(x, y, batch_size=10, shuffle=True, seed=3)
    steps = 0
    for epoch in range(3):
        loader.set_epoch(epoch)
        for xb, yb in loader:
            if steps == 17:
                break
            opt.zero_grad()
            F.cross_entropy(b(xb), yb).backward()
            opt.step()
            steps += 1
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


# --- (c) kill -9 in the middle of a two-optimiser run, resume, compare --------------------------------

SCRIPT = textwrap.dedent('''
    import sys, time
    import torch
    sys.path.insert(0, {tests!r})
    from test_trainer_modes import TinyGAN, gan_step, points
    from dlroadmap.data import TensorLoader
    from dlroadmap.train import ModelCheckpoint, Trainer, save_weights, seed_everything

    out, resume, slow = sys.argv[1], sys.argv[2] == "1", sys.argv[3] == "1"
    seed_everything(0)
    m = TinyGAN()
    opts = {{"d": torch.optim.Adam(m.d.parameters(), 2e-3, betas=(0.5, 0.999)), "g": torch.optim.Adam(m.g.parameters(), 2e-3, betas=(0.5, 0.999))}}
    sched = {{"g": torch.optim.lr_scheduler.StepLR(opts["g"], step_size=5, gamma=0.9)}}

    def step(trainer, batch):
        if slow:
            time.sleep(0.02)   # room for the test to kill it between checkpoints
        return gan_step(trainer, batch)

    tr = Trainer(m, opts, manual_step=step, scheduler=sched, scheduler_interval="step", max_epochs=6, device="cpu", seed=0,
                 callbacks=[ModelCheckpoint(out + "/ck", every_n_steps=3)])
    tr.fit(TensorLoader(points(), batch_size=32, shuffle=True, seed=0), resume=resume)
    save_weights(m.state_dict(), out + "/final.safetensors")
''')


@pytest.mark.slow
def test_kill9_then_resume_two_optimiser_run_is_bit_identical(tmp_path):
    from resume_harness import kill_then_resume

    script = tmp_path / "gan_run.py"
    script.write_text(SCRIPT.format(tests=str(Path(__file__).parent)))
    # A checkpoint inside epoch 3 (8 batches an epoch, one every 3 steps).
    a, b, step = kill_then_resume(script, tmp_path, lambda step: step > 16 and step % 8 != 0)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after resume (killed at step {step})"
