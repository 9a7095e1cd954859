"""Export a trained model to ONNX, TorchScript and TensorFlow Lite, each checked against eager PyTorch.

What gets exported is `ServingModel` (bundle.py): raw input -> normalise -> network -> softmax, so
the file is the whole model a client needs. Every format is written atomically, then loaded back
by its own runtime and compared with eager PyTorch on random inputs and on real inputs (the test
split of the training data when the bundle names one): the largest absolute difference in the
output probabilities must stay within a stated tolerance, or the export fails.

  ONNX         torch.onnx.export with a dynamic batch axis, validated by onnx.checker and run by
               ONNX Runtime (https://onnx.ai, https://onnxruntime.ai).
  TorchScript  torch.jit.script where the model's Python is scriptable, torch.jit.trace otherwise.
  TFLite       Google's PyTorch -> LiteRT converter (litert-torch), which only resolves in a
               virtual environment of its own (`make tflite`): we run it there as a subprocess and
               check the .tflite file with the LiteRT interpreter in the same environment.

Beside the files goes `model_card.json`: input schema, output classes, preprocessing, source run,
sha256 and parity figures of every exported file. `dlr serve` reads that folder.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dlroadmap.deploy.bundle import CONFIG, WEIGHTS, Bundle
from dlroadmap.deploy.runtime import CARD, FILES, onnx_session, read_card, run_onnx  # noqa: F401  (also imported from here)
from dlroadmap.errors import UserError
from dlroadmap.io import atomic_path, file_hash, write_json

FORMATS = ("onnx", "torchscript", "tflite")
# float32 kernels differ between runtimes (operation order, fused ops): 1e-5 on probabilities in [0, 1].
TOLERANCE = {"onnx": 1e-5, "torchscript": 1e-6, "tflite": 1e-4}
# Probabilities hide what happens to unlikely classes (1e-9 vs 2e-9 is a difference of 1e-9), so log-probabilities,
# which are the logits shifted by one constant per row, are compared as well, wherever both are above float32's floor.
LOGPROB_TOLERANCE = {"onnx": 1e-4, "torchscript": 1e-5, "tflite": 1e-3}
TINY = 1e-30


def logprob_diff(got: np.ndarray, expected: np.ndarray) -> float:
    """Largest |log p_exported - log p_eager| over entries where both probabilities are above TINY."""
    ok = (got > TINY) & (expected > TINY)
    if not ok.any():
        return 0.0
    return float(np.abs(np.log(got[ok].astype(np.float64)) - np.log(expected[ok].astype(np.float64))).max())
INPUT_NAME, OUTPUT_NAME = "input", "probabilities"
TFLITE_PYTHON_ENV = "DLR_TFLITE_PYTHON"


def sample_inputs(bundle: Bundle, n: int = 64, seed: int = 0) -> dict[str, np.ndarray]:
    """Random inputs on the raw data's scale, and real ones (the dataset's test split) when available."""
    g = np.random.default_rng(seed)
    pre = bundle.config.get("preprocessing", {})
    mean, std = np.asarray(pre.get("mean", 0.0)), np.asarray(pre.get("std", 1.0))
    shape = [n, *bundle.input_shape]
    out = {"random": (mean + std * g.standard_normal(shape)).astype(np.float32)}
    real = real_inputs(bundle, n)
    if real is not None:
        out["real"] = real
    return out


def real_inputs(bundle: Bundle, n: int) -> np.ndarray | None:
    """Raw (unnormalised) test images of the dataset the model was trained on, if it is embedded."""
    dataset = bundle.config.get("dataset")
    if not dataset:
        return None
    from dlroadmap.data.prepare import classification_splits

    try:
        _, _, test = classification_splits(dataset, seed=0)
    except Exception:  # noqa: BLE001 - a downloadable set that is absent: random inputs still check parity
        return None
    return np.asarray(test.X[:n], dtype=np.float32).reshape(-1, *bundle.input_shape)


def eager(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return model(torch.from_numpy(x)).numpy()


# --- ONNX ----------------------------------------------------------------------------------------


def export_onnx(model: torch.nn.Module, example: torch.Tensor, path: Path) -> None:
    """The dynamo-based exporter (torch.export -> ONNX, opset 20); batch is a symbolic dimension."""
    import onnx

    # The exporter logs one warning per torchvision operator it cannot register; we use none of them.
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    batch = torch.export.Dim("batch", min=1, max=65536)
    with atomic_path(path, suffix=".onnx") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), str(tmp), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_shapes={"x": {0: batch}}, opset_version=20, dynamo=True, external_data=False,
                          verbose=False, report=False)
        proto = onnx.load(str(tmp))
        proto.producer_name = "dlroadmap"
        onnx.save(proto, str(tmp))
        onnx.checker.check_model(str(tmp), full_check=True)  # the file as shipped


# --- TorchScript ---------------------------------------------------------------------------------


def export_torchscript(model: torch.nn.Module, example: torch.Tensor, path: Path) -> str:
    """Script first (keeps control flow); fall back to tracing (records one path through forward)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated in favour of torch.export; it still works
        try:
            scripted, how = torch.jit.script(model), "script"
        except Exception:  # noqa: BLE001 - any unscriptable Python construct
            scripted, how = torch.jit.trace(model, example, check_trace=True), "trace"
        with atomic_path(path, suffix=".pt") as tmp:
            torch.jit.save(scripted, str(tmp))
    return how


