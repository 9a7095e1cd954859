"""Eager vs torch.compile through the Trainer: step time, and what the compile costs cold and warm.

For each model, three fresh processes train the same steps on the same synthetic data:
  eager           Trainer(compile=False)
  compiled, cold  Trainer(compile=True) with an empty Inductor cache: the first step compiles
  compiled, warm  the same again with the cache the cold run left: the first step loads the kernels
Compile seconds = the first step's wall time minus a steady step's. Step times are medians over
the steps after the first few. Models: the MLP (784-256-128-10, batch 64), LeNet-5 and ResNet-small
(1x28x28, batch 64), the GPT (4 layers, 4 heads, 128-dim, block 64, batch 12: nanoGPT's CPU shape).

    python benchmarks/compile.py [--models mlp,lenet5,resnet,gpt] [--steps 60]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("DLR_PROGRESS", "0")

MODELS = ("mlp", "lenet5", "resnet", "gpt")


def child(name: str, compile: bool, steps: int) -> dict:
    """One training run in this process; prints its timings as JSON."""
    import statistics

    import torch

    from dlroadmap.data import TensorLoader
    from dlroadmap.train import Trainer, seed_everything
    from dlroadmap.train.callbacks import Callback

    seed_everything(0, deterministic=False)
    g = torch.Generator().manual_seed(0)
    step = None
    if name == "gpt":
        from dlroadmap.data.text import WindowLoader
        from dlroadmap.models.sequence.gpt import GPT, GPTConfig

        model = GPT(GPTConfig(vocab_size=65))
        loader = WindowLoader(torch.randint(0, 65, (100_000,), generator=g), 64, 12, steps, seed=0)
        step = lambda m, b: (m(b[0], b[1])[1], None, None)  # noqa: E731
    else:
        if name == "mlp":
            from dlroadmap.models.mlp import MLP

            model = MLP(784, [256, 128], 10)
        else:
            from dlroadmap.models.families import small_cnn

            model = small_cnn(name, 10)[0]
        X, y = torch.randn(64 * steps, 1, 28, 28, generator=g), torch.randint(0, 10, (64 * steps,), generator=g)
        loader = TensorLoader(X, y, batch_size=64)

    class Clock(Callback):
        def __init__(self):
            self.t = [time.perf_counter()]

        def on_train_batch_end(self, trainer):
            self.t.append(time.perf_counter())

    clock = Clock()
    trainer = Trainer(model, torch.optim.AdamW(model.parameters(), 1e-3), max_epochs=1, device="cpu", compile=compile,
                      callbacks=[clock], step=step, deterministic=False)
    trainer.fit(loader)
    dts = [b - a for a, b in zip(clock.t, clock.t[1:])]
    steady = statistics.median(dts[5:])
    return {"first_step_s": dts[0], "step_ms": 1e3 * steady, "steps": len(dts)}


def run_child(name: str, compile: bool, steps: int, cache: Path) -> dict:
    env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=str(cache), DLR_PROGRESS="0")
    out = subprocess.run([sys.executable, __file__, "--child", name, "--compile" if compile else "--eager", "--steps", str(steps)],
                         capture_output=True, text=True, env=env, cwd=Path(__file__).parent)
    if out.returncode != 0:
        raise SystemExit(f"{name} ({'compiled' if compile else 'eager'}) failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--compile", dest="compiled", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--eager", dest="compiled", action="store_false", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.compiled, args.steps)))
        return
    sys.path.insert(0, str(Path(__file__).parent))
    from common import save

    rows = []
    for name in args.models.split(","):
        with tempfile.TemporaryDirectory() as cache:
            eager = run_child(name, False, args.steps, Path(cache))
            cold = run_child(name, True, args.steps, Path(cache))
            warm = run_child(name, True, args.steps, Path(cache))
        row = {"model": name, "eager_step_ms": round(eager["step_ms"], 3), "compiled_step_ms": round(warm["step_ms"], 3),
               "speedup": round(eager["step_ms"] / warm["step_ms"], 3),
               "compile_s_cold": round(cold["first_step_s"] - cold["step_ms"] / 1e3, 2),
               "compile_s_warm": round(warm["first_step_s"] - warm["step_ms"] / 1e3, 2),
               "eager_first_step_s": round(eager["first_step_s"], 3)}
        rows.append(row)
        print(f"{name:7s} eager {row['eager_step_ms']:8.2f} ms/step   compiled {row['compiled_step_ms']:8.2f} ms/step (x{row['speedup']:.2f})   "
              f"compile {row['compile_s_cold']:.1f} s cold, {row['compile_s_warm']:.1f} s warm", flush=True)
    save("compile", {"steps": args.steps, "rows": rows})


if __name__ == "__main__":
    main()
