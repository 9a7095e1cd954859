"""kill -9 in the middle of a training script, resume it, and hand back both final weights.

The script takes (out_dir, resume "0"/"1", slow "0"/"1"), checkpoints into out_dir/ck and writes
out_dir/final.safetensors when done. "slow" makes each step sleep so the kill lands between checkpoints.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest
import torch


def kill_then_resume(script: Path, tmp_path: Path, kill_at: Callable[[int], bool]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], int]:
    """(uninterrupted weights, killed-and-resumed weights, step of the checkpoint it resumed from)."""
    from safetensors.torch import load_file

    env = dict(os.environ, DLR_PROGRESS="0")
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    subprocess.run([sys.executable, str(script), str(ref), "0", "0"], check=True, env=env, timeout=120)
    proc = subprocess.Popen([sys.executable, str(script), str(killed), "0", "1"], env=env, stderr=subprocess.PIPE)
    step = kill_when(proc, killed / "ck" / "latest", kill_at)
    assert not (killed / "final.safetensors").exists()
    subprocess.run([sys.executable, str(script), str(killed), "1", "0"], check=True, env=env, timeout=120)
    return load_file(str(ref / "final.safetensors")), load_file(str(killed / "final.safetensors")), step


def kill_when(proc: subprocess.Popen, latest: Path, kill_at: Callable[[int], bool], timeout: float = 240) -> int:
    """kill -9 `proc` as soon as the checkpoint pointer `latest` names a step where kill_at(step) holds;
    returns that step. Fails the test if the process ends first."""
    deadline, step = time.time() + timeout, 0
    while time.time() < deadline:
        if latest.is_file():
            step = int(latest.read_text().strip().split("-")[1])
            if kill_at(step):
                break
        if proc.poll() is not None:
            pytest.fail(f"the run finished before it could be killed: {proc.stderr.read()[-800:] if proc.stderr else ''!r}")
        time.sleep(0.01)
    else:
        proc.kill()
        pytest.fail("no checkpoint to kill at appeared")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    return step
