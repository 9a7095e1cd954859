"""Recommended Tools, model hubs: Hugging Face and PyTorch Hub.

  tools.hub.huggingface  a network trained here goes to the Hugging Face Hub layout through huggingface_hub's own
                         PyTorchModelHubMixin (config.json + model.safetensors + a model card) and comes back
                         through its from_pretrained: the same predictions on every test image, the card's YAML
                         read by huggingface_hub's ModelCard; the training set goes to a `datasets.Dataset`
                         (Arrow, on disk) and back identical; an upload without network stops with one line.
  tools.hub.pytorch_hub  the repository's hubconf.py read by torch.hub itself (torch.hub.load, source="local"):
                         every entry point builds its network, and pretrained=True on the run's bundle gives
                         back the trained LeNet-5, prediction for prediction, where a fresh one is at chance.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import matplotlib.pyplot as plt
import numpy as np
import torch
from pydantic import Field

from dlroadmap.data import classification_tensors, load
from dlroadmap.deploy.bundle import find_bundle, save_trained
from dlroadmap.errors import UserError
from dlroadmap.evaluate.metrics import accuracy
from dlroadmap.io import checkout_root
from dlroadmap.experiments.base import Experiment, ExperimentConfig, Result
from dlroadmap.models.families import build, small_cnn
from dlroadmap.train import Tracker, seed_everything
from dlroadmap.train.fit import fit_classifier


class Config(ExperimentConfig):
    dataset: Literal["mnist5k", "digits"] = Field("mnist5k", description="embedded: the model trained and published")
    epochs: int = Field(10, ge=1, le=1000)
    lr: float = Field(1e-3, gt=0, le=1, description="Adam")

    QUICK: ClassVar[dict] = {"epochs": 5}


def _train(config: Config, tracker: Tracker, family: str):
    """A small classifier trained through the shared helper and saved as a bundle: what a user would publish."""
    seed_everything(config.seed)
    data = classification_tensors(config.dataset, seed=config.seed)
    if family == "mlp":
        kwargs = {"in_features": int(np.prod(data.shape)), "hidden": [128], "out_features": len(data.classes)}
        model = build("mlp", kwargs)
    else:
        model, family, kwargs = small_cnn(family, len(data.classes))
    fitted = fit_classifier(model, data, torch.optim.Adam(model.parameters(), lr=config.lr), epochs=config.epochs, config=config,
                            tracker=tracker, prefix=family)
    model.cpu().eval()
    bundle = save_trained(tracker.run_dir / "model", model, data, name=f"{family}-{config.dataset}", family=family, kwargs=kwargs,
                          source={"node": tracker.run_dir.name, "run_dir": str(tracker.run_dir), "test_accuracy": fitted.test_accuracy})
    return model, data, find_bundle(bundle), fitted.history


def _compare(trained: torch.nn.Module, loaded: torch.nn.Module, data) -> dict[str, float]:
    """Both networks on every test image: largest |difference| of the logits, and each one's accuracy."""
    with torch.no_grad():
        a, b = trained(data.X_test), loaded(data.X_test)
    return {"max_abs_logit_diff": float((a - b).abs().max()), "test_accuracy": accuracy(a, data.y_test),
            "loaded_test_accuracy": accuracy(b, data.y_test), "predictions_agree": float((a.argmax(1) == b.argmax(1)).float().mean())}


def _bars(title: str, values: dict[str, float]) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(6.5, 2.8))
    ax.barh(list(values), list(values.values()), color="tab:blue")
    for i, v in enumerate(values.values()):
        ax.text(v, i, f" {v:.4f}", va="center", fontsize=8)
    ax.set_xlim(0, 1.15)
    ax.set_xlabel("test accuracy")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


# --- tools.hub.huggingface ------------------------------------------------------------------------------


