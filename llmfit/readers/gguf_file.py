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

from llmfit.limits import MAX_LAYERS
from llmfit.readers.config import ModelFileError, spec_fields
from llmfit.readers.gguf_reader import GgufFile, GgufTensor, SkippedArray, file_type_name, read_gguf
from llmfit.readers.snapshot import build_spec, with_count_note
from llmfit.specs import CheckpointInfo, ModelSpec

# general.architecture -> config.json model_type (llama.cpp LLM_ARCH names).
GGUF_ARCHES = {"llama": "llama", "qwen2": "qwen2", "qwen3": "qwen3", "qwen2moe": "qwen2_moe",
               "qwen3moe": "qwen3_moe", "gemma2": "gemma2", "gemma3": "gemma3_text", "phi3": "phi3",
               "deepseek2": "deepseek_v2", "gpt-oss": "gpt_oss", "falcon": "falcon",
               # hybrids (llama.cpp src/llama-arch.cpp names); per-layer head_count_kv 0 marks a recurrent layer
               "qwen3next": "qwen3_next", "nemotron_h": "nemotron_h", "granitehybrid": "granitemoehybrid",
               "lfm2": "lfm2", "jamba": "jamba", "llama4": "llama4_text",
               "falcon-h1": "falcon_h1", "kimi-linear": "kimi_linear", "deepseek32": "deepseek_v32",
               "qwen35": "qwen3_5_text", "qwen35moe": "qwen3_5_moe_text",
               # Qwen2-VL and Qwen2.5-VL (convert_hf_to_gguf.py Qwen2VLModel registers both): the Qwen2 text decoder
               "qwen2vl": "qwen2"}
_HYBRID_GGUF = {"qwen3_next", "nemotron_h", "granitemoehybrid", "lfm2", "jamba", "falcon_h1", "kimi_linear",
                "qwen3_5_text", "qwen3_5_moe_text"}
# Gated DeltaNet + gated full attention (llama.cpp src/models/qwen3next.cpp, qwen35.cpp, qwen35moe.cpp): which blocks
# are recurrent is attention.recurrent_layers (newer files) or every full_attention_interval-th block attends.
_GATED_DELTANET = {"qwen3_next", "qwen3_5_text", "qwen3_5_moe_text"}
# Multimodal checkpoints whose GGUF is the text decoder only: llama.cpp's converter writes the vision tower and
# projector to a separate mmproj GGUF (convert_hf_to_gguf.py --mmproj; Qwen2VLVisionModel, Qwen3VL vision for
# Qwen3.5, Llama4 and Gemma3 vision models), so what this file counts is the text model.
_MMPROJ_NOTE = ("text decoder only: a vision tower and projector{maybe} live in a separate mmproj GGUF and are not "
                "counted here")
