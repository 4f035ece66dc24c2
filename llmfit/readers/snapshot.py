"""A Hugging Face snapshot (config.json, index, safetensors headers) -> ModelSpec with its checkpoint.

The architecture comes from config.json; what the checkpoint really stores (format, bytes per dtype,
logical parameter count, the vision tower exactly) from the safetensors headers when the shards are
present, else from `metadata.total_size` of the index, else from config.json alone.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path, PurePosixPath
from typing import Any

from llmfit.engine.params import count_params
from llmfit.engine.records import replace
from llmfit.readers.config import ModelFileError, read_config_file, spec_fields
from llmfit.readers.quant import format_from_quantization
from llmfit.readers.safetensors_headers import INDEX_NAME, TensorInfo, dominant_float_dtype, folder_headers, tally
from llmfit.specs import CheckpointInfo, ModelSpec

_DTYPE_FORMAT = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}


def build_spec(fields: dict[str, Any], *, name: str, source: str, hf_id: str | None, where: str,
               checkpoint: CheckpointInfo | None, published: int | None = None,
               published_source: str | None = None) -> ModelSpec:
    """Validate the fields into a ModelSpec; a failure is one line naming the file."""
    from pydantic_core import ValidationError  # pydantic's, re-exported

    from llmfit.presets import validation_message
    from llmfit.validators import validate

    data = {**fields, "name": name, "source": source, "hf_id": hf_id, "checkpoint": checkpoint}
    if published is not None:
        data |= {"published_params": published, "params_source": published_source}
    try:
        return validate(ModelSpec, data)
    except ValidationError as error:
        raise ModelFileError(validation_message(where, error)) from None


def with_count_note(spec: ModelSpec) -> ModelSpec:
    """Add a note when the stored tensors hold more or fewer parameters than the architecture has."""
    info = spec.checkpoint
    if info is None or info.stored_params is None:
        return spec
    computed = count_params(spec).total_params
    diff = info.stored_params - computed
    if diff == 0:
        return spec
    hint = ""
    if spec.tie_word_embeddings and diff == spec.vocab_size * spec.hidden_size:
        hint = " = vocab x hidden: the file stores lm_head although the embeddings are tied"
    note = (f"the checkpoint stores {info.stored_params:,} parameters, the architecture has {computed:,} "
            f"({diff:+,}{hint})")
    return replace(spec, checkpoint=replace(info, notes=[*info.notes, note]))


def spec_from_snapshot(config_path: Path, *, name: str, hf_id: str | None, label: str,
                       folder: Path | None = None, tensors: list[TensorInfo] | None = None,
                       index_total: int | None = None, how: str | None = None) -> ModelSpec:
    """ModelSpec of config.json plus, when `folder` (or pre-read `tensors`) is given, what is stored."""
    config = read_config_file(config_path)
    where = str(config_path)
    if folder is not None and tensors is None:
        check_index(folder)
        tensors, index_total, how = folder_headers(folder)
    qc = config.get("quantization_config")
    if qc is None and isinstance(config.get("text_config"), dict):
        qc = config["text_config"].get("quantization_config")
    if qc is not None and not isinstance(qc, dict):
        raise ModelFileError(f"{where}: quantization_config must be an object")
    fmt_name, per_element = format_from_quantization(qc, where) if qc else (None, None)

    multimodal = isinstance(config.get("text_config"), dict)
    fields = spec_fields(config, where, tower_params={"pending": 0} if (tensors and multimodal) else None)
    notes: list[str] = []
    published = None
    if tensors:
        counted = tally(tensors, layers=fields["num_hidden_layers"], weights_per_element=per_element)
        if multimodal:
            fields["extra_params"] = ({"vision tower + projector (safetensors headers)": counted.vision_params}
                                      if counted.vision_params else {})
        if fmt_name is None:
            fmt_name = dominant_float_dtype(tensors) or _DTYPE_FORMAT[fields.get("torch_dtype", "bfloat16")]
            published = counted.text_params + counted.vision_params
        notes += counted.skipped
        info = CheckpointInfo(path=str(folder or config_path.parent), reader="safetensors", format=fmt_name,
                              format_note=how, stored_bytes=counted.loaded_bytes, file_bytes=counted.file_bytes,
                              stored_params=counted.text_params + counted.vision_params,
                              bytes_by_dtype=counted.bytes_by_dtype, notes=notes)
    else:
        fmt_name = fmt_name or _DTYPE_FORMAT[fields.get("torch_dtype", "bfloat16")]
        if index_total is not None:
            notes.append("stored bytes are the index's metadata.total_size: every tensor in the files, "
                         "including any the engine does not load")
        info = CheckpointInfo(path=str(folder or config_path), reader="index.json" if index_total else "config.json",
                              format=fmt_name, format_note=how, stored_bytes=index_total, file_bytes=index_total,
                              notes=notes)
    source = f"{label}: config.json" + (f" + {how}" if how else "")
    spec = build_spec(fields, name=name, source=source, hf_id=hf_id, where=where, checkpoint=info,
                      published=published,
                      published_source="safetensors headers: every stored tensor, as the Hub's safetensors.total"
                      if published else None)
    return with_count_note(spec)


def check_index(folder: Path) -> None:
    """The folder's model.safetensors.index.json, if any, read within bounds (size, depth, strict JSON)
    with every shard it names a plain file name inside the folder: an index pointing at
    `../../etc/passwd` or `/dev/zero` is refused, not followed. (The shard itself may be a symlink, as
    in the Hugging Face cache, where snapshots link into blobs/: the name is what is checked.)"""
    from llmfit import limits, safe_io

    index = folder / INDEX_NAME
    if not index.is_file():
        return
    try:
        data = safe_io.read_json(index, max_bytes=limits.MAX_INDEX_BYTES, what="safetensors index")
    except safe_io.UnsafeInputError as error:
        raise ModelFileError(str(error)) from None
    weight_map = data.get("weight_map")
    if not isinstance(weight_map, dict):
        raise ModelFileError(f"{index}: no weight_map object of tensor -> file")
    metadata = data.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise ModelFileError(f"{index}: metadata must be an object")
    total = (metadata or {}).get("total_size")
    if total is not None and (isinstance(total, bool) or not isinstance(total, int)
                              or not 0 <= total <= limits.MAX_BYTES):
        raise ModelFileError(f"{index}: metadata.total_size must be a byte count, got {total!r}")
    for shard in sorted({v for v in weight_map.values() if isinstance(v, str)}):
        _check_shard_name(shard, index)
    bad = next((v for v in weight_map.values() if not isinstance(v, str)), None)
    if bad is not None:
        raise ModelFileError(f"{index}: weight_map values must be file names, got {bad!r}")


def _check_shard_name(shard: str, index: Path) -> None:
    parts = PurePosixPath(shard).parts
    if (not shard or "\\" in shard or "\x00" in shard or shard.startswith(("/", "~")) or ".." in parts
            or not shard.endswith(".safetensors") or any(len(p.encode()) > 255 for p in parts)):
        shown = shard if len(shard) <= 80 else shard[:77] + "..."
        raise ModelFileError(f"{index}: shard {shown!r} is not a .safetensors file name inside the snapshot folder")


def average_bits(spec: ModelSpec) -> Fraction | None:
    """Stored bits per parameter of a checkpoint, for a format llmfit has no model of."""
    info = spec.checkpoint
    if info is None or not info.stored_bytes:
        return None
    params = count_params(spec).total_params
    return Fraction(info.stored_bytes * 8, params)
