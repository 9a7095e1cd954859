"""Streaming a dataset from shards: the input pipeline of training that outgrows memory.

Format: tar shards in the WebDataset layout. Each sample is a group of tar members sharing a key
(`000042.input.npy`, `000042.cls`); a shard is a plain tar file, read front to back. Why this
format: a tar stream needs no index and no random access, so the same reader works on a local
disk, a network file system or an object store (HTTP range-free), the layout is read by the
`webdataset` library and by `tar` itself, and writing it needs only the standard library. A
columnar format (Parquet/Arrow) is the better choice for random access and column queries; a
training stream reads every sample once per epoch in a shuffled order, which is what tar serves.

    prepare_shards("digits", out, shards=8)       # NAME-00000.tar ... + index.json, atomically
    stream = ShardStream(out, shuffle_buffer=512, seed=0)
    loader = StreamLoader(stream, batch_size=64, workers=2)   # torch DataLoader workers
    for x, y in loader.iter_from(0): ...          # the Trainer's resumable-loader protocol

Who reads what, exactly once per epoch: the epoch's shard order is a seeded permutation; the
shards, in that order, form one stream of N samples. Rank r of R gets a contiguous range of it
(sizes differ by at most one), and worker w of W a contiguous range of its rank's range. So any
number of shards works with any R x W (a shard may be split between consumers), every sample
goes to exactly one consumer, and a consumer opens only the shards its range touches. Each
consumer then mixes its samples through a shuffle buffer seeded by (seed, epoch, rank, worker);
augmentation draws from a generator seeded by (seed, epoch, sample id), so a sample's
augmentation does not depend on who reads it or when.
"""

from __future__ import annotations

import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from dlroadmap.errors import DataError, UserError
from dlroadmap.io import atomic_dir, file_hash, write_json

INDEX = "index.json"
Transform = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


# --- writing ---------------------------------------------------------------------------------


def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0  # same data -> byte-identical shards (a shard's sha256 then identifies its content)
    tar.addfile(info, io.BytesIO(data))


def write_shards(out: str | Path, X: np.ndarray, y: np.ndarray, shards: int, *, name: str, meta: dict[str, Any] | None = None) -> Path:
    """Write X (N, ...) and integer labels y (N,) as `shards` tar shards plus index.json in folder `out`.

    The whole folder is built beside `out` and renamed into place when complete: an interrupted
    prepare leaves the previous folder (or none), never a half-written shard that looks valid.
    """
    if shards < 1:
        raise UserError(f"--shards must be >= 1, got {shards}")
    if shards > len(X):
        raise UserError(f"{shards} shards for {len(X)} samples would leave shards empty; use --shards {len(X)} or fewer")
    out = Path(out)
    with atomic_dir(out) as tmp:
        entries = []
        for s, idx in enumerate(np.array_split(np.arange(len(X)), shards)):
            file = f"{name}-{s:05d}.tar"
            with tarfile.open(tmp / file, "w") as tar:
                for i in idx:  # the key is the sample's global id: readers report it, tests count it
                    _add(tar, f"{i:08d}.input.npy", _npy_bytes(np.ascontiguousarray(X[i])))
                    _add(tar, f"{i:08d}.cls", str(int(y[i])).encode())
            entries.append({"file": file, "samples": int(len(idx)), "first": int(idx[0]), "sha256": file_hash(tmp / file)})
        write_json(tmp / INDEX, {"name": name, "samples": int(len(X)), "shape": list(X.shape[1:]), "dtype": str(X.dtype),
                                 "shards": entries, **(meta or {})})
    return out


def prepare_shards(name: str, out: str | Path, shards: int, *, seed: int = 0) -> Path:
    """`dlr data prepare NAME --shards N`: the training split of a dataset, standardised as the
    experiments see it (data.prepare.classification_tensors), written as shards."""
    from dlroadmap.data.prepare import classification_tensors

    t = classification_tensors(name, seed=seed)
    X = t.X_train.reshape(len(t.X_train), *t.shape).numpy()
    return write_shards(out, X, t.y_train.numpy(), shards, name=name, meta={"classes": list(map(str, t.classes)), "seed": seed})


# --- reading ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShardIndex:
    folder: Path
    files: list[str]
    counts: list[int]
    firsts: list[int]
    sha256: list[str]
    shape: tuple[int, ...]
    meta: dict[str, Any]

    @property
    def samples(self) -> int:
        return sum(self.counts)


