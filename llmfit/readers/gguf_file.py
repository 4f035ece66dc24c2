"""A `.gguf` file -> ModelSpec with the exact type and byte size of every stored tensor.

The file is read by llmfit.readers.gguf_reader (a struct-based walk of the documented format:
metadata and tensor infos, the vocabulary skipped, no tensor data read; gguf.GGUFReader took seconds
on a real file's 152k-token vocabulary). The architecture keys (`{arch}.block_count`,
`.embedding_length`, `.attention.head_count_kv` ...) are translated to the config.json fields of the
same architecture (llama.cpp's convert_hf_to_gguf.py writes them from those fields), so the parameter
and KV formulas are the ones presets and config.json use. Split files (`-00001-of-0000N.gguf`) are
read whole.

For `config_from_metadata(reader, tensors, where)` (the per-family translation): `reader` is a
`gguf_reader.GgufFile`; read a value with `_value(reader, key)` (int, float, bool, str, list, or a
`SkippedArray(type, count)` for a long array such as the vocabulary; None when absent). `tensors` maps
a name to a `gguf_reader.GgufTensor`: `.shape` in ggml order (ne0 first), `.type_name` ("Q4_K"),
`.n_elements`, `.n_bytes`. Every `{arch}.*` value named like a count, length or size (`_NUMERIC_KEY`) has
been checked to be a number (or a list of numbers) before it is called.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from llmfit.readers.config import ModelFileError, spec_fields
from llmfit.readers.gguf_reader import GgufFile, GgufTensor, SkippedArray, file_type_name, read_gguf
from llmfit.readers.snapshot import build_spec, with_count_note
from llmfit.specs import CheckpointInfo, ModelSpec

# general.architecture -> config.json model_type (llama.cpp LLM_ARCH names).
GGUF_ARCHES = {"llama": "llama", "qwen2": "qwen2", "qwen3": "qwen3", "qwen2moe": "qwen2_moe",
               "qwen3moe": "qwen3_moe", "gemma2": "gemma2", "gemma3": "gemma3_text", "phi3": "phi3",
               "deepseek2": "deepseek_v2", "gpt-oss": "gpt_oss", "falcon": "falcon"}
_SPLIT = re.compile(r"^(.*)-(\d{5})-of-(\d{5})\.gguf$")
MAX_SPLITS = 9999  # gguf-split numbers shards with 5 digits; no real model has thousands of them
# `{arch}.*` keys named as counts, lengths, sizes... are numbers (docs/gguf.md, "LLM" keys); a string or a
# skipped array there is malformed metadata. Other keys (tensor_data_layout, rope.scaling.type) may be strings.
_NUMERIC_KEY = re.compile(r"(count|length|size|rank|window|pattern|base|factor|epsilon|scale|dim)[^.]*$")


def _value(reader: GgufFile, key: str) -> Any:
    return reader.metadata.get(key)


def _parts(path: Path) -> list[Path]:
    match = _SPLIT.match(path.name)
    if not match:
        return [path]
    number, count = int(match.group(2)), int(match.group(3))
    if count < 1 or count > MAX_SPLITS or number < 1 or number > count:
        raise ModelFileError(f"{path}: split GGUF name says part {number} of {count}; parts are numbered "
                             f"1..N with 1 <= N <= {MAX_SPLITS} (name-00001-of-00003.gguf)")
    parts = [path.with_name(f"{match.group(1)}-{i:05d}-of-{count:05d}.gguf") for i in range(1, count + 1)]
    missing = [p.name for p in parts if not p.is_file()]
    if missing:
        raise ModelFileError(f"{path}: split GGUF, missing part {missing[0]}")
    return parts


def _open(path: Path) -> GgufFile:
    return read_gguf(path)


def _check_types(reader: GgufFile, where: str) -> str:
    """general.architecture as a string, and `{arch}.*` counts and lengths numeric: wrong types are one line."""
    arch = _value(reader, "general.architecture")
    if not isinstance(arch, str):
        raise ModelFileError(f"{where}: general.architecture must be a string, got "
                             f"{reader.value_types.get('general.architecture', 'nothing')}")
    prefix = f"{arch}."
    for key, value in reader.metadata.items():
        if not key.startswith(prefix) or not _NUMERIC_KEY.search(key):
            continue
        items = value if isinstance(value, list) else [value]
        if isinstance(value, SkippedArray) or not all(isinstance(v, int | float) for v in items):
            raise ModelFileError(f"{where}: GGUF metadata {key} must be a number (or numbers), got "
                                 f"{reader.value_types.get(key, type(value).__name__)}")
    return arch


def config_from_metadata(reader: Any, tensors: dict[str, Any], where: str) -> dict[str, Any]:
    """The config.json fields a GGUF's metadata encodes."""
    arch = _value(reader, "general.architecture")
    if arch not in GGUF_ARCHES:
        raise ModelFileError(f"{where}: GGUF architecture {arch!r} is not supported "
                             f"(supported: {', '.join(sorted(GGUF_ARCHES))})")

    def key(name: str) -> Any:
        return _value(reader, f"{arch}.{name}")

    embd = tensors.get("token_embd.weight")
    if embd is None:
        raise ModelFileError(f"{where}: no token_embd.weight tensor")
    heads = key("attention.head_count")
    kv = key("attention.head_count_kv")
    for name, value in (("attention.head_count", heads), ("attention.head_count_kv", kv)):
        if isinstance(value, list) and len(set(value)) != 1:
            raise ModelFileError(f"{where}: per-layer {arch}.{name} {sorted(set(value))} not modelled")
    heads = heads[0] if isinstance(heads, list) else heads
    kv = kv[0] if isinstance(kv, list) else kv
    model_type = GGUF_ARCHES[arch]
    experts = key("expert_count") or 0
    if model_type == "llama" and experts:
        model_type = "mixtral"
    config: dict[str, Any] = {
        "model_type": model_type,
        "hidden_size": key("embedding_length"),
        "num_hidden_layers": key("block_count"),
        "num_attention_heads": heads,
        "num_key_value_heads": kv if kv else heads,
        "intermediate_size": key("feed_forward_length") or 0,
        # ggml shapes list ne0 first: token_embd is [hidden, vocab].
        "vocab_size": int(embd.shape[1]) if len(embd.shape) > 1 else None,
        "max_position_embeddings": key("context_length"),
        "tie_word_embeddings": "output.weight" not in tensors,
        "sliding_window": key("attention.sliding_window"),
    }
    head_dim = key("attention.key_length")
    if head_dim and model_type != "deepseek_v2":
        config["head_dim"] = head_dim
    if model_type in ("mixtral", "gpt_oss"):
        config |= {"num_local_experts": experts, "num_experts_per_tok": key("expert_used_count")}
    if model_type == "gpt_oss":
        config["intermediate_size"] = key("expert_feed_forward_length")
    if model_type in ("qwen2_moe", "qwen3_moe"):
        config |= {"num_experts": experts, "num_experts_per_tok": key("expert_used_count"),
                   "moe_intermediate_size": key("expert_feed_forward_length")}
        if model_type == "qwen2_moe":
            config["shared_expert_intermediate_size"] = key("expert_shared_feed_forward_length")
    if model_type == "gemma3_text":
        config["sliding_window_pattern"] = key("attention.sliding_window_pattern") or 6
    if config["sliding_window"] and model_type in ("qwen2", "qwen3", "qwen2_moe", "qwen3_moe"):
        config["sliding_window"] = None  # Qwen GGUFs carry no use_sliding_window; llama.cpp ignores it
    if model_type == "deepseek_v2":
        rope = key("rope.dimension_count")
        k_len = key("attention.key_length_mla") or head_dim
        v_len = key("attention.value_length_mla") or key("attention.value_length")
        config |= {"kv_lora_rank": key("attention.kv_lora_rank"), "q_lora_rank": key("attention.q_lora_rank") or None,
                   "qk_rope_head_dim": rope, "qk_nope_head_dim": (k_len or 0) - (rope or 0), "v_head_dim": v_len,
                   "n_routed_experts": experts, "num_experts_per_tok": key("expert_used_count"),
                   "n_shared_experts": key("expert_shared_count") or 0,
                   "moe_intermediate_size": key("expert_feed_forward_length"),
                   "first_k_dense_replace": key("leading_dense_block_count") or 0}
        if any(name.endswith("exp_probs_b.bias") for name in tensors):
            config["topk_method"] = "noaux_tc"  # DeepSeek-V3's e_score_correction_bias
    if model_type == "falcon":
        config |= {"multi_query": kv == 1, "new_decoder_architecture": bool(kv and kv > 1),
                   "num_kv_heads": kv, "parallel_attn": True, "bias": "blk.0.attn_qkv.bias" in tensors}
        config.pop("num_key_value_heads")
        config["intermediate_size"] = config["intermediate_size"] or None
        config["ffn_hidden_size"] = key("feed_forward_length")
    return {k: v for k, v in config.items() if v is not None}


