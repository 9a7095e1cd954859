"""PyTorch Hub: hubconf.py's entry points, loaded the way users load them (torch.hub, source="local")."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dlroadmap.deploy.bundle import save_bundle
from dlroadmap.errors import UserError
from dlroadmap.models.families import SMALL_CNNS, build

ROOT = Path(__file__).resolve().parents[1]


def trained_like(family: str, kwargs: dict, seed: int):
    """A network whose weights differ from any fresh initialisation (seeded noise added), as training leaves them."""
    torch.manual_seed(seed)
    net = build(family, kwargs)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return net.eval()


def test_entry_points_and_dependencies_as_torch_hub_reads_them():
    """torch.hub.list/help read GitHub only; they list hubconf's public callables and print their docstrings,
    after checking `dependencies` import: the same reading of the local file."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("hubconf", ROOT / "hubconf.py")
    hub = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hub)
    names = {n for n in dir(hub) if callable(getattr(hub, n)) and not n.startswith("_")}
    assert names == {"mlp", "lenet5", "alexnet_small", "vgg_small", "resnet_small", "gpt_char", "vae"}
    assert all(importlib.util.find_spec(d) for d in hub.dependencies)
    assert "pretrained=True: weights from `bundle`" in hub.lenet5.__doc__


@pytest.mark.parametrize("entry, family, kwargs, x", [
    ("lenet5", "lenet5", {"num_classes": 10, **SMALL_CNNS["lenet5"][1]}, torch.rand(3, 1, 28, 28)),
    ("resnet_small", "resnet_small", {"num_classes": 10}, torch.rand(3, 1, 28, 28)),
    ("mlp", "mlp", {"in_features": 784, "hidden": [32], "out_features": 10}, torch.rand(3, 1, 28, 28)),
    ("gpt_char", "gpt", {"vocab_size": 40, "block_size": 16, "n_layer": 2, "n_head": 2, "n_embd": 32}, torch.randint(0, 40, (3, 16))),
    ("vae", "vae", {"latent": 4, "hidden": 32}, torch.rand(3, 1, 28, 28)),
])
def test_pretrained_loads_the_bundle_weights(tmp_path, entry, family, kwargs, x):
    net = trained_like(family, kwargs, seed=3)
    save_bundle(tmp_path / "run" / "model", net, name=entry, family=family, kwargs=kwargs, input_shape=list(x.shape[1:]),
                classes=[str(i) for i in range(10)], preprocessing={}, source={"test": True})
    loaded = torch.hub.load(str(ROOT), entry, source="local", pretrained=True, bundle=tmp_path / "run")   # the run folder
    # The VAE's forward samples z: compare its deterministic parts, the encoder's mean and the decoder.
    run = (lambda m: torch.cat([m.encode(x)[0], m.decode(torch.ones(3, 4))], 1)) if entry == "vae" else (lambda m: m(x))
    with torch.no_grad():
        expected, got = run(net), run(loaded)
    expected, got = (expected[0], got[0]) if isinstance(expected, tuple) else (expected, got)   # GPT: (logits, loss)
    assert torch.equal(expected, got)
    assert not loaded.training


def test_fresh_models_take_kwargs_and_errors_are_one_line(tmp_path):
    net = torch.hub.load(str(ROOT), "resnet_small", source="local", num_classes=3)
    assert net(torch.rand(2, 1, 28, 28)).shape == (2, 3)
    with pytest.raises(UserError, match="pretrained=True needs bundle=PATH"):
        torch.hub.load(str(ROOT), "lenet5", source="local", pretrained=True)
    save_bundle(tmp_path / "b", trained_like("resnet_small", {"num_classes": 10}, 0), name="r", family="resnet_small",
                kwargs={"num_classes": 10}, input_shape=[1, 28, 28], classes=[str(i) for i in range(10)], preprocessing={}, source={})
    with pytest.raises(UserError, match="holds a 'resnet_small' model, not 'lenet5'"):
        torch.hub.load(str(ROOT), "lenet5", source="local", pretrained=True, bundle=tmp_path / "b")
    with pytest.raises(UserError, match="drop num_classes"):
        torch.hub.load(str(ROOT), "resnet_small", source="local", pretrained=True, bundle=tmp_path / "b", num_classes=3)


def test_generative_bundles_are_refused_by_export_with_one_line(tmp_path):
    from dlroadmap.deploy.bundle import read_bundle

    save_bundle(tmp_path / "v", trained_like("vae", {"latent": 4, "hidden": 32}, 0), name="v", family="vae", kwargs={"latent": 4, "hidden": 32},
                input_shape=[1, 28, 28], classes=[], preprocessing={}, source={})
    with pytest.raises(UserError, match="holds a 'vae' model, not a classifier"):
        read_bundle(tmp_path / "v").serving_model()
