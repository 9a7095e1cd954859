"""One registry of model families: a family name -> the function that builds it from keyword arguments.

Every saved model (`model_config.json`, see deploy/bundle.py) records `family` + `kwargs`, and
`build(family, kwargs)` is the one way it is rebuilt: by `dlr export`, the server, the CNN and
deployment experiments and the GPT run. Builders are imported on first use, so reading a config
does not import every model family.
"""

from __future__ import annotations

from typing import Any, Callable

from torch import nn

from dlroadmap.errors import UserError


def _mlp(**kw: Any) -> nn.Module:
    from dlroadmap.models.mlp import MLP

    return MLP(**kw)


def _lenet5(**kw: Any) -> nn.Module:
    from dlroadmap.models.vision.lenet import LeNet5

    return LeNet5(**kw)


def _alexnet_small(**kw: Any) -> nn.Module:
    from dlroadmap.models.vision.alexnet import AlexNet

    return AlexNet.small(**kw)


def _vgg_small(**kw: Any) -> nn.Module:
    from dlroadmap.models.vision.vgg import VGG

    return VGG.small(**kw)


def _resnet_small(**kw: Any) -> nn.Module:
    from dlroadmap.models.vision.resnet import resnet_small

    return resnet_small(**kw)


def _gpt(**kw: Any) -> nn.Module:
    from dlroadmap.models.sequence.gpt import GPT, GPTConfig

    return GPT(GPTConfig(**kw))


def _vae(**kw: Any) -> nn.Module:
    from dlroadmap.models.generative.vae import VAE

    return VAE(**kw)


FAMILIES: dict[str, Callable[..., nn.Module]] = {
    "mlp": _mlp, "lenet5": _lenet5, "alexnet_small": _alexnet_small, "vgg_small": _vgg_small, "resnet_small": _resnet_small, "gpt": _gpt,
    "vae": _vae,
}
# The families whose forward maps an input to class scores: the ones export and serving accept.
CLASSIFIERS = frozenset({"mlp", "lenet5", "alexnet_small", "vgg_small", "resnet_small"})

# The 28x28 CNNs that the MNIST lessons train and deploy: short name -> (family, constructor arguments
# besides num_classes). Saved bundles record exactly these, so `build` gives the same network back.
SMALL_CNNS: dict[str, tuple[str, dict[str, Any]]] = {
    "lenet5": ("lenet5", {"input_size": 28, "activation": "relu", "pool": "max"}),
    "alexnet": ("alexnet_small", {}),
    "vgg": ("vgg_small", {}),
    "resnet": ("resnet_small", {}),
}


def build(family: str, kwargs: dict[str, Any] | None = None) -> nn.Module:
    """A freshly initialised network of `family` (weights are loaded by the caller)."""
    if family not in FAMILIES:
        raise UserError(f"unknown model family {family!r}; known: {', '.join(sorted(FAMILIES))}")
    return FAMILIES[family](**(kwargs or {}))


def small_cnn(name: str, num_classes: int) -> tuple[nn.Module, str, dict[str, Any]]:
    """(network, family, kwargs) of one of the 28x28 CNNs, ready to train and to save as a bundle."""
    if name not in SMALL_CNNS:
        raise UserError(f"unknown CNN {name!r}; choose from {', '.join(SMALL_CNNS)}")
    family, extra = SMALL_CNNS[name]
    kwargs = {"num_classes": num_classes, **extra}
    return build(family, kwargs), family, kwargs


def count_parameters(make: Callable[[], nn.Module]) -> int:
    """Count without allocating: on the meta device a 138M-parameter VGG costs no memory."""
    import torch

    with torch.device("meta"):
        model = make()
    return sum(p.numel() for p in model.parameters())
