"""A small reader of the GGUF format: header, metadata key-values and tensor infos, never tensor data.

The layout is the one ggml's docs/gguf.md specifies (versions 2 and 3): a header (magic `GGUF`, uint32
version, uint64 tensor_count, uint64 metadata_kv_count), the metadata KV pairs (a gguf string key, a
uint32 value type, the value), the tensor infos (name, uint32 n_dims, uint64 dims[n_dims] with ne0
first, uint32 ggml_type, uint64 offset relative to the data section), then padding to
`general.alignment` (default 32) and the tensor data. Little-endian, or big-endian when the version
field reads byte-swapped (gguf-py's GGUFReader detects it the same way).

Why not gguf.GGUFReader: it builds a numpy view per array element, so a real file's 152k-token
vocabulary (tokens, scores, token types, merges) costs seconds and hundreds of MiB. Here big arrays
are skipped - a numeric array by seeking count x size, a string array by reading each length and
seeking past it - and kept as `SkippedArray(type, count)`; everything else is read with `struct`
from a memory map. tests/readers/test_gguf_reader.py holds it to GGUFReader's output.

Hostile input: every count and length is checked against the bytes left in the file before anything
is allocated for it, and against the caps below (ggml's own limits where it has them: gguf.cpp
gguf_init_from_file_impl refuses names of GGML_MAX_NAME (64) bytes or more, more than GGML_MAX_DIMS
(4) dimensions, negative or overflowing element counts, unknown types, ne0 not a multiple of the
type's block size, and an alignment that is not a non-zero power of two). Any failure is one
`ModelFileError` naming the file.
"""

from __future__ import annotations

import mmap
import stat
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from llmfit.readers.config import ModelFileError

GGUF_MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32  # docs/gguf.md: "If the alignment is not specified, assume it is 32"

# Caps (no real model comes near them; the real figures are in docs/model-files.md).
MAX_TENSORS = 1 << 17  # real GGUFs: ~300-3,000 tensors (MoE experts are stored merged, one 3-D tensor)
MAX_KV = 1 << 16  # metadata pairs (real files: 20-60)
MAX_KEY_BYTES = 65535  # docs/gguf.md: a key "must be at most 2^16-1/65535 bytes long"
MAX_NAME_BYTES = 63  # gguf.cpp: tensor names must be shorter than GGML_MAX_NAME (64)
MAX_DIMS = 4  # gguf.cpp: GGML_MAX_DIMS
MAX_NESTING = 3  # arrays of arrays (docs/gguf.md allows nesting; real files use none)
KEEP_ARRAY_ELEMENTS = 1 << 16  # longer arrays (the vocabulary) are skipped, not read
KEEP_STRING_BYTES = 1 << 20  # longer strings are skipped (a chat template is ~10 KiB)
KEEP_TOTAL_BYTES = 32 << 20  # total decoded metadata kept in memory

# gguf_metadata_value_type -> (name, struct code, bytes); STRING (8) and ARRAY (9) are variable-sized.
VALUE_TYPES: dict[int, tuple[str, str, int]] = {
    0: ("UINT8", "B", 1), 1: ("INT8", "b", 1), 2: ("UINT16", "H", 2), 3: ("INT16", "h", 2),
    4: ("UINT32", "I", 4), 5: ("INT32", "i", 4), 6: ("FLOAT32", "f", 4), 7: ("BOOL", "B", 1),
    10: ("UINT64", "Q", 8), 11: ("INT64", "q", 8), 12: ("FLOAT64", "d", 8),
}
STRING, ARRAY, BOOL = 8, 9, 7
_MIN_VALUE_BYTES = {STRING: 8, ARRAY: 12}  # a string's length; an array's type + count

