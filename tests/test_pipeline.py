"""The streamed input pipeline: exactly once per epoch, exact resume, damaged shards named, the format read by webdataset."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from dlroadmap.data.pipeline import (ShardStream, StreamLoader, consumer_plan, read_index, round_robin_consumed,
                                     verify_shards, write_shards)
from dlroadmap.errors import DataError, UserError


def make_shards(tmp_path: Path, n: int = 101, shards: int = 7, name: str = "toy") -> Path:
    X = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
    y = np.arange(n) % 10
    return write_shards(tmp_path / name, X, y, shards, name=name)


@pytest.mark.parametrize("shards", [1, 3, 7, 10])
@pytest.mark.parametrize("world,workers", [(1, 0), (1, 2), (2, 1), (2, 2), (3, 2)])
def test_every_sample_exactly_once_per_epoch(tmp_path, shards, world, workers):
    folder = make_shards(tmp_path, n=101, shards=shards)
    for epoch in (0, 1):
        seen: list[int] = []
        for rank in range(world):
            loader = StreamLoader(ShardStream(folder, shuffle_buffer=16, seed=3, rank=rank, world=world, with_ids=True),
                                  batch_size=8, workers=workers)
            loader.set_epoch(epoch)
            batches = list(loader)
            assert len(batches) == len(loader)
            for x, y, i in batches:
                assert torch.equal(x, torch.stack([torch.arange(3.0) + 3 * int(k) for k in i]))  # the input belongs to its id
                assert torch.equal(y, i % 10)
                seen += i.tolist()
        counts = Counter(seen)
        assert sorted(counts) == list(range(101)), f"missing {sorted(set(range(101)) - set(counts))[:5]}"
        assert max(counts.values()) == 1, f"duplicated {[k for k, c in counts.items() if c > 1][:5]}"


def test_ranks_get_balanced_shares_and_epochs_differ(tmp_path):
    folder = make_shards(tmp_path, n=100, shards=3)
    sizes = [ShardStream(folder, rank=r, world=3).consumer_sizes(2) for r in range(3)]
    flat = [s for per in sizes for s in per]
    assert sum(flat) == 100 and max(flat) - min(flat) <= 1
    a = [int(i) for b in StreamLoader(ShardStream(folder, seed=0, with_ids=True), 10) for i in b[2]]
    loader = StreamLoader(ShardStream(folder, seed=0, with_ids=True), 10)
    loader.set_epoch(1)
    b = [int(i) for batch in loader for i in batch[2]]
    assert a != b and sorted(a) == sorted(b)  # a new order each epoch, the same samples


def test_plan_splits_a_shard_between_consumers():
    # 3 shards of 4, 2 ranks: rank 0 reads shard 0, shard 1 and 2 of shard 2's samples
    plan0 = consumer_plan([4, 4, 4], [0, 2, 1], rank=0, world=2, worker=0, workers=1)
    plan1 = consumer_plan([4, 4, 4], [0, 2, 1], rank=1, world=2, worker=0, workers=1)
    assert plan0 == [(0, 0, 4), (2, 0, 2)] and plan1 == [(2, 2, 4), (1, 0, 4)]


def test_round_robin_matches_torch_dataloader(tmp_path):
    """The resume arithmetic relies on how DataLoader interleaves its workers: check it on uneven workers."""
    folder = make_shards(tmp_path, n=45, shards=4)
    loader = StreamLoader(ShardStream(folder, shuffle=False, with_ids=True), batch_size=4, workers=2)
    whole = [b[2].tolist() for b in loader]
    for start in (1, 5, 9, len(whole) - 1):
        assert [b[2].tolist() for b in loader.iter_from(start)] == whole[start:]
    assert round_robin_consumed([3, 1], 4) == ([3, 1], 1)


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_mid_epoch_gives_the_same_order_and_augmentation(tmp_path, workers):
    folder = make_shards(tmp_path, n=90, shards=5)
    noise = lambda x, g: x + torch.randn(x.shape, generator=g)  # noqa: E731
    make = lambda: StreamLoader(ShardStream(folder, shuffle_buffer=20, seed=1, transform=noise, with_ids=True), 8, workers)  # noqa: E731
    loader = make()
    loader.set_epoch(2)
    whole = list(loader)
    again = make()
    again.set_epoch(2)
    rest = list(again.iter_from(5))
    assert len(rest) == len(whole) - 5
    for a, b in zip(whole[5:], rest):
        assert all(torch.equal(u, v) for u, v in zip(a, b))


def test_kill_and_resume_of_a_streamed_training_is_exact(tmp_path):
    """kill -9 during a Trainer run on streamed data, then --resume: the batches seen and the final weights
    equal an uninterrupted run's (the Trainer's exact-resume guarantee extends to the stream)."""
    folder = make_shards(tmp_path, n=240, shards=5)
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(f"""
        import sys, time, torch
        from torch import nn
        from dlroadmap.data.pipeline import ShardStream, StreamLoader
        from dlroadmap.train.callbacks import Callback, ModelCheckpoint
        from dlroadmap.train.trainer import Trainer
        out, resume, slow = sys.argv[1], sys.argv[2] == "1", sys.argv[3] == "1"
        class Log(Callback):
            def on_train_batch_end(self, t):
                with open(out + "/steps.txt", "a") as f:
                    f.write(f"{{t.global_step}}\\n")
                if slow:
                    time.sleep(0.15)
        def step(model, batch):
            x, y, i = batch
            with open(out + f"/ids-{{int(resume)}}.txt", "a") as f:
                f.write(",".join(map(str, i.tolist())) + "\\n")
            o = model(x)
            return nn.functional.cross_entropy(o, y), o, y
        torch.manual_seed(0)
        model = nn.Linear(3, 10)
        loader = StreamLoader(ShardStream({str(folder)!r}, shuffle_buffer=32, seed=4, with_ids=True), batch_size=16, workers=2)
        t = Trainer(model, torch.optim.SGD(model.parameters(), lr=1e-3), max_epochs=3, step=step, device="cpu",
                    callbacks=[Log(), ModelCheckpoint(out + "/ckpt", every_n_steps=1)])
        t.fit(loader, resume=resume)
        torch.save(model.state_dict(), out + "/final.pt")
    """))
    env = {**os.environ, "DLR_PROGRESS": "0"}
    ref, run = tmp_path / "ref", tmp_path / "run"
    ref.mkdir(), run.mkdir()
    subprocess.run([sys.executable, str(script), str(ref), "0", "0"], check=True, env=env, timeout=120)
    p = subprocess.Popen([sys.executable, str(script), str(run), "0", "1"], env=env)
    import time
    deadline = time.time() + 60
    while time.time() < deadline:
        steps = (run / "steps.txt").read_text().split() if (run / "steps.txt").exists() else []
        if len(steps) >= 20:  # mid-epoch 2 (15 batches per epoch)
            break
        time.sleep(0.05)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    subprocess.run([sys.executable, str(script), str(run), "1", "0"], check=True, env=env, timeout=120)
    ref_ids = (ref / "ids-0.txt").read_text().split()
    resumed = (run / "ids-1.txt").read_text().split()
    # The resumed run continues mid-run (after the killed run's last checkpoint) with the reference's batches.
    assert 0 < len(resumed) < len(ref_ids) - 15
    assert resumed == ref_ids[-len(resumed):]
    a, b = torch.load(ref / "final.pt"), torch.load(run / "final.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_damaged_shards_are_named(tmp_path):
    folder = make_shards(tmp_path, n=40, shards=4)
    index = read_index(folder)
    verify_shards(index)
    victim = folder / index.files[2]
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(DataError, match=index.files[2]):
        verify_shards(index)
    with pytest.raises(DataError, match=f"shard .*{index.files[2]}"):
        list(StreamLoader(ShardStream(folder, shuffle=False), 8))
    victim.write_bytes(b"\0" * 512 + data[512:])  # first header destroyed
    with pytest.raises(DataError, match=index.files[2]):
        list(StreamLoader(ShardStream(folder, shuffle=False), 8))
    (folder / "index.json").write_text("{not json")
    with pytest.raises(DataError, match="index.json"):
        ShardStream(folder)


def test_prepare_is_atomic_and_validates(tmp_path, monkeypatch):
    folder = make_shards(tmp_path, n=30, shards=3)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    import dlroadmap.data.pipeline as pipeline

    calls = {"n": 0}
    real = pipeline._npy_bytes

    def failing(a):
        calls["n"] += 1
        if calls["n"] > 20:
            raise OSError("disk full")
        return real(a)

    monkeypatch.setattr(pipeline, "_npy_bytes", failing)
    with pytest.raises(OSError):
        write_shards(folder, np.zeros((30, 3), np.float32), np.zeros(30, int), 3, name="toy")
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # the old shards, untouched
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary folder left
    with pytest.raises(UserError, match="shards"):
        write_shards(tmp_path / "x", np.zeros((3, 1)), np.zeros(3), 5, name="x")


def test_webdataset_reads_our_shards(tmp_path):
    """The layout is WebDataset's: its own reader sees our samples, keys and labels."""
    import webdataset as wds

    folder = make_shards(tmp_path, n=25, shards=2)
    index = read_index(folder)
    urls = [str(folder / f) for f in index.files]
    got = {}
    for sample in wds.WebDataset(urls, shardshuffle=False, empty_check=False).decode():
        got[int(sample["__key__"])] = (sample["input.npy"], sample["cls"])
    assert sorted(got) == list(range(25))
    for i, (x, label) in got.items():
        assert np.array_equal(x, np.arange(3 * i, 3 * i + 3, dtype=np.float32)) and label == i % 10
