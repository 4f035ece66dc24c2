"""Read one weight matrix (or calibration inputs) from a .npy file or a tensor in a .safetensors file.

`FILE.npy` or `FILE.safetensors[:tensor.name]`. Safetensors is parsed here directly from its documented
layout (8-byte little-endian header length, JSON header {name: {dtype, shape, data_offsets}}, raw
little-endian data), reading only the bytes of the requested tensor, so that bf16 (numpy has no bf16
type) and fp8 decode correctly: bf16 is the top half of a float32, so uint16 << 16 viewed as float32;
fp8 e4m3fn / e5m2 through a 256-entry table built from the formats' definitions.
"""

from __future__ import annotations

import difflib
import functools
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from llmfit import limits, safe_io
from llmfit.errors import LlmfitError

MAX_HEADER_BYTES = limits.MAX_SAFETENSORS_HEADER_BYTES



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
    path = safe_io.check_path(spec, what="matrix file")
    try:
        exists = path.exists()
    except OSError:
        exists = False
    if exists or ":" not in spec:
        return path, None
    file_part, tensor = spec.rsplit(":", 1)
    return safe_io.check_path(file_part, what="matrix file"), tensor or None


@dataclass(frozen=True)
class MatrixSource:
    """A tensor in a file, opened lazily: its header is checked against the file size, and only the rows
    and columns asked for are read and decoded, by seeking (a real layer is never loaded whole, and
    nothing is memory-mapped, so a 2 GB file costs no address space). 2-D view: a vector is one row,
    >2-D is (shape[0], -1) as conv weights are."""

    path: Path
    label: str
    shape: tuple[int, ...]
    offset: int  # where the data starts in the file
    stored: np.dtype[Any]  # the items as stored (uint16 for bf16, uint8 for fp8)
    decode_raw: Callable[[np.ndarray], np.ndarray]
    fortran: bool = False

    @property
    def rows(self) -> int:
        return 1 if len(self.shape) <= 1 else self.shape[0]

    @property
    def cols(self) -> int:
        total = 1
        for d in self.shape:
            total *= d
        return total // self.rows

    def read(self, rows: np.ndarray | None = None, cols: int | None = None) -> np.ndarray:
        """float64 [rows, cols]: the given row indices (default all) and the first `cols` columns."""
        keep = self.cols if cols is None else min(cols, self.cols)
        picked = np.arange(self.rows) if rows is None else rows
        item = self.stored.itemsize
        with self.path.open("rb") as handle:
            if self.fortran:  # stored [cols, rows]: read the first `keep` stored rows, pick the columns
                if keep * self.rows > 4 * limits.MAX_QUANT_WEIGHTS:
                    raise MatrixFileError(f"{self.path}: a Fortran-order array this large; save it in C order")
                handle.seek(self.offset)
                block = np.frombuffer(_read_exact(handle, keep * self.rows * item, self.path), dtype=self.stored)
                raw = block.reshape(keep, self.rows).T[picked]
            elif rows is None and keep == self.cols:
                handle.seek(self.offset)
                raw = np.frombuffer(_read_exact(handle, self.rows * keep * item, self.path), dtype=self.stored)
            else:
                parts = []
                for r in picked.tolist():
                    handle.seek(self.offset + r * self.cols * item)
                    parts.append(_read_exact(handle, keep * item, self.path))
                raw = np.frombuffer(b"".join(parts), dtype=self.stored)
        with np.errstate(all="ignore"):
            out = self.decode_raw(np.ascontiguousarray(raw).reshape(len(picked), keep)).astype(np.float64)
        if not np.all(np.isfinite(out)):
            raise MatrixFileError(f"{self.path}: holds NaN or infinity; quantization needs finite values")
        top = float(np.max(np.abs(out))) if out.size else 0.0
        if top > limits.MAX_ABS_VALUE:
            raise MatrixFileError(f"{self.path}: holds |value| {top:.3g}, beyond any real weight or input "
                                  f"(limit {limits.MAX_ABS_VALUE:g})")
        return out


def _read_exact(handle: Any, size: int, path: Path) -> bytes:
    data = handle.read(size)
    if len(data) != size:
        raise MatrixFileError(f"{path}: truncated (the data runs past the end of the file)")
    return bytes(data)


