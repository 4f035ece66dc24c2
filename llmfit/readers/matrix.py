"""Read one weight matrix (or calibration inputs) from a .npy file or a tensor in a .safetensors file.

`FILE.npy` or `FILE.safetensors[:tensor.name]`. Safetensors is parsed here directly from its documented
layout (8-byte little-endian header length, JSON header {name: {dtype, shape, data_offsets}}, raw
little-endian data), reading only the bytes of the requested tensor, so that bf16 (numpy has no bf16
type) and fp8 decode correctly: bf16 is the top half of a float32, so uint16 << 16 viewed as float32;
fp8 e4m3fn / e5m2 through a 256-entry table built from the formats' definitions.
"""

from __future__ import annotations

import difflib
import json
import struct
from pathlib import Path

import numpy as np

from llmfit.errors import LlmfitError

MAX_HEADER_BYTES = 100 * 2**20


class MatrixFileError(ValueError, LlmfitError):
    """A weight file that cannot be read: missing, malformed, unknown tensor or dtype. Names the file."""


_PLAIN_DTYPES: dict[str, str] = {
    "F64": "<f8",
    "F32": "<f4",
    "F16": "<f2",
    "I64": "<i8",
    "I32": "<i4",
    "I16": "<i2",
    "I8": "i1",
    "U8": "u1",
    "U16": "<u2",
    "U32": "<u4",
    "BOOL": "?",
}
_ITEM_BYTES = {"BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1}


def split_spec(spec: str) -> tuple[Path, str | None]:
    """'w.safetensors:model.layers.0.mlp.up_proj.weight' -> (path, tensor); a path that exists wins."""
    path = Path(spec)
    if path.exists() or ":" not in spec:
        return path, None
    file_part, tensor = spec.rsplit(":", 1)
    return Path(file_part), tensor or None


def read_matrix(spec: str) -> tuple[np.ndarray, str]:
    """The array named by `spec` as float64, and a label 'file:tensor [dtype shape]' for the report."""
    path, tensor = split_spec(spec)
    if not path.is_file():
        raise MatrixFileError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        if tensor is not None:
            raise MatrixFileError(f"{path}: a .npy file holds one array; drop ':{tensor}'")
        return _read_npy(path)
    if suffix == ".safetensors":
        return _read_safetensors(path, tensor)
    raise MatrixFileError(f"{path}: unsupported file type {suffix or '(none)'!r}; use .npy or .safetensors")


def _read_npy(path: Path) -> tuple[np.ndarray, str]:
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise MatrixFileError(f"{path}: not a readable .npy array ({_first_line(error)})") from None
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "fiub":
        raise MatrixFileError(f"{path}: holds {getattr(array, 'dtype', type(array))}, not a numeric array")
    return array.astype(np.float64), f"{path.name} [{array.dtype} {list(array.shape)}]"


def _read_safetensors(path: Path, tensor: str | None) -> tuple[np.ndarray, str]:
    with path.open("rb") as handle:
        head = handle.read(8)
        if len(head) != 8:
            raise MatrixFileError(f"{path}: too short to be a safetensors file")
        (header_len,) = struct.unpack("<Q", head)
        if header_len <= 0 or header_len > MAX_HEADER_BYTES:
            raise MatrixFileError(f"{path}: not a safetensors file (header length {header_len})")
        try:
            header = json.loads(handle.read(header_len))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise MatrixFileError(f"{path}: not a safetensors file (header is not JSON)") from None
        if not isinstance(header, dict):
            raise MatrixFileError(f"{path}: not a safetensors file (header is not a JSON object)")
        names = sorted(k for k in header if k != "__metadata__")
        if tensor is None:
            if len(names) != 1:
                shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
                raise MatrixFileError(f"{path}: has {len(names)} tensors; pick one as FILE:tensor ({shown})")
            tensor = names[0]
        if tensor not in header or tensor == "__metadata__":
            close = difflib.get_close_matches(tensor, names, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else f" ({len(names)} tensors in the file)"
            raise MatrixFileError(f"{path}: no tensor {tensor!r}{hint}")
        info = header[tensor]
        try:
            dtype, shape = str(info["dtype"]), [int(d) for d in info["shape"]]
            start, end = (int(v) for v in info["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise MatrixFileError(f"{path}: tensor {tensor!r} has a malformed header entry") from None
        plain = np.dtype(_PLAIN_DTYPES[dtype]).itemsize if dtype in _PLAIN_DTYPES else 0
        item = _ITEM_BYTES.get(dtype) or plain
        if not item:
            raise MatrixFileError(f"{path}: tensor {tensor!r} has unsupported dtype {dtype}")
        count = int(np.prod(shape)) if shape else 1
        if end - start != count * item or start < 0:
            raise MatrixFileError(f"{path}: tensor {tensor!r}: {end - start} bytes for shape {shape} {dtype}")
        handle.seek(8 + header_len + start)
        raw = handle.read(end - start)
        if len(raw) != end - start:
            raise MatrixFileError(f"{path}: truncated (tensor {tensor!r} runs past the end of the file)")
    return decode(raw, dtype).reshape(shape), f"{path.name}:{tensor} [{dtype} {shape}]"


def decode(raw: bytes, dtype: str) -> np.ndarray:
    """Raw little-endian bytes of a safetensors dtype -> float64 array (1-D)."""
    if dtype == "BF16":
        bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
        return bits.view(np.float32).astype(np.float64)
    if dtype in ("F8_E4M3", "F8_E5M2"):
        table = fp8_table(4, 3, ieee=False) if dtype == "F8_E4M3" else fp8_table(5, 2, ieee=True)
        return table[np.frombuffer(raw, dtype=np.uint8)]
    return np.frombuffer(raw, dtype=_PLAIN_DTYPES[dtype]).astype(np.float64)


def fp8_table(exponent_bits: int, mantissa_bits: int, *, ieee: bool) -> np.ndarray:
    """All 256 values of an 8-bit float: (-1)^s 2^(E - bias) (1 + M / 2^m), subnormals 2^(1-bias) M / 2^m;
    IEEE style (e5m2): top exponent is inf/NaN; E4M3FN: only S.1111.111 is NaN (OCP 8-bit FP spec)."""
    bias = 2 ** (exponent_bits - 1) - 1
    top = 2**exponent_bits - 1
    values = np.empty(256, dtype=np.float64)
    for byte in range(256):
        sign = -1.0 if byte >> 7 else 1.0
        exponent = (byte >> mantissa_bits) & top
        mantissa = byte & (2**mantissa_bits - 1)
        if ieee and exponent == top:
            values[byte] = sign * np.inf if mantissa == 0 else np.nan
        elif not ieee and exponent == top and mantissa == 2**mantissa_bits - 1:
            values[byte] = np.nan
        elif exponent == 0:
            values[byte] = sign * 2.0 ** (1 - bias) * mantissa / 2**mantissa_bits
        else:
            values[byte] = sign * 2.0 ** (exponent - bias) * (1 + mantissa / 2**mantissa_bits)
    return values


def _first_line(error: BaseException) -> str:
    text = str(error)
    return text.splitlines()[0] if text else type(error).__name__