def read_index(folder: str | Path) -> ShardIndex:
    folder = Path(folder)
    path = folder / INDEX
    if not path.is_file():
        raise DataError(f"no {INDEX} in {folder}: write the shards with `dlr data prepare NAME --shards N --out {folder}`")
    try:
        meta = json.loads(path.read_text())
        shards = meta["shards"]
        return ShardIndex(folder, [s["file"] for s in shards], [int(s["samples"]) for s in shards], [int(s["first"]) for s in shards],
                          [s["sha256"] for s in shards], tuple(meta["shape"]), meta)
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise DataError(f"{path} is unreadable ({type(e).__name__}: {e}); prepare the shards again") from None


def verify_shards(index: ShardIndex) -> None:
    """Check every shard against its sha256 (a full read: `dlr data verify` and tests, not every epoch)."""
    for file, digest in zip(index.files, index.sha256):
        path = index.folder / file
        if not path.is_file():
            raise DataError(f"shard {path} is missing; prepare the shards again")
        if file_hash(path) != digest:
            raise DataError(f"shard {path} does not match its sha256 in {INDEX}: it is corrupt or was modified; prepare the shards again")


def read_shard(path: Path, expected: int, start: int = 0, stop: int | None = None) -> Iterator[tuple[int, np.ndarray, int]]:
    """(sample id, input, label) for samples [start, stop) of one shard, streamed (tar mode 'r|').

    A truncated or damaged shard raises DataError naming it, instead of silently ending an epoch early.
    """
    stop = expected if stop is None else stop
    pos, key, x, label = 0, None, None, None
    try:
        with tarfile.open(path, "r|") as tar:
            for member in tar:
                k, _, field = member.name.partition(".")
                if key is not None and k != key:  # a new key: the previous sample is complete
                    if start <= pos < stop:
                        yield _sample(path, key, x, label)
                    pos += 1
                    if pos >= stop:
                        return
                    x, label = None, None
                key = k
                if pos < start:
                    continue  # skipped samples are never decoded (their bytes are still read past)
                data = tar.extractfile(member).read()
                if field == "input.npy":
                    x = np.load(io.BytesIO(data), allow_pickle=False)
                elif field == "cls":
                    label = int(data)
            if key is not None:
                if start <= pos < stop:
                    yield _sample(path, key, x, label)
                pos += 1
    except (tarfile.TarError, EOFError, ValueError, OSError) as e:
        raise DataError(f"shard {path} is corrupt or truncated ({type(e).__name__}: {e}); prepare the shards again") from None
    if pos < min(stop, expected):
        raise DataError(f"shard {path} holds {pos} samples, its index says {expected}: it is truncated; prepare the shards again")


def _sample(path: Path, key: str, x: np.ndarray | None, label: int | None) -> tuple[int, np.ndarray, int]:
    if x is None or label is None:
        raise DataError(f"shard {path}: sample {key} lacks its {'input' if x is None else 'label'}; the shard is damaged, prepare it again")
    return int(key), x, label


# --- who reads what --------------------------------------------------------------------------


def split_range(lo: int, hi: int, parts: int, part: int) -> tuple[int, int]:
    """Part `part` of `parts` contiguous pieces of [lo, hi), sizes differing by at most one."""
    n = hi - lo
    base, extra = divmod(n, parts)
    a = lo + part * base + min(part, extra)
    return a, a + base + (1 if part < extra else 0)


def shard_order(n_shards: int, seed: int, epoch: int, shuffle: bool) -> list[int]:
    if not shuffle:
        return list(range(n_shards))
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n_shards, generator=g).tolist()


def consumer_plan(counts: list[int], order: list[int], rank: int, world: int, worker: int, workers: int) -> list[tuple[int, int, int]]:
    """[(shard, start, stop)] that consumer (rank, worker) reads: its range of the epoch's stream."""
    lo, hi = split_range(0, sum(counts), world, rank)
    lo, hi = split_range(lo, hi, workers, worker)
    plan, pos = [], 0
    for s in order:
        a, b = max(lo, pos), min(hi, pos + counts[s])
        if a < b:
            plan.append((s, a - pos, b - pos))
        pos += counts[s]
    return plan


