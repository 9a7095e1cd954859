"""Self-supervised learning: augmentations, the contrastive losses, MoCo's key encoder and queue, the
probes, and the linear algebra the autoencoder lesson rests on, each against its reference."""

import numpy as np
import pytest
import scipy.linalg
import torch

from dlroadmap.data.augment import contrastive_view, gaussian_noise, random_affine, random_erasing, random_resized_crop
from dlroadmap.evaluate.probe import LinearProbe, knn_predict
from dlroadmap.foundations.linalg import principal_angles
from dlroadmap.models.ssl.autoencoder import conv_autoencoder, linear_autoencoder, mlp_autoencoder, reconstruction_errors
from dlroadmap.models.ssl.contrastive import ConvEncoder, MoCo, SimCLR, info_nce, nt_xent, projection_head

AUGMENTATIONS = [random_resized_crop, random_affine, gaussian_noise, random_erasing, contrastive_view]


def _digits(n: int = 8) -> torch.Tensor:
    from sklearn.datasets import load_digits

    x = torch.tensor(load_digits().images[:n], dtype=torch.float32) / 16
    return torch.nn.functional.interpolate(x.unsqueeze(1), size=(28, 28), mode="bilinear")


@pytest.mark.parametrize("augment", AUGMENTATIONS, ids=lambda f: f.__name__)
def test_augmentations_are_seeded_shape_preserving_and_random_per_image(augment):
    x = _digits()
    a = augment(x, torch.Generator().manual_seed(1))
    b = augment(x, torch.Generator().manual_seed(1))
    c = augment(x, torch.Generator().manual_seed(2))
    assert a.shape == x.shape and a.dtype == x.dtype
    assert torch.equal(a, b)                                          # same seed, same views
    assert not torch.equal(a, c)                                      # another seed, other views
    assert not torch.equal(a, x)                                      # it does something
    assert a.min() >= 0 and a.max() <= 1 + 1e-6
    # Each image gets its own parameters: the same image twice in one batch gives two different views.
    copies = augment(x[:1].repeat(8, 1, 1, 1), torch.Generator().manual_seed(3))
    assert not all(torch.allclose(copies[0], view) for view in copies[1:])


def test_geometric_augmentations_at_identity_parameters_return_the_image():
    """The affine maps are right (no flipped axis, no off-by-one shift): a full-size crop and a zero
    rotation/shift/zoom read every pixel where it was."""
    x = _digits()
    g = torch.Generator().manual_seed(0)
    assert torch.allclose(random_resized_crop(x, g, scale=(1.0, 1.0), ratio=(1.0, 1.0)), x, atol=1e-5)
    assert torch.allclose(random_affine(x, g, degrees=0, translate=0, scale=(1, 1), shear=0), x, atol=1e-5)
    # A crop of half the width and height, centred, is a 2x zoom: its centre pixels come from the image's centre.
    zoomed = random_resized_crop(torch.ones(1, 1, 28, 28), g, scale=(0.25, 0.25), ratio=(1.0, 1.0))
    assert torch.allclose(zoomed, torch.ones(1, 1, 28, 28), atol=1e-5)   # a crop inside the image never reads the zero padding


def test_random_erasing_zeros_a_rectangle_of_the_asked_area():
    x = torch.ones(200, 1, 28, 28)
    out = random_erasing(x, torch.Generator().manual_seed(0), p=1.0, scale=(0.1, 0.1), ratio=(1.0, 1.0))
    erased = (out == 0).flatten(1).sum(1).float() / 784
    assert ((erased - 0.1).abs() < 0.03).all()                         # 0.1 of the area, up to rounding to whole pixels


@pytest.mark.parametrize("temperature", [0.07, 0.2, 0.5, 1.0])
def test_nt_xent_matches_pytorch_metric_learning(temperature):
    from pytorch_metric_learning.losses import NTXentLoss

    g = torch.Generator().manual_seed(int(temperature * 100))
    z1, z2 = torch.randn(32, 16, generator=g, dtype=torch.float64), torch.randn(32, 16, generator=g, dtype=torch.float64)
    ours = nt_xent(z1, z2, temperature)
    reference = NTXentLoss(temperature=temperature)(torch.cat([z1, z2]), torch.cat([torch.arange(32), torch.arange(32)]))
    assert abs(float(ours) - float(reference)) < 1e-6