def _format_name(reader: GgufFile, tensors: dict[str, GgufTensor]) -> str:
    """llmfit's name for the file type (general.file_type, a llama_ftype), else the dominant tensor type."""
    names = {"ALL_F32": "fp32", "MOSTLY_F16": "fp16", "MOSTLY_BF16": "bf16", "MOSTLY_MXFP4_MOE": "mxfp4-experts"}
    raw = file_type_name(_value(reader, "general.file_type"))
    if raw:
        return names.get(raw, raw.removeprefix("MOSTLY_").lower())
    sizes: dict[str, int] = {}
    for tensor in tensors.values():
        sizes[tensor.type_name] = sizes.get(tensor.type_name, 0) + tensor.n_bytes
    if not sizes:
        raise ModelFileError(f"{reader.path}: GGUF file has no tensors")
    top = max(sizes, key=lambda k: sizes[k])
    return {"F32": "fp32", "F16": "fp16", "BF16": "bf16"}.get(top, top.lower())


def spec_from_gguf(path: Path, *, name: str | None = None) -> ModelSpec:
    parts = _parts(path)
    readers = [_open(p) for p in parts]
    tensors: dict[str, GgufTensor] = {}
    for reader in readers:
        for tensor in reader.tensors:
            if tensor.name in tensors:
                raise ModelFileError(f"{path}: tensor {tensor.name} appears in more than one split part")
            tensors[tensor.name] = tensor
    where = str(path)
    _check_types(readers[0], where)
    config = config_from_metadata(readers[0], tensors, where)
    fields = spec_fields(config, where)
    stored_params = sum(t.n_elements for t in tensors.values())
    stored_bytes = sum(t.n_bytes for t in tensors.values())
    by_type: dict[str, int] = {}
    for tensor in tensors.values():
        by_type[tensor.type_name] = by_type.get(tensor.type_name, 0) + tensor.n_bytes
    general_name = _value(readers[0], "general.name")
    model_name = name or (general_name if isinstance(general_name, str) and general_name else path.stem)
    info = CheckpointInfo(path=str(path), reader="gguf", format=_format_name(readers[0], tensors),
                          format_note=f"GGUF tensor table of {len(parts)} file{'s' if len(parts) > 1 else ''}",
                          stored_bytes=stored_bytes, file_bytes=stored_bytes, stored_params=stored_params,
                          bytes_by_dtype=by_type)
    spec = build_spec(fields, name=model_name.lower().replace(" ", "-"), source=f"{path}: GGUF metadata and tensors",
                      hf_id=None, where=where, checkpoint=info)
    return with_count_note(spec)
