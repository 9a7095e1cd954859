"""kill -9 in the middle of an epoch, `dlr run --resume`, and the final weights are bit-identical (eager and compiled)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

NODE = "p2.fnn.backprop"
# 3,500 training images / batch 64 = 55 steps per epoch; a checkpoint every 7 steps lands mid-epoch.
ARGS = ["--quick", "--set", "epochs=4", "--set", "checkpoint_every=7", "--track", "none"]


def dlr(*args: str) -> list[str]:
    return [sys.executable, "-c", "from dlroadmap.cli import main; main()", *args]


def run(out: Path, *extra: str, env: dict[str, str] | None = None) -> None:
    proc = subprocess.run(dlr("run", NODE, *ARGS, "--out", str(out), *extra), capture_output=True, text=True, timeout=300, env=env)
    # 0 or 1: the run finished (1 = a short run missed the accuracy expectation; not what is tested here)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    assert (out / NODE / "result.json").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("compiled", [(), ("--compile",)], ids=["eager", "compiled"])
def test_sigkill_then_resume_gives_identical_weights(tmp_path, compiled):
    # compiled: all three runs torch.compile the model (into a cache of their own: the first compiles, the others load)
    env = dict(os.environ, DLR_PROGRESS="0", TORCHINDUCTOR_CACHE_DIR=str(tmp_path / "inductor"))
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    run(ref, *compiled, env=env)

    proc = subprocess.Popen(dlr("run", NODE, *ARGS, "--out", str(killed), *compiled), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ckdir = killed / NODE / "checkpoints"
    deadline = time.time() + 240
    step = 0
    while time.time() < deadline:  # wait for a checkpoint in the middle of epoch 2
        latest = ckdir / "latest"
        if latest.is_file():
            step = int(latest.read_text().strip().split("-")[1])
            if step > 55 and step % 55 != 0:
                break
        if proc.poll() is not None:
            pytest.fail(f"training finished before it could be killed: {proc.stderr.read()[-1000:]!r}")
        time.sleep(0.02)
    else:
        proc.kill()
        pytest.fail("no mid-epoch checkpoint appeared")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (killed / NODE / "model" / "model.safetensors").exists(), "the run was killed before finishing"

    run(killed, "--resume", *compiled, env=env)
    assert json.loads((killed / NODE / "result.json").read_text())["config"]["compile"] is bool(compiled)
    a = load_file(str(ref / NODE / "model" / "model.safetensors"))
    b = load_file(str(killed / NODE / "model" / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].equal(b[k]), f"{k} differs after resume (killed at step {step})"
    assert not list(ckdir.glob(".step-*")), "no temporary checkpoint folder may remain"
