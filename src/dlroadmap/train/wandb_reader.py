"""Read the history back from a W&B offline run file (run-*.wandb).

The file is a LevelDB-style log: a 7-byte header (":W&B", magic, version), then 32 KiB blocks of
records, each with a 7-byte header (crc32, length, type: 1 full, 2 first, 3 middle, 4 last),
whose payloads are protobuf `Record` messages from wandb.proto. Every chunk's CRC is checked
(zlib's CRC-32 of the payload, seeded with the CRC of its type byte, as W&B writes it), so a
damaged file is reported, never silently misread. wandb 0.31 ships no Python reader of these
files any more (its Go core reads them), hence this one; the protobuf schema is wandb's own.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

BLOCK = 32 * 1024
TYPE_CRC = {t: zlib.crc32(bytes([t])) for t in (1, 2, 3, 4)}


def records(path: Path) -> list[bytes]:
    data = Path(path).read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path} is not a W&B run file")
    pos, pending, out = 7, b"", []
    while pos + 7 <= len(data):
        left = BLOCK - pos % BLOCK
        if left < 7:  # block trailer: padding
            pos += left
            continue
        crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if length == 0 and kind == 0:
            pos += left
            continue
        chunk = data[pos + 7:pos + 7 + length]
        if kind not in TYPE_CRC or len(chunk) < length or zlib.crc32(chunk, TYPE_CRC[kind]) != crc:
            raise ValueError(f"{path}: damaged record at byte {pos} (bad type, length or checksum)")
        pos += 7 + length
        if kind == 1:
            out.append(chunk)
        elif kind == 2:
            pending = chunk
        elif kind == 3:
            pending += chunk
        elif kind == 4:
            out.append(pending + chunk)
            pending = b""
    return out


def record_types(path: Path) -> list[str]:
    from wandb.proto import wandb_internal_pb2 as pb

    kinds = []
    for raw in records(path):
        rec = pb.Record()
        rec.ParseFromString(raw)
        kinds.append(rec.WhichOneof("record_type"))
    return kinds


def wait_complete(run_dir: Path, timeout: float = 30.0) -> bool:
    """True once the run file ends with its `exit` record. wandb's service process writes the file;
    `run.finish()` can return before the last records reach the disk under load."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        files = list(Path(run_dir).glob("run-*.wandb"))
        try:
            if files and "exit" in record_types(files[0]):
                return True
        except (OSError, ValueError):
            pass  # not written far enough to parse yet
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)


def history(path: Path) -> list[dict]:
    from wandb.proto import wandb_internal_pb2 as pb

    rows = []
    for raw in records(path):
        rec = pb.Record()
        rec.ParseFromString(raw)
        if rec.WhichOneof("record_type") == "history":
            rows.append({item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in rec.history.item})
    return rows