# ggml_type -> (name, block size in elements, bytes per block): gguf-py constants.py GGML_QUANT_SIZES
# (ggml.c type_traits); the test checks this table against the installed gguf package.
GGML_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("F32", 1, 4), 1: ("F16", 1, 2), 2: ("Q4_0", 32, 18), 3: ("Q4_1", 32, 20), 6: ("Q5_0", 32, 22),
    7: ("Q5_1", 32, 24), 8: ("Q8_0", 32, 34), 9: ("Q8_1", 32, 40), 10: ("Q2_K", 256, 84), 11: ("Q3_K", 256, 110),
    12: ("Q4_K", 256, 144), 13: ("Q5_K", 256, 176), 14: ("Q6_K", 256, 210), 15: ("Q8_K", 256, 292),
    16: ("IQ2_XXS", 256, 66), 17: ("IQ2_XS", 256, 74), 18: ("IQ3_XXS", 256, 98), 19: ("IQ1_S", 256, 50),
    20: ("IQ4_NL", 32, 18), 21: ("IQ3_S", 256, 110), 22: ("IQ2_S", 256, 82), 23: ("IQ4_XS", 256, 136),
    24: ("I8", 1, 1), 25: ("I16", 1, 2), 26: ("I32", 1, 4), 27: ("I64", 1, 8), 28: ("F64", 1, 8),
    29: ("IQ1_M", 256, 56), 30: ("BF16", 1, 2), 34: ("TQ1_0", 256, 54), 35: ("TQ2_0", 256, 66),
    39: ("MXFP4", 32, 17), 40: ("NVFP4", 64, 36), 41: ("Q1_0", 128, 18),
}

# general.file_type (llama_ftype) -> name: gguf-py constants.py LlamaFileType.
LLAMA_FILE_TYPES: dict[int, str] = {
    0: "ALL_F32", 1: "MOSTLY_F16", 2: "MOSTLY_Q4_0", 3: "MOSTLY_Q4_1", 7: "MOSTLY_Q8_0", 8: "MOSTLY_Q5_0",
    9: "MOSTLY_Q5_1", 10: "MOSTLY_Q2_K", 11: "MOSTLY_Q3_K_S", 12: "MOSTLY_Q3_K_M", 13: "MOSTLY_Q3_K_L",
    14: "MOSTLY_Q4_K_S", 15: "MOSTLY_Q4_K_M", 16: "MOSTLY_Q5_K_S", 17: "MOSTLY_Q5_K_M", 18: "MOSTLY_Q6_K",
    19: "MOSTLY_IQ2_XXS", 20: "MOSTLY_IQ2_XS", 21: "MOSTLY_Q2_K_S", 22: "MOSTLY_IQ3_XS", 23: "MOSTLY_IQ3_XXS",
    24: "MOSTLY_IQ1_S", 25: "MOSTLY_IQ4_NL", 26: "MOSTLY_IQ3_S", 27: "MOSTLY_IQ3_M", 28: "MOSTLY_IQ2_S",
    29: "MOSTLY_IQ2_M", 30: "MOSTLY_IQ4_XS", 31: "MOSTLY_IQ1_M", 32: "MOSTLY_BF16", 36: "MOSTLY_TQ1_0",
    37: "MOSTLY_TQ2_0", 38: "MOSTLY_MXFP4_MOE", 39: "MOSTLY_NVFP4", 40: "MOSTLY_Q1_0", 1024: "GUESSED",
}


@dataclass(frozen=True)
class SkippedArray:
    """An array (or string) the reader stepped over without decoding: its element type and count."""

    type: str  # element type name ("STRING", "FLOAT32", ...; "BYTES" for a skipped long string)
    count: int

    def __len__(self) -> int:
        return self.count


class GgufTensor(NamedTuple):
    """One tensor info. `shape` is in ggml order (ne0 first): token_embd is [hidden, vocab]."""

    name: str
    shape: tuple[int, ...]
    type_id: int
    type_name: str
    offset: int  # relative to the data section
    n_elements: int
    n_bytes: int


@dataclass(frozen=True)
class GgufFile:
    path: str
    version: int
    byte_order: str  # "<" little-endian, ">" big-endian
    alignment: int
    data_offset: int  # absolute offset of the tensor data section
    file_bytes: int
    metadata: dict[str, Any]  # key -> int | float | bool | str | list | SkippedArray
    value_types: dict[str, str] = field(default_factory=dict)  # key -> "UINT32", "STRING", "ARRAY[STRING]", ...
    tensors: tuple[GgufTensor, ...] = ()


