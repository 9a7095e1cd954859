"""DCGAN pieces: the losses and their gradients (why the paper switches generator losses), the
networks' shapes, the Trainer's divergence guard on a GAN, and kill -9 + resume of a DCGAN run ending
bit-identical."""

from __future__ import annotations

import textwrap

import pytest
import torch

from dlroadmap.data import TensorLoader
from dlroadmap.errors import TrainingDiverged
from dlroadmap.models.generative.dcgan import GAN, MinibatchStd, discriminator_loss, generator_loss, optimizers, training_step
from dlroadmap.train import ModelCheckpoint, Trainer, load_checkpoint


def test_discriminator_loss_is_the_value_function():
    real, fake = torch.tensor([2.0, -0.5, 1.0]), torch.tensor([-1.0, 0.3, -3.0])
    expected = -torch.log(torch.sigmoid(real)).mean() - torch.log(1 - torch.sigmoid(fake)).mean()
    assert float(discriminator_loss(real, fake)) == pytest.approx(float(expected), rel=1e-6)


def test_saturating_generator_loss_vanishes_where_the_discriminator_wins():
    """d/dlogit of log(1 - D) is -D: ~0 when D(G(z)) ~ 0. d/dlogit of -log D is -(1 - D): ~ -1 there."""
    logits = torch.tensor([-8.0, -4.0, 0.0, 4.0], requires_grad=True)
    d = torch.sigmoid(logits.detach())
    for saturating, expected in ((True, -d), (False, -(1 - d))):
        logits.grad = None
        (generator_loss(logits, saturating) * len(logits)).backward()
        torch.testing.assert_close(logits.grad, expected, rtol=1e-6, atol=1e-7)
    assert float(generator_loss(torch.tensor([-3.0]), saturating=True)) == pytest.approx(float(torch.log(1 - torch.sigmoid(torch.tensor(-3.0)))))


def test_shapes_and_minibatch_std():
    gan = GAN(z_dim=16, width=8, minibatch_std=True)
    x = gan.sample(6, torch.Generator().manual_seed(0))
    assert x.shape == (6, 1, 28, 28) and 0 <= float(x.min()) and float(x.max()) <= 1
    assert gan.discriminator(x * 2 - 1).shape == (6,)
    same = torch.ones(4, 3, 7, 7)
    assert torch.equal(MinibatchStd()(same)[:, -1], torch.zeros(4, 7, 7))          # identical samples: no spread
    varied = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 3, 7, 7)
    assert float(MinibatchStd()(varied)[0, -1, 0, 0]) == pytest.approx(float(torch.arange(4.0).std(unbiased=False)))


def _images(n: int = 96) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return (torch.rand(n, 1, 28, 28, generator=g) > 0.8).float()


def test_a_nan_in_the_generator_stops_training_and_keeps_the_last_good_checkpoint(tmp_path):
    torch.manual_seed(0)
    gan = GAN(z_dim=8, width=4)
    normal = training_step()

    def step(trainer, batch):
        if trainer.global_step == 7:          # the generator's output goes bad at step 8
            with torch.no_grad():
                gan.generator.net[-2].bias.fill_(float("nan"))
        return normal(trainer, batch)

    tr = Trainer(gan, optimizers(gan), manual_step=step, max_epochs=3, device="cpu", callbacks=[ModelCheckpoint(tmp_path / "ck", every_n_steps=3, monitor=None)])
    with pytest.raises(TrainingDiverged, match="step 8") as err:
        tr.fit(TensorLoader(_images(), batch_size=8, shuffle=True, seed=0))
    assert "last good checkpoint" in str(err.value) and tr.last_checkpoint is not None
    weights, _ = load_checkpoint(tr.last_checkpoint)
    assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())


SCRIPT = textwrap.dedent('''
    import sys, time
    import torch
    from dlroadmap.data import TensorLoader
    from dlroadmap.models.generative.dcgan import GAN, optimizers, training_step
    from dlroadmap.train import ModelCheckpoint, Trainer, save_weights, seed_everything

    out, resume, slow = sys.argv[1], sys.argv[2] == "1", sys.argv[3] == "1"
    seed_everything(0)
    gan = GAN(z_dim=8, width=4, minibatch_std=True)
    g = torch.Generator().manual_seed(0)
    images = (torch.rand(96, 1, 28, 28, generator=g) > 0.8).float()
    normal = training_step()

    def step(trainer, batch):
        if slow:
            time.sleep(0.03)   # room for the test to kill it between checkpoints
        return normal(trainer, batch)

    tr = Trainer(gan, optimizers(gan), manual_step=step, max_epochs=5, device="cpu", seed=0,
                 callbacks=[ModelCheckpoint(out + "/ck", every_n_steps=5, monitor=None)])
    tr.fit(TensorLoader(images, batch_size=8, shuffle=True, seed=0), resume=resume)
    save_weights(gan.state_dict(), out + "/final.safetensors")
''')


@pytest.mark.slow
def test_kill9_then_resume_of_a_dcgan_run_is_bit_identical(tmp_path):
    """Both networks, both Adam states, batch-norm running statistics and the noise stream survive a kill."""
    from resume_harness import kill_then_resume

    script = tmp_path / "dcgan_run.py"
    script.write_text(SCRIPT)
    # A checkpoint inside epoch 3 (12 batches an epoch, one every 5 steps).
    a, b, step = kill_then_resume(script, tmp_path, lambda step: step > 24 and step % 12 != 0)
    assert a.keys() == b.keys() and any("running_mean" in k for k in a)
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after resume (killed at step {step})"
