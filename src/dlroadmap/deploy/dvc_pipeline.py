"""A node as a DVC pipeline: prepare -> train -> export -> evaluate, each stage one `dlr` command.

    prepare    the held-out test split of the seed's split as data/test.npz (raw pixels, labels): the data
               the evaluation reads, versioned by DVC
    train      `dlr run NODE --params params.yaml`: the node's experiment with params.yaml's config
    export     `dlr export`: the trained model to ONNX (parity-checked against PyTorch)
    evaluate   the exported file scored by ONNX Runtime on data/test.npz, plus the run's own figures

    dvc.yaml      the stages, their commands, dependencies and outputs (DVC reruns a stage only when one of
                  its dependencies changed: a new learning rate retrains, exports and evaluates, but does
                  not prepare the data again)
    params.yaml   `config:` the node's Config (its quick or full preset, written out), `export:` the format;
                  `dvc exp run --set-param config.lr=0.003` is an experiment over it
    eval/         metrics.json (DVC metrics: the exported model scored on the test split, and the run's
                  own figures) and history.json (DVC plots: the learning curves)

`dlr dvc init NODE` writes the two files (and `dvc init` when the folder is a git repository without DVC);
`dvc repro`, `dvc metrics show/diff`, `dvc plots show`, `dvc push/pull` then work as on any DVC project.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from dlroadmap.errors import UserError
from dlroadmap.io import write_json, write_text

# Nodes whose experiment trains a deployable classifier on `config.dataset` and saves it as <run>/model.
TRAINS_A_MODEL = ("p2.fnn.backprop", "tools.hub.huggingface")


def _yaml(obj: Any) -> str:
    import yaml

    return yaml.safe_dump(obj, sort_keys=False, default_flow_style=False)


def pipeline(node_id: str, config: dict[str, Any], *, quick: bool = True, fmt: str = "onnx") -> tuple[dict, dict]:
    """(dvc.yaml, params.yaml) as dicts for `node_id` trained with `config` (its quick or full preset: the run
    verifies the node while params.yaml holds that preset, and is 'custom' once a value is changed)."""
    model_dir = f"models/{node_id}"
    stages = {
        "prepare": {
            "cmd": "dlr dvc prepare ${config.dataset} --seed ${config.seed} --out data/test.npz",
            "params": ["config.dataset", "config.seed"],       # the split depends on these, nothing else
            "outs": ["data/test.npz"],
        },
        "train": {
            "cmd": f"dlr run {node_id}{' --quick' if quick else ''} --params params.yaml --out runs --track none",
            "params": ["config"],                              # every config.* key: a change retrains
            "outs": [f"runs/{node_id}/model"],
        },
        "export": {
            "cmd": f"dlr export runs/{node_id} --format ${{export.format}} --out {model_dir}",
            "deps": [f"runs/{node_id}/model"],
            "params": ["export.format"],
            "outs": [model_dir],
        },
        "evaluate": {
            "cmd": f"dlr dvc evaluate {model_dir} --data data/test.npz --run runs/{node_id} --out eval",
            "deps": [model_dir, "data/test.npz"],
            "metrics": [{"eval/metrics.json": {"cache": False}}],
            "plots": [{"eval/history.json": {"cache": False, "x": "epoch", "y": "val_acc"}}],
        },
    }
    return {"stages": stages}, {"node": node_id, "config": config, "export": {"format": fmt}}


def init(node, folder: str | os.PathLike, *, quick: bool = True, fmt: str = "onnx") -> list[Path]:
    """Write dvc.yaml and params.yaml for `node` into `folder` (a git repository; `dvc init` is run there if needed)."""
    from dlroadmap.runner import make_config

    if node.id not in TRAINS_A_MODEL:
        raise UserError(f"{node.id} does not train a deployable model; `dlr dvc init` takes {', '.join(sorted(TRAINS_A_MODEL))}")
    folder = Path(folder)
    if not (folder / ".git").exists():
        raise UserError(f"{folder} is not a git repository: run `git init` there first (DVC versions data beside git)")
    config = make_config(node.load_experiment().Config, quick=quick).model_dump(mode="json")
    dvc_yaml, params = pipeline(node.id, config, quick=quick, fmt=fmt)
    written = [write_text(folder / "dvc.yaml", _yaml(dvc_yaml)), write_text(folder / "params.yaml", _yaml(params))]
    if not (folder / ".dvc").is_dir():
        dvc(folder, "init", "-q")
    # DVC keeps a site cache in /var/tmp/dvc unless told otherwise: keep it inside the project.
    dvc(folder, "config", "--local", "core.site_cache_dir", str((folder / ".dvc" / "site-cache").resolve()))
    return written


def dvc(folder: str | os.PathLike, *args: str, timeout: float = 600) -> str:
    """Run the dvc CLI (the one installed beside this Python) in `folder`; its output, or one line naming the failure."""
    import shutil
    import subprocess
    import sys

    exe = shutil.which("dvc", path=str(Path(sys.executable).parent)) or shutil.which("dvc")
    if exe is None:
        raise UserError("the dvc command is not installed: pip install dvc")
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "DLR_PROGRESS": "0"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"   # the stages' `dlr` is this install's
    proc = subprocess.run([exe, *args], cwd=folder, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()
        raise UserError(f"dvc {' '.join(args)} failed in {folder}: {tail[-1] if tail else f'exit {proc.returncode}'}")
    return proc.stdout


def prepare(dataset: str, seed: int, out: str | os.PathLike) -> Path:
    """The test split of `dataset` under `seed` (the split every node makes with that seed) as one .npz, atomically."""
    import numpy as np

    from dlroadmap.data.prepare import classification_splits
    from dlroadmap.io import atomic_path

    _, _, test = classification_splits(dataset, seed)
    out = Path(out)
    with atomic_path(out, suffix=".npz") as tmp, open(tmp, "wb") as f:
        np.savez(f, X=test.X.astype(np.float32), y=test.y.astype(np.int64), classes=np.array(test.classes))
    return out


def evaluate(model_dir: str | os.PathLike, data: str | os.PathLike, run_dir: str | os.PathLike | None, out: str | os.PathLike) -> dict[str, float]:
    """Score the exported model with its own runtime (ONNX Runtime) on the prepared test split, and collect the
    run's figures and learning curves: eval/metrics.json and eval/history.json."""
    import numpy as np
    import onnxruntime as ort

    model_dir, out = Path(model_dir), Path(out)
    try:
        card = json.loads((model_dir / "model_card.json").read_text())
        onnx_file = model_dir / card["files"]["onnx"]["file"]
    except (OSError, ValueError, KeyError):
        raise UserError(f"{model_dir} has no ONNX export (model_card.json with an onnx file); run `dlr export RUN --format onnx` first") from None
    try:
        with np.load(data) as z:
            X, y = z["X"], z["y"]
    except (OSError, ValueError, KeyError):
        raise UserError(f"cannot read the test split {data}: write it with `dlr dvc prepare` (`dvc repro prepare`)") from None
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    takes = session.get_inputs()[0]
    wanted = [d if isinstance(d, int) and d > 0 else None for d in takes.shape[1:]]   # None: a free (named) axis
    if X.ndim != len(takes.shape) or any(w is not None and w != n for w, n in zip(wanted, X.shape[1:])):
        shown = tuple("?" if w is None else w for w in wanted)
        raise UserError(f"{data} holds inputs of shape {tuple(X.shape[1:])} but {model_dir} ({card.get('name', 'the model')}) "
                        f"takes {shown}: prepare the test split of the dataset it was trained on (`dlr dvc prepare DATASET`)")
    probs = session.run(None, {takes.name: X})[0]          # raw pixels in: the exported model normalises
    metrics = {"onnx_test_accuracy": float((probs.argmax(1) == y).mean()), "test_images": float(len(y))}
    history: list[dict] = []
    if run_dir is not None:
        try:
            result = json.loads((Path(run_dir) / "result.json").read_text())
        except (OSError, ValueError):
            raise UserError(f"{run_dir} has no result.json: train it first (`dvc repro train`)") from None
        metrics |= {f"run_{k}": float(v) for k, v in result.get("metrics", {}).items() if isinstance(v, (int, float))}
        history = [{k: v for k, v in h.items() if isinstance(v, (int, float))} for h in result.get("history", [])]
    write_json(out / "metrics.json", metrics)
    write_json(out / "history.json", history)
    return metrics
