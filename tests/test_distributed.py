"""Data-parallel training for real: torchrun processes on 127.0.0.1 (gloo), with bounded timeouts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from safetensors.torch import load_file

from dlroadmap.data.loader import TensorLoader
from dlroadmap.train import distributed
from dlroadmap.train.parallel_check import global_batches

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "DLR_PROGRESS": "0"}


def torchrun(args: list[str], nproc: int = 2, timeout: float = 180, **kw) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", "--max-restarts=0", *args]
    return subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=timeout, **kw)


def max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def test_sharded_loader_matches_distributed_sampler():
    """Our rank assignment is torch's DistributedSampler's: each step's global batch split by rank."""
    from torch.utils.data import DistributedSampler

    n, B, world, seed = 40, 4, 2, 3
    data = torch.arange(n)
    for rank in range(world):
        ours = TensorLoader(data, batch_size=B, shuffle=True, seed=seed, drop_last=True).shard(rank, world)
        ours.set_epoch(1)
        sampler = DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=True, seed=seed * 100_003, drop_last=True)
        sampler.set_epoch(1)
        ref = list(sampler)
        got = [int(i) for b in ours for i in b[0]]
        assert got == ref
    # the union of the ranks' batches at step k is one process's batch of B * world
    single = [b[0].tolist() for b in TensorLoader(data, batch_size=B * world, shuffle=True, seed=seed, drop_last=True)]
    parts = [[b[0].tolist() for b in TensorLoader(data, batch_size=B, shuffle=True, seed=seed, drop_last=True).shard(r, world)] for r in range(world)]
    assert [sorted(a + b) for a, b in zip(*parts)] == [sorted(s) for s in single]


def test_global_batches_follow_the_loader():
    b = global_batches(100, 10, 25, seed=1)
    assert b.shape == (25, 10) and sorted(b[:10].ravel().tolist()) == list(range(100))


KILL_SCRIPT = textwrap.dedent("""
    import os, sys, time, torch
    from torch import nn
    from dlroadmap.data.loader import TensorLoader
    from dlroadmap.train.callbacks import Callback, ModelCheckpoint
    from dlroadmap.train.trainer import Trainer
    from dlroadmap.train.parallel_check import make_model, problem
    from dlroadmap.train import distributed
    from safetensors.torch import save_file
    out, resume, slow = sys.argv[1], sys.argv[2] == "1", sys.argv[3] == "1"
    rank = int(os.environ["RANK"])
    open(f"{out}/pid-{rank}", "w").write(str(os.getpid()))
    class Slow(Callback):
        def on_train_batch_end(self, t):
            if slow:
                open(f"{out}/step-{rank}", "w").write(str(t.global_step))
                time.sleep(0.1)
    X, y = problem(512)
    model = make_model(0)
    t = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9), max_epochs=4, device="cpu",
                callbacks=[Slow(), ModelCheckpoint(out + "/ckpt", every_n_steps=3, monitor=None)])
    t.fit(TensorLoader(X, y, batch_size=16, shuffle=True, seed=2), resume=resume)
    if distributed.is_main():
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, out + "/final.safetensors")
    distributed.cleanup()
""")


def test_a_killed_rank_fails_the_job_fast_and_resume_continues_exactly(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(KILL_SCRIPT)
    ref, run = tmp_path / "ref", tmp_path / "run"
    ref.mkdir(), run.mkdir()
    r = torchrun([str(script), str(ref), "0", "0"])
    assert r.returncode == 0, r.stderr[-2000:]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "--max-restarts=0", str(script), str(run), "0", "1"]
    p = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 90
    while time.time() < deadline:
        step = (run / "step-1").read_text() if (run / "step-1").exists() else ""
        if step and int(step) >= 40:  # 64 steps in all (4 epochs of 16)
            break
        time.sleep(0.05)
    os.kill(int((run / "pid-1").read_text()), signal.SIGKILL)
    killed = time.time()
    _, err = p.communicate(timeout=60)
    assert p.returncode != 0
    assert time.time() - killed < 30, "the surviving rank hung instead of failing"
    assert "SIGKILL" in err or "Signal 9" in err  # torchrun names the rank that died and how
    assert not (run / "final.safetensors").exists()
    r = torchrun([str(script), str(run), "1", "0"])
    assert r.returncode == 0, r.stderr[-2000:]
    assert max_diff(load_file(ref / "final.safetensors"), load_file(run / "final.safetensors")) == 0.0  # bit-identical


def test_dlr_run_nproc_trains_a_node_data_parallel(tmp_path):
    """Any node that trains through the Trainer runs under `dlr run ID --nproc 2`; rank 0 alone writes the result."""
    r = subprocess.run([sys.executable, "-m", "dlroadmap.cli", "run", "p2.fnn.backprop", "--quick", "--nproc", "2", "--track", "none",
                        "--out", str(tmp_path)], env=ENV, capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-2000:]
    result = json.loads((tmp_path / "p2.fnn.backprop" / "result.json").read_text())
    assert result["passed"] and result["metrics"]["test_accuracy"] >= 0.9
    assert (r.stdout + r.stderr).count("test_accuracy") == 1  # one table, from rank 0