def run_torchscript(path: Path, x: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = torch.jit.load(str(path), map_location="cpu").eval()
    with torch.inference_mode():
        return m(torch.from_numpy(x)).numpy()


# --- TFLite (in its own virtual environment) -----------------------------------------------------


def tflite_python() -> Path | None:
    """The interpreter of the environment that has litert-torch: $DLR_TFLITE_PYTHON or ./.venv-tflite."""
    env = os.environ.get(TFLITE_PYTHON_ENV)
    candidates = [Path(env)] if env else [Path.cwd() / ".venv-tflite" / "bin" / "python",
                                           Path(__file__).resolve().parents[3] / ".venv-tflite" / "bin" / "python"]
    return next((c for c in candidates if c.is_file()), None)


def export_tflite(bundle: Bundle, path: Path, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Convert in the litert-torch environment; it also runs the LiteRT interpreter on `inputs`."""
    py = tflite_python()
    if py is None:
        raise UserError("TFLite export needs litert-torch, which installs only in its own environment: run `make tflite` "
                        f"(creates .venv-tflite) or set {TFLITE_PYTHON_ENV} to a python that has litert-torch")
    work = path.parent / f".tflite-work-{os.getpid()}"
    work.mkdir(parents=True, exist_ok=True)
    try:
        np.savez(work / "inputs.npz", **inputs)
        src = Path(__file__).resolve().parents[2]  # .../src, so the script imports this package's models
        cmd = [str(py), "-m", "dlroadmap.deploy.tflite_convert", str(bundle.path), str(bundle.weights), str(work / FILES["tflite"]), str(work / "inputs.npz")]
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(src)}, timeout=900)
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["(no output)"]
            raise UserError(f"TFLite conversion failed in {py}: {tail[0]}")
        outputs = dict(np.load(work / "outputs.npz"))
        os.replace(work / FILES["tflite"], path)
        return outputs
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --- the whole export ----------------------------------------------------------------------------


def export(bundle: Bundle, out_dir: str | Path, formats: list[str] | tuple[str, ...] = ("onnx",), *, name: str | None = None) -> dict[str, Any]:
    """Export `bundle` into `out_dir` in each of `formats`; check parity; write/refresh the model card."""
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise UserError(f"unknown export format {unknown[0]!r}; choose from {', '.join(FORMATS)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = bundle.serving_model()
    inputs = sample_inputs(bundle)
    expected = {k: eager(model, v) for k, v in inputs.items()}
    example = torch.from_numpy(inputs["random"][:2])

    card = read_card(out_dir) if (out_dir / CARD).is_file() else {}
    files = card.get("files", {})
    for fmt in formats:
        path = out_dir / FILES[fmt]
        t0 = time.perf_counter()
        extra: dict[str, Any] = {}
        if fmt == "onnx":
            export_onnx(model, example, path)
            got = {k: run_onnx(path, v) for k, v in inputs.items()}
            extra["opset"] = 20
        elif fmt == "torchscript":
            extra["method"] = export_torchscript(model, example, path)
            got = {k: run_torchscript(path, v) for k, v in inputs.items()}
        else:
            got = export_tflite(bundle, path, inputs)
        parity = {k: float(np.abs(got[k] - expected[k]).max()) for k in inputs}
        log_parity = {k: logprob_diff(got[k], expected[k]) for k in inputs}
        if max(parity.values()) > TOLERANCE[fmt] or max(log_parity.values()) > LOGPROB_TOLERANCE[fmt]:
            path.unlink(missing_ok=True)
            raise UserError(f"{fmt} export of {bundle.name} differs from eager PyTorch by {max(parity.values()):.2e} in probabilities "
                            f"(tolerance {TOLERANCE[fmt]:.0e}) and {max(log_parity.values()):.2e} in log-probabilities "
                            f"(tolerance {LOGPROB_TOLERANCE[fmt]:.0e}); file removed")
        files[fmt] = {"file": path.name, "sha256": file_hash(path), "bytes": path.stat().st_size,
                      "max_abs_diff_vs_eager": parity, "tolerance": TOLERANCE[fmt],
                      "max_abs_logprob_diff_vs_eager": log_parity, "logprob_tolerance": LOGPROB_TOLERANCE[fmt],
                      "export_seconds": round(time.perf_counter() - t0, 3), **extra}

    # The bundle travels with the export, so `dlr serve --backend torch` can run the same folder.
    for src, f in ((bundle.weights, WEIGHTS), (bundle.path / CONFIG, CONFIG)):
        if src.resolve() != (out_dir / f).resolve():
            with atomic_path(out_dir / f) as tmp:
                shutil.copyfile(src, tmp)
    card = model_card(bundle, files, name or card.get("name") or bundle.name)
    write_json(out_dir / CARD, card)
    return card


def model_card(bundle: Bundle, files: dict[str, Any], name: str) -> dict[str, Any]:
    cfg = bundle.config
    return {
        "name": name,
        "version": 1,
        "family": cfg["family"],
        "input": {"name": INPUT_NAME, "dtype": "float32", "shape": [-1, *bundle.input_shape],
                  "description": "raw features on the training data's scale (e.g. pixel values 0-255); the model normalises"},
        "output": {"name": OUTPUT_NAME, "dtype": "float32", "shape": [-1, len(bundle.classes)], "description": "softmax probabilities"},
        "classes": bundle.classes,
        "preprocessing": cfg.get("preprocessing", {}),
        "source": {**cfg.get("source", {}), "bundle": str(bundle.path.resolve()),
                   "weights": str(bundle.weights.resolve()), "weights_sha256": file_hash(bundle.weights)},
        "files": files,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "exporter": {"torch": torch.__version__, "python": sys.version.split()[0]},
    }


