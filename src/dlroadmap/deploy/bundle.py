"""A trained model as files that need no Python pickle to load: the bundle every deployment step reads.

    <bundle>/
        model.safetensors   weights (raw tensors, no code)
        model_config.json   how to rebuild the network: family + constructor arguments, the input
                            shape, class names, the preprocessing the training data had, the source

`dlr run` writes a bundle at the end of the experiments that train a deployable model
(p2.fnn.backprop: `<run>/model/`, p2.cnn.architectures: `<run>/models/<name>/`). Export and
serving rebuild the network from the config, load the weights, and wrap it as `ServingModel`:
raw input in (e.g. pixel values 0-255), class probabilities out, so a client never has to know the
training set's mean and std.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dlroadmap.errors import UserError
from dlroadmap.io import atomic_path, write_json
from dlroadmap.models.families import CLASSIFIERS, build
from dlroadmap.train.checkpoint import PICKLE_SUFFIXES, load_weights, save_weights

WEIGHTS, CONFIG = "model.safetensors", "model_config.json"


@dataclass
class Bundle:
    path: Path
    config: dict[str, Any]
    weights_file: Path | None = None  # a checkpoint's weights instead of the bundle's own

    @property
    def weights(self) -> Path:
        return self.weights_file or self.path / WEIGHTS

    @property
    def name(self) -> str:
        return self.config["name"]

    @property
    def input_shape(self) -> list[int]:
        return list(self.config["input_shape"])

    @property
    def classes(self) -> list[str]:
        return list(self.config["classes"])

    def build(self) -> nn.Module:
        """The trained network (eval mode) with its weights loaded from safetensors."""
        try:
            model = build(self.config["family"], self.config.get("kwargs", {}))
        except UserError as e:
            raise UserError(f"{self.path / CONFIG}: {e}") from None
        model.load_state_dict(load_weights(self.weights))
        return model.eval()

    def require_classifier(self) -> None:
        """Export, serving and explanations read class scores: a generative model or a language model gets one clear line."""
        family = self.config["family"]
        if family not in CLASSIFIERS:
            raise UserError(f"{self.path} holds a {family!r} model, not a classifier; export, serving and explain take "
                            f"{', '.join(sorted(CLASSIFIERS))} models (load this one with torch.hub or build() instead)")

    def serving_model(self) -> "ServingModel":
        self.require_classifier()
        pre = self.config.get("preprocessing", {})
        return ServingModel(self.build(), pre.get("mean", 0.0), pre.get("std", 1.0)).eval()


class ServingModel(nn.Module):
    """Raw input -> (x - mean) / std -> network -> softmax: what export writes and the server runs."""

    def __init__(self, net: nn.Module, mean: float | list[float], std: float | list[float]):
        super().__init__()
        self.net = net
        # Buffers, so the statistics travel inside the exported graph and the safetensors file.
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net((x - self.mean) / self.std), dim=-1)


def normalisation(mean: float | list[float], std: float | list[float]) -> dict[str, Any]:
    """The preprocessing record of an image model: what ServingModel applies before the network."""
    return {"formula": "(x - mean) / std", "mean": mean, "std": std}


def save_bundle(path: str | Path, model: nn.Module, *, name: str, family: str, kwargs: dict[str, Any], input_shape: list[int],
                classes: list[str], preprocessing: dict[str, Any], source: dict[str, Any], dataset: str | None = None) -> Path:
    """Write weights then config, each atomically; the config is written last, so a folder with a
    config always has complete weights beside it. One schema for every saved model:
    name, family + kwargs (models/families.py rebuilds it), input_shape, classes (class names, or a
    language model's vocabulary), dataset, preprocessing (image normalisation, or the tokenizer), source."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    with atomic_path(path / WEIGHTS, suffix=".safetensors") as tmp:
        save_weights(model.state_dict(), tmp, metadata={"family": family})
    write_json(path / CONFIG, {
        "name": name, "family": family, "kwargs": kwargs, "input_shape": [int(s) for s in input_shape], "classes": classes, "dataset": dataset,
        "preprocessing": preprocessing, "source": source,
    })
    return path


def save_trained(path: str | Path, model: nn.Module, data: Any, *, name: str, family: str, kwargs: dict[str, Any],
                 source: dict[str, Any]) -> Path:
    """`save_bundle` for a model trained on `data` (a `dlroadmap.data.Tensors`): its input shape, class
    names, dataset name and normalisation statistics come from there."""
    return save_bundle(path, model, name=name, family=family, kwargs=kwargs, input_shape=list(data.X_train.shape[1:]),
                       classes=data.classes, dataset=data.name, source=source,
                       preprocessing=normalisation(data.mean, data.std))


def read_bundle(path: str | Path) -> Bundle:
    import json

    path = Path(path)
    try:
        config = json.loads((path / CONFIG).read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read {path / CONFIG} ({e}); a model bundle needs {WEIGHTS} and {CONFIG}") from None
    missing = [k for k in ("name", "family", "input_shape", "classes") if k not in config]
    if missing:
        raise UserError(f"{path / CONFIG} lacks {', '.join(missing)}; re-create it with `dlr run`")
    if not (path / WEIGHTS).is_file():
        raise UserError(f"{path} has {CONFIG} but no {WEIGHTS}")
    return Bundle(path, config)


def find_bundle(source: str | Path) -> Bundle:
    """Resolve what a user passes to `dlr export`: a bundle or run folder, or a checkpoint (its folder
    or its .safetensors file), whose weights then replace the final ones of the run it belongs to."""
    source = Path(source)
    if source.suffix in PICKLE_SUFFIXES:
        raise UserError(f"refusing {source}: pickle-based model files can run arbitrary code; pass a run folder or a .safetensors bundle")
    if not source.exists():
        raise UserError(f"{source} does not exist; pass a run folder from `dlr run` (e.g. runs/p2.fnn.backprop) or a model bundle")
    checkpoint = source if source.is_file() and source.suffix == ".safetensors" else source / WEIGHTS if (source / "meta.json").is_file() else None
    if checkpoint is not None and not (checkpoint.parent / CONFIG).is_file():
        run_dir = next((p.parent for p in checkpoint.parents if p.name == "checkpoints"), None)
        if run_dir is None:
            raise UserError(f"{checkpoint} has no {CONFIG} beside it and is not inside a run's checkpoints/ folder")
        try:
            run_bundle = find_bundle(run_dir)
        except UserError:
            raise UserError(f"the run {run_dir} has no {CONFIG} yet (it is written when training ends); "
                            f"finish it with `dlr run ... --resume`, then export the checkpoint") from None
        return Bundle(run_bundle.path, run_bundle.config, checkpoint)
    if source.is_file() and source.suffix == ".safetensors":
        source = source.parent
    if (source / CONFIG).is_file():
        return read_bundle(source)
    if (source / "model" / CONFIG).is_file():
        return read_bundle(source / "model")
    candidates = sorted(p.parent for p in source.glob(f"models/*/{CONFIG}"))
    if len(candidates) == 1:
        return read_bundle(candidates[0])
    if candidates:
        raise UserError(f"{source} holds {len(candidates)} models; pass one of: {', '.join(str(c) for c in candidates)}")
    raise UserError(f"no trained model in {source}: expected {CONFIG} + {WEIGHTS} (written by `dlr run p2.fnn.backprop` or p2.cnn.architectures)")