_TEXT_ONLY_ARCHES = {"qwen2vl": "", "qwen35": "", "qwen35moe": "", "llama4": "", "gemma3": " (if the model has one)"}
# Names and keys as llama.cpp src/llama-arch.cpp (LLM_ARCH_NAMES, LLM_KV_NAMES) at commit 00395eb285c7 and its
# src/models/<arch>.cpp load_arch_hparams; falcon-h1, kimi-linear and deepseek32 are all llama.cpp architectures there.
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
    if arch == "clip":  # gguf-py MODEL_ARCH.MMPROJ: the vision / audio tower a multimodal model's text GGUF leaves out
        raise ModelFileError(f"{where}: a multimodal projector (mmproj) GGUF, general.architecture 'clip': pass the "
                             "text model's .gguf (llmfit sizes the text decoder; the mmproj file adds its own bytes)")
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
    if GGUF_ARCHES[arch] in _HYBRID_GGUF:
        return _hybrid_config(GGUF_ARCHES[arch], key, tensors, embd, where)
    for name, value in (("attention.head_count", heads), ("attention.head_count_kv", kv)):
        if isinstance(value, list) and len(set(value)) != 1:
            raise ModelFileError(f"{where}: per-layer {arch}.{name} {sorted(set(value))} not modelled")
    heads = heads[0] if isinstance(heads, list) else heads
    kv = kv[0] if isinstance(kv, list) else kv
    model_type = GGUF_ARCHES[arch]
    experts = key("expert_count") or 0
    if model_type == "llama4_text":
        return _llama4_config(key, tensors, embd, heads, kv, experts)
    if model_type == "llama" and experts:
        model_type = "mixtral"
    if arch == "qwen2vl" and "blk.0.attn_q.bias" not in tensors:
        raise ModelFileError(f"{where}: qwen2vl GGUF without blk.0.attn_q.bias (the Qwen2 decoder's q/k/v have biases; "
                             "llama.cpp src/models/qwen2vl.cpp create_tensor_qkv)")
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
    if head_dim and model_type not in ("deepseek_v2", "deepseek_v32"):
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
        config |= _gemma3_window(key, int(key("block_count") or 0), where)
    if config["sliding_window"] and model_type in ("qwen2", "qwen3", "qwen2_moe", "qwen3_moe"):
        config["sliding_window"] = None  # Qwen GGUFs carry no use_sliding_window; llama.cpp ignores it
    if model_type in ("deepseek_v2", "deepseek_v32"):
        rope = key("rope.dimension_count")
        k_len = key("attention.key_length_mla") or head_dim
        v_len = key("attention.value_length_mla") or key("attention.value_length")
        # MLA: config.json's num_key_value_heads is num_attention_heads; converted files may carry head_count_kv 1
        # (the absorbed latent read as one MQA head), which the latent kind ignores either way.
        config["num_key_value_heads"] = heads
        config |= {"kv_lora_rank": key("attention.kv_lora_rank"), "q_lora_rank": key("attention.q_lora_rank") or None,
                   "qk_rope_head_dim": rope, "qk_nope_head_dim": (k_len or 0) - (rope or 0), "v_head_dim": v_len,
                   "n_routed_experts": experts, "num_experts_per_tok": key("expert_used_count"),
                   "n_shared_experts": key("expert_shared_count") or 0,
                   "moe_intermediate_size": key("expert_feed_forward_length"),
                   "first_k_dense_replace": key("leading_dense_block_count") or 0}
        if any(name.endswith("exp_probs_b.bias") for name in tensors):
            config["topk_method"] = "noaux_tc"  # DeepSeek-V3's e_score_correction_bias
    if model_type == "deepseek_v32":
        config |= _deepseek32_config(key, config, where)
    if model_type == "falcon":
        config |= {"multi_query": kv == 1, "new_decoder_architecture": bool(kv and kv > 1),
                   "num_kv_heads": kv, "parallel_attn": True, "bias": "blk.0.attn_qkv.bias" in tensors}
        config.pop("num_key_value_heads")
        config["intermediate_size"] = config["intermediate_size"] or None
        config["ffn_hidden_size"] = key("feed_forward_length")
    return {k: v for k, v in config.items() if v is not None}


def _gemma3_window(key: Any, layers: int, where: str) -> dict[str, Any]:
    """Gemma-3's local/global layers as llama.cpp's LLM_ARCH_GEMMA3 hparams read them: sliding only when
    attention.sliding_window is present and > 0 (else every layer attends globally, LLAMA_SWA_TYPE_NONE); the
    period is attention.sliding_window_pattern, default 6 (5 local, 1 global; llama_hparams::set_swa_pattern);
    gguf-py's add_sliding_window_pattern also writes it as one flag per layer (true = sliding)."""
    window = key("attention.sliding_window")
    if not window:
        return {"sliding_window": None, "layer_types": ["full_attention"] * layers}
    pattern = key("attention.sliding_window_pattern")
    if isinstance(pattern, list):
        flags = _per_layer(pattern, layers, "attention.sliding_window_pattern", where)
        return {"layer_types": ["sliding_attention" if f else "full_attention" for f in flags]}
    return {"sliding_window_pattern": pattern or 6}


