"""Safetensors headers: every tensor's name, dtype and shape, without loading one (and without numpy).

The format (huggingface/safetensors README, "Format"; checks as safetensors/src/tensor.rs's
`Metadata::validate` makes them): 8 bytes `N`, a little-endian u64; N bytes of UTF-8 JSON, an object
of tensor name -> {"dtype", "shape", "data_offsets": [begin, end]} plus an optional "__metadata__"
map of strings; then the byte buffer. Read here with `struct` + `json`: the safetensors package would
import numpy for `framework="numpy"` (0.5 s for a 10k-tensor header, of which the JSON is 14 ms).

Validated as the library does, so a file it refuses is refused here too (tests hold the two to the same
answers): N within the file and under MAX_HEADER_BYTES, the JSON an object (nesting stopped at the
interpreter's recursion limit; a valid header nests 3 deep, which the type checks enforce), dtypes
known, shapes lists of non-negative integers whose byte size does not overflow u64, `end - begin`
equal to that size, offsets contiguous from 0 in order with no gap or overlap, and the buffer exactly
covered. Sharded checkpoints list their files in
`model.safetensors.index.json` (`weight_map`: tensor -> file; `metadata.total_size`: bytes).
"""

from __future__ import annotations

import json
import re
import stat
import struct
from dataclasses import dataclass
from fractions import Fraction
from math import prod
from pathlib import Path
from typing import NamedTuple

from llmfit.readers.config import ModelFileError

INDEX_NAME = "model.safetensors.index.json"
MAX_HEADER_BYTES = 16 << 20  # ~160k tensors; real shards: 0.1-1 MiB (the library's own cap is 100 MB)
MAX_INDEX_BYTES = 64 << 20  # an index lists tensor -> file; the largest real ones are a few MiB
MAX_TENSOR_BYTES = 2**64 - 1  # the library computes sizes in u64/usize and refuses an overflow

# Bytes per element of each safetensors dtype (safetensors' Dtype enum; F4 packs two per byte).
DTYPE_BYTES: dict[str, Fraction] = {
    "BOOL": Fraction(1), "U8": Fraction(1), "I8": Fraction(1), "F8_E4M3": Fraction(1), "F8_E5M2": Fraction(1),
    "F8_E8M0": Fraction(1), "E8M0": Fraction(1), "I16": Fraction(2), "U16": Fraction(2), "F16": Fraction(2),
    "BF16": Fraction(2), "I32": Fraction(4), "U32": Fraction(4), "F32": Fraction(4), "I64": Fraction(8),
    "U64": Fraction(8), "F64": Fraction(8), "F4": Fraction(1, 2), "F6_E2M3": Fraction(3, 4),
    "F6_E3M2": Fraction(3, 4), "F8_E4M3FNUZ": Fraction(1), "F8_E5M2FNUZ": Fraction(1), "C64": Fraction(8),
}
DTYPE_BITS: dict[str, int] = {name: int(size * 8) for name, size in DTYPE_BYTES.items()}