class ShardStream(IterableDataset):
    """The samples of one rank, as an IterableDataset for torch's DataLoader (which runs it in each worker)."""

    def __init__(self, folder: str | Path, *, shuffle_buffer: int = 1024, shuffle: bool = True, seed: int = 0,
                 rank: int = 0, world: int = 1, transform: Transform | None = None, with_ids: bool = False):
        self.index = read_index(folder)
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} outside world size {world}")
        self.shuffle_buffer, self.shuffle, self.seed = shuffle_buffer, shuffle, seed
        self.rank, self.world, self.transform, self.with_ids = rank, world, transform, with_ids
        self.epoch = 0
        self.skip: dict[int, int] = {}  # consumer -> samples it had delivered this epoch (set when resuming)
        self.rotate = 0  # DataLoader worker w plays consumer (w + rotate) % W: a resumed loader starts at the right one

    def shard(self, rank: int, world: int) -> "ShardStream":
        other = ShardStream.__new__(ShardStream)
        other.__dict__.update(self.__dict__, rank=rank, world=world, skip={}, rotate=0)
        return other

    def consumer_sizes(self, workers: int) -> list[int]:
        lo, hi = split_range(0, self.index.samples, self.world, self.rank)
        return [b - a for a, b in (split_range(lo, hi, workers, w) for w in range(workers))]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        info = get_worker_info()
        worker, workers = ((info.id + self.rotate) % info.num_workers, info.num_workers) if info is not None else (0, 1)
        order = shard_order(len(self.index.files), self.seed, self.epoch, self.shuffle)
        plan = consumer_plan(self.index.counts, order, self.rank, self.world, worker, workers)
        samples = (s for shard, a, b in plan
                   for s in read_shard(self.index.folder / self.index.files[shard], self.index.counts[shard], a, b))
        mixed = self._buffered(samples, worker) if self.shuffle and self.shuffle_buffer > 1 else samples
        for n, (i, x, label) in enumerate(mixed):
            if n < self.skip.get(worker, 0):
                continue  # delivered before the interruption: the order is replayed, the work is not redone
            xt = torch.from_numpy(x)
            if self.transform is not None:
                g = torch.Generator().manual_seed((self.seed * 1_000_003 + self.epoch) * 10_000_019 + i)
                xt = self.transform(xt, g)
            out = (xt, torch.tensor(label))
            yield out + (torch.tensor(i),) if self.with_ids else out

    def _buffered(self, samples: Iterator, worker: int) -> Iterator:
        """A shuffle buffer: hold `shuffle_buffer` samples, emit a random one as each new one arrives.
        It mixes across shard boundaries without holding the dataset in memory."""
        g = torch.Generator().manual_seed(((self.seed * 1_000_003 + self.epoch) * 1_009 + self.rank) * 1_009 + worker)
        buf: list = []
        for s in samples:
            if len(buf) < self.shuffle_buffer:
                buf.append(s)
                continue
            j = int(torch.randint(len(buf), (1,), generator=g))
            buf[j], s = s, buf[j]
            yield s
        for j in torch.randperm(len(buf), generator=g).tolist():
            yield buf[j]


def round_robin_consumed(batches: list[int], start: int) -> tuple[list[int], int]:
    """How many batches each worker had delivered when the loader had yielded `start` batches, and
    whose turn is next.

    torch's DataLoader asks its workers for batches in turn, starting at worker 0, and skips a
    worker once it is exhausted, so the order of batches is fixed by each worker's batch count."""
    done = [0] * len(batches)
    w, given = 0, 0
    while given < start:
        if done[w] < batches[w]:
            done[w] += 1
            given += 1
        w = (w + 1) % len(batches)
    return done, w


class StreamLoader:
    """Batches from a ShardStream through torch's DataLoader, resumable at any batch (the Trainer's loader protocol)."""

    def __init__(self, stream: ShardStream, batch_size: int = 64, workers: int = 0, prefetch: int = 2):
        self.stream, self.batch_size, self.workers, self.prefetch = stream, batch_size, workers, prefetch

    def shard(self, rank: int, world: int) -> "StreamLoader":
        return StreamLoader(self.stream.shard(rank, world), self.batch_size, self.workers, self.prefetch)

    def set_epoch(self, epoch: int) -> None:
        self.stream.epoch = epoch

    def _worker_batches(self) -> list[int]:
        return [-(-n // self.batch_size) for n in self.stream.consumer_sizes(max(self.workers, 1))]

    def __len__(self) -> int:
        return sum(self._worker_batches())

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        return self.iter_from(0)

    def iter_from(self, start_batch: int) -> Iterator[tuple[torch.Tensor, ...]]:
        consumed, turn = round_robin_consumed(self._worker_batches(), start_batch)
        self.stream.skip = {w: c * self.batch_size for w, c in enumerate(consumed)}
        self.stream.rotate = turn  # a fresh DataLoader starts with its worker 0: make that the consumer whose turn it is
        extra = {"prefetch_factor": self.prefetch, "persistent_workers": False} if self.workers > 0 else {}
        loader = DataLoader(self.stream, batch_size=self.batch_size, num_workers=self.workers, **extra)
        try:
            yield from loader
        finally:
            self.stream.skip, self.stream.rotate = {}, 0