class _Walker:
    """Cursor over the mapped bytes; every read is bounds-checked against the end of the file."""

    def __init__(self, buf: Any, size: int, where: str, order: str) -> None:
        self.buf, self.size, self.where, self.order = buf, size, where, order
        self.pos = 0
        self.kept = 0
        self.u32 = struct.Struct(order + "I")
        self.u64 = struct.Struct(order + "Q")

    def fail(self, message: str) -> ModelFileError:
        return ModelFileError(f"{self.where}: not a readable GGUF file ({message})")

    def need(self, n: int, what: str) -> None:
        if n < 0 or self.pos + n > self.size:
            raise self.fail(f"truncated: {what} needs {n:,} bytes at offset {self.pos:,}, the file has "
                            f"{self.size:,}")

    def uint32(self, what: str) -> int:
        self.need(4, what)
        (value,) = self.u32.unpack_from(self.buf, self.pos)
        self.pos += 4
        return int(value)

    def uint64(self, what: str) -> int:
        self.need(8, what)
        (value,) = self.u64.unpack_from(self.buf, self.pos)
        self.pos += 8
        return int(value)

    def count(self, what: str, each: int, cap: int) -> int:
        """A uint64 count of items of at least `each` bytes: bounded by the cap and by the bytes left."""
        n = self.uint64(what)
        if n > cap:
            raise self.fail(f"{what} {n:,} is over the limit of {cap:,}")
        if n * each > self.size - self.pos:
            raise self.fail(f"{what} {n:,} cannot fit in the {self.size - self.pos:,} bytes left")
        return n

    def string(self, what: str, cap: int | None = None) -> str | SkippedArray:
        n = self.uint64(f"{what} length")
        self.need(n, what)
        if (cap is not None and n > cap) or n > KEEP_STRING_BYTES or self.kept + n > KEEP_TOTAL_BYTES:
            if cap is not None and n > cap:
                raise self.fail(f"{what} of {n:,} bytes is over the limit of {cap:,}")
            self.pos += n
            return SkippedArray("BYTES", n)
        raw = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        self.kept += n
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise self.fail(f"{what} is not UTF-8") from None

    def skip_strings(self, n: int, what: str) -> None:
        # The hot loop of a real file (150k+ vocabulary strings): read each length, step over the text.
        # A length past the end makes the next unpack_from raise struct.error, caught by read_gguf.
        unpack, buf, pos = self.u64.unpack_from, self.buf, self.pos
        for _ in range(n):
            pos += 8 + unpack(buf, pos)[0]
        self.pos = pos
        if pos > self.size:
            raise self.fail(f"truncated: {what} runs past the end of the file")

    def value(self, vtype: int, what: str, depth: int = 0) -> tuple[Any, str]:
        """(value, type name) of one metadata value."""
        if vtype in VALUE_TYPES:
            name, code, size = VALUE_TYPES[vtype]
            self.need(size, what)
            (value,) = struct.unpack_from(self.order + code, self.buf, self.pos)
            self.pos += size
            if vtype == BOOL:
                if value not in (0, 1):
                    raise self.fail(f"{what} is a bool of value {value} (only 0 and 1 are valid)")
                value = bool(value)
            return value, name
        if vtype == STRING:
            return self.string(what), "STRING"
        if vtype != ARRAY:
            raise self.fail(f"{what} has unknown value type {vtype}")
        if depth >= MAX_NESTING:
            raise self.fail(f"{what} nests arrays deeper than {MAX_NESTING}")
        etype = self.uint32(f"{what} element type")
        if etype not in VALUE_TYPES and etype not in (STRING, ARRAY):
            raise self.fail(f"{what} has unknown element type {etype}")
        each = VALUE_TYPES[etype][2] if etype in VALUE_TYPES else _MIN_VALUE_BYTES[etype]
        n = self.count(f"{what} element count", each, 1 << 62)
        ename = VALUE_TYPES[etype][0] if etype in VALUE_TYPES else ("STRING" if etype == STRING else "ARRAY")
        type_name = f"ARRAY[{ename}]"
        keep = n <= KEEP_ARRAY_ELEMENTS and self.kept + n * each <= KEEP_TOTAL_BYTES
        if etype in VALUE_TYPES:
            size = VALUE_TYPES[etype][2]
            if not keep:
                self.pos += n * size
                return SkippedArray(ename, n), type_name
            values = list(struct.unpack_from(f"{self.order}{n}{VALUE_TYPES[etype][1]}", self.buf, self.pos))
            self.pos += n * size
            self.kept += n * size
            if etype == BOOL:
                if any(v not in (0, 1) for v in values):
                    raise self.fail(f"{what} holds a bool other than 0 or 1")
                values = [bool(v) for v in values]
            return values, type_name
        if etype == STRING and not keep:
            self.skip_strings(n, what)
            return SkippedArray(ename, n), type_name
        items = [self.value(etype, f"{what}[{i}]", depth + 1)[0] for i in range(n)]
        return (items if keep else SkippedArray(ename, n)), type_name


