"""Phase 4, Deployment.

  p4.deploy.export   a LeNet-5 trained through the Trainer on MNIST, exported to ONNX (dynamic
                     batch), TorchScript and, when `make tflite` has built its environment,
                     TensorFlow Lite; each file run by its own runtime and compared with eager
                     PyTorch; the ONNX model's test accuracy must equal the eager model's
  p4.deploy.serving  the exported model served by `dlr serve` in a subprocess on 127.0.0.1 with
                     FastAPI and with Flask: TF Serving and KServe v2 predictions equal eager
                     outputs, the whole test split classified over HTTP, a bounded load run with
                     zero errors, and ONNX Runtime vs torch eager with micro-batching off and on
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar, Literal

import httpx
import matplotlib.pyplot as plt
import numpy as np
import torch
from pydantic import Field

from dlroadmap.data import classification_tensors
from dlroadmap.data.prepare import classification_splits
from dlroadmap.deploy.bundle import read_bundle, save_trained
from dlroadmap.deploy.export import export as export_model, run_onnx, tflite_python
from dlroadmap.deploy.loadtest import load_run, serving as served, serving_benchmark
from dlroadmap.experiments.base import Experiment, ExperimentConfig, Result
from dlroadmap.models.families import small_cnn
from dlroadmap.train import Tracker, seed_everything
from dlroadmap.train.fit import fit_classifier, one_cycle


class Config(ExperimentConfig):
    dataset: Literal["mnist5k", "mnist", "fashion-mnist"] = Field("mnist5k", description="what the CNN is trained on")
    model: Literal["lenet5", "resnet", "vgg"] = "lenet5"
    epochs: int = Field(6, ge=1, le=100)
    batch_size: int = Field(64, ge=1, le=4096)
    lr: float = Field(3e-3, gt=0, le=1)
    weight_decay: float = Field(5e-4, ge=0, le=1)
    formats: list[Literal["onnx", "torchscript", "tflite"]] = Field(["onnx", "torchscript", "tflite"], min_length=1,
                                                                    description="tflite is skipped (and reported) without .venv-tflite")
    requests: int = Field(2000, ge=10, le=1_000_000, description="requests in the serving load run")
    concurrency: int = Field(16, ge=1, le=256)

    QUICK: ClassVar[dict] = {"epochs": 3, "requests": 400, "concurrency": 8}


def train_and_bundle(config: Config, tracker: Tracker) -> tuple[Path, float]:
    """Train the CNN through the shared Trainer and save it as a bundle; returns (bundle, test accuracy)."""
    seed_everything(config.seed)
    data = classification_tensors(config.dataset, seed=config.seed)
    model, family, kwargs = small_cnn(config.model, data.num_classes)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    acc = fit_classifier(model, data, opt, schedule=one_cycle(config.lr), epochs=config.epochs, config=config, tracker=tracker,
                         prefix=config.model, batch_size=config.batch_size).test_accuracy
    bundle = save_trained(tracker.run_dir / "model", model, data, name=f"{config.model}-{config.dataset}", family=family,
                          kwargs=kwargs,
                          source={"node": "p4.deploy", "run_dir": str(tracker.run_dir), "test_accuracy": acc})
    return bundle, acc


def raw_test_split(config: Config) -> tuple[np.ndarray, np.ndarray]:
    _, _, test = classification_splits(config.dataset, seed=config.seed)
    return np.asarray(test.X, np.float32).reshape(len(test.X), 28, 28), np.asarray(test.y)


def run_export(config: Config, tracker: Tracker) -> Result:
    bundle_dir, eager_acc = train_and_bundle(config, tracker)
    bundle = read_bundle(bundle_dir)
    formats = list(dict.fromkeys(config.formats))
    notes = ""
    if "tflite" in formats and tflite_python() is None:
        formats.remove("tflite")
        notes = "TFLite skipped: litert-torch lives in its own environment; run `make tflite` to add it."
    out = tracker.run_dir / "export" / bundle.name
    card = export_model(bundle, out, formats)
    metrics = {"eager_test_accuracy": eager_acc, "tflite_exported": float("tflite" in card["files"])}
    for fmt, f in card["files"].items():
        metrics[f"{fmt}_max_abs_diff"] = max(f["max_abs_diff_vs_eager"].values())
        metrics[f"{fmt}_max_abs_logprob_diff"] = max(f["max_abs_logprob_diff_vs_eager"].values())
        metrics[f"{fmt}_megabytes"] = f["bytes"] / 1e6
    x, y = raw_test_split(config)
    onnx_pred = run_onnx(out / "model.onnx", x).argmax(1)
    metrics["onnx_test_accuracy"] = float((onnx_pred == y).mean())
    metrics["onnx_accuracy_equals_eager"] = float(abs(metrics["onnx_test_accuracy"] - eager_acc) < 1e-9)
    timings = runtime_latency(bundle, out, x)
    metrics.update({f"{k}_ms": v for k, v in timings.items()})
    tracker.log_artifact(out / "model_card.json")
    plot = tracker.log_figure(export_plot(card, timings, bundle.name), "export")
    return Result(metrics=metrics, artifacts={"export": str(plot), "model_dir": str(out), "model_card": str(out / "model_card.json")},
                  notes=notes)


def runtime_latency(bundle, out: Path, x: np.ndarray, repeats: int = 100) -> dict[str, float]:
    """Median ms per call, in process, for eager PyTorch, TorchScript and ONNX Runtime at batch 1 and 64."""
    import time
    import warnings

    from dlroadmap.deploy.export import onnx_session

    eager = bundle.serving_model()
    sess = onnx_session(out / "model.onnx")
    runners = {"eager": lambda a: eager(torch.from_numpy(a)), "onnxruntime": lambda a: sess.run(None, {"input": a})}
    if (out / "model.torchscript.pt").is_file():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scripted = torch.jit.load(str(out / "model.torchscript.pt")).eval()
        runners["torchscript"] = lambda a: scripted(torch.from_numpy(a))
    timings = {}
    with torch.inference_mode():
        for name, fn in runners.items():
            for batch in (1, 64):
                a = np.ascontiguousarray(x[:batch])
                for _ in range(10):
                    fn(a)
                times = []
                for _ in range(repeats if batch == 1 else repeats // 4):
                    t0 = time.perf_counter()
                    fn(a)
                    times.append(time.perf_counter() - t0)
                timings[f"{name}_batch{batch}"] = float(np.median(times) * 1000)
    return timings


def export_plot(card: dict, timings: dict[str, float], name: str):
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.4))
    fmts = list(card["files"])
    diffs = [max(card["files"][f]["max_abs_diff_vs_eager"].values()) for f in fmts]
    axes[0].barh(fmts, [max(d, 1e-10) for d in diffs], color="#4c72b0", label="max |file - eager|")
    axes[0].scatter([card["files"][f]["tolerance"] for f in fmts], fmts, color="#c44e52", marker="|", s=300, label="tolerance", zorder=3)
    axes[0].set_xscale("log")
    axes[0].set_xlabel("largest difference in output probabilities (random + real inputs; 1e-10 = exact)")
    axes[0].legend(fontsize=7)
    axes[0].set_title(f"{name}: parity of each exported file", fontsize=9)
    keys = list(timings)
    axes[1].barh(keys, [timings[k] for k in keys], color="#55a868")
    axes[1].set_xscale("log")
    axes[1].set_xlabel("ms per call (median, in process)")
    axes[1].set_title("inference latency by runtime", fontsize=9)
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def run_serving(config: Config, tracker: Tracker) -> Result:
    bundle_dir, eager_acc = train_and_bundle(config, tracker)
    bundle = read_bundle(bundle_dir)
    model_dir = tracker.run_dir / "models" / bundle.name
    export_model(bundle, model_dir, ["onnx"])
    name = bundle.name
    x, y = raw_test_split(config)
    with torch.inference_mode():
        eager = bundle.serving_model()(torch.from_numpy(x[:32])).numpy()
    metrics: dict[str, float] = {"eager_test_accuracy": eager_acc}
    one = json.dumps({"instances": x[:1].tolist()}).encode()
    for framework in ("fastapi", "flask"):
        with served(model_dir, "--framework", framework) as url:
            v1 = httpx.post(f"{url}/v1/models/{name}:predict", json={"instances": x[:32].tolist()}, timeout=30).json()["predictions"]
            v2 = httpx.post(f"{url}/v2/models/{name}/infer", timeout=30, json={"inputs": [
                {"name": "input", "shape": [32, 28, 28], "datatype": "FP32", "data": x[:32].reshape(-1).tolist()}]}).json()["outputs"][0]
            diff = max(np.abs(np.asarray(v1) - eager).max(), np.abs(np.asarray(v2["data"]).reshape(v2["shape"]) - eager).max())
            metrics[f"{framework}_max_abs_diff_vs_eager"] = float(diff)
            bad = httpx.post(f"{url}/v1/models/{name}:predict", content=b"{not json", timeout=30)
            metrics[f"{framework}_malformed_json_status"] = float(bad.status_code)
            if framework == "fastapi":  # the whole test split, 64 images a request
                preds = [np.asarray(httpx.post(f"{url}/v1/models/{name}:predict", json={"instances": x[i:i + 64].tolist()}, timeout=30)
                                    .json()["predictions"]).argmax(1) for i in range(0, len(x), 64)]
                metrics["served_test_accuracy"] = float((np.concatenate(preds) == y).mean())
            load = load_run(f"{url}/v1/models/{name}:predict", one, n=config.requests, concurrency=config.concurrency)
            metrics[f"{framework}_load_errors"] = float(load["errors"])
            metrics[f"{framework}_requests_per_s"] = load["requests_per_s"]
    metrics["load_errors"] = metrics["fastapi_load_errors"] + metrics["flask_load_errors"]
    metrics["max_abs_diff_vs_eager"] = max(metrics["fastapi_max_abs_diff_vs_eager"], metrics["flask_max_abs_diff_vs_eager"])

    bench = serving_benchmark(model_dir, name, one, n=config.requests, n_latency=max(50, config.requests // 4), concurrency=config.concurrency)
    metrics["onnxruntime_vs_torch_batch1"] = bench["onnxruntime_vs_torch_batch1"]
    metrics["batching_gain_torch"] = bench["batching_gain_torch"]
    metrics["batching_gain_onnxruntime"] = bench["batching_gain_onnxruntime"]
    metrics["benchmark_errors"] = float(bench["errors"])
    plot = tracker.log_figure(serving_plot(bench["summary"], name), "serving")
    tracker.log_metrics({k: v for k, v in metrics.items()})
    return Result(metrics=metrics, artifacts={"serving": str(plot), "model_dir": str(model_dir)},
                  notes="Figures share 2 cores between the load client and the server; benchmarks/serving.py measures a larger CNN.")


def serving_plot(summary: dict[str, dict[str, float]], name: str):
    keys = list(summary)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    axes[0].barh(keys, [summary[k]["requests_per_s"] for k in keys], color="#4c72b0")
    axes[0].set_xlabel("requests/s (one image per request)")
    axes[0].set_title(f"{name}: throughput, concurrent clients", fontsize=9)
    for i, k in enumerate(keys):
        axes[1].plot([summary[k]["single_client_p50_ms"], summary[k]["p50_ms"], summary[k]["p99_ms"]], [i] * 3, "o-", ms=4)
    axes[1].set_yticks(range(len(keys)), keys)
    axes[1].set_xscale("log")
    axes[1].set_xlabel("latency, ms (one client p50 | loaded p50 | loaded p99)")
    axes[1].set_title("latency", fontsize=9)
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


export = Experiment(Config, run_export)
serving = Experiment(Config, run_serving)
