"""An exported model read without torch: its model card (what `dlr export` writes beside the files) and an ONNX
Runtime session. The model server needs nothing else, so the slim serving image (ONNX Runtime only) has no torch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dlroadmap.errors import UserError

FILES = {"onnx": "model.onnx", "torchscript": "model.torchscript.pt", "tflite": "model.tflite"}
CARD = "model_card.json"


def read_card(model_dir: str | Path) -> dict[str, Any]:
    path = Path(model_dir) / CARD
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read {path} ({e}); export a model with `dlr export RUN --out DIR` first") from None


def onnx_session(path: str | Path, threads: int = 0):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def run_onnx(path: Path, x):
    """Probabilities of the exported model for the float32 batch x (N, *input shape)."""
    sess = onnx_session(path)
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]