def _open_map(path: Path, where: str) -> tuple[Any, int]:
    try:
        info = path.stat()
    except OSError as error:
        raise ModelFileError(f"{where}: cannot read ({error.strerror or error})") from None
    if not stat.S_ISREG(info.st_mode):
        raise ModelFileError(f"{where}: not a regular file")
    if info.st_size < 24:
        raise ModelFileError(f"{where}: not a readable GGUF file ({info.st_size} bytes, shorter than its header)")
    try:
        with open(path, "rb") as handle:
            return mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ), info.st_size
    except (OSError, ValueError) as error:
        raise ModelFileError(f"{where}: cannot read ({error})") from None


def read_gguf(path: Path | str) -> GgufFile:
    """Metadata and tensor infos of one .gguf file, read without touching tensor data."""
    path = Path(path)
    where = str(path)
    buf, size = _open_map(path, where)
    try:
        return _read(buf, size, where)
    except struct.error as error:
        raise ModelFileError(f"{where}: not a readable GGUF file (truncated: {error})") from None
    finally:
        buf.close()


def _read(buf: Any, size: int, where: str) -> GgufFile:
    if bytes(buf[0:4]) != GGUF_MAGIC:
        raise ModelFileError(f"{where}: not a GGUF file (no GGUF magic)")
    (version,) = struct.unpack_from("<I", buf, 4)
    order = "<"
    if version & 0xFFFF == 0 and version != 0:  # gguf-py: a version with zero low bytes is byte-swapped
        (version,) = struct.unpack_from(">I", buf, 4)
        order = ">"
    walker = _Walker(buf, size, where, order)
    if version not in SUPPORTED_VERSIONS:
        raise walker.fail(f"GGUF version {version}; supported: {', '.join(map(str, SUPPORTED_VERSIONS))}")
    walker.pos = 8
    n_tensors = walker.count("tensor count", 24, MAX_TENSORS)
    n_kv = walker.count("metadata count", 13, MAX_KV)
    metadata: dict[str, Any] = {}
    types: dict[str, str] = {}
    for i in range(n_kv):
        key = walker.string(f"metadata key {i}", MAX_KEY_BYTES)
        assert isinstance(key, str)
        if key in metadata:
            raise walker.fail(f"duplicate metadata key {key!r}")  # gguf.cpp refuses duplicates too
        vtype = walker.uint32(f"type of {key}")
        metadata[key], types[key] = walker.value(vtype, key)

    alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    if types.get("general.alignment", "UINT32") != "UINT32" or not isinstance(alignment, int) \
            or alignment <= 0 or alignment & (alignment - 1):
        raise walker.fail(f"general.alignment must be a uint32 power of two, got {alignment!r}")

    raw = _tensor_infos(walker, n_tensors)
    data_offset = walker.pos + (alignment - walker.pos % alignment) % alignment
    data_bytes = size - data_offset
    tensors = []
    for name, dims, type_id, offset in raw:
        if type_id not in GGML_TYPES:
            raise walker.fail(f"tensor {name} has unknown ggml type {type_id}")
        type_name, block, block_bytes = GGML_TYPES[type_id]
        n_elements = 1
        for dim in dims:
            if dim < 0:
                raise walker.fail(f"tensor {name} has a negative dimension {dim}")
            n_elements *= dim
            if n_elements >= 1 << 63:
                raise walker.fail(f"tensor {name}'s element count overflows int64")
        if dims and dims[0] % block:
            raise walker.fail(f"tensor {name}: ne0 {dims[0]} is not a multiple of {type_name}'s block of {block}")
        n_bytes = n_elements // block * block_bytes
        if offset % alignment:
            raise walker.fail(f"tensor {name} offset {offset:,} is not a multiple of the alignment {alignment}")
        if offset + n_bytes > data_bytes:
            raise walker.fail(f"truncated: tensor {name} ends at {data_offset + offset + n_bytes:,}, past the "
                              f"end of the file ({size:,} bytes)")
        tensors.append(GgufTensor(name=name, shape=dims, type_id=type_id, type_name=type_name, offset=offset,
                                  n_elements=n_elements, n_bytes=n_bytes))
    return GgufFile(path=where, version=version, byte_order=order, alignment=alignment, data_offset=data_offset,
                    file_bytes=size, metadata=metadata, value_types=types, tensors=tuple(tensors))