def _deepseek32_config(key: Any, config: dict[str, Any], where: str) -> dict[str, Any]:
    """DeepSeek-V3.2 (llama.cpp LLM_ARCH_DEEPSEEK32, src/models/deepseek32.cpp): DeepSeek-V3's keys plus the
    lightning indexer's attention.indexer.head_count / .key_length / .top_k (src/llama-arch.cpp
    LLM_KV_ATTENTION_INDEXER_*; tensors blk.N.indexer.attn_q_b, .attn_k, .k_norm, .proj). block_count counts
    the nextn_predict_layers MTP blocks the converter keeps at the end (the graph runs
    n_layer - nextn_predict_layers blocks), so they are the config's num_nextn_predict_layers, stored."""
    blocks = int(key("block_count") or 0)
    mtp = int(key("nextn_predict_layers") or 0)
    if not 0 <= mtp < blocks:
        raise ModelFileError(f"{where}: GGUF nextn_predict_layers {mtp} must be below block_count {blocks}")
    return {"num_hidden_layers": blocks - mtp, "num_nextn_predict_layers": mtp,
            "index_n_heads": key("attention.indexer.head_count"), "index_head_dim": key("attention.indexer.key_length"),
            "index_topk": key("attention.indexer.top_k"), "moe_layer_freq": 1}


def _llama4_config(key: Any, tensors: dict[str, Any], embd: Any, heads: Any, kv: Any, experts: int) -> dict[str, Any]:
    """Llama-4 text (llama.cpp llama-model.cpp LLM_ARCH_LLAMA4): expert_feed_forward_length,
    interleave_moe_layer_step; the chunk is llama.cpp's constant n_swa = 8192 with swa pattern 4 (3 chunked,
    1 full); the vision tower lives in a separate mmproj file, so a GGUF counts the text model only."""
    config: dict[str, Any] = {
        "model_type": "llama4_text", "hidden_size": key("embedding_length"), "num_hidden_layers": key("block_count"),
        "num_attention_heads": heads, "num_key_value_heads": kv or heads, "head_dim": key("attention.key_length"),
        "intermediate_size": key("expert_feed_forward_length"), "intermediate_size_mlp": key("feed_forward_length"),
        "num_local_experts": experts, "num_experts_per_tok": key("expert_used_count"),
        "interleave_moe_layer_step": key("interleave_moe_layer_step") or 1, "attention_chunk_size": 8192,
        "no_rope_layer_interval": 4, "vocab_size": int(embd.shape[1]) if len(embd.shape) > 1 else None,
        "max_position_embeddings": key("context_length"), "tie_word_embeddings": "output.weight" not in tensors,
    }
    return {k: v for k, v in config.items() if v is not None}


def _per_layer(value: Any, layers: int, name: str, where: str) -> list[int]:
    """A per-layer GGUF value (an array of one entry per block, or one number for every block) as a list."""
    values = [int(v) for v in value] if isinstance(value, list) else [int(value or 0)] * layers
    if len(values) != layers:
        raise ModelFileError(f"{where}: GGUF metadata {name} has {len(values)} entries for {layers} blocks "
                             f"(block_count)")
    if any(v < 0 for v in values):
        raise ModelFileError(f"{where}: GGUF metadata {name} holds a negative value {min(values)}")
    return values


