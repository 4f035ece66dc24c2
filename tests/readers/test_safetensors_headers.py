"""llmfit's safetensors header reader against the safetensors library, on good and hostile files."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from model_files import make_gptq_snapshot, make_sharded_snapshot, make_snapshot
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save_file

from llmfit.readers.config import ModelFileError
from llmfit.readers.safetensors_headers import read_file_headers


def library_view(path: Path) -> list[tuple[str, str, tuple[int, ...]]]:
    with safe_open(str(path), framework="numpy") as handle:
        return sorted((name, handle.get_slice(name).get_dtype(), tuple(handle.get_slice(name).get_shape()))
                      for name in handle.keys())  # noqa: SIM118 - safe_open has keys(), not iteration


def assert_agrees(path: Path) -> None:
    ours = [(t.name, t.dtype, t.shape) for t in read_file_headers(path)]
    assert ours == library_view(path)


def raw_file(path: Path, header: Any, data: bytes = b"", *, raw: bytes | None = None) -> Path:
    text = raw if raw is not None else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)
    return path


def test_agrees_on_the_test_snapshots(tmp_path: Path) -> None:
    for name in ("plain", "sharded", "gptq"):
        (tmp_path / name).mkdir()
    folders = [make_snapshot(tmp_path / "plain"), make_sharded_snapshot(tmp_path / "sharded"),
               make_gptq_snapshot(tmp_path / "gptq")]
    files = [f for folder in folders for f in sorted(folder.glob("*.safetensors"))]
    assert len(files) >= 4
    for path in files:
        assert_agrees(path)


def test_agrees_on_every_dtype_and_odd_shapes(tmp_path: Path) -> None:
    arrays = {"f64": np.zeros((2, 3)), "f32": np.zeros((0,), np.float32), "scalar": np.zeros((), np.float16),
              "i64": np.zeros((1, 1, 1, 1, 5), np.int64), "u8": np.zeros(7, np.uint8), "b": np.zeros(3, bool),
              "i16": np.zeros(4, np.int16), "u32": np.zeros(2, np.uint32)}
    save_file(arrays, str(tmp_path / "np.safetensors"), metadata={"format": "pt"})
    assert_agrees(tmp_path / "np.safetensors")
    # dtypes numpy has no type for, written by hand: bf16, fp8, fp4 (two per byte), fp6, e8m0, complex.
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    position = 0
    for name, dtype, shape, nbytes in [("a", "BF16", [3, 2], 12), ("b", "F8_E4M3", [5], 5), ("c", "F4", [6], 3),
                                       ("d", "F6_E2M3", [4], 3), ("e", "F8_E8M0", [2], 2), ("f", "C64", [1], 8),
                                       ("g", "F8_E5M2FNUZ", [2], 2)]:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [position, position + nbytes]}
        position += nbytes
    assert_agrees(raw_file(tmp_path / "hand.safetensors", header, b"\0" * position))


def test_agrees_on_10k_tensors_out_of_order(tmp_path: Path) -> None:
    header: dict[str, Any] = {}
    for i in range(10_000):
        header[f"model.layers.{i}.weight"] = {"dtype": "F16", "shape": [2, 2], "data_offsets": [8 * i, 8 * i + 8]}
    # JSON order is not offset order (the library sorts by offsets).
    items = sorted(header.items(), key=lambda kv: kv[0][::-1])
    path = raw_file(tmp_path / "big.safetensors", dict(items), b"\0" * 80_000)
    assert_agrees(path)
    assert len(read_file_headers(path)) == 10_000


def test_padded_header_and_empty_file(tmp_path: Path) -> None:
    entry = b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
    assert_agrees(raw_file(tmp_path / "pad.safetensors", None, b"\0" * 4, raw=entry + b"    "))
    assert_agrees(raw_file(tmp_path / "lead.safetensors", None, b"\0" * 4, raw=b"  " + entry))
    assert_agrees(raw_file(tmp_path / "empty.safetensors", {}))


F32 = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}


@pytest.mark.parametrize(("header", "data", "match"), [
    ({"a": F32}, b"\0" * 9, "cover 8 bytes of a 9-byte buffer"),
    ({"a": F32}, b"\0" * 7, "cover 8 bytes of a 7-byte buffer"),
    ({"a": {**F32, "data_offsets": [0, 4]}}, b"\0" * 4, "hold 4 bytes, its shape and dtype need 8"),
    ({"a": {**F32, "shape": [1], "data_offsets": [0, 4]}, "b": {**F32, "shape": [1], "data_offsets": [8, 12]}},
     b"\0" * 12, "expected 4"),
    ({"a": {**F32, "shape": [1], "data_offsets": [0, 4]}, "b": {**F32, "shape": [1], "data_offsets": [0, 4]}},
     b"\0" * 4, "expected 4"),
    ({"a": {**F32, "shape": [-1]}}, b"\0" * 8, "non-negative integers"),
    ({"a": {**F32, "shape": [1.0]}}, b"\0" * 8, "non-negative integers"),
    ({"a": {**F32, "shape": [True]}}, b"\0" * 8, "non-negative integers"),
    ({"a": {**F32, "shape": [2**40, 2**40]}}, b"\0" * 8, "overflows"),
    ({"a": {**F32, "dtype": "XX"}}, b"\0" * 8, "unknown dtype 'XX'"),
    ({"a": {"dtype": "F4", "shape": [3], "data_offsets": [0, 2]}}, b"\0" * 2, "whole bytes"),
    ({"__metadata__": {"a": 1}, "a": F32}, b"\0" * 8, "strings to strings"),
    ({"a": [1, 2]}, b"", "expected an object"),
    ({"a": {**F32, "data_offsets": [0]}}, b"\0" * 8, r"\[begin, end\]"),
])
def test_hostile_headers_are_refused_by_both(tmp_path: Path, header: Any, data: bytes, match: str) -> None:
    path = raw_file(tmp_path / "bad.safetensors", header, data)
    with pytest.raises(ModelFileError, match=match):
        read_file_headers(path)
    with pytest.raises(SafetensorError):
        library_view(path)


@pytest.mark.parametrize(("raw", "match"), [
    (b'{"a":' * 5000 + b"1" + b"}" * 5000, "nests too deep"),
    (b'{"a":' * 50 + b"1" + b"}" * 50, "unknown dtype None"),
    (b'{"a": {"dtype": "F32", "shape": [[[[[1]]]]], "data_offsets": [0, 4]}}', "non-negative integers"),
    (b"[" * 100_000, "not a JSON object"),
    (b'{"a": {"dtype": "F32", ', "invalid JSON"),
    (b"\xff\xfe{}", "not a JSON object"),
    (b'{"\xff": 1}', "not UTF-8"),
])
def test_malformed_json(tmp_path: Path, raw: bytes, match: str) -> None:
    path = raw_file(tmp_path / "bad.safetensors", None, raw=raw)
    with pytest.raises(ModelFileError, match=match):
        read_file_headers(path)
    with pytest.raises(SafetensorError):
        library_view(path)


def test_header_length_bounds(tmp_path: Path) -> None:
    path = tmp_path / "len.safetensors"
    path.write_bytes(struct.pack("<Q", 2**63) + b"{}")
    with pytest.raises(ModelFileError, match="over the limit"):
        read_file_headers(path)
    path.write_bytes(struct.pack("<Q", 1000) + b"{}")
    with pytest.raises(ModelFileError, match="runs past the end"):
        read_file_headers(path)
    path.write_bytes(b"\1\0")
    with pytest.raises(ModelFileError, match="shorter than the 8-byte"):
        read_file_headers(path)
    with pytest.raises(ModelFileError, match="not a regular file"):
        read_file_headers(tmp_path)


def test_reading_a_header_does_not_import_numpy(tmp_path: Path) -> None:
    path = raw_file(tmp_path / "x.safetensors", {"a": F32}, b"\0" * 8)
    code = ("import sys; from pathlib import Path; from llmfit.readers.safetensors_headers import read_file_headers; "
            f"assert read_file_headers(Path({str(path)!r}))[0].shape == (2,); "
            "assert 'numpy' not in sys.modules and 'safetensors' not in sys.modules, sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.parametrize(("index", "match"), [
    ({"weight_map": {"a": "../outside.safetensors"}}, "not a file in the snapshot folder"),
    ({"weight_map": {"a": "/etc/passwd"}}, "not a file in the snapshot folder"),
    ({"weight_map": {"a": "sub\\\\x.safetensors"}}, "not a file in the snapshot folder"),
    ({"weight_map": {"a": ".."}}, "not a file in the snapshot folder"),
    ({"weight_map": ["a"]}, "no weight_map"),
    ([1, 2], "no weight_map"),
])
def test_index_files_stay_inside_their_folder(tmp_path: Path, index: Any, match: str) -> None:
    from llmfit.readers.safetensors_headers import read_index

    path = tmp_path / "model.safetensors.index.json"
    path.write_text(json.dumps(index))
    with pytest.raises(ModelFileError, match=match):
        read_index(path)


def test_index_bounds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from llmfit.readers.safetensors_headers import read_index

    path = tmp_path / "model.safetensors.index.json"
    path.write_text('{"metadata": [1], "weight_map": {"a": "model.safetensors"}}')
    assert read_index(path) == (["model.safetensors"], None)  # a metadata list is no total_size
    path.write_text('{"a":' * 5000 + "1" + "}" * 5000)
    with pytest.raises(ModelFileError, match="nested too deep"):
        read_index(path)
    monkeypatch.setattr("llmfit.readers.safetensors_headers.MAX_INDEX_BYTES", 10)
    path.write_text('{"weight_map": {"a": "model.safetensors"}}')
    with pytest.raises(ModelFileError, match="is not a safetensors index"):
        read_index(path)
