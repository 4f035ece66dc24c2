"""llmfit's GGUF reader against gguf-py's GGUFReader on files GGUFWriter writes, and on hostile files."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest
from gguf_files import write_qwen2_gguf, write_small_gguf
from model_files import write_gguf

from llmfit.readers.config import ModelFileError
from llmfit.readers.gguf_reader import GGML_TYPES, LLAMA_FILE_TYPES, SkippedArray, read_gguf

V = gguf.GGUFValueType


def assert_agrees(path: Path) -> None:
    """Every metadata value, skipped array and tensor info equals what GGUFReader reads."""
    ours = read_gguf(path)
    theirs = gguf.GGUFReader(str(path))
    fields = {k: f for k, f in theirs.fields.items() if not k.startswith("GGUF.")}
    assert list(ours.metadata) == list(fields)
    for key, field in fields.items():
        value = ours.metadata[key]
        if isinstance(value, SkippedArray):
            assert field.types[0] == V.ARRAY and value.type == field.types[-1].name
            assert value.count == len(field.data), key
        else:
            assert value == field.contents(), key
    assert ours.alignment == theirs.alignment and ours.data_offset == theirs.data_offset
    assert len(ours.tensors) == len(theirs.tensors)
    for mine, ref in zip(ours.tensors, theirs.tensors, strict=True):
        assert mine.name == ref.name
        assert mine.shape == tuple(int(d) for d in ref.shape)
        assert mine.type_name == ref.tensor_type.name and mine.type_id == int(ref.tensor_type)
        assert (mine.n_elements, mine.n_bytes) == (int(ref.n_elements), int(ref.n_bytes))
        assert ours.data_offset + mine.offset == ref.data_offset


def test_type_tables_are_gguf_py_s() -> None:
    assert {t.value: (t.name, *gguf.GGML_QUANT_SIZES[t]) for t in gguf.GGMLQuantizationType} == GGML_TYPES
    assert {t.value: t.name for t in gguf.LlamaFileType} == LLAMA_FILE_TYPES


@pytest.fixture(scope="module")
def vocab_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # The 152,064-token vocabulary of Qwen2.5 and its 771 tensors (tiny: 32 floats each). Tokens only:
    # GGUFReader needs seconds per 100k array elements; token types and merges are held to it on a
    # smaller file below.
    return write_qwen2_gguf(tmp_path_factory.mktemp("gguf") / "vocab.gguf", tiny=True, merges=False,
                            token_types=False)


def test_agrees_with_gguf_py_on_a_real_sized_vocabulary(vocab_file: Path) -> None:
    assert_agrees(vocab_file)
    ours = read_gguf(vocab_file)
    assert ours.metadata["tokenizer.ggml.tokens"] == SkippedArray("STRING", 152064)
    assert len(ours.tensors) == 64 * 12 + 3


def test_agrees_on_merges_small_arrays_and_many_tensors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Arrays over 2,500 elements skipped here (65,536 by default) so a small file takes the skip paths.
    monkeypatch.setattr("llmfit.readers.gguf_reader.KEEP_ARRAY_ELEMENTS", 2500)
    path = write_qwen2_gguf(tmp_path / "m.gguf", layers=2, vocab=3000, tiny=True, extra_tensors=3000)
    assert_agrees(path)
    metadata = read_gguf(path).metadata
    merges = metadata["tokenizer.ggml.merges"]
    assert len(merges) == 2000 and merges[:2] == ["tok0 tok1\u0120", "tok1\u0120 tok2\u0120\u0120"]
    assert metadata["tokenizer.ggml.token_type"] == SkippedArray("INT32", 3000)
    assert metadata["tokenizer.ggml.tokens"] == SkippedArray("STRING", 3000)


def test_agrees_on_every_value_type_and_quantized_tensors(tmp_path: Path) -> None:
    metadata: dict[str, tuple[Any, Any]] = {
        "t.u8": (7, V.UINT8), "t.i8": (-7, V.INT8), "t.u16": (65535, V.UINT16), "t.i16": (-300, V.INT16),
        "t.u32": (2**32 - 1, V.UINT32), "t.i32": (-(2**31), V.INT32), "t.f32": (0.1, V.FLOAT32),
        "t.bool": (True, V.BOOL), "t.str": ("héllo", V.STRING), "t.u64": (2**64 - 1, V.UINT64),
        "t.i64": (-(2**63), V.INT64), "t.f64": (1e300, V.FLOAT64),
        "t.per_layer": ([8, 8, 4, 4], V.ARRAY), "t.strings": (["a", "", "ccc"], V.ARRAY),
        "t.floats": ([0.5, 1.5], V.ARRAY), "t.bools": ([True, False], V.ARRAY), "t.empty": ([], V.ARRAY),
    }
    tensors = {"a": np.zeros((3, 5), np.float32), "b": np.zeros((7,), np.float16), "c": np.zeros((2, 2, 2), np.int8)}
    assert_agrees(write_small_gguf(tmp_path / "types.gguf", metadata, tensors))
    plain, q8 = tmp_path / "tiny.gguf", tmp_path / "tiny-q8.gguf"
    write_gguf(plain)
    write_gguf(q8, quantized="Q8_0")
    assert_agrees(plain)
    assert_agrees(q8)


def test_big_endian_file(tmp_path: Path) -> None:
    path = tmp_path / "be.gguf"
    writer = gguf.GGUFWriter(str(path), "llama", endianess=gguf.GGUFEndian.BIG)
    writer.add_block_count(2)
    writer.add_array("t.list", [1, 2, 3])
    writer.add_tensor("x", np.zeros((4, 32), np.float32).byteswap().view(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    assert read_gguf(path).byte_order == ">"
    assert_agrees(path)


# ------------------------------------------------------------------------------------------ hostile files


def header(version: int = 3, tensors: int = 0, kvs: int = 0) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", version, tensors, kvs)


def kv(key: str, vtype: int, payload: bytes) -> bytes:
    return struct.pack("<Q", len(key)) + key.encode() + struct.pack("<I", vtype) + payload


def refused(tmp_path: Path, data: bytes, match: str) -> None:
    path = tmp_path / "h.gguf"
    path.write_bytes(data)
    with pytest.raises(ModelFileError, match=match):
        read_gguf(path)


def test_array_claiming_2_60_elements_is_refused_before_allocating(tmp_path: Path) -> None:
    # The fuzz run's 90-byte file: one array of 2**60 uint8 elements.
    data = header(kvs=1) + kv("tokenizer.ggml.tokens", 9, struct.pack("<IQ", 0, 2**60))
    data += b"\0" * (90 - len(data))
    assert len(data) == 90
    refused(tmp_path, data, "element count 1,152,921,504,606,846,976 cannot fit")
    strings = header(kvs=1) + kv("tokenizer.ggml.tokens", 9, struct.pack("<IQ", 8, 2**60))
    refused(tmp_path, strings, "cannot fit")


@pytest.mark.parametrize(("data", "match"), [
    (b"GGML" + b"\0" * 40, "no GGUF magic"),
    (header(version=1) + b"\0" * 8, "version 1"),
    (header(tensors=2**40), "tensor count .* over the limit"),
    (header(tensors=1000), "tensor count 1,000 cannot fit"),
    (header(kvs=2**62), "metadata count .* over the limit"),
    (header(kvs=1) + struct.pack("<Q", 2**63) + b"x" * 16, "truncated"),
    (header(kvs=1) + kv("k", 13, b"\0" * 8), "unknown value type 13"),
    (header(kvs=1) + kv("k", 7, b"\x02"), "bool of value 2"),
    (header(kvs=1) + kv("k", 9, struct.pack("<IQ", 42, 1)), "unknown element type 42"),
    (header(kvs=2) + kv("k", 4, b"\0" * 4) + kv("k", 4, b"\0" * 4), "duplicate metadata key"),
    (header(kvs=1) + kv("general.alignment", 4, struct.pack("<I", 24)), "power of two"),
    (header(kvs=1) + kv("general.alignment", 8, struct.pack("<Q", 2) + b"32"), "power of two"),
    (header(kvs=1) + kv("k", 9, struct.pack("<IQ", 9, 1) + struct.pack("<IQ", 9, 1) + struct.pack("<IQ", 9, 1)
                       + struct.pack("<IQ", 4, 0)) + b"\0" * 16, "deeper than 3"),
])
def test_malformed_headers(tmp_path: Path, data: bytes, match: str) -> None:
    refused(tmp_path, data, match)


def tensor_info(name: str, dims: list[int], type_id: int = 0, offset: int = 0) -> bytes:
    out = struct.pack("<Q", len(name)) + name.encode() + struct.pack("<I", len(dims))
    out += b"".join(struct.pack("<q", d) for d in dims)
    return out + struct.pack("<IQ", type_id, offset)


@pytest.mark.parametrize(("info", "match"), [
    (tensor_info("x" * 64, [1]), "over the limit of 63"),
    (tensor_info("x", [1] * 5), "5 dimensions"),
    (tensor_info("x", [-1]), "negative dimension"),
    (tensor_info("x", [2**62, 2**62]), "overflows int64"),
    (tensor_info("x", [32], type_id=4), "unknown ggml type 4"),
    (tensor_info("x", [33], type_id=2), "not a multiple of Q4_0's block of 32"),
    (tensor_info("x", [8], offset=3), "not a multiple of the alignment"),
    (tensor_info("x", [2**40]), "past the end of the file"),
    (tensor_info("x", [1]) + tensor_info("x", [1], offset=32), "duplicate tensor"),
])
def test_malformed_tensor_infos(tmp_path: Path, info: bytes, match: str) -> None:
    count = 2 if "duplicate" in match else 1
    refused(tmp_path, header(tensors=count) + info + b"\0" * 64, match)


def test_every_truncation_is_one_clear_error(tmp_path: Path) -> None:
    source = tmp_path / "whole.gguf"
    write_small_gguf(source, {"t.name": ("x" * 40, V.STRING), "t.list": ([1, 2, 3], V.ARRAY),
                              "t.strs": (["ab"] * 5, V.ARRAY)}, {"w": np.zeros((4, 32), np.float32)})
    data = source.read_bytes()
    cut = tmp_path / "cut.gguf"
    for end in range(0, len(data) - 1, 3):
        cut.write_bytes(data[:end])
        with pytest.raises(ModelFileError):
            read_gguf(cut)


def test_not_a_regular_file(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="not a regular file"):
        read_gguf(tmp_path)
    with pytest.raises(ModelFileError, match="cannot read"):
        read_gguf(tmp_path / "missing.gguf")


# ------------------------------------------------------------------------------------------ through the CLI


def llama_metadata(**override: tuple[Any, Any]) -> dict[str, tuple[Any, Any]]:
    base: dict[str, tuple[Any, Any]] = {
        "llama.block_count": (2, V.UINT32), "llama.context_length": (4096, V.UINT32),
        "llama.embedding_length": (64, V.UINT32), "llama.feed_forward_length": (128, V.UINT32),
        "llama.attention.head_count": (4, V.UINT32), "llama.attention.head_count_kv": (2, V.UINT32),
    }
    return base | override


def one_error_line(run: Any, *words: str) -> None:
    assert run.exit_code == 2, (run.stdout, run.stderr)
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), run.stderr
    for word in words:
        assert word in lines[0], lines[0]
    assert "Traceback" not in run.stderr and run.stdout == ""


@pytest.mark.parametrize(("key", "value", "word"), [
    ("llama.block_count", ("32", V.STRING), "llama.block_count must be a number"),
    ("llama.attention.head_count_kv", ("8", V.STRING), "llama.attention.head_count_kv must be a number"),
    ("llama.attention.key_length", ("128", V.STRING), "llama.attention.key_length"),
    ("llama.embedding_length", (["64"], V.ARRAY), "llama.embedding_length must be a number"),
])
def test_metadata_of_the_wrong_type_is_bad_input(tmp_path: Path, cli: Any, key: str, value: tuple[Any, Any],
                                                 word: str) -> None:
    path = write_small_gguf(tmp_path / "wrong.gguf", llama_metadata(**{key: value}),
                            {"token_embd.weight": np.zeros((256, 64), np.float16)})
    one_error_line(cli("fit", str(path), "--gpu", "a100-80"), word)


def test_architecture_that_is_not_a_string(tmp_path: Path, cli: Any) -> None:
    path = tmp_path / "arch.gguf"
    path.write_bytes(header(kvs=1) + kv("general.architecture", 4, struct.pack("<I", 7)))
    one_error_line(cli("kv", str(path)), "general.architecture must be a string")


def test_hostile_files_exit_2_with_one_line(tmp_path: Path, cli: Any) -> None:
    huge = tmp_path / "huge.gguf"
    data = header(kvs=1) + kv("tokenizer.ggml.tokens", 9, struct.pack("<IQ", 0, 2**60))
    huge.write_bytes(data + b"\0" * (90 - len(data)))
    one_error_line(cli("fit", str(huge), "--gpu", "a100-80"), "cannot fit")
    truncated = tmp_path / "cut.gguf"
    write_gguf(truncated)
    truncated.write_bytes(truncated.read_bytes()[:-100])
    one_error_line(cli("fit", str(truncated), "--gpu", "a100-80"), "truncated")


@pytest.mark.parametrize("name", ["m-00001-of-00000.gguf", "m-00003-of-00002.gguf", "m-00000-of-00002.gguf"])
def test_impossible_split_names(tmp_path: Path, cli: Any, name: str) -> None:
    path = tmp_path / name
    write_gguf(path)
    one_error_line(cli("fit", str(path), "--gpu", "a100-80"), "split GGUF name")

