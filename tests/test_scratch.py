"""The scratch engine against torch: forward values and gradients, layers, losses, optimizers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from dlroadmap.scratch import Tensor, nn, optim

SETTINGS = settings(max_examples=40, deadline=None)


def pair(x: np.ndarray):
    """The same float64 values as a scratch Tensor and a torch tensor, both requiring grad."""
    return Tensor(x.copy(), requires_grad=True), torch.tensor(x, requires_grad=True)


def check(ours: Tensor, theirs: torch.Tensor, inputs, rtol=1e-10, atol=1e-12):
    np.testing.assert_allclose(ours.data, theirs.detach().numpy(), rtol=rtol, atol=atol)
    seed = np.random.default_rng(0).normal(size=ours.shape)  # a random upstream gradient
    ours.backward(seed)
    theirs.backward(torch.tensor(seed))
    for a, b in inputs:
        np.testing.assert_allclose(a.grad, b.grad.numpy(), rtol=rtol, atol=atol)


floats = st.floats(-3, 3, allow_nan=False, width=64)


@SETTINGS
@given(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=4), st.sampled_from(["add", "sub", "mul", "div"]), st.data())
def test_broadcast_binary_ops(shapes, op, data):
    sa, sb = shapes.input_shapes
    a = data.draw(hnp.arrays(np.float64, sa, elements=floats))
    b = data.draw(hnp.arrays(np.float64, sb, elements=st.floats(0.5, 3, width=64) if op == "div" else floats))
    (ta, pa), (tb, pb) = pair(a), pair(b)
    fn = {"add": lambda x, y: x + y, "sub": lambda x, y: x - y, "mul": lambda x, y: x * y, "div": lambda x, y: x / y}[op]
    check(fn(ta, tb), fn(pa, pb), [(ta, pa), (tb, pb)])


UNARY = {
    "exp": (lambda t: t.exp(), torch.exp),
    "tanh": (lambda t: t.tanh(), torch.tanh),
    "sigmoid": (lambda t: t.sigmoid(), torch.sigmoid),
    "relu": (lambda t: t.relu(), torch.relu),
    "leaky_relu": (lambda t: t.leaky_relu(0.1), lambda t: F.leaky_relu(t, 0.1)),
    "gelu": (lambda t: t.gelu(), F.gelu),
    "abs": (lambda t: t.abs(), torch.abs),
    "square": (lambda t: t ** 2, lambda t: t ** 2),
    "neg_rsub": (lambda t: 1.0 - t, lambda t: 1.0 - t),
}


@SETTINGS
@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=5), elements=floats.filter(lambda v: abs(v) > 1e-3)),
       st.sampled_from(sorted(UNARY)))
def test_unary_ops(x, name):
    ours_fn, torch_fn = UNARY[name]
    t, p = pair(x)
    check(ours_fn(t), torch_fn(p), [(t, p)])


@SETTINGS
@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=5), elements=st.floats(0.1, 5, width=64)))
def test_log_sqrt_pow(x):
    for ours_fn, torch_fn in ((lambda t: t.log(), torch.log), (lambda t: t.sqrt(), torch.sqrt), (lambda t: t ** -1.5, lambda t: t ** -1.5)):
        t, p = pair(x)
        check(ours_fn(t), torch_fn(p), [(t, p)])


@SETTINGS
@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=2, max_dims=3, min_side=2, max_side=5), elements=floats), st.data())
def test_reductions(x, data):
    axis = data.draw(st.integers(0, x.ndim - 1))
    keep = data.draw(st.booleans())
    for ours_fn, torch_fn in (
        (lambda t: t.sum(axis=axis, keepdims=keep), lambda p: p.sum(dim=axis, keepdim=keep)),
        (lambda t: t.mean(axis=axis, keepdims=keep), lambda p: p.mean(dim=axis, keepdim=keep)),
        (lambda t: t.var(axis=axis, keepdims=keep), lambda p: p.var(dim=axis, keepdim=keep, unbiased=False)),
        (lambda t: t.max(axis=axis, keepdims=keep), lambda p: p.amax(dim=axis, keepdim=keep)),
        (lambda t: t.log_softmax(axis=axis), lambda p: torch.log_softmax(p, dim=axis)),
        (lambda t: t.softmax(axis=axis), lambda p: torch.softmax(p, dim=axis)),
        (lambda t: t.sum(), lambda p: p.sum()),
    ):
        t, p = pair(x)
        check(ours_fn(t), torch_fn(p), [(t, p)])


@SETTINGS
@given(st.sampled_from([((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 4)), ((2, 3), (3, 4)), ((5, 2, 3), (3, 4)), ((5, 2, 3), (5, 3, 4)), ((1, 2, 3), (4, 3, 2))]), st.data())
def test_matmul_shapes(shapes, data):
    sa, sb = shapes
    a = data.draw(hnp.arrays(np.float64, sa, elements=floats))
    b = data.draw(hnp.arrays(np.float64, sb, elements=floats))
    (ta, pa), (tb, pb) = pair(a), pair(b)
    check(ta @ tb, pa @ pb, [(ta, pa), (tb, pb)])


def test_indexing_reshape_transpose_and_reuse():
    x = np.random.default_rng(1).normal(size=(4, 5))
    t, p = pair(x)
    idx = np.array([0, 2, 2, 3])
    ours = (t[idx, np.array([1, 1, 4, 0])] * 2).sum() + t.reshape(5, 4).transpose().sum(axis=0).max() + (t * t).mean()
    theirs = (p[idx, torch.tensor([1, 1, 4, 0])] * 2).sum() + p.reshape(5, 4).T.sum(dim=0).max() + (p * p).mean()
    check(ours, theirs, [(t, p)])


def test_no_grad_and_int_tensors():
    from dlroadmap.scratch import no_grad

    w = Tensor(np.ones(3), requires_grad=True)
    with no_grad():
        y = w * 2
    assert not y.requires_grad and y._parents == ()
    with pytest.raises(TypeError):
        Tensor(np.array([1, 2]), requires_grad=True)
    with pytest.raises(RuntimeError, match="scalar"):
        (w * 2).backward()


# --- layers, losses -------------------------------------------------------------------------------


def torch_mlp(dtype=torch.float64):
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(7, 16), torch.nn.ReLU(), torch.nn.BatchNorm1d(16), torch.nn.Tanh(),
                               torch.nn.Linear(16, 8), torch.nn.GELU(), torch.nn.Linear(8, 4)).to(dtype)


def scratch_mlp(dtype=np.float64):
    return nn.Sequential(nn.Linear(7, 16, dtype=dtype), nn.ReLU(), nn.BatchNorm1d(16, dtype=dtype), nn.Tanh(),
                         nn.Linear(16, 8, dtype=dtype), nn.GELU(), nn.Linear(8, 4, dtype=dtype))


@pytest.mark.parametrize("dtype,np_dtype,tol", [(torch.float64, np.float64, 1e-10), (torch.float32, np.float32, 1e-5)])
def test_mlp_with_batchnorm_matches_torch(dtype, np_dtype, tol):
    tm = torch_mlp(dtype)
    sm = scratch_mlp(np_dtype).load_torch(tm.state_dict())
    x = np.random.default_rng(2).normal(size=(12, 7)).astype(np_dtype)
    y = np.random.default_rng(3).integers(0, 4, 12)
    for train in (True, False):
        tm.train(train)
        sm.train(train)
        tm.zero_grad()
        sm.zero_grad()
        lt = F.cross_entropy(tm(torch.tensor(x)), torch.tensor(y))
        ls = nn.cross_entropy(sm(Tensor(x)), y)
        np.testing.assert_allclose(ls.item(), lt.item(), rtol=tol)
        lt.backward()
        ls.backward()
        for (name, p), (tname, tp) in zip(sm.named_parameters(), tm.named_parameters()):
            assert name == tname
            np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=tol * 10, atol=tol, err_msg=name)
        np.testing.assert_allclose(sm.layers[2].running_mean, tm[2].running_mean.numpy(), rtol=tol, atol=tol)
        np.testing.assert_allclose(sm.layers[2].running_var, tm[2].running_var.numpy(), rtol=tol, atol=tol)


def test_mse_loss_matches_torch():
    a, b = np.random.default_rng(4).normal(size=(2, 6, 3))
    t, p = pair(a)
    check(nn.mse_loss(t, Tensor(b)), F.mse_loss(p, torch.tensor(b)), [(t, p)])


def test_dropout_is_inverted_and_off_in_eval():
    d = nn.Dropout(0.3, rng=np.random.default_rng(0))
    x = Tensor(np.ones((200, 500)), requires_grad=True)
    y = d(x)
    zeros = (y.data == 0).mean()
    assert abs(zeros - 0.3) < 0.01 and abs(y.data.mean() - 1.0) < 0.02
    assert set(np.unique(y.data)) <= {0.0, 1 / 0.7}
    y.sum().backward()
    assert np.array_equal(x.grad, y.data)  # gradient flows through kept units, scaled the same
    d.eval()
    assert d(x) is x


def test_linear_init_matches_torch_bounds():
    layer = nn.Linear(100, 50, rng=np.random.default_rng(0))
    assert layer.weight.dtype == np.float32 and np.abs(layer.weight.data).max() <= 0.1
    assert abs(layer.weight.data.std() - 0.1 / np.sqrt(3)) < 0.005  # U(-b, b) has std b / sqrt(3)


# --- optimizers: trajectories equal torch.optim step by step ----------------------------------------

OPTIMIZERS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.5, dampening=0.1)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, momentum=0.9, centered=True, weight_decay=0.001)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.01)),
    ("AdamW", dict(lr=0.01, weight_decay=0.1)),
]


@pytest.mark.parametrize("name,kwargs", OPTIMIZERS, ids=lambda v: v if isinstance(v, str) else ",".join(f"{k}={x}" for k, x in v.items()))
def test_optimizer_trajectory_matches_torch(name, kwargs):
    tm = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).double()
    sm = nn.Sequential(nn.Linear(5, 8, dtype=np.float64), nn.Tanh(), nn.Linear(8, 3, dtype=np.float64)).load_torch(tm.state_dict())
    topt = getattr(torch.optim, name)(tm.parameters(), **kwargs)
    sopt = getattr(optim, name)(sm.parameters(), **kwargs)
    rng = np.random.default_rng(5)
    for step in range(25):
        x, y = rng.normal(size=(16, 5)), rng.integers(0, 3, 16)
        topt.zero_grad()
        F.cross_entropy(tm(torch.tensor(x)), torch.tensor(y)).backward()
        topt.step()
        sopt.zero_grad()
        nn.cross_entropy(sm(Tensor(x)), y).backward()
        sopt.step()
        for p, tp in zip(sm.parameters(), tm.parameters()):
            np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-12, atol=1e-12, err_msg=f"{name} step {step}")  # the README says ~1e-12
