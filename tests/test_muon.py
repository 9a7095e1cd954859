"""Muon (train/muon.py) against torch.optim.Muon and torch.optim.AdamW, and the GPT's split of its parameters."""

import pytest
import torch

from dlroadmap.models.sequence.gpt import GPT, GPTConfig
from dlroadmap.train.muon import Muon, orthogonalise

SHAPES = [(384, 128), (128, 128), (512, 128), (128, 512), (384, 128)]   # tall, square, wide; two of one shape (batched)


def _run(opt_a, opt_b, a, b, steps=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        grads = [torch.randn(p.shape, generator=g) for p in a]
        for ps in (a, b):
            for p, gr in zip(ps, grads):
                p.grad = gr.clone()
        opt_a.step()
        opt_b.step()


def test_muon_steps_equal_torch_muon():
    torch.manual_seed(0)
    a = [torch.randn(s, requires_grad=True) for s in SHAPES]
    b = [p.detach().clone().requires_grad_() for p in a]
    before = [p.detach().clone() for p in a]
    _run(Muon(a, lr=0.02, weight_decay=0.1), torch.optim.Muon(b, lr=0.02, weight_decay=0.1), a, b)
    for p, q, p0 in zip(a, b, before):
        assert (p - p0).abs().max() > 1e-3                    # it moved
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6)    # as torch's does (batched bf16 Newton-Schulz = torch's per matrix)


def test_plain_momentum_variant_equals_torch():
    torch.manual_seed(1)
    a = [torch.randn(s, requires_grad=True) for s in SHAPES[:3]]
    b = [p.detach().clone().requires_grad_() for p in a]
    _run(Muon(a, lr=0.05, momentum=0.9, nesterov=False), torch.optim.Muon(b, lr=0.05, momentum=0.9, nesterov=False, weight_decay=0.0), a, b)
    for p, q in zip(a, b):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6)


def test_adam_groups_equal_torch_adamw():
    torch.manual_seed(2)
    shapes = [(65, 128), (128,), (64, 128), (7,)]
    a = [torch.randn(s, requires_grad=True) for s in shapes]
    b = [p.detach().clone().requires_grad_() for p in a]
    ours = Muon([{"params": a[:2], "adam": True, "lr": 3e-3, "weight_decay": 0.1},
                 {"params": a[2:], "adam": True, "lr": 1e-2, "weight_decay": 0.0}], betas=(0.9, 0.95))
    ref = torch.optim.AdamW([{"params": b[:2], "lr": 3e-3, "weight_decay": 0.1}, {"params": b[2:], "lr": 1e-2, "weight_decay": 0.0}],
                            betas=(0.9, 0.95), foreach=False)
    before = [p.detach().clone() for p in a]
    _run(ours, ref, a, b, steps=8)
    for p, q, p0 in zip(a, b, before):
        assert (p - p0).abs().max() > 1e-2                         # 8 steps moved it by ~lr each
        # equal to a few float32 roundings: the foreach kernels round differently from torch's per-tensor loop
        torch.testing.assert_close(p, q, rtol=1e-5, atol=3e-6)


def test_newton_schulz_flattens_the_spectrum():
    gen = torch.Generator().manual_seed(3)
    u, _ = torch.linalg.qr(torch.randn(128, 128, generator=gen))
    v, _ = torch.linalg.qr(torch.randn(384, 128, generator=gen))
    spread = u @ torch.diag(torch.logspace(-2, 0, 128)) @ v.T            # singular values over 2 decades
    g = torch.stack([spread, torch.randn(128, 384, generator=gen)])
    s = torch.linalg.svdvals(orthogonalise(g).float())
    assert s.min() > 0.5 and s.max() < 1.3                               # every direction about the same size (the quintic's band)
    assert torch.linalg.svdvals(orthogonalise(g, steps=1).float()).min() < 0.1   # one iteration is not enough: the test can tell


def test_vectors_need_an_adam_group():
    with pytest.raises(ValueError, match="2-d matrices only"):
        Muon([torch.zeros(4, requires_grad=True)])
    opt = Muon([torch.zeros(3, 4, requires_grad=True)])
    with pytest.raises(ValueError, match="2-d matrices only"):              # a group added later is checked too
        opt.add_param_group({"params": [torch.zeros(4, requires_grad=True)]})
    opt.add_param_group({"params": [torch.zeros(4, requires_grad=True)], "adam": True})
    assert [g["adam"] for g in opt.param_groups] == [False, True]          # the refused group left nothing behind


def test_gpt_split_and_a_checkpoint_round_trip():
    model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16))
    opt = model.configure_optimizer(3e-3, muon_lr=0.02)
    muon, emb, small = opt.param_groups
    assert not muon["adam"] and len(muon["params"]) == 2 * 4           # q/k/v, projection, MLP in, MLP out per block
    assert {p.data_ptr() for p in emb["params"]} == {model.wte.weight.data_ptr(), model.wpe.weight.data_ptr()}
    assert all(p.dim() == 1 for p in small["params"])
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))
    x = torch.randint(0, 11, (4, 8))
    losses = []
    for _ in range(30):
        loss = model(x, x)[1]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]                                 # it learns (memorises the batch)
    again = model.configure_optimizer(3e-3, muon_lr=0.02)
    again.load_state_dict(opt.state_dict())
    assert again.state_dict()["state"].keys() == opt.state_dict()["state"].keys()