class TensorInfo(NamedTuple):
    """One tensor of a header. A NamedTuple, not a frozen dataclass: a 10k-tensor shard builds 10k of them,
    and a frozen dataclass's __init__ (object.__setattr__ per field) costs as much as the JSON parse."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    nbytes: int

    @property
    def numel(self) -> int:
        return prod(self.shape)


def _tensor(name: str, dtype: str, shape: list[int] | tuple[int, ...], where: str) -> TensorInfo:
    size = DTYPE_BYTES.get(dtype)
    if size is None:
        raise ModelFileError(f"{where}: tensor {name} has dtype {dtype!r}, unknown to llmfit")
    numel = prod(shape)
    return TensorInfo(name=name, dtype=dtype, shape=tuple(shape), nbytes=-(-numel * size.numerator // size.denominator))


def _fail(path: Path, message: str) -> ModelFileError:
    return ModelFileError(f"{path}: not a readable safetensors file ({message})")


def parse_header(path: Path, data: bytes, file_bytes: int) -> list[TensorInfo]:
    """The tensors of a safetensors header (the JSON bytes), checked against the file's size."""
    if not data.lstrip().startswith(b"{"):
        raise _fail(path, "the header is not a JSON object")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise _fail(path, "the header is not UTF-8") from None
    try:
        header = json.loads(text)
    except json.JSONDecodeError as error:
        raise _fail(path, f"invalid JSON in the header: {error}") from None
    except RecursionError:
        # json's C scanner counts its nesting against the interpreter's recursion limit (~1,000): a deeper
        # header stops there, in bounded time and memory. A valid one nests 3 deep, which the type checks
        # below hold it to.
        raise _fail(path, "the header JSON nests too deep") from None
    if not isinstance(header, dict):
        raise _fail(path, "the header is not a JSON object")
    metadata = header.pop("__metadata__", None)
    if metadata is not None and (not isinstance(metadata, dict)
                                 or not all(isinstance(v, str) for v in metadata.values())):
        raise _fail(path, "__metadata__ must map strings to strings")
    spans: list[tuple[int, int, str]] = []
    infos: dict[str, TensorInfo] = {}
    bits_of = DTYPE_BITS
    for name, entry in header.items():
        if type(entry) is not dict:
            raise _fail(path, f"tensor {name}: expected an object of dtype, shape, data_offsets")
        dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        bits = bits_of.get(dtype) if type(dtype) is str else None
        if bits is None:
            raise _fail(path, f"tensor {name}: unknown dtype {dtype!r}")
        if type(shape) is not list:
            raise _fail(path, f"tensor {name}: shape must be a list of non-negative integers, got {shape!r}")
        for dim in shape:
            if type(dim) is not int or dim < 0:
                raise _fail(path, f"tensor {name}: shape must be a list of non-negative integers, got {shape!r}")
        if type(offsets) is not list or len(offsets) != 2 or type(offsets[0]) is not int \
                or type(offsets[1]) is not int or offsets[0] < 0:
            raise _fail(path, f"tensor {name}: data_offsets must be [begin, end], got {offsets!r}")
        total_bits = prod(shape) * bits
        if total_bits > MAX_TENSOR_BYTES * 8:
            raise _fail(path, f"tensor {name}: shape {shape} overflows the byte count")
        if total_bits % 8:
            raise _fail(path, f"tensor {name}: {total_bits // bits} elements of {dtype} do not fill whole bytes")
        begin, end = offsets
        if end - begin != total_bits // 8:
            raise _fail(path, f"tensor {name}: data_offsets {offsets} hold {end - begin} bytes, its shape and "
                              f"dtype need {total_bits // 8}")
        infos[name] = TensorInfo(name, str(dtype), tuple(shape), total_bits // 8)
        spans.append((begin, end, name))
    spans.sort()
    position = 0
    for begin, end, name in spans:
        if begin != position:
            raise _fail(path, f"tensor {name}: data_offsets start at {begin}, expected {position} "
                              "(offsets must be contiguous)")
        position = end
    if position != file_bytes - 8 - len(data):
        raise _fail(path, f"tensors cover {position:,} bytes of a {file_bytes - 8 - len(data):,}-byte buffer "
                          "(truncated or padded file)")
    return [infos[name] for name in sorted(infos)]


def read_file_headers(path: Path) -> list[TensorInfo]:
    """The tensors of one .safetensors file, from its header only (sorted by name, as safe_open lists them)."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise _fail(path, "not a regular file")
        with open(path, "rb") as handle:
            prefix = handle.read(8)
            if len(prefix) < 8:
                raise _fail(path, f"{len(prefix)} bytes, shorter than the 8-byte header length")
            (length,) = struct.unpack("<Q", prefix)
            if length > MAX_HEADER_BYTES:
                raise _fail(path, f"header of {length:,} bytes is over the limit of {MAX_HEADER_BYTES:,}")
            if length > info.st_size - 8:
                raise _fail(path, f"header length {length:,} runs past the end of the {info.st_size:,}-byte file")
            data = handle.read(length)
    except OSError as error:
        raise ModelFileError(f"{path}: cannot read ({error.strerror or error})") from None
    return parse_header(path, data, info.st_size)


def read_index(path: Path) -> tuple[list[str], int | None]:
    """(shard file names, metadata.total_size) of a model.safetensors.index.json.

    Bounded and kept inside the snapshot: the file at most MAX_INDEX_BYTES, its JSON an object, every
    shard a plain file name (no folder part, not absolute, not `..`): an index never points outside
    the folder it sits in."""
    try:
        size = path.stat().st_size
        if size > MAX_INDEX_BYTES:
            raise ModelFileError(f"{path}: {size:,} bytes is not a safetensors index (over {MAX_INDEX_BYTES:,})")
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelFileError(f"{path}: not valid JSON ({error})") from None
    except RecursionError:
        raise ModelFileError(f"{path}: not a safetensors index (JSON nested too deep)") from None
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise ModelFileError(f"{path}: no weight_map of tensor -> file")
    shards = sorted(set(weight_map.values()))
    for shard in shards:
        if not shard or shard in (".", "..") or "/" in shard or "\\" in shard or "\0" in shard:
            raise ModelFileError(f"{path}: weight_map names {shard!r}, not a file in the snapshot folder")
    metadata = data.get("metadata")
    total = metadata.get("total_size") if isinstance(metadata, dict) else None
    return shards, total if type(total) is int and total > 0 else None


def folder_headers(folder: Path) -> tuple[list[TensorInfo] | None, int | None, str]:
    """Tensors of a snapshot folder: (tensors or None when no shard is present, index total_size, how read).

    With an index, every shard it names must be present, or none (a config + index download):
    then only the index's total_size is known.
    """
    index = folder / INDEX_NAME
    if index.is_file():
        shards, total = read_index(index)
        present = [folder / s for s in shards if (folder / s).is_file()]
        if not present:
            return None, total, f"{INDEX_NAME} (total_size only: no shard files present)"
        if len(present) != len(shards):
            missing = [s for s in shards if not (folder / s).is_file()]
            raise ModelFileError(f"{folder}: {INDEX_NAME} lists {len(shards)} shards, {len(missing)} missing "
                                 f"(e.g. {missing[0]}); download them all or only config.json + the index")
        files = present
    else:
        files = sorted(p for p in folder.glob("*.safetensors") if p.is_file())
        total = None
        if not files:
            return None, None, "config.json only (no safetensors files)"
    tensors = [t for path in files for t in read_file_headers(path)]
    return tensors, total, f"safetensors headers of {len(files)} file{'s' if len(files) != 1 else ''}"


# ---- what each stored tensor is -----------------------------------------------------------------

_QUANT_METADATA = re.compile(
    r"\.(qzeros|scales|g_idx|weight_scale|weight_scale_inv|input_scale|output_scale|weight_zero_point|"
    r"weight_g_idx|weight_shape|weight_global_scale|input_global_scale|absmax|quant_map|nested_absmax|"
    r"nested_quant_map|SCB|weight_format|k_scale|v_scale)$|\.quant_state\.|_scales$"
)
_PACKED = re.compile(r"\.(qweight|weight_packed)$|_blocks$")
_VISION = re.compile(r"(^|\.)(vision_tower|vision_model|visual|multi_modal_projector|mm_projector|vision_embed"
                     r"|patch_merger|image_newline)(\.|$)")
_BUFFERS = re.compile(r"rotary_emb\.inv_freq$|\.attn\.bias$|\.attn\.masked_bias$")
_LAYER = re.compile(r"(?:^|\.)layers\.(\d+)\.")


@dataclass(frozen=True)
class TensorTally:
    """Stored tensors sorted into what an engine loads, by component."""

    text_params: int
    vision_params: int
    loaded_bytes: int
    file_bytes: int
    bytes_by_dtype: dict[str, int]
    skipped: list[str]  # why some stored tensors are not loaded


def tally(tensors: list[TensorInfo], *, layers: int, weights_per_element: int | None) -> TensorTally:
    """Logical parameters and loaded bytes of stored tensors.

    Packed integer tensors (GPTQ/AWQ qweight, compressed-tensors weight_packed, gpt-oss *_blocks) hold
    `weights_per_element` weights each; bitsandbytes 4-bit stores U8 `.weight` with a quant_state beside
    it (2 per byte). Scales, zero points, g_idx and absmax are metadata: bytes, not parameters. Layers
    past num_hidden_layers (DeepSeek-V3's multi-token-prediction module) and rotary inv_freq buffers are
    not loaded by vLLM for serving, so they count in file_bytes only.
    """
    # bitsandbytes 4-bit: "X.weight" (U8) owns "X.weight.absmax", "X.weight.quant_state.bitsandbytes__nf4"...
    bnb_owners = {t.name.split(".quant_state.")[0] for t in tensors if ".quant_state." in t.name}
    bnb_owners |= {t.name[: -len(".absmax")] for t in tensors if t.name.endswith(".weight.absmax")}
    text = vision = loaded = file_bytes = 0
    by_dtype: dict[str, int] = {}
    skipped_mtp = skipped_buffers = 0
    for t in tensors:
        file_bytes += t.nbytes
        layer = _LAYER.search(t.name)
        if layer and int(layer.group(1)) >= layers and not _VISION.search(t.name):
            skipped_mtp += t.nbytes
            continue
        if _BUFFERS.search(t.name):
            skipped_buffers += t.nbytes
            continue
        loaded += t.nbytes
        by_dtype[t.dtype] = by_dtype.get(t.dtype, 0) + t.nbytes
        if _QUANT_METADATA.search(t.name):
            continue
        if _PACKED.search(t.name):
            params = t.numel * (weights_per_element or 1)
        elif t.dtype == "U8" and t.name in bnb_owners:
            params = t.numel * 2  # bitsandbytes 4-bit: two weights per byte
        else:
            params = t.numel
        if _VISION.search(t.name):
            vision += params
        else:
            text += params
    skipped = []
    if skipped_mtp:
        skipped.append(f"{skipped_mtp:,} B of layers >= {layers} (multi-token-prediction module) not loaded")
    if skipped_buffers:
        skipped.append(f"{skipped_buffers:,} B of rotary inv_freq / attention-mask buffers not loaded")
    return TensorTally(text_params=text, vision_params=vision, loaded_bytes=loaded, file_bytes=file_bytes,
                       bytes_by_dtype=by_dtype, skipped=skipped)


def dominant_float_dtype(tensors: list[TensorInfo]) -> str | None:
    """The float dtype holding the most bytes (what an unquantized checkpoint is stored in)."""
    sizes: dict[str, int] = {}
    for t in tensors:
        if t.dtype in ("BF16", "F16", "F32"):
            sizes[t.dtype] = sizes.get(t.dtype, 0) + t.nbytes
    if not sizes:
        return None
    return {"BF16": "bf16", "F16": "fp16", "F32": "fp32"}[max(sizes, key=lambda k: sizes[k])]