def test_info_nce_is_nt_xent_of_one_direction_with_explicit_negatives():
    """InfoNCE written out by hand for one query: -log softmax of [q.k+, q.n_1, ..., q.n_K] / T at 0."""
    g = torch.Generator().manual_seed(0)
    q, k = [torch.nn.functional.normalize(torch.randn(4, 8, generator=g), dim=1) for _ in range(2)]
    queue = torch.nn.functional.normalize(torch.randn(10, 8, generator=g), dim=1)
    by_hand = torch.stack([-torch.log_softmax(torch.cat([(q[i] @ k[i]).view(1), queue @ q[i]]) / 0.2, 0)[0] for i in range(4)]).mean()
    assert torch.allclose(info_nce(q, k, queue, 0.2), by_hand, atol=1e-6)


def _moco(queue_size: int = 16) -> MoCo:
    torch.manual_seed(0)
    return MoCo(ConvEncoder(dim=16, width=4), projection_head(16, 16, 8), queue_size=queue_size, momentum=0.9, temperature=0.2, bn_splits=2)


def test_moco_key_encoder_is_an_exact_ema_and_gets_no_gradient():
    moco = _moco()
    opt = torch.optim.SGD(moco.query_parameters(), lr=0.5)
    x = _digits(8)
    before_keys = [p.detach().clone() for p in moco.key_parameters()]
    loss = moco.loss(contrastive_view(x, torch.Generator().manual_seed(0)), contrastive_view(x, torch.Generator().manual_seed(1)))
    # The EMA ran inside loss() with the query weights as they were (equal to the keys at the start).
    # (in float64: equal up to float32 rounding, whatever order the update's arithmetic runs in)
    expected = [0.9 * k.double() + 0.1 * q.detach().double() for k, q in zip(before_keys, moco.query_parameters())]
    assert all(torch.allclose(p.double(), e, rtol=0, atol=1e-7) for p, e in zip(moco.key_parameters(), expected))
    loss.backward()
    assert all(p.grad is None for p in moco.key_parameters())            # no gradient reaches the key encoder
    assert all(p.grad is not None for p in moco.query_parameters())
    opt.step()
    # The next step's EMA uses the updated query weights: theta_k <- 0.9 theta_k + 0.1 theta_q.
    keys_now = [p.detach().clone() for p in moco.key_parameters()]
    moco.momentum_update()
    for p, k, q in zip(moco.key_parameters(), keys_now, moco.query_parameters()):
        assert torch.allclose(p.double(), 0.9 * k.double() + 0.1 * q.detach().double(), rtol=0, atol=1e-7)
    assert any(not torch.equal(k, q) for k, q in zip(moco.key_parameters(), moco.query_parameters()))


def test_moco_queue_is_first_in_first_out_and_wraps():
    moco = _moco(queue_size=10)
    first = moco.queue.clone()
    a = torch.nn.functional.normalize(torch.randn(4, 8), dim=1)
    b = torch.nn.functional.normalize(torch.randn(4, 8), dim=1)
    c = torch.nn.functional.normalize(torch.randn(4, 8), dim=1)
    moco.enqueue(a)
    moco.enqueue(b)
    assert torch.equal(moco.queue[:4], a) and torch.equal(moco.queue[4:8], b) and torch.equal(moco.queue[8:], first[8:])
    moco.enqueue(c)                                                      # 2 fit at the end, 2 replace the oldest (a's first two)
    assert torch.equal(moco.queue[8:], c[:2]) and torch.equal(moco.queue[:2], c[2:]) and torch.equal(moco.queue[2:4], a[2:])
    assert int(moco.queue_ptr) == 2


