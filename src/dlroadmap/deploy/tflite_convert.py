"""PyTorch -> TensorFlow Lite with Google's litert-torch, run inside its own virtual environment.

    python -m dlroadmap.deploy.tflite_convert BUNDLE_DIR WEIGHTS.safetensors OUT.tflite INPUTS.npz

litert-torch (https://github.com/google-ai-edge/litert-torch) lowers a torch.export graph to a
TFLite flatbuffer. Its dependencies cannot share an environment with the rest of dlroadmap (it
pins typing-extensions < 4.13), so `dlr export --format tflite` runs this file with the python of
`.venv-tflite` (made by `make tflite`). It converts the bundle's ServingModel with a batch of one,
then runs the LiteRT interpreter on every row of INPUTS.npz and writes the outputs beside it as
outputs.npz, for the exporter to compare with eager PyTorch.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import torch


def main(bundle_dir: str, weights: str, out_path: str, inputs_path: str) -> None:
    import litert_torch
    from ai_edge_litert.interpreter import Interpreter

    from dlroadmap.deploy.bundle import read_bundle

    bundle = read_bundle(bundle_dir)
    bundle.weights_file = Path(weights)  # the final weights, or a checkpoint's
    model = bundle.serving_model()
    inputs = dict(np.load(inputs_path))
    sample = torch.from_numpy(next(iter(inputs.values()))[:1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        edge = litert_torch.convert(model, (sample,))
    edge.export(out_path)

    interpreter = Interpreter(model_path=out_path)
    interpreter.allocate_tensors()
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    outputs = {}
    for key, x in inputs.items():
        rows = []
        for row in x:  # the flatbuffer was converted for batch 1
            interpreter.set_tensor(inp["index"], row[None].astype(np.float32))
            interpreter.invoke()
            rows.append(interpreter.get_tensor(out["index"])[0].copy())
        outputs[key] = np.stack(rows)
    np.savez(Path(inputs_path).with_name("outputs.npz"), **outputs)


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    main(*sys.argv[1:])
