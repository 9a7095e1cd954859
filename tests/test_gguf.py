"""Our GGUF reader (models/sequence/gguf.py) against the `gguf` package's reader and writer."""

from __future__ import annotations

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")

from dlroadmap.models.sequence.gguf import GGUFFile  # noqa: E402

Q = gguf.GGMLQuantizationType


def _reference(path) -> tuple[dict, dict]:
    """gguf's own reading of a file: (metadata, name -> float32 array in PyTorch's order)."""
    r = gguf.GGUFReader(str(path))
    meta = {k: f.contents() for k, f in r.fields.items() if not k.startswith("GGUF.")}
    arrays = {t.name: gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32) for t in r.tensors}
    return meta, arrays


def _same_metadata(ours: dict, ref: dict) -> None:
    assert ours.keys() == ref.keys()
    for key, value in ref.items():
        mine = ours[key].tolist() if isinstance(ours[key], np.ndarray) else ours[key]
        if isinstance(value, float):              # gguf hands float32 metadata back as a Python float of the same value
            assert np.float32(mine) == np.float32(value), key
        else:
            assert mine == value, key


def _bit_identical(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype == np.float32 and np.array_equal(a.view(np.uint32), b.view(np.uint32))


@pytest.fixture
def written(tmp_path):
    """A GGUF file written by gguf's own writer: metadata of every common type and a tensor of each type we read."""
    rng = np.random.default_rng(0)
    path = tmp_path / "tiny.gguf"
    w = gguf.GGUFWriter(str(path), arch="llama")
    w.add_string("general.name", "tiny ünïcode")
    w.add_uint32("llama.block_count", 2)
    w.add_float32("llama.rope.freq_base", 10000.5)
    w.add_bool("tokenizer.ggml.add_bos_token", True)
    w.add_int8("test.int8", -3)
    w.add_uint64("test.uint64", 2**40 + 1)
    w.add_float64("test.float64", 0.1)
    w.add_array("tokenizer.ggml.tokens", ["<s>", "a", "bc", "", "ü"])
    w.add_array("tokenizer.ggml.token_type", [1, 2, 3, 4, 5])
    w.add_array("test.floats", [0.5, -1.25])
    original = {}
    for name, kind, shape in (("f32", Q.F32, (3, 5)), ("f16", Q.F16, (4, 8)), ("bf16", Q.BF16, (2, 64)),
                              ("q8_0", Q.Q8_0, (6, 64)), ("q4_0", Q.Q4_0, (5, 96)), ("q4_1", Q.Q4_1, (7, 32))):
        x = rng.normal(size=shape).astype(np.float32) * (1 + np.arange(shape[0], dtype=np.float32)[:, None])
        original[name] = x
        if kind == Q.F32:
            w.add_tensor(name, x)
        elif kind == Q.F16:
            w.add_tensor(name, x.astype(np.float16))
        else:
            w.add_tensor(name, gguf.quants.quantize(x, kind), raw_dtype=kind)    # (rows, bytes a row)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path, original


def test_reader_equals_gguf_on_every_type(written):
    path, original = written
    ref_meta, ref_arrays = _reference(path)
    with GGUFFile(path) as f:
        _same_metadata(f.metadata, ref_meta)
        assert f.metadata["test.uint64"] == 2**40 + 1 and f.metadata["tokenizer.ggml.add_bos_token"] is True
        assert f.metadata["tokenizer.ggml.tokens"] == ["<s>", "a", "bc", "", "ü"]
        assert [f.tensors[n].type_name for n in original] == ["F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1"]
        for name, x in original.items():
            ours = f.array(name)
            assert _bit_identical(ours, ref_arrays[name]), name
            # and near the weights that were quantised: within half a step of each block's scale
            # (4-bit codes: (max - min) / 15 or max|x| / 8; 8-bit: max|x| / 127), not merely equal to gguf's reading
            step = {"f32": 0, "f16": 1e-3, "bf16": 1e-2, "q8_0": 1 / 127, "q4_0": 1 / 8, "q4_1": 1 / 15}[name]
            blocks = np.abs(x).reshape(-1, min(32, x.size)).max(1, keepdims=True)
            err = np.abs(ours - x).reshape(blocks.shape[0], -1)
            assert (err <= step * blocks + 1e-6).all(), (name, float(err.max()))


def test_reader_errors_name_the_problem(written, tmp_path):
    path, _ = written
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGML" + path.read_bytes()[4:])
    with pytest.raises(ValueError, match="is not a GGUF file"):
        GGUFFile(bad)
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(path.read_bytes()[:200])                        # inside the metadata
    with pytest.raises(ValueError, match="truncated GGUF file"):
        GGUFFile(cut)
    data = path.read_bytes()
    with GGUFFile(path) as f:
        end = max(info.offset for info in f.tensors.values())
    short = tmp_path / "short.gguf"
    short.write_bytes(data[:end + 10])                               # the header is whole, the last tensor is not
    with GGUFFile(short) as f:
        last = max(f.tensors.values(), key=lambda t: t.offset).name
        with pytest.raises(ValueError, match=f"tensor {last} runs past its end"):
            f.array(last)


def test_reader_refuses_a_type_it_cannot_dequantise(tmp_path):
    path = tmp_path / "q5.gguf"
    w = gguf.GGUFWriter(str(path), arch="llama")
    x = np.random.default_rng(1).normal(size=(2, 32)).astype(np.float32)
    w.add_tensor("q5", gguf.quants.quantize(x, Q.Q5_0), raw_dtype=Q.Q5_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with GGUFFile(path) as f:
        assert f.tensors["q5"].shape == (2, 32)
        with pytest.raises(ValueError, match="stored as ggml type 6, which is not read here"):
            f.array("q5")


@pytest.mark.slow
def test_reader_equals_gguf_on_smollm2():
    """The real file: all 33 metadata entries (the 49,152-token vocabulary, the merges, the chat template) and all
    272 tensors (Q4_1, Q8_0, F32) bit for bit as gguf reads them."""
    from dlroadmap.nlp.llm import smollm2_path

    folder, name = smollm2_path()
    ref_meta, ref_arrays = _reference(f"{folder}/{name}")
    with GGUFFile(f"{folder}/{name}") as f:
        _same_metadata(f.metadata, ref_meta)
        assert len(f.metadata["tokenizer.ggml.tokens"]) == 49152
        assert sorted({t.type_name for t in f.tensors.values()}) == ["F32", "Q4_1", "Q8_0"]
        assert f.tensors.keys() == ref_arrays.keys()
        for name_, ref in ref_arrays.items():
            assert _bit_identical(f.array(name_), ref), name_