def run_huggingface(config: Config, tracker: Tracker) -> Result:
    import json

    import datasets
    from huggingface_hub import ModelCard

    from dlroadmap.data.hf_datasets import from_hf, to_hf
    from dlroadmap.deploy.hf_hub import load_hub_folder, push, save_hub_folder

    model, data, bundle, history = _train(config, tracker, "mlp")
    # 1. The model: our bundle -> the Hub layout -> the mixin's from_pretrained.
    folder = save_hub_folder(bundle, tracker.run_dir / "hub")
    loaded = load_hub_folder(folder)
    metrics = _compare(model, loaded, data)
    card = ModelCard.load(folder / "README.md")                     # huggingface_hub's reader of the card
    meta = card.data.to_dict()
    metrics["card_lists_run_metrics"] = float("test_accuracy" in (meta.get("metrics") or []) and meta.get("library_name") == "dlroadmap")
    metrics["config_rebuilds_family"] = float(json.loads((folder / "config.json").read_text())["family"] == "mlp")

    # 2. The data: the embedded set -> Arrow on disk -> back.
    ds = load(config.dataset)
    shown = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()                 # a one-second write: no bar of its own inside the node's
    try:
        to_hf(ds).save_to_disk(str(tracker.run_dir / "dataset"))
    finally:
        if shown:
            datasets.enable_progress_bars()
    back = from_hf(datasets.load_from_disk(str(tracker.run_dir / "dataset")))
    metrics["dataset_rows"] = float(len(back))
    metrics["dataset_identical"] = float(np.array_equal(back.X, ds.X.astype(np.float32)) and np.array_equal(back.y, ds.y)
                                         and back.classes == ds.classes and back.shape == ds.shape)

    # 3. Publishing: with no network the upload must stop at the boundary with one line (nothing is sent).
    from huggingface_hub import constants

    offline, constants.HF_HUB_OFFLINE = constants.HF_HUB_OFFLINE, True
    try:
        push(folder, "dlroadmap/offline-check")
        message = ""
    except UserError as e:
        message = str(e)
    finally:
        constants.HF_HUB_OFFLINE = offline
    metrics["offline_push_one_line"] = float(bool(message) and "\n" not in message and "the folder is ready" in message)

    plot = tracker.log_figure(_bars(f"MLP on {config.dataset}: trained here vs read back from the Hub layout",
                                    {"trained": metrics["test_accuracy"], "HubModel.from_pretrained": metrics["loaded_test_accuracy"]}), "hub_round_trip")
    return Result(metrics=metrics, artifacts={"hub_round_trip": str(plot), "hub_folder": str(folder), "dataset": str(tracker.run_dir / "dataset")},
                  history=history, notes=f"upload it: dlr hub push {tracker.run_dir} --repo USER/NAME; offline: {message[:120]}")


# --- tools.hub.pytorch_hub ------------------------------------------------------------------------------


def run_pytorch_hub(config: Config, tracker: Tracker) -> Result:
    import importlib.util

    root = checkout_root("hubconf.py")
    model, data, bundle, history = _train(config, tracker, "lenet5")
    loaded = torch.hub.load(str(root), "lenet5", source="local", pretrained=True, bundle=tracker.run_dir)
    metrics = _compare(model, loaded, data)
    torch.manual_seed(config.seed)
    fresh = torch.hub.load(str(root), "lenet5", source="local", num_classes=len(data.classes))
    with torch.no_grad():
        metrics["fresh_test_accuracy"] = accuracy(fresh.eval()(data.X_test), data.y_test)

    # Every entry point torch.hub would list builds a network that runs on its input (images, or tokens for the GPT).
    spec = importlib.util.spec_from_file_location("hubconf", root / "hubconf.py")
    hub = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hub)
    entries = [n for n in dir(hub) if callable(getattr(hub, n)) and not n.startswith("_")]
    ok = 0
    for name in entries:
        net = torch.hub.load(str(root), name, source="local").eval()
        x = torch.randint(0, 65, (2, 64)) if name == "gpt_char" else torch.rand(2, 1, 28, 28)
        with torch.no_grad():
            out = net(x)
        out = out[0] if isinstance(out, tuple) else out
        ok += bool(torch.isfinite(out).all()) and out.shape[0] == 2
    metrics["entry_points"] = float(len(entries))
    metrics["entry_points_that_run"] = float(ok)
    metrics["entry_points_failing"] = float(len(entries) - ok)

    plot = tracker.log_figure(_bars(f"LeNet-5 on {config.dataset} via torch.hub.load(..., 'lenet5')",
                                    {"trained": metrics["test_accuracy"], "torch.hub, pretrained=True": metrics["loaded_test_accuracy"],
                                     "torch.hub, fresh": metrics["fresh_test_accuracy"]}), "torch_hub")
    return Result(metrics=metrics, artifacts={"torch_hub": str(plot), "model": str(bundle.path)}, history=history,
                  notes=f"entry points: {', '.join(entries)}; torch.hub.load('{root}', 'lenet5', source='local', pretrained=True, bundle='{tracker.run_dir}')")


huggingface = Experiment(Config, run_huggingface)
pytorch_hub = Experiment(Config, run_pytorch_hub)
