"""PyTorch Hub entry points: `torch.hub.load("<owner>/dlroadmap", "lenet5", pretrained=True, bundle="runs/p2.cnn.architectures")`.

torch.hub imports this file from the repository (a GitHub checkout it downloads, or a local folder with
`source="local"`) and calls the function named by the second argument. Each entry point builds one of our
model families (dlroadmap.models.families, the registry every saved model is rebuilt from). Weights are
never downloaded: `pretrained=True` reads a bundle you trained with `dlr run` (`model.safetensors` +
`model_config.json`, or the run folder that holds one), so no pickle is ever loaded.

    import torch
    torch.hub.list("<owner>/dlroadmap")                        # the entry points (list and help read GitHub only)
    print(torch.hub.help("<owner>/dlroadmap", "resnet_small"))  # an entry point's docstring
    net = torch.hub.load(".", "resnet_small", source="local", pretrained=True, bundle="runs/p2.cnn.architectures/models/resnet")
"""

from __future__ import annotations

import sys as _sys
from pathlib import Path as _Path
from typing import Any as _Any

# torch.hub.list shows every public callable here: the imports above are private names for that reason.
# What torch.hub checks is importable before it calls an entry point.
dependencies = ["torch", "safetensors", "numpy"]

_SRC = _Path(__file__).resolve().parent / "src"
if _SRC.is_dir() and str(_SRC) not in _sys.path:
    _sys.path.insert(0, str(_SRC))   # a plain checkout (as torch.hub downloads it) has the package under src/, not installed


def _load(family: str, pretrained: bool, bundle: str | _Path | None, defaults: dict[str, _Any], kwargs: dict[str, _Any]):
    """A fresh `family` network (defaults updated by kwargs), or with pretrained=True the bundle's trained one."""
    from dlroadmap.deploy.bundle import find_bundle
    from dlroadmap.errors import UserError
    from dlroadmap.models.families import build

    if not pretrained:
        if bundle is not None:
            raise UserError("bundle= is only read with pretrained=True")
        return build(family, {**defaults, **kwargs})
    if bundle is None:
        raise UserError("pretrained=True needs bundle=PATH: a run folder from `dlr run` or a model bundle (no weights are downloaded)")
    if kwargs:
        raise UserError(f"a pretrained model is rebuilt from its bundle's model_config.json; drop {', '.join(sorted(kwargs))}")
    found = find_bundle(bundle)
    if found.config["family"] != family:
        raise UserError(f"{found.path} holds a {found.config['family']!r} model, not {family!r}; "
                        f"load it with torch.hub.load(..., {found.config['family']!r}, ...)")
    return found.build()


def mlp(pretrained: bool = False, bundle: str | _Path | None = None, **kwargs: _Any):
    """Multilayer perceptron for 28x28 digits (784 -> hidden -> 10), as p2.fnn.backprop trains it.

    pretrained=True: weights from `bundle` (e.g. runs/p2.fnn.backprop). Otherwise kwargs override
    in_features=784, hidden=[128], out_features=10, dropout=0.0.
    """
    return _load("mlp", pretrained, bundle, {"in_features": 784, "hidden": [128], "out_features": 10}, kwargs)


def lenet5(pretrained: bool = False, bundle: str | _Path | None = None, **kwargs: _Any):
    """LeNet-5 (LeCun et al. 1998) for 28x28 digits, ReLU and max pooling, as p2.cnn.architectures trains it.

    pretrained=True: weights from `bundle` (e.g. runs/p2.cnn.architectures/models/lenet5). Otherwise kwargs
    override num_classes=10, input_size=28, activation="relu", pool="max".
    """
    return _load("lenet5", pretrained, bundle, {"num_classes": 10, "input_size": 28, "activation": "relu", "pool": "max"}, kwargs)


def alexnet_small(pretrained: bool = False, bundle: str | _Path | None = None, **kwargs: _Any):
    """AlexNet's pattern (Krizhevsky et al. 2012) narrowed for 28x28 digits. kwargs: num_classes=10, in_channels=1."""
    return _load("alexnet_small", pretrained, bundle, {"num_classes": 10}, kwargs)


def vgg_small(pretrained: bool = False, bundle: str | _Path | None = None, **kwargs: _Any):
    """VGG-11's pattern (Simonyan & Zisserman 2014) at 1/8 width with batch norm. kwargs: num_classes=10, in_channels=1."""
    return _load("vgg_small", pretrained, bundle, {"num_classes": 10}, kwargs)


def resnet_small(pretrained: bool = False, bundle: str | _Path | None = None, **kwargs: _Any):
    """A small ResNet (He et al. 2015): 3x3 stem and three stages of basic blocks (28 -> 14 -> 7).

    kwargs: num_classes=10, in_channels=1, widths=(16, 32, 64), blocks=(1, 1, 1).
    """
    return _load("resnet_small", pretrained, bundle, {"num_classes": 10}, kwargs)


def gpt_char(pretrained: bool = False, bundle: str | _Path | None = None, **kwargs: _Any):
    """Character-level GPT (nanoGPT's shape: 4 layers, 4 heads, 128-dim, context 64), as p3.nlp.transformers trains it.

    pretrained=True: weights from `bundle` (e.g. runs/p3.nlp.transformers); its vocabulary is the bundle's
    "classes" list (model_config.json). Otherwise kwargs override vocab_size=65, block_size=64, n_layer=4,
    n_head=4, n_embd=128, dropout=0.0, bias=True.
    """
    return _load("gpt", pretrained, bundle, {}, kwargs)


def vae(pretrained: bool = False, bundle: str | _Path | None = None, **kwargs: _Any):
    """Variational autoencoder (Kingma & Welling 2013) in pytorch/examples' shape, 784-400-20, as p3.gen.vae trains it.

    pretrained=True: weights from `bundle` (e.g. runs/p3.gen.vae). Pixels in [0, 1]; `model.sample(n)` draws
    digits, `model.encode(x)` gives (mu, log sigma^2). Otherwise kwargs override latent=20, hidden=400,
    pixels=784, num_classes=0 (> 0: a conditional VAE).
    """
    return _load("vae", pretrained, bundle, {"latent": 20, "hidden": 400}, kwargs)