def _hybrid_config(model_type: str, key: Any, tensors: dict[str, Any], embd: Any, where: str) -> dict[str, Any]:
    """config.json fields of a hybrid GGUF, as convert_hf_to_gguf.py wrote them: ssm.* keys for the
    recurrent mixer (Qwen3-Next: ssm.state_size = linear_key_head_dim, ssm.group_count = linear_num_key_heads,
    ssm.time_step_rank = linear_num_value_heads, ssm.inner_size = value heads x linear_value_head_dim;
    Mamba-2: ssm.inner_size = heads x head_dim, ssm.time_step_rank = heads), shortconv.l_cache (LFM2); a
    per-layer attention.head_count_kv whose 0 entries are the recurrent layers (llama_hparams::
    recurrent_layer_arr), a per-layer feed_forward_length whose 0 entries have no MLP (Nemotron-H)."""
    layers = int(key("block_count") or 0)
    if not 1 <= layers <= MAX_LAYERS:  # checked before the per-layer lists are built
        raise ModelFileError(f"{where}: GGUF block_count {layers:,} is outside 1..{MAX_LAYERS:,}")
    kv = _per_layer(key("attention.head_count_kv"), layers, "attention.head_count_kv", where)
    heads = _per_layer(key("attention.head_count"), layers, "attention.head_count", where)
    ff = _per_layer(key("feed_forward_length"), layers, "feed_forward_length", where)
    mtp = 0
    if model_type in _GATED_DELTANET:
        mtp, recurrent = _gated_deltanet_layers(key, layers, where)
        layers -= mtp  # the trailing nextn_predict_layers blocks are the MTP module
        if any(not recurrent[i] and not kv[i] for i in range(layers)):
            raise ModelFileError(f"{where}: GGUF attention.head_count_kv is 0 at a full-attention block")
        kv = [0 if recurrent[i] else kv[i] for i in range(layers)]  # 0 marks a recurrent layer below
        heads, ff = heads[:layers], ff[:layers]
    attention = [i for i in range(layers) if kv[i]]
    if model_type == "falcon_h1" and not all(kv):
        raise ModelFileError(f"{where}: falcon-h1 GGUF with a layer of head_count_kv 0 (every Falcon-H1 block runs "
                             "attention beside its Mamba-2 mixer)")
    if not attention and model_type != "lfm2":
        raise ModelFileError(f"{where}: hybrid GGUF without attention layers (head_count_kv all 0)")
    n_kv = kv[attention[0]] if attention else 1
    n_heads = max(heads) if heads else 1
    config: dict[str, Any] = {
        "model_type": model_type, "hidden_size": key("embedding_length"), "num_hidden_layers": layers,
        "num_attention_heads": n_heads, "num_key_value_heads": n_kv,
        "vocab_size": int(embd.shape[1]) if len(embd.shape) > 1 else None,
        "max_position_embeddings": key("context_length"), "tie_word_embeddings": "output.weight" not in tensors,
        "intermediate_size": max(ff) if ff else 0,
    }
    head_dim = key("attention.key_length")
    if head_dim:
        config["head_dim"] = head_dim
    experts = key("expert_count") or 0
    conv, state, groups, rank, inner = (key("ssm.conv_kernel"), key("ssm.state_size"), key("ssm.group_count"),
                                        key("ssm.time_step_rank"), key("ssm.inner_size"))
    if model_type in _GATED_DELTANET:
        config |= {"layer_types": ["full_attention" if kv[i] else "linear_attention" for i in range(layers)],
                   "linear_conv_kernel_dim": conv, "linear_key_head_dim": state, "linear_num_key_heads": groups,
                   "linear_num_value_heads": rank, "linear_value_head_dim": (inner or 0) // max(1, rank or 1),
                   "num_experts": experts, "num_experts_per_tok": key("expert_used_count"),
                   "moe_intermediate_size": key("expert_feed_forward_length"),
                   "shared_expert_intermediate_size": key("expert_shared_feed_forward_length"),
                   # MTP blocks are counted only when the file stores them (block_count includes them)
                   "num_nextn_predict_layers": mtp}
    elif model_type == "nemotron_h":
        config |= {"hybrid_override_pattern": "".join("*" if kv[i] else "-" if ff[i] else "M" for i in range(layers)),
                   "ssm_state_size": state, "conv_kernel": conv, "n_groups": groups, "mamba_num_heads": rank,
                   "mamba_head_dim": (inner or 0) // max(1, rank or 1),
                   "use_conv_bias": "blk.0.ssm_conv1d.bias" in tensors or any(
                       n.endswith("ssm_conv1d.bias") for n in tensors)}
    elif model_type == "granitemoehybrid":
        hidden = int(config["hidden_size"] or 1)
        config |= {"layer_types": ["attention" if kv[i] else "mamba" for i in range(layers)],
                   "mamba_d_state": state, "mamba_d_conv": conv, "mamba_n_groups": groups, "mamba_n_heads": rank,
                   "mamba_d_head": (inner or 0) // max(1, rank or 1), "mamba_expand": (inner or 0) // hidden,
                   "num_local_experts": experts, "num_experts_per_tok": key("expert_used_count"),
                   "intermediate_size": key("expert_feed_forward_length") or 0,
                   "shared_intermediate_size": key("expert_shared_feed_forward_length") or max(ff)}
    elif model_type == "lfm2":
        config |= {"full_attn_idxs": attention, "conv_L_cache": key("shortconv.l_cache"),
                   "block_ff_dim": max(ff), "block_auto_adjust_ff_dim": False,
                   "tie_embedding": "output.weight" not in tensors}
    elif model_type == "falcon_h1":
        # llama.cpp src/models/falcon-h1.cpp: every block is recurrent (is_recr all true) and runs attention;
        # ssm.time_step_rank = Mamba-2 heads, ssm.inner_size = d_ssm; optional ssm_conv1d.bias, ssm_norm,
        # attn_q.bias, ffn_up.bias; the converter writes no ssm_out.bias.
        config |= {"mamba_d_ssm": inner, "mamba_n_heads": rank, "mamba_d_head": (inner or 0) // max(1, rank or 1),
                   "mamba_d_state": state, "mamba_d_conv": conv, "mamba_n_groups": groups or 1,
                   "mamba_conv_bias": _any_tensor(tensors, "ssm_conv1d.bias"),
                   "mamba_rms_norm": _any_tensor(tensors, "ssm_norm.weight"),
                   "attention_bias": _any_tensor(tensors, "attn_q.bias"),
                   "mlp_bias": _any_tensor(tensors, "ffn_up.bias"), "projectors_bias": False}
    elif model_type == "kimi_linear":
        config.pop("head_dim", None)  # MLA: the head widths come from the *_mla keys
        config |= _kimi_linear_config(key, kv, heads, layers, tensors)
    elif model_type == "jamba":
        period = attention[1] - attention[0] if len(attention) > 1 else layers
        moe = [i for i in range(layers) if f"blk.{i}.ffn_gate_exps.weight" in tensors]
        e_period = moe[1] - moe[0] if len(moe) > 1 else layers
        hidden = int(config["hidden_size"] or 1)
        config |= {"attn_layer_period": period, "attn_layer_offset": attention[0] % period,
                   "expert_layer_period": e_period, "expert_layer_offset": moe[0] % e_period if moe else 0,
                   "num_experts": experts, "num_experts_per_tok": key("expert_used_count"),
                   "mamba_d_state": state, "mamba_d_conv": conv, "mamba_dt_rank": rank,
                   "mamba_expand": (inner or 0) // hidden}
    return {k: v for k, v in config.items() if v is not None}


def _gated_deltanet_layers(key: Any, blocks: int, where: str) -> tuple[int, list[bool]]:
    """(MTP blocks, recurrent flag per block) of a Qwen3-Next / Qwen3.5 GGUF, as llama.cpp's load_arch_hparams
    (src/models/qwen3next.cpp, qwen35.cpp, qwen35moe.cpp): nextn_predict_layers trailing blocks are the MTP module
    (convert_hf_to_gguf.py's Qwen3.5 MTP mixin appends them to block_count; older converters drop them and write
    no key); attention.recurrent_layers, when present, flags each block, else block i is recurrent unless
    (i + 1) % full_attention_interval == 0 (default 4). head_count_kv is one number there, not a per-layer mask."""
    mtp = key("nextn_predict_layers") or 0
    if not isinstance(mtp, int) or not 0 <= mtp < blocks:
        raise ModelFileError(f"{where}: GGUF nextn_predict_layers {mtp} must be below block_count {blocks}")
    layers = blocks - mtp
    flags = key("attention.recurrent_layers")
    if flags is not None:
        if not isinstance(flags, list):
            raise ModelFileError(f"{where}: GGUF attention.recurrent_layers must be an array of one flag per block")
        values = _per_layer(flags, blocks, "attention.recurrent_layers", where)
        return mtp, [bool(v) and i < layers for i, v in enumerate(values)]
    interval = key("full_attention_interval")
    interval = 4 if interval is None else interval
    if isinstance(interval, bool) or not isinstance(interval, int) or not 1 <= interval <= blocks:
        raise ModelFileError(f"{where}: GGUF full_attention_interval {interval!r} must be a whole number in "
                             f"1..{blocks}")
    return mtp, [i < layers and (i + 1) % interval != 0 for i in range(blocks)]


def _any_tensor(tensors: dict[str, Any], suffix: str) -> bool:
    return any(name.endswith(suffix) for name in tensors)


def _kimi_linear_config(key: Any, kv: list[int], heads: list[int], layers: int,
                        tensors: dict[str, Any]) -> dict[str, Any]:
    """Kimi-Linear (llama.cpp src/models/kimi-linear.cpp load_arch_hparams): per-layer head_count_kv 0 marks a KDA
    (recurrent) layer, else MLA; kda.head_dim (older files: ssm.state_size) and ssm.conv_kernel for KDA, whose
    heads are head_count; MLA from attention.kv_lora_rank, .q_lora_rank (absent: a plain q), .key_length_mla
    (qk_nope + qk_rope), .value_length_mla, rope.dimension_count (qk_rope); MoE from expert_* keys after
    leading_dense_block_count dense blocks, the sigmoid router's bias stored as blk.N.exp_probs_b.bias."""
    rope = int(key("rope.dimension_count") or 0)
    k_len = int(key("attention.key_length_mla") or 0)
    n_heads = max(heads) if heads else 1
    config = {"num_key_value_heads": n_heads, "kv_lora_rank": key("attention.kv_lora_rank"),
              "q_lora_rank": key("attention.q_lora_rank") or None, "qk_rope_head_dim": rope,
              "qk_nope_head_dim": k_len - rope, "v_head_dim": key("attention.value_length_mla"),
              "linear_attn_config": {
                  "full_attn_layers": [i + 1 for i in range(layers) if kv[i]],
                  "kda_layers": [i + 1 for i in range(layers) if not kv[i]],
                  "head_dim": key("kda.head_dim") or key("ssm.state_size"), "num_heads": n_heads,
                  "short_conv_kernel_size": key("ssm.conv_kernel")}}
    experts = key("expert_count") or 0
    if experts:
        config |= {"num_experts": experts, "num_experts_per_token": key("expert_used_count"),
                   "num_shared_experts": key("expert_shared_count") or 0,
                   "moe_intermediate_size": key("expert_feed_forward_length"),
                   "first_k_dense_replace": key("leading_dense_block_count") or 0,
                   "moe_router_activation_func": "sigmoid" if _any_tensor(tensors, "exp_probs_b.bias") else "softmax"}
    return config


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
    arch = str(_value(readers[0], "general.architecture"))
    if arch == "qwen2vl":
        fields |= {"family": "qwen2_vl", "architecture": "Qwen2VLForConditionalGeneration"}
    general_name = _value(readers[0], "general.name")
    model_name = name or (general_name if isinstance(general_name, str) and general_name else path.stem)
    info = CheckpointInfo(path=str(path), reader="gguf", format=_format_name(readers[0], tensors),
                          format_note=f"GGUF tensor table of {len(parts)} file{'s' if len(parts) > 1 else ''}",
                          stored_bytes=stored_bytes, file_bytes=stored_bytes, stored_params=stored_params,
                          bytes_by_dtype=by_type, notes=[_MMPROJ_NOTE.format(maybe=_TEXT_ONLY_ARCHES[arch])]
                          if arch in _TEXT_ONLY_ARCHES else [])
    spec = build_spec(fields, name=model_name.lower().replace(" ", "-"), source=f"{path}: GGUF metadata and tensors",
                      hf_id=None, where=where, checkpoint=info)
    return with_count_note(spec)