def test_moco_loss_uses_the_queue_before_the_batch_and_enqueues_its_keys():
    moco = _moco(queue_size=16)
    x = _digits(8)
    v1, v2 = contrastive_view(x, torch.Generator().manual_seed(0)), contrastive_view(x, torch.Generator().manual_seed(1))
    queue_before = moco.queue.clone()
    torch.manual_seed(5)
    loss = moco.loss(v1, v2)
    # Recompute by hand: the same query, the same keys (same shuffle; the EMA has already run), the old queue.
    torch.manual_seed(5)
    q = torch.nn.functional.normalize(moco.head(moco.encoder(v1)), dim=1)
    k = moco.keys(v2)
    assert torch.allclose(loss, info_nce(q, k, queue_before, moco.temperature), atol=1e-6)
    assert not torch.allclose(loss, info_nce(q, k, moco.queue, moco.temperature), atol=1e-6)   # the batch is not its own negative
    assert torch.allclose(moco.queue[:8], k, atol=1e-6) and int(moco.queue_ptr) == 8      # enqueued in the batch's order


def test_simclr_loss_trains_and_is_finite():
    torch.manual_seed(0)
    model = SimCLR(ConvEncoder(dim=16, width=4), projection_head(16, 16, 8), 0.5)
    x = _digits(16)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for i in range(15):
        loss = model.loss(contrastive_view(x, torch.Generator().manual_seed(2 * i)), contrastive_view(x, torch.Generator().manual_seed(2 * i + 1)))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.isfinite(losses).all() and losses[-1] < losses[0]


def test_knn_plain_vote_matches_sklearn():
    from sklearn.neighbors import KNeighborsClassifier

    g = torch.Generator().manual_seed(0)
    train, test = torch.randn(300, 12, generator=g), torch.randn(100, 12, generator=g)
    labels = torch.randint(0, 4, (300,), generator=g)
    ours = knn_predict(train, labels, test, num_classes=4, k=15, temperature=None)
    ref = KNeighborsClassifier(n_neighbors=15, metric="cosine", algorithm="brute").fit(train.numpy(), labels.numpy()).predict(test.numpy())
    assert (ours.numpy() == ref).mean() >= 0.99                          # float ties at the k-th neighbour may differ


def test_linear_probe_matches_sklearn_logistic_regression():
    """The same convex objective: mean CE + l2/2 ||W||^2 equals sklearn's C sum CE + 1/2 ||W||^2 with C = 1/(n l2)."""
    from sklearn.linear_model import LogisticRegression

    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 6, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] + 0.3 * torch.randn(200, generator=g) > 0).long() + (x[:, 2] > 1).long()
    probe = LinearProbe(l2=1e-2).fit(x, y)
    xs = ((x.double() - probe.mean) / probe.std).numpy()
    ref = LogisticRegression(C=1 / (200 * 1e-2), tol=1e-10, max_iter=10_000).fit(xs, y.numpy())
    assert np.abs(probe.linear.weight.detach().numpy() - (ref.coef_ - ref.coef_.mean(0))).max() < 1e-4 or \
        np.abs(probe.linear.weight.detach().numpy() - ref.coef_).max() < 1e-4
    assert (probe.predict(x).numpy() == ref.predict(xs)).all()


def test_principal_angles_match_scipy():
    rng = np.random.default_rng(0)
    for p, q in [(5, 5), (3, 6), (6, 3)]:
        a, b = rng.normal(size=(40, p)), rng.normal(size=(40, q))
        assert np.allclose(principal_angles(a, b), scipy.linalg.subspace_angles(a, b), atol=1e-10)
    a = rng.normal(size=(40, 4))
    assert np.abs(principal_angles(a, a @ rng.normal(size=(4, 4)))).max() < 1e-7   # same span, another basis: all angles 0


@pytest.mark.parametrize("build", [linear_autoencoder, mlp_autoencoder, conv_autoencoder], ids=lambda f: f.__name__)
def test_autoencoders_map_images_to_codes_and_back(build):
    model = build(code=5)
    x = _digits(4)
    assert model.encode(x).shape == (4, 5)
    assert model(x).shape == x.shape
    assert reconstruction_errors(model, x).shape == (4,)