def test_ddp_strategy_outside_a_launcher_is_a_clear_error():
    from dlroadmap.errors import UserError
    from dlroadmap.train.trainer import Trainer

    m = torch.nn.Linear(2, 2)
    with pytest.raises(UserError, match="--nproc"):
        Trainer(m, torch.optim.SGD(m.parameters(), lr=0.1), strategy="ddp")
    with pytest.raises(UserError, match="strategy"):
        Trainer(m, torch.optim.SGD(m.parameters(), lr=0.1), strategy="horovod")
    assert not distributed.launched() and distributed.is_main()
    with pytest.raises(UserError, match="rdzv"):
        distributed.torchrun_command(["run", "x"], 2, nnodes=2)


def test_horovod_matches_ddp(tmp_path):
    """horovodrun -np 2 --gloo with hvd.DistributedOptimizer ends where DDP (and one process at 2B) ends.
    Needs .venv-horovod (`make horovod`); CI builds it first and sets DLR_REQUIRE_HOROVOD=1, so it cannot skip there."""
    import numpy as np

    from dlroadmap.train.horovod_run import fit_with_horovod, horovod_python

    if horovod_python() is None:
        if os.environ.get("DLR_REQUIRE_HOROVOD") == "1":
            pytest.fail("DLR_REQUIRE_HOROVOD=1 but no .venv-horovod: run `make horovod`")
        pytest.skip("no .venv-horovod: run `make horovod` to build Horovod 0.28.1 with its C++17 fix")
    one = tmp_path / "one"
    subprocess.run([sys.executable, "-m", "dlroadmap.train.parallel_check", "--out", str(one), "--steps", "32"], env=ENV, check=True, timeout=120)
    w = np.load(fit_with_horovod(tmp_path / "hvd", 2, steps=32))
    assert max_diff(load_file(one / "weights-ddp-1.safetensors"), {k: torch.from_numpy(w[k]) for k in w.files}) < 1e-5


def _netns_ready() -> str | None:
    import shutil

    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "no `ip` (iproute2)"
    return None


def test_two_machines_in_network_namespaces(tmp_path):
    """Two "machines": network namespaces joined by a veth pair, one torchrun in each (--nnodes 2, c10d rendezvous
    on the first one's address). The same equivalence as on one machine. CI runs as root and sets DLR_REQUIRE_NETNS=1."""
    why = _netns_ready()
    if why is not None:
        if os.environ.get("DLR_REQUIRE_NETNS") == "1":
            pytest.fail(f"DLR_REQUIRE_NETNS=1 but {why}")
        pytest.skip(why)
    tag = f"{os.getpid() % 100000}"
    ns, dev, net = [f"dlr{tag}a", f"dlr{tag}b"], [f"vd{tag}a", f"vd{tag}b"], f"10.{77 + os.getpid() % 100}.0"
    ip = lambda *a: subprocess.run(["ip", *a], check=True, capture_output=True, timeout=30)  # noqa: E731
    try:
        ip("netns", "add", ns[0])
        ip("netns", "add", ns[1])
        ip("link", "add", dev[0], "type", "veth", "peer", "name", dev[1])
        for i in (0, 1):
            ip("link", "set", dev[i], "netns", ns[i])
            ip("-n", ns[i], "addr", "add", f"{net}.{i + 1}/24", "dev", dev[i])
            ip("-n", ns[i], "link", "set", dev[i], "up")
            ip("-n", ns[i], "link", "set", "lo", "up")
        out = tmp_path / "two"
        procs = []
        for i in (0, 1):
            cmd = distributed.torchrun_command(["--out", str(out), "--steps", "32"], 1, nnodes=2, rdzv_endpoint=f"{net}.1:29411",
                                               module="dlroadmap.train.parallel_check", local_addr=f"{net}.{i + 1}", is_host=i == 0)
            env = {**ENV, "GLOO_SOCKET_IFNAME": dev[i], "DLR_DDP_TIMEOUT": "60"}
            procs.append(subprocess.Popen(["ip", "netns", "exec", ns[i], *cmd], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        logs = []
        for p in procs:
            try:
                logs.append(p.communicate(timeout=90)[0])
            except subprocess.TimeoutExpired:
                for q in procs:
                    q.kill()
                logs.append(p.communicate()[0] + "\n[timed out after 90 s]")
        assert all(p.returncode == 0 for p in procs), "\n".join(f"--- machine {i}:\n" + "\n".join(
            line for line in log.splitlines() if not line.startswith(("frame #", "  File", "    ")))[-2500:] for i, log in enumerate(logs))
        subprocess.run([sys.executable, "-m", "dlroadmap.train.parallel_check", "--out", str(tmp_path / "one"), "--steps", "32"],
                       env=ENV, check=True, timeout=120)
        info = json.loads((out / "result-2.json").read_text())
        assert info["world"] == 2 and info["sharded"]
        assert max_diff(load_file(tmp_path / "one" / "weights-ddp-1.safetensors"), load_file(out / "weights-ddp-2.safetensors")) < 1e-5
    finally:
        for n in ns:
            subprocess.run(["ip", "netns", "del", n], capture_output=True, timeout=30)