_DIMS = [struct.Struct(f"<{n}q") for n in range(MAX_DIMS + 1)]


def _tensor_infos(walker: _Walker, count: int) -> list[tuple[str, tuple[int, ...], int, int]]:
    """(name, dims, type, offset) of each tensor info: the file's hot loop after the vocabulary, so the
    reads are inlined; a read past the end raises struct.error (reported as truncated by read_gguf)."""
    buf, pos, order = walker.buf, walker.pos, walker.order
    u64, u32 = walker.u64.unpack_from, walker.u32.unpack_from
    dims_of = _DIMS if order == "<" else [struct.Struct(f">{n}q") for n in range(MAX_DIMS + 1)]
    type_offset = struct.Struct(order + "IQ").unpack_from
    raw: list[tuple[str, tuple[int, ...], int, int]] = []
    names: set[str] = set()
    for i in range(count):
        (length,) = u64(buf, pos)
        if length > MAX_NAME_BYTES:
            walker.pos = pos
            raise walker.fail(f"tensor {i} name of {length:,} bytes is over the limit of {MAX_NAME_BYTES}")
        encoded = buf[pos + 8:pos + 8 + length]
        pos += 8 + length
        try:
            name = encoded.decode("utf-8")
        except UnicodeDecodeError:
            raise walker.fail(f"tensor {i} name is not UTF-8") from None
        if len(encoded) != length:
            raise struct.error(f"tensor {i} name runs past the end of the file")
        if name in names:
            raise walker.fail(f"duplicate tensor {name!r}")  # gguf.cpp refuses duplicates too
        names.add(name)
        (n_dims,) = u32(buf, pos)
        if n_dims > MAX_DIMS:
            raise walker.fail(f"tensor {name} has {n_dims} dimensions (at most {MAX_DIMS})")
        dims = dims_of[n_dims].unpack_from(buf, pos + 4)
        type_id, offset = type_offset(buf, pos + 4 + 8 * n_dims)
        pos += 16 + 8 * n_dims
        raw.append((name, dims, type_id, offset))
    walker.pos = pos
    return raw


def file_type_name(value: Any) -> str | None:
    """The llama_ftype name of a general.file_type value, or None."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return LLAMA_FILE_TYPES.get(value)


__all__ = ["GGML_TYPES", "LLAMA_FILE_TYPES", "GgufFile", "GgufTensor", "SkippedArray", "file_type_name",
           "read_gguf"]