def open_matrix(spec: str) -> MatrixSource:
    """The tensor named by `spec` (FILE.npy or FILE.safetensors[:tensor]), opened lazily."""
    path, tensor = split_spec(spec)
    try:
        regular = path.is_file()
    except OSError:
        regular = False
    if not regular:
        raise MatrixFileError(f"{safe_io.shown(path)}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        if tensor is not None:
            raise MatrixFileError(f"{path}: a .npy file holds one array; drop ':{tensor}'")
        return _open_npy(path)
    if suffix == ".safetensors":
        return _open_safetensors(path, tensor)
    raise MatrixFileError(f"{path}: unsupported file type {suffix or '(none)'!r}; use .npy or .safetensors")


def sample_rows(n_rows: int, keep: int) -> np.ndarray | None:
    """`keep` evenly spaced row indices of n_rows (None: all of them)."""
    if keep >= n_rows:
        return None
    return np.unique(np.linspace(0, n_rows - 1, keep).round().astype(np.int64))


def read_matrix(spec: str, *, max_weights: int = limits.MAX_QUANT_WEIGHTS) -> tuple[np.ndarray, str]:
    """The array named by `spec` as float64 [rows, cols], and a label 'file:tensor [dtype shape]'.

    A tensor of more than `max_weights` elements (or MAX_QUANT_ROWS rows) is sampled: its first 4096
    columns (whole groups of 128), and as many evenly spaced rows as fit; the label says so."""
    source = open_matrix(spec)
    rows, cols = source.rows, source.cols
    if rows * cols <= max_weights and rows <= limits.MAX_QUANT_ROWS:
        return source.read(), source.label
    keep_cols = min(cols, max_weights if rows == 1 else 4096)
    keep_rows = max(1, min(rows, limits.MAX_QUANT_ROWS, max_weights // keep_cols))
    picked = sample_rows(rows, keep_rows)
    array = source.read(picked, keep_cols)
    note = (f"; sampled to {array.shape[0]:,} evenly spaced rows x the first {keep_cols:,} columns "
            f"(limit {max_weights:,} weights)")
    return array, source.label + note


def _check_claim(path: Path, shape: tuple[int, ...], item: int, offset: int, stored: int) -> int:
    """Elements a header claims, held to the limit and to the bytes really in the file (before any
    allocation: a 90-byte file may claim 2**60 elements)."""
    if any(d < 0 for d in shape):
        raise MatrixFileError(f"{path}: negative dimension in shape {list(shape)}")
    count = 1
    for d in shape:
        count *= d
        if count > limits.MAX_MATRIX_ELEMENTS:
            raise MatrixFileError(f"{path}: shape {list(shape)} claims more than {limits.MAX_MATRIX_ELEMENTS:,} "
                                  "elements, beyond any one layer")
    if count == 0:
        raise MatrixFileError(f"{path}: shape {list(shape)} holds no values")
    if offset + count * item > stored:
        raise MatrixFileError(f"{path}: truncated: shape {list(shape)} needs {count * item:,} bytes of data, "
                              f"the file has {max(0, stored - offset):,}")
    return count


def _open_npy(path: Path) -> MatrixSource:
    fmt = np.lib.format
    size = path.stat().st_size
    try:
        with path.open("rb") as handle:
            version = fmt.read_magic(handle)
            if version == (1, 0):
                shape, fortran, dtype = fmt.read_array_header_1_0(handle, max_header_size=limits.MAX_NPY_HEADER_BYTES)
            elif version in ((2, 0), (3, 0)):
                shape, fortran, dtype = fmt.read_array_header_2_0(handle, max_header_size=limits.MAX_NPY_HEADER_BYTES)
            else:
                raise ValueError(f"unsupported .npy version {version}")
            offset = handle.tell()
    except Exception as error:  # numpy parses the header with ast/tokenize: ValueError, SyntaxError, TokenError...
        raise MatrixFileError(f"{path}: not a readable .npy array ({_first_line(error)})") from None
    if dtype.hasobject or dtype.kind not in "fiub" or dtype.fields is not None or dtype.subdtype is not None:
        raise MatrixFileError(f"{path}: holds {dtype}, not a numeric array")
    shape = tuple(int(d) for d in shape)
    _check_claim(path, shape, dtype.itemsize, offset, size)
    if fortran and len(shape) > 2:
        raise MatrixFileError(f"{path}: a Fortran-order array of {len(shape)} dimensions; save it in C order")
    # Fortran order [r, c] is stored as C order [c, r]; read() picks from it.
    return MatrixSource(path, f"{path.name} [{dtype} {list(shape)}]", shape, offset, dtype,
                        lambda a: a, fortran=fortran and len(shape) == 2)


def _open_safetensors(path: Path, tensor: str | None) -> MatrixSource:
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(8)
        if len(head) != 8:
            raise MatrixFileError(f"{path}: too short to be a safetensors file")
        (header_len,) = struct.unpack("<Q", head)
        if header_len <= 0 or header_len > MAX_HEADER_BYTES or 8 + header_len > size:
            raise MatrixFileError(f"{path}: not a safetensors file (header length {header_len:,}, "
                                  f"file {size:,} bytes)")
        raw_header = handle.read(header_len)
    try:
        header = safe_io.parse_json(raw_header, where=f"{path} header", expect=dict)
    except safe_io.UnsafeInputError as error:
        raise MatrixFileError(f"{path}: not a safetensors file ({str(error).split(': ', 1)[-1]})") from None
    names = sorted(k for k in header if k != "__metadata__")
    if tensor is None:
        if len(names) != 1:
            listed = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
            raise MatrixFileError(f"{path}: has {len(names)} tensors; pick one as FILE:tensor ({listed})")
        tensor = names[0]
    if tensor not in header or tensor == "__metadata__":
        close = difflib.get_close_matches(tensor, names, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else f" ({len(names)} tensors in the file)"
        raise MatrixFileError(f"{path}: no tensor {tensor!r}{hint}")
    info = header[tensor]
    try:
        if not isinstance(info, dict):
            raise TypeError
        dtype, dims, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if not isinstance(dtype, str) or not isinstance(dims, list) or not isinstance(offsets, list) \
                or len(offsets) != 2:
            raise TypeError
        shape = tuple(limits.check_int(d, "shape", high=limits.MAX_MATRIX_ELEMENTS) for d in dims)
        start, end = (limits.check_int(v, "data_offsets", high=limits.MAX_BYTES) for v in offsets)
    except (KeyError, TypeError, LlmfitError):
        raise MatrixFileError(f"{path}: tensor {tensor!r} has a malformed header entry") from None
    plain = np.dtype(_PLAIN_DTYPES[dtype]).itemsize if dtype in _PLAIN_DTYPES else 0
    item = _ITEM_BYTES.get(dtype) or plain
    if not item:
        raise MatrixFileError(f"{path}: tensor {tensor!r} has unsupported dtype {dtype}")
    data_start = 8 + header_len + start
    count = _check_claim(path, shape, item, data_start, size)
    if end - start != count * item:
        raise MatrixFileError(f"{path}: tensor {tensor!r}: {end - start} bytes for shape {list(shape)} {dtype}")
    stored = {"BF16": "<u2", "F8_E4M3": "u1", "F8_E5M2": "u1"}.get(dtype) or _PLAIN_DTYPES[dtype]
    return MatrixSource(path, f"{path.name}:{tensor} [{dtype} {list(shape)}]", shape, data_start,
                        np.dtype(stored), functools.partial(_decode_array, dtype=dtype))


def _decode_array(array: np.ndarray, dtype: str) -> np.ndarray:
    """Stored items (uint16 for bf16, uint8 for fp8, else the plain type) -> float64, same shape."""
    if dtype == "BF16":
        return (array.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    if dtype in ("F8_E4M3", "F8_E5M2"):
        table = fp8_table(4, 3, ieee=False) if dtype == "F8_E4M3" else fp8_table(5, 2, ieee=True)
        decoded: np.ndarray = table[array]
        return decoded
    return array.astype(np.float64)


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


def read_calibration(spec: str, n_inputs: int, keep_inputs: int) -> tuple[np.ndarray, str]:
    """Calibration inputs [samples, keep_inputs] from a file holding [samples, n_inputs] or [n_inputs,
    samples]: at most MAX_SAMPLES samples and the first `keep_inputs` inputs are decoded (a real
    activation dump is never loaded whole); the label says what was taken."""
    source = open_matrix(spec)
    rows, cols = source.rows, source.cols
    first = min(limits.MAX_SAMPLES, rows if cols == n_inputs else cols)
    if cols == n_inputs:  # [samples, in], as activations are usually saved
        x = source.read(np.arange(min(rows, limits.MAX_SAMPLES)), keep_inputs)
        total = rows
    elif rows == n_inputs:  # [in, samples]
        x = source.read(np.arange(keep_inputs), min(cols, limits.MAX_SAMPLES)).T
        total = cols
    else:
        raise MatrixFileError(f"{source.path}: calibration shape {list(source.shape)} has no axis of {n_inputs} "
                              "(the layer's inputs)")
    notes = []
    if total > first:
        notes.append(f"first {first:,} of {total:,} samples")
    if keep_inputs < n_inputs:
        notes.append(f"first {keep_inputs:,} of {n_inputs:,} inputs")
    return x, source.label + (f"; {', '.join(notes)}" if notes else "")
