"""GGUF, llama.cpp's model file, read from scratch: the header, the metadata, the tensor table and the
quantised weights.

A GGUF file (version 2 or 3) is little-endian and laid out as

    magic b"GGUF" | version u32 | tensor count u64 | metadata count u64
    metadata       key: string | value type u32 | value
                   string = length u64 + UTF-8 bytes;  array = item type u32 | count u64 | the items
    tensor table   name: string | n_dims u32 | n_dims x u64 (fastest-varying dimension first) | ggml type u32 | offset u64
    padding to `general.alignment` (32 when absent), then the data: each tensor at data start + its offset

The weights of a quantised model are stored in blocks of 32, each with its own float16 scale d (and, for
Q4_1, a float16 minimum m), so 4-bit codes cost 4.5-5 bits a weight:

    Q8_0   d, 32 int8 codes q                     w = d * q
    Q4_0   d, 16 bytes of 4-bit codes             w = d * (q - 8)
    Q4_1   d, m, 16 bytes of 4-bit codes          w = d * q + m
           a byte's low nibble holds weight j of the block, its high nibble weight j + 16

F32, F16 and BF16 tensors are stored as they are. De-quantisation runs in float32 with one multiply and one
add, as llama.cpp's reference code (and the `gguf` package) does, so the weights come out bit for bit the
same (tests/test_gguf.py checks this against `gguf.GGUFReader` on SmolLM2's file).

The file is memory-mapped: reading the header touches only its first few megabytes (SmolLM2's vocabulary
and merges, ~100k strings), and a tensor's bytes are read when it is asked for.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32

# metadata value types, the GGUF spec's numbering: uint8, int8, uint16, int16, uint32, int32, float32, bool, (string),
# (array), uint64, int64, float64, as struct formats
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
STRING, ARRAY = 8, 9

# ggml tensor types read here: id -> (name, weights per block, bytes per block)
GGML_TYPES = {0: ("F32", 1, 4), 1: ("F16", 1, 2), 2: ("Q4_0", 32, 18), 3: ("Q4_1", 32, 20), 8: ("Q8_0", 32, 34), 30: ("BF16", 1, 2)}


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]       # PyTorch's order, slowest-varying first (the file lists the dimensions the other way)
    type_id: int                 # ggml type
    offset: int                  # from the start of the file

    @property
    def type_name(self) -> str:
        return GGML_TYPES.get(self.type_id, (f"ggml type {self.type_id}",))[0]


class _Cursor:
    """Reads little-endian values one after another from a buffer."""

    def __init__(self, buf, path: Path):
        self.buf, self.pos, self.path = buf, 0, path

    def unpack(self, fmt: str):
        try:
            values = struct.unpack_from(fmt, self.buf, self.pos)
        except struct.error:
            raise ValueError(f"{self.path}: truncated GGUF file (its header ends at byte {self.pos})") from None
        self.pos += struct.calcsize(fmt)
        return values[0] if len(values) == 1 else values

    def string(self) -> str:
        n = self.unpack("<Q")
        if self.pos + n > len(self.buf):
            raise ValueError(f"{self.path}: truncated GGUF file (a string of {n} bytes at byte {self.pos})")
        s = self.buf[self.pos:self.pos + n].decode("utf-8", errors="replace")
        self.pos += n
        return s

    def value(self, kind: int) -> Any:
        if kind == STRING:
            return self.string()
        if kind == ARRAY:
            item, count = self.unpack("<IQ")
            if item in _SCALARS:                          # numbers in one read: (count,) array
                dtype = np.dtype(_SCALARS[item])          # struct's "<I" is NumPy's little-endian uint32 too
                end = self.pos + count * dtype.itemsize
                if end > len(self.buf):
                    raise ValueError(f"{self.path}: truncated GGUF file (an array of {count} items at byte {self.pos})")
                arr = np.frombuffer(self.buf[self.pos:end], dtype=dtype)
                self.pos = end
                return arr
            return [self.value(item) for _ in range(count)]   # strings (a vocabulary) or nested arrays
        if kind in _SCALARS:
            return self.unpack(_SCALARS[kind])
        raise ValueError(f"{self.path}: unknown GGUF metadata type {kind} at byte {self.pos}")


class GGUFFile:
    """A GGUF file's metadata (key -> value) and tensor table; `array(name)` de-quantises one tensor to float32."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        with open(self.path, "rb") as f:
            self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        cur = _Cursor(self._map, self.path)
        if self._map[:4] != MAGIC:
            raise ValueError(f"{self.path} is not a GGUF file (it starts with {bytes(self._map[:4])!r}, not b'GGUF')")
        cur.pos = 4
        self.version = cur.unpack("<I")
        if self.version not in (2, 3):
            raise ValueError(f"{self.path}: GGUF version {self.version}; versions 2 and 3 are read here")
        n_tensors, n_meta = cur.unpack("<QQ")
        self.metadata: dict[str, Any] = {}
        for _ in range(n_meta):
            key = cur.string()
            self.metadata[key] = cur.value(cur.unpack("<I"))
        table = []
        for _ in range(n_tensors):
            name = cur.string()
            dims = cur.unpack(f"<{cur.unpack('<I')}Q")
            dims = (dims,) if isinstance(dims, int) else dims
            type_id, offset = cur.unpack("<IQ")
            table.append((name, tuple(reversed(dims)), type_id, offset))
        align = int(self.metadata.get("general.alignment", DEFAULT_ALIGNMENT))
        self.data_start = -(-cur.pos // align) * align      # the header padded up to a multiple of the alignment
        self.tensors = {name: TensorInfo(name, shape, type_id, self.data_start + offset) for name, shape, type_id, offset in table}

    def raw(self, name: str) -> np.ndarray:
        """The tensor's stored bytes, (n_blocks, bytes per block) uint8, a view of the mapped file."""
        info = self.tensors[name]
        if info.type_id not in GGML_TYPES:
            raise ValueError(f"{self.path}: tensor {name} is stored as {info.type_name}, which is not read here "
                             f"(read: {', '.join(t[0] for t in GGML_TYPES.values())})")
        _, per_block, block_bytes = GGML_TYPES[info.type_id]
        n = int(np.prod(info.shape, dtype=np.int64))
        blocks = n // per_block
        if info.offset + blocks * block_bytes > len(self._map):
            raise ValueError(f"{self.path}: truncated GGUF file (tensor {name} runs past its end)")
        return np.frombuffer(self._map, dtype=np.uint8, count=blocks * block_bytes, offset=info.offset).reshape(blocks, block_bytes)

    def array(self, name: str) -> np.ndarray:
        """The tensor de-quantised to float32, in its shape (PyTorch order)."""
        info = self.tensors[name]
        return dequantize(self.raw(name), info.type_name).reshape(info.shape)

    def close(self) -> None:
        try:
            self._map.close()
        except BufferError:        # an array from raw() still views the file: the map closes when it is freed
            pass

    def __enter__(self) -> "GGUFFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _half(col: np.ndarray) -> np.ndarray:
    """Two bytes per row -> that row's float16 as float32, (n_blocks, 1)."""
    return np.ascontiguousarray(col).view("<f2").astype(np.float32)


def dequantize(blocks: np.ndarray, kind: str) -> np.ndarray:
    """(n_blocks, bytes per block) uint8 -> the weights as a flat float32 array."""
    if kind == "F32":
        return blocks.reshape(-1).view("<f4").copy()
    if kind == "F16":
        return blocks.reshape(-1).view("<f2").astype(np.float32)
    if kind == "BF16":                                    # bfloat16 is float32's upper half
        return (blocks.reshape(-1).view("<u2").astype(np.uint32) << 16).view(np.float32)
    if kind == "Q8_0":
        d = _half(blocks[:, :2])
        q = np.ascontiguousarray(blocks[:, 2:]).view(np.int8).astype(np.float32)        # (n_blocks, 32)
        return (d * q).reshape(-1)
    # 4-bit codes: weights 0-15 of a block in the low nibbles, 16-31 in the high ones
    packed = blocks[:, 4:] if kind == "Q4_1" else blocks[:, 2:]                          # (n_blocks, 16)
    q = np.concatenate([packed & 0x0F, packed >> 4], axis=1)                            # (n_blocks, 32)
    d = _half(blocks[:, :2])
    if kind == "Q4_0":
        return (d * (q.astype(np.int8) - np.int8(8)).astype(np.float32)).reshape(-1)
    if kind == "Q4_1":
        return (d * q.astype(np.float32) + _half(blocks[:, 2:4])).reshape(-1)
    raise ValueError(f"cannot de-quantise {kind}")
