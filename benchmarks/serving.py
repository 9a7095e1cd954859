"""Model serving: requests/s and p50/p99 latency of one CNN served by ONNX Runtime vs torch eager,
each request one image (batch 1), micro-batching off and on, in one run.

The CNN is the 28x28 ResNet of Phase 2 (models/resnet.py: resnet_small, 3 stages of BasicBlocks,
~78k parameters), exported with `dlroadmap.deploy.export` and served by `dlr serve` (FastAPI +
uvicorn) in a subprocess on 127.0.0.1. The load client (16 threads, keep-alive connections) runs on
the same 2 cores as the server. Target (DESIGN.md): ONNX Runtime >= 1.5x torch eager requests/s at
batch 1.

    python benchmarks/serving.py [--requests 2000] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from common import save
from dlroadmap.deploy.bundle import normalisation, read_bundle, save_bundle
from dlroadmap.deploy.export import export
from dlroadmap.deploy.loadtest import serving_benchmark
from dlroadmap.models.vision.resnet import resnet_small


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=16)
    args = ap.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        kwargs = {"num_classes": 10}
        bundle = save_bundle(Path(tmp) / "bundle", resnet_small(**kwargs), name="resnet", family="resnet_small", kwargs=kwargs,
                             input_shape=[28, 28], classes=[str(i) for i in range(10)], preprocessing=normalisation(33.4, 78.6), source={"benchmark": "serving"})
        model_dir = Path(tmp) / "models" / "resnet"
        export(read_bundle(bundle), model_dir, ["onnx"])
        image = (np.random.default_rng(0).random((1, 28, 28)) * 255).round().tolist()
        body = json.dumps({"instances": image}).encode()
        res = serving_benchmark(model_dir, "resnet", body, n=args.requests, concurrency=args.concurrency,
                                progress=lambda k, r: print(f"{k:22s} {r['throughput']['requests_per_s']:8.1f} req/s  "
                                                            f"p50 {r['throughput']['p50_ms']:6.2f} ms  p99 {r['throughput']['p99_ms']:6.2f} ms  "
                                                            f"(one client: p50 {r['latency']['p50_ms']:.2f} ms)", flush=True))
    res.update(model="resnet_small (28x28, 10 classes)", requests=args.requests, concurrency=args.concurrency,
               target={"onnxruntime_vs_torch_batch1": ">= 1.5"}, met=res["onnxruntime_vs_torch_batch1"] >= 1.5 and res["errors"] == 0)
    path = save("serving", res)
    print(f"ONNX Runtime / torch eager at batch 1: x{res['onnxruntime_vs_torch_batch1']:.2f} (target >= 1.5); "
          f"micro-batching gain: onnxruntime x{res['batching_gain_onnxruntime']:.2f}, torch x{res['batching_gain_torch']:.2f}; "
          f"errors {res['errors']} -> {path}")


if __name__ == "__main__":
    main()
