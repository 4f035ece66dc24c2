"""Hugging Face `config.json` -> ModelSpec, for the architectures llmfit can count exactly.

Each architecture's fields are read as its transformers configuration class and modeling code use
them (configuration_*.py / modeling_*.py of Llama, Mistral, Mixtral, Qwen2, Qwen3, Qwen2-MoE,
Qwen3-MoE, Gemma 2/3, Phi-3, DeepSeek-V2/V3, gpt-oss, Falcon). A field that is missing where the
architecture needs it, or a value llmfit cannot model, is refused with one line naming the file and the
field, never guessed. Multimodal configs (`text_config` + `vision_config`: Gemma 3, Llama 4, Llama-3.2-Vision,
Mistral 3 (Mistral-Small-3.1/3.2, Pixtral tower)) are read as their language
model, with the vision tower and projector counted as their own `extra_params` lines.
"""

from __future__ import annotations

import builtins
from pathlib import Path
from typing import Any

from llmfit.errors import LlmfitError
from llmfit.limits import MAX_CONFIG_BYTES


class ModelFileError(ValueError, LlmfitError):
    """A model file, folder or repo that cannot be read or modelled; the message names it."""


# model_type -> the transformers class its config.json describes.
ARCHITECTURES: dict[str, str] = {
    "llama": "LlamaForCausalLM",
    "mistral": "MistralForCausalLM",
    "mixtral": "MixtralForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
    "qwen3": "Qwen3ForCausalLM",
    "qwen2_moe": "Qwen2MoeForCausalLM",
    "qwen3_moe": "Qwen3MoeForCausalLM",
    "gemma2": "Gemma2ForCausalLM",
    "gemma3_text": "Gemma3ForCausalLM",
    "phi3": "Phi3ForCausalLM",
    "deepseek_v2": "DeepseekV2ForCausalLM",
    "deepseek_v3": "DeepseekV3ForCausalLM",
    "gpt_oss": "GptOssForCausalLM",
    "falcon": "FalconForCausalLM",
}
_MODEL_TYPE_ALIASES = {"RefinedWeb": "falcon", "RefinedWebModel": "falcon", "gemma3": "gemma3_text"}

# transformers configuration-class defaults, applied only inside a multimodal `text_config` /
# `vision_config`, where Hub files routinely omit what equals the default (gemma-3-4b-it's text_config
# lists 5 fields). Sources: configuration_llama.py, configuration_mistral.py, configuration_gemma3.py
# (Gemma3TextConfig), configuration_siglip.py (SiglipVisionConfig), configuration_clip.py (CLIPVisionConfig).
NESTED_DEFAULTS: dict[str, dict[str, Any]] = {
    "llama": {"vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
              "num_attention_heads": 32, "max_position_embeddings": 2048, "tie_word_embeddings": False},
    "mistral": {"vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
                "num_attention_heads": 32, "num_key_value_heads": 8, "max_position_embeddings": 131072,
                "sliding_window": 4096, "tie_word_embeddings": False},
    "gemma3_text": {"vocab_size": 262208, "hidden_size": 2304, "intermediate_size": 9216, "num_hidden_layers": 26,
                    "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256,
                    "max_position_embeddings": 131072, "sliding_window": 4096, "sliding_window_pattern": 6},
    "siglip_vision_model": {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
                            "num_channels": 3, "image_size": 224, "patch_size": 16, "vision_use_head": True},
    "clip_vision_model": {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
                          "num_channels": 3, "image_size": 224, "patch_size": 32},
}

# PretrainedConfig's default is tie_word_embeddings=True; these classes override it to False.
_UNTIED_BY_DEFAULT = {"llama", "mistral", "mixtral", "qwen2", "qwen3", "qwen2_moe", "qwen3_moe", "phi3",
                      "deepseek_v2", "deepseek_v3", "gpt_oss"}
_TORCH_DTYPES = {"float32": "float32", "float16": "float16", "bfloat16": "bfloat16", "fp32": "float32",
                 "fp16": "float16", "bf16": "bfloat16", "half": "float16", "float": "float32"}
# Keys vLLM reads for the maximum length (vllm/config.py _get_and_verify_max_len, possible_keys).
_MAX_LEN_KEYS = ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length", "max_sequence_length",
                 "max_seq_length", "seq_len")


def read_config_file(path: Path) -> dict[str, Any]:
    """Parse a config.json: size-capped, strict JSON (depth, NaN, duplicate keys; an object at the top),
    then every count and float held to llmfit.limits before anything is built from it."""
    from llmfit import limits, safe_io

    try:
        data = safe_io.read_json(path, max_bytes=MAX_CONFIG_BYTES, what="config.json")
        limits.check_config(data, str(path))
    except LlmfitError as error:
        raise ModelFileError(str(error)) from None
    return data  # type: ignore[no-any-return]


class _Fields:
    """Typed access to one config mapping; every failure names the file and the key."""

    def __init__(self, data: dict[str, Any], where: str, defaults: dict[str, Any] | None = None) -> None:
        # A key present in the file wins, even as null (Mistral's "sliding_window": null means no window).
        self.data = {**(defaults or {}), **data}
        self.where = where

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def int(self, key: str, *alternatives: str, default: int | None = None, minimum: int = 1) -> int:
        for name in (key, *alternatives):
            value = self.data.get(name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum or value > 2**40:
                raise ModelFileError(f"{self.where}: {name} must be an integer >= {minimum}, got {value!r}")
            return value
        if default is not None:
            return default
        raise ModelFileError(f"{self.where}: missing {key}, which {self.data.get('model_type', 'this model')} needs")

    def opt_int(self, key: str, *alternatives: str, minimum: builtins.int = 1) -> builtins.int | None:
        if not any(self.has(name) for name in (key, *alternatives)):
            return None
        return self.int(key, *alternatives, minimum=minimum)

    def bool(self, key: str, default: bool) -> bool:
        value = self.data.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise ModelFileError(f"{self.where}: {key} must be true or false, got {value!r}")
        return value


def model_type_of(config: dict[str, Any], where: str) -> str:
    raw = config.get("model_type")
    if not isinstance(raw, str):
        archs = config.get("architectures")
        hint = f" (architectures: {archs})" if archs else ""
        raise ModelFileError(f"{where}: no model_type field{hint}; is this a Hugging Face config.json?")
    return _MODEL_TYPE_ALIASES.get(raw, raw)


def max_context(fields: _Fields) -> int:
    """The longest context the model serves, as vLLM derives max_model_len.

    vllm/config.py `_get_and_verify_max_len`: the smallest of the length keys, then for rope_scaling of
    any type but su/longrope/llama3: yarn -> original_max_position_embeddings x factor, others (linear,
    dynamic) -> length x factor. (DeepSeek-V3: 4096 x 40 = 163840; gpt-oss: 4096 x 32 = 131072.)
    """
    lengths = [fields.data[k] for k in _MAX_LEN_KEYS if isinstance(fields.data.get(k), int) and fields.data[k] > 0]
    if not lengths:
        raise ModelFileError(f"{fields.where}: no maximum length (max_position_embeddings) in the config")
    length = min(lengths)
    scaling = fields.data.get("rope_scaling") or fields.data.get("rope_parameters")
    if isinstance(scaling, dict):
        rope_type = scaling.get("rope_type") or scaling.get("type")
        factor = scaling.get("factor", 1.0)
        if rope_type not in (None, "default", "su", "longrope", "llama3") and isinstance(factor, (int, float)):
            if rope_type == "yarn" and isinstance(scaling.get("original_max_position_embeddings"), int):
                length = scaling["original_max_position_embeddings"]
            length = int(length * factor)
    return int(length)


def _layer_types(fields: _Fields, layers: int, names: dict[str, str] | None = None) -> list[str] | None:
    """config.json layer_types mapped to llmfit's kind names; a kind llmfit does not know for this model
    type is refused, naming it and the model type (never counted as something else)."""
    raw = fields.data.get("layer_types")
    if raw is None:
        return None
    mapping = names or {"full_attention": "full_attention", "sliding_attention": "sliding_attention"}
    if not isinstance(raw, list) or not all(isinstance(kind, str) for kind in raw):
        raise ModelFileError(f"{fields.where}: layer_types must be a list of strings")
    _refuse_unknown_kinds(fields, raw, mapping, "layer_types")
    if len(raw) != layers:
        raise ModelFileError(f"{fields.where}: layer_types has {len(raw)} entries for {layers} layers")
    return [mapping[kind] for kind in raw]


def _refuse_unknown_kinds(fields: _Fields, raw: list[str], mapping: dict[str, str], key: str) -> None:
    unknown = sorted({kind for kind in raw if kind not in mapping})
    if unknown:
        model_type = fields.data.get("model_type", "this model")
        raise ModelFileError(f"{fields.where}: {key} has layer kind {', '.join(repr(k) for k in unknown)}, which "
                             f"llmfit does not model for model_type {model_type!r} "
                             f"(known: {', '.join(sorted(mapping))})")


def _dense_moe_split(fields: _Fields, layers: int) -> int:
    """Qwen-MoE: leading dense layers. Layer i is MoE when i not in mlp_only_layers and (i + 1) %
    decoder_sparse_step == 0 (modeling_qwen2_moe.py); llmfit models dense layers as a leading block."""
    step = fields.int("decoder_sparse_step", default=1)
    only = fields.data.get("mlp_only_layers") or []
    if not isinstance(only, list) or not all(isinstance(i, int) for i in only):
        raise ModelFileError(f"{fields.where}: mlp_only_layers must be a list of layer indexes")
    dense = [i for i in range(layers) if i in only or (i + 1) % step != 0]
    if dense != list(range(len(dense))):
        raise ModelFileError(f"{fields.where}: dense MLP layers {dense[:6]} are not a leading block "
                             "(decoder_sparse_step / mlp_only_layers); llmfit models only leading dense layers")
    return len(dense)


def text_spec_fields(config: dict[str, Any], where: str, *, nested: bool = False) -> dict[str, Any]:
    """The ModelSpec fields of a language model's config (top level or a multimodal text_config)."""
    model_type = model_type_of(config, where)
    if model_type in HYBRID_READERS:
        return dict(HYBRID_READERS[model_type](_Fields(config, where), config, model_type))
    if model_type not in ARCHITECTURES:
        supported = sorted({*ARCHITECTURES, *HYBRID_READERS, *_TEXT_MODEL_TYPES, "qwen2_5_vl"})
        raise ModelFileError(f"{where}: model_type {model_type!r} is not supported "
                             f"(supported: {', '.join(supported)})")
    f = _Fields(config, where, NESTED_DEFAULTS.get(model_type) if nested else None)
    out: dict[str, Any] = {"architecture": ARCHITECTURES[model_type], "family": model_type}
    layers = f.int("num_hidden_layers", "n_layer", "num_layers")
    heads = f.int("num_attention_heads", "n_head")
    hidden = f.int("hidden_size", "n_embed", "d_model")
    out |= {
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "vocab_size": f.int("vocab_size"),
        "max_position_embeddings": max_context(f) if model_type != "falcon" else f.int("max_position_embeddings",
                                                                                        default=2048),
        "tie_word_embeddings": f.bool("tie_word_embeddings", model_type not in _UNTIED_BY_DEFAULT),
    }
    dtype = config.get("torch_dtype") or config.get("dtype")
    if isinstance(dtype, str):
        if dtype not in _TORCH_DTYPES:
            raise ModelFileError(f"{where}: torch_dtype {dtype!r} not modelled (float32, float16, bfloat16)")
        out["torch_dtype"] = _TORCH_DTYPES[dtype]
    head_dim = f.opt_int("head_dim")
    if head_dim is not None:
        out["head_dim"] = head_dim  # explicit head_dim wins over hidden / heads (Qwen3-32B: 64 x 128 != 5120)
    if model_type != "falcon":
        out["num_key_value_heads"] = f.int("num_key_value_heads", default=heads)
        out["intermediate_size"] = f.int("intermediate_size", minimum=0)
        out["attention_bias"] = f.bool("attention_bias", model_type in ("qwen2", "qwen2_moe", "gpt_oss"))
        out["mlp_bias"] = f.bool("mlp_bias", False)

    kinds = _layer_types(f, layers)
    window = f.opt_int("sliding_window")
    if model_type in ("mistral", "mixtral", "phi3") and window is not None and kinds is None:
        # MistralAttention / Phi3Attention apply config.sliding_window to every layer.
        out |= {"sliding_window": window, "use_sliding_window": True, "max_window_layers": 0}
    elif model_type in ("qwen2", "qwen3", "qwen2_moe", "qwen3_moe") and kinds is None:
        # Qwen2Attention: the window applies from layer max_window_layers on, only if use_sliding_window.
        if f.bool("use_sliding_window", False) and window is not None:
            out |= {"sliding_window": window, "use_sliding_window": True,
                    "max_window_layers": f.int("max_window_layers", default=layers, minimum=0)}
    elif model_type == "gemma2" and kinds is None:
        # Gemma2: layer i slides when (i + 1) % 2 != 0 (even layers local, odd layers global).
        out |= {"sliding_window": f.int("sliding_window", default=4096), "sliding_window_pattern": 2}
    elif model_type == "gemma3_text" and kinds is None:
        out |= {"sliding_window": f.int("sliding_window", default=4096),
                "sliding_window_pattern": f.int("sliding_window_pattern", default=6)}
    elif model_type == "gpt_oss" and kinds is None:
        # GptOssConfig default: sliding on even layers, full on odd.
        kinds = ["sliding_attention" if (i + 1) % 2 else "full_attention" for i in range(layers)]
    if kinds is not None:
        out["layer_types"] = kinds
        if "sliding_attention" in kinds:
            out["sliding_window"] = f.int("sliding_window")

    if model_type in ("gemma2", "gemma3_text"):
        out["norms_per_layer"] = 4  # input, post_attention, pre_feedforward, post_feedforward
        out["qk_norm"] = model_type == "gemma3_text"
        out["head_dim"] = f.int("head_dim", default=256)
    if model_type in ("qwen3", "qwen3_moe"):
        out["qk_norm"] = True
    if model_type == "mixtral":
        out |= {"num_experts": f.int("num_local_experts"), "num_experts_per_tok": f.int("num_experts_per_tok")}
    if model_type in ("qwen2_moe", "qwen3_moe"):
        out |= {"num_experts": f.int("num_experts"), "num_experts_per_tok": f.int("num_experts_per_tok"),
                "moe_intermediate_size": f.int("moe_intermediate_size"),
                "first_k_dense_replace": _dense_moe_split(f, layers)}
        if model_type == "qwen2_moe" and f.int("shared_expert_intermediate_size", default=0, minimum=0):
            out |= {"num_shared_experts": 1, "shared_expert_gate": True,
                    "shared_expert_intermediate_size": f.int("shared_expert_intermediate_size")}
    if model_type in ("deepseek_v2", "deepseek_v3"):
        out |= _deepseek_fields(f, model_type)
    if model_type == "gpt_oss":
        out |= {"num_experts": f.int("num_local_experts"),
                "num_experts_per_tok": f.int("num_experts_per_tok", "experts_per_token"),
                "attention_bias": True, "attention_out_bias": True, "attention_sinks": True,
                "router_bias": True, "expert_bias": True}
    if model_type == "falcon":
        out |= _falcon_fields(f, heads, hidden)
    return out


def _deepseek_fields(f: _Fields, model_type: str) -> dict[str, Any]:
    """DeepSeek-V2/V3 (modeling_deepseek.py): MLA attention, MoE from layer first_k_dense_replace on."""
    if f.int("moe_layer_freq", default=1) != 1:
        raise ModelFileError(f"{f.where}: moe_layer_freq != 1 is not modelled "
                             "(MoE on every layer after the dense ones)")
    out: dict[str, Any] = {
        "kv_lora_rank": f.int("kv_lora_rank"),
        "qk_rope_head_dim": f.int("qk_rope_head_dim"),
        "qk_nope_head_dim": f.int("qk_nope_head_dim"),
        "v_head_dim": f.int("v_head_dim"),
        "q_lora_rank": f.opt_int("q_lora_rank"),  # null in DeepSeek-V2-Lite: a plain q_proj
        "attention_bias": False,
    }
    routed = f.int("n_routed_experts", default=0, minimum=0)
    if routed:
        out |= {"num_experts": routed, "num_experts_per_tok": f.int("num_experts_per_tok"),
                "num_shared_experts": f.int("n_shared_experts", default=0, minimum=0),
                "moe_intermediate_size": f.int("moe_intermediate_size"),
                "first_k_dense_replace": f.int("first_k_dense_replace", default=0, minimum=0),
                # noaux_tc routing (V3) keeps an e_score_correction_bias per expert and MoE layer.
                "router_correction_bias": f.data.get("topk_method") == "noaux_tc"}
    return out


def _falcon_fields(f: _Fields, heads: int, hidden: int) -> dict[str, Any]:
    """Falcon (modeling_falcon.py): fused query_key_value; MQA (multi_query) or, with
    new_decoder_architecture, num_kv_heads groups and two LayerNorms per layer; plain GELU MLP."""
    new_arch = f.bool("new_decoder_architecture", False)
    if new_arch:
        kv = f.int("num_kv_heads", "n_head_kv", default=heads)
        # ln_attn + ln_mlp, unless num_ln_in_parallel_attn is 1 (Falcon-11B).
        norms = f.int("num_ln_in_parallel_attn", default=2)
    else:
        kv = 1 if f.bool("multi_query", True) else heads
        norms = 1 if f.bool("parallel_attn", True) else 2
    bias = f.bool("bias", False)
    return {"num_key_value_heads": kv, "intermediate_size": f.int("ffn_hidden_size", default=4 * hidden),
            "mlp_kind": "plain", "norm_kind": "layernorm", "norms_per_layer": norms,
            "attention_bias": bias, "attention_out_bias": bias, "mlp_bias": bias}


def vision_tower_params(config: dict[str, Any], text_hidden: int, where: str) -> dict[str, int]:
    """Vision tower and projector of a multimodal config, counted from their shapes.

    SigLIP (modeling_siglip.py): conv patch embedding with bias, one position embedding per patch,
    per layer q/k/v/out with biases, two LayerNorms, fc1/fc2 with biases; post LayerNorm; the pooling
    head only with vision_use_head. CLIP adds a class embedding, one more position and a pre LayerNorm,
    its patch conv has no bias. Projectors: Gemma3MultiModalProjector (vision_h x text_h matrix + an
    RMSNorm of vision_h), LlavaMultiModalProjector (two biased linears).
    Check: gemma-3-4b = 3,880,263,168 text + 416,866,032 SigLIP + 2,950,272 projector = 4,300,079,472,
    the published count.
    """
    vision = config.get("vision_config")
    if not isinstance(vision, dict):
        raise ModelFileError(f"{where}: multimodal config without a vision_config object")
    vtype = vision.get("model_type")
    wrapper = config.get("model_type")
    if wrapper == "mistral3":
        return _mistral3_vision(_Fields(vision, f"{where} vision_config"), _Fields(config, where), text_hidden)
    if wrapper in _VISION_FORMULAS:
        return _VISION_FORMULAS[str(wrapper)](_Fields(vision, f"{where} vision_config"), text_hidden)
    if vtype not in ("siglip_vision_model", "clip_vision_model"):
        raise ModelFileError(f"{where}: vision_config model_type {vtype!r} has no llmfit formula; point at a "
                             "snapshot folder whose safetensors headers give the vision tower exactly")
    f = _Fields(vision, f"{where} vision_config", NESTED_DEFAULTS[vtype])
    h, inter, layers = f.int("hidden_size"), f.int("intermediate_size"), f.int("num_hidden_layers")
    patch, image, channels = f.int("patch_size"), f.int("image_size"), f.int("num_channels")
    patches = (image // patch) ** 2
    per_layer = 4 * (h * h + h) + 2 * 2 * h + (2 * h * inter + inter + h)
    if vtype == "siglip_vision_model":
        tower = channels * patch * patch * h + h + patches * h + layers * per_layer + 2 * h
        if f.bool("vision_use_head", True):
            tower += h + (3 * h * h + 3 * h) + (h * h + h) + 2 * h + (2 * h * inter + inter + h)
    else:
        tower = h + channels * patch * patch * h + (patches + 1) * h + 2 * h + layers * per_layer + 2 * h
    model_type = config.get("model_type")
    if model_type == "gemma3":
        projector = h * text_hidden + h
    elif model_type == "llava":
        projector = h * text_hidden + text_hidden + text_hidden * text_hidden + text_hidden
    else:
        raise ModelFileError(f"{where}: multimodal model_type {model_type!r} has no projector formula; point at "
                             "a snapshot folder whose safetensors headers count it exactly")
    return {f"vision tower ({vtype})": tower, "multimodal projector": projector}


def spec_fields(config: dict[str, Any], where: str, *, tower_params: dict[str, int] | None = None) -> dict[str, Any]:
    """ModelSpec fields (without name/source) of a config.json, multimodal ones included.

    `tower_params`: the vision tower and projector counted from safetensors headers, which then replace
    the formula (and make any vision architecture countable)."""
    from llmfit import limits

    try:  # also for GGUF metadata, before any per-layer list (issue 18)
        limits.check_config(config, where)
    except limits.LimitError as error:
        raise ModelFileError(str(error)) from None
    text = config.get("text_config")
    if isinstance(text, dict):
        nested = dict(text)
        nested.setdefault("model_type", _TEXT_MODEL_TYPES.get(str(config.get("model_type"))))
        for key in ("torch_dtype", "dtype", "tie_word_embeddings"):
            if key not in nested and key in config:
                nested[key] = config[key]
        fields = text_spec_fields(nested, f"{where} text_config", nested=True)
        fields["architecture"] = (config.get("architectures") or [fields["architecture"]])[0]
        fields["extra_params"] = {**fields.get("extra_params", {}),
                                  **(tower_params or vision_tower_params(config, fields["hidden_size"], where))}
        if "cross_attention" in (fields.get("layer_types") or []):
            fields["cross_attention_tokens"] = _mllama_image_tokens(config, where)
        return fields
    if config.get("model_type") == "qwen2_5_vl":
        # Qwen2.5-VL keeps its text fields at the top level (a Qwen2 decoder) beside vision_config.
        fields = text_spec_fields({**config, "model_type": "qwen2"}, where)
        fields["architecture"] = (config.get("architectures") or ["Qwen2_5_VLForConditionalGeneration"])[0]
        fields["family"] = "qwen2_5_vl"
        fields["extra_params"] = tower_params or vision_tower_params(config, fields["hidden_size"], where)
        return fields
    fields = text_spec_fields(config, where)
    archs = config.get("architectures")
    if isinstance(archs, list) and archs and isinstance(archs[0], str):
        if fields["architecture"] == "FalconForCausalLM":
            pass  # the engine keys Falcon's fused qkv on this exact class name
        else:
            fields["architecture"] = archs[0]
    return fields


# ---------------------------------------------------------------------------------------------------
# Hybrid and multimodal families (issue 13). Each reads its config.json as its transformers
# configuration class does; field names are those of the published config.json files.
# ---------------------------------------------------------------------------------------------------

def _common(f: _Fields, config: dict[str, Any], model_type: str, architecture: str, *,
            untied_default: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {"architecture": architecture, "family": model_type,
                           "hidden_size": f.int("hidden_size"), "num_hidden_layers": f.int("num_hidden_layers"),
                           "num_attention_heads": f.int("num_attention_heads"),
                           "num_key_value_heads": f.int("num_key_value_heads",
                                                        default=f.int("num_attention_heads")),
                           "vocab_size": f.int("vocab_size"), "max_position_embeddings": max_context(f),
                           "tie_word_embeddings": f.bool("tie_word_embeddings", not untied_default),
                           "intermediate_size": f.int("intermediate_size", minimum=0, default=0)}
    head_dim = f.opt_int("head_dim")
    if head_dim is not None:
        out["head_dim"] = head_dim
    dtype = config.get("torch_dtype") or config.get("dtype")
    if isinstance(dtype, str):
        if dtype not in _TORCH_DTYPES:
            raise ModelFileError(f"{f.where}: torch_dtype {dtype!r} not modelled (float32, float16, bfloat16)")
        out["torch_dtype"] = _TORCH_DTYPES[dtype]
    return out


def _ssm_dtype(f: _Fields, key: str = "mamba_ssm_cache_dtype") -> dict[str, Any]:
    raw = f.data.get(key)
    if raw in (None, "auto"):
        return {}
    if raw not in _TORCH_DTYPES:
        raise ModelFileError(f"{f.where}: {key} {raw!r} not modelled (float32, float16, bfloat16)")
    return {"mamba_ssm_cache_dtype": _TORCH_DTYPES[raw]}


def _qwen3_next_fields(f: _Fields, config: dict[str, Any], model_type: str) -> dict[str, Any]:
    """Qwen3-Next (modeling_qwen3_next.py) and Qwen3.5 / Qwen3.5-MoE text (modeling_qwen3_5*.py): Gated
    DeltaNet layers with every full_attention_interval-th layer a gated full-attention layer (q_proj x 2
    for the output gate, q/k RMSNorm); MoE with a gated shared expert (Qwen3-Next, Qwen3.5-MoE) or a dense MLP
    (Qwen3.5). mtp_num_hidden_layers / num_nextn_predict_layers MTP layers are stored in the checkpoint."""
    arch = {"qwen3_next": "Qwen3NextForCausalLM", "qwen3_5_text": "Qwen3_5ForCausalLM",
            "qwen3_5_moe_text": "Qwen3_5MoeForCausalLM"}.get(model_type, "Qwen3NextForCausalLM")
    out = _common(f, config, model_type, arch)
    layers = out["num_hidden_layers"]
    kinds = _layer_types(f, layers, {"linear_attention": "linear_attention", "full_attention": "full_attention"})
    if kinds is None:
        interval = f.int("full_attention_interval", default=4)
        kinds = ["full_attention" if (i + 1) % interval == 0 else "linear_attention" for i in range(layers)]
    out |= {"layer_types": kinds, "qk_norm": True, "attn_output_gate": f.bool("attn_output_gate", True),
            "attention_bias": f.bool("attention_bias", False), "head_dim": f.int("head_dim"),
            "linear_num_key_heads": f.int("linear_num_key_heads"),
            "linear_num_value_heads": f.int("linear_num_value_heads"),
            "linear_key_head_dim": f.int("linear_key_head_dim"),
            "linear_value_head_dim": f.int("linear_value_head_dim"),
            "linear_conv_kernel_dim": f.int("linear_conv_kernel_dim")} | _ssm_dtype(f)
    if f.int("num_experts", default=0, minimum=0):
        out |= {"num_experts": f.int("num_experts"), "num_experts_per_tok": f.int("num_experts_per_tok"),
                "moe_intermediate_size": f.int("moe_intermediate_size"),
                "first_k_dense_replace": _dense_moe_split(f, layers)}
        shared = f.int("shared_expert_intermediate_size", default=0, minimum=0)
        if shared:
            out |= {"num_shared_experts": 1, "shared_expert_gate": True, "shared_expert_intermediate_size": shared}
    mtp = f.int("mtp_num_hidden_layers", "num_nextn_predict_layers", default=1 if model_type == "qwen3_next" else 0,
                minimum=0)
    if mtp:
        out["extra_params"] = {f"mtp module ({mtp} layer, stored in the checkpoint; loaded for speculative decoding "
                               "only)": mtp * _qwen3_next_mtp_layer_params(out)}
    return out


def _qwen3_next_mtp_layer_params(out: dict[str, Any]) -> int:
    """One Qwen3-Next / Qwen3.5 MTP layer (vllm/model_executor/models/qwen3_next_mtp.py
    Qwen3NextMultiTokenPredictor): fc (2h -> h), one full-attention decoder layer (attention + its MLP,
    2 norms), pre_fc_norm_hidden, pre_fc_norm_embedding and a final norm; embeddings and lm_head shared."""
    from llmfit.engine.layers import FullAttention

    h = out["hidden_size"]
    attention = FullAttention(heads=out["num_attention_heads"], kv_heads=out["num_key_value_heads"],
                              head_dim=out["head_dim"], qk_norm=True, output_gate=out["attn_output_gate"])
    params = sum(g.params for g in attention.tensor_groups(h, 1))
    if out.get("num_experts"):
        expert = 3 * h * out["moe_intermediate_size"]
        params += out["num_experts"] * expert + out["num_experts"] * h
        if out.get("shared_expert_intermediate_size"):
            params += 3 * h * out["shared_expert_intermediate_size"] + h
    else:
        params += 3 * h * out["intermediate_size"]
    return int(params + 2 * h * h + 2 * h + 3 * h)


def _nemotron_h_fields(f: _Fields, config: dict[str, Any], model_type: str) -> dict[str, Any]:
    """Nemotron-H (modeling_nemotron_h.py, vllm models/nemotron_h.py): hybrid_override_pattern gives each
    block's mixer: M = Mamba-2, * = attention, - = MLP (relu^2, not gated), E = MoE; one RMSNorm per block."""
    out = _common(f, config, model_type, "NemotronHForCausalLM")
    layers = out["num_hidden_layers"]
    pattern = f.data.get("hybrid_override_pattern")
    if not isinstance(pattern, str) or len(pattern) != layers:
        raise ModelFileError(f"{f.where}: hybrid_override_pattern must be a string of {layers} block kinds")
    mapping = {"M": "mamba2", "*": "full_attention", "-": "mlp_only"}
    _refuse_unknown_kinds(f, list(pattern), mapping, "hybrid_override_pattern")
    heads = f.int("mamba_num_heads")
    head_dim = f.int("mamba_head_dim")
    out |= {"layer_types": [mapping[c] for c in pattern], "mlp_layer_types":
            ["dense" if c == "-" else "none" for c in pattern], "mlp_kind": "plain", "norms_per_layer": 1,
            "attention_bias": f.bool("attention_bias", False), "mlp_bias": f.bool("mlp_bias", False),
            "mamba_intermediate_size": heads * head_dim, "mamba_n_heads": heads, "mamba_head_dim": head_dim,
            "mamba_d_state": f.int("ssm_state_size"), "mamba_d_conv": f.int("conv_kernel"),
            "mamba_n_groups": f.int("n_groups", "mamba_num_groups"),
            "mamba_conv_bias": f.bool("use_conv_bias", True), "mamba_proj_bias": f.bool("use_bias", False)}
    out |= _ssm_dtype(f, "mamba_ssm_cache_dtype")
    return out


def _granite_hybrid_fields(f: _Fields, config: dict[str, Any], model_type: str) -> dict[str, Any]:
    """Granite-4.0-H (modeling_granitemoehybrid.py): layer_types mamba / attention; every layer has a
    Mamba-2 or attention mixer, a MoE block (num_local_experts, input_linear fused gate+up) when
    num_local_experts > 0, and a shared MLP of shared_intermediate_size; two RMSNorms per layer."""
    out = _common(f, config, model_type, "GraniteMoeHybridForCausalLM")
    layers = out["num_hidden_layers"]
    kinds = _layer_types(f, layers, {"mamba": "mamba2", "attention": "full_attention"})
    if kinds is None:
        raise ModelFileError(f"{f.where}: granitemoehybrid needs layer_types")
    heads = f.int("mamba_n_heads")
    head_dim = f.int("mamba_d_head")
    out |= {"layer_types": kinds, "attention_bias": f.bool("attention_bias", False),
            "mamba_intermediate_size": f.int("mamba_expand", default=2) * out["hidden_size"],
            "mamba_n_heads": heads, "mamba_head_dim": head_dim, "mamba_d_state": f.int("mamba_d_state"),
            "mamba_d_conv": f.int("mamba_d_conv"), "mamba_n_groups": f.int("mamba_n_groups"),
            "mamba_conv_bias": f.bool("mamba_conv_bias", True), "mamba_proj_bias": f.bool("mamba_proj_bias", False)}
    shared = f.int("shared_intermediate_size", default=0, minimum=0)
    experts = f.int("num_local_experts", default=0, minimum=0)
    if experts:
        out |= {"num_experts": experts, "num_experts_per_tok": f.int("num_experts_per_tok"),
                "moe_intermediate_size": f.int("intermediate_size"), "num_shared_experts": 1 if shared else 0,
                "shared_expert_intermediate_size": shared or None, "intermediate_size": shared}
    else:
        out["intermediate_size"] = shared or out["intermediate_size"]
    return out


def _lfm2_fields(f: _Fields, config: dict[str, Any], model_type: str) -> dict[str, Any]:
    """LFM2 (modeling_lfm2.py): layer_types conv / full_attention; gated short convolutions of L_cache
    taps, attention layers with q/k layernorm; SwiGLU MLP whose width is block_ff_dim, auto-adjusted
    (block_auto_adjust_ff_dim: int(2/3 x ff), x block_ffn_dim_multiplier, rounded up to block_multiple_of)."""
    out = _common(f, config, model_type, "Lfm2ForCausalLM", untied_default=False)
    layers = out["num_hidden_layers"]
    kinds = _layer_types(f, layers, {"conv": "short_conv", "full_attention": "full_attention"})
    if kinds is None:
        full = f.data.get("full_attn_idxs")
        if not isinstance(full, list):
            raise ModelFileError(f"{f.where}: lfm2 needs layer_types or full_attn_idxs")
        kinds = ["full_attention" if i in full else "short_conv" for i in range(layers)]
    ff = f.int("block_ff_dim", "intermediate_size")
    if f.bool("block_auto_adjust_ff_dim", False):
        ff = int(2 * ff / 3)
        multiplier = f.data.get("block_ffn_dim_multiplier")
        if isinstance(multiplier, (int, float)):
            ff = int(multiplier * ff)
        multiple = f.int("block_multiple_of", default=256)
        ff = multiple * ((ff + multiple - 1) // multiple)
    out |= {"layer_types": kinds, "qk_norm": True, "intermediate_size": ff, "conv_l_cache": f.int("conv_L_cache"),
            "conv_bias": f.bool("conv_bias", False), "tie_word_embeddings": f.bool("tie_embedding", True)}
    return out


def _jamba_fields(f: _Fields, config: dict[str, Any], model_type: str) -> dict[str, Any]:
    """Jamba (modeling_jamba.py): layer i is attention when i % attn_layer_period == attn_layer_offset, else
    Mamba; its MLP is MoE when i % expert_layer_period == expert_layer_offset; Mamba with dt/B/C RMSNorms."""
    out = _common(f, config, model_type, "JambaForCausalLM")
    layers = out["num_hidden_layers"]
    period, offset = f.int("attn_layer_period"), f.int("attn_layer_offset", minimum=0)
    e_period, e_offset = f.int("expert_layer_period"), f.int("expert_layer_offset", minimum=0)
    hidden = out["hidden_size"]
    out |= {"layer_types": ["full_attention" if i % period == offset else "mamba" for i in range(layers)],
            "mlp_layer_types": ["moe" if i % e_period == e_offset else "dense" for i in range(layers)],
            "num_experts": f.int("num_experts"), "num_experts_per_tok": f.int("num_experts_per_tok"),
            "mamba_intermediate_size": f.int("mamba_expand") * hidden, "mamba_d_state": f.int("mamba_d_state"),
            "mamba_d_conv": f.int("mamba_d_conv"), "mamba_dt_rank": f.int("mamba_dt_rank"),
            "mamba_conv_bias": f.bool("mamba_conv_bias", True), "mamba_proj_bias": f.bool("mamba_proj_bias", False),
            "mamba_inner_norms": True}
    return out


def _kimi_linear_fields(f: _Fields, config: dict[str, Any], model_type: str) -> dict[str, Any]:
    """Kimi-Linear (vllm models/kimi_linear.py, modeling_kimi.py): linear_attn_config lists the 1-based KDA
    and full (MLA) layers; MoE from layer first_k_dense_replace on, DeepSeek-style routing."""
    out = _common(f, config, model_type, "KimiLinearForCausalLM")
    layers = out["num_hidden_layers"]
    linear = f.data.get("linear_attn_config")
    if not isinstance(linear, dict):
        raise ModelFileError(f"{f.where}: kimi_linear needs linear_attn_config")
    lf = _Fields(linear, f"{f.where} linear_attn_config")
    kda = set(linear.get("kda_layers") or [])
    full = set(linear.get("full_attn_layers") or [])
    kinds = []
    for i in range(1, layers + 1):
        if i in kda:
            kinds.append("linear_attention")
        elif i in full:
            kinds.append("full_attention")
        else:
            raise ModelFileError(f"{f.where}: layer {i} is in neither kda_layers nor full_attn_layers")
    out |= {"layer_types": kinds, "linear_attention_kind": "kda", "linear_num_value_heads": lf.int("num_heads"),
            "linear_value_head_dim": lf.int("head_dim"), "linear_conv_kernel_dim": lf.int("short_conv_kernel_size"),
            "kv_lora_rank": f.int("kv_lora_rank"), "qk_rope_head_dim": f.int("qk_rope_head_dim"),
            "qk_nope_head_dim": f.int("qk_nope_head_dim"), "v_head_dim": f.int("v_head_dim"),
            "q_lora_rank": f.opt_int("q_lora_rank"), "attention_bias": False}
    out.pop("head_dim", None)
    experts = f.int("num_experts", default=0, minimum=0)
    if experts:
        # KimiMoE (vllm models/kimi_linear.py): sigmoid router with e_score_correction_bias, shared experts.
        out |= {"num_experts": experts, "num_experts_per_tok": f.int("num_experts_per_token", "num_experts_per_tok"),
                "num_shared_experts": f.int("num_shared_experts", default=0, minimum=0),
                "moe_intermediate_size": f.int("moe_intermediate_size"),
                "first_k_dense_replace": f.int("first_k_dense_replace", default=0, minimum=0),
                "router_correction_bias": f.data.get("moe_router_activation_func") == "sigmoid"}
    return out


def _deepseek_v32_fields(f: _Fields, config: dict[str, Any], model_type: str) -> dict[str, Any]:
    """DeepSeek-V3.2(-Exp) (vllm models/deepseek_v2.py with Indexer): DeepSeek-V3 plus a sparse-attention
    indexer per MLA layer: index_n_heads x index_head_dim, top index_topk keys."""
    out = _common(f, config, model_type, "DeepseekV32ForCausalLM")
    out |= _deepseek_fields(f, "deepseek_v3")
    out |= {"index_n_heads": f.int("index_n_heads"), "index_head_dim": f.int("index_head_dim"),
            "index_topk": f.int("index_topk")}
    mtp = f.int("num_nextn_predict_layers", default=0, minimum=0)
    if mtp:
        out["extra_params"] = {f"mtp module ({mtp} layer, stored in the checkpoint; loaded for speculative decoding "
                               "only)": mtp * deepseek_mtp_layer_params(out)}
    return out


def deepseek_mtp_layer_params(out: dict[str, Any]) -> int:
    """One DeepSeek-V3 / V3.2 MTP layer as the checkpoint stores it (model.layers.61.*; vllm
    models/deepseek_mtp.py DeepSeekMultiTokenPredictorLayer): a MoE decoder layer (MLA, its indexer for
    V3.2, 256 experts, shared expert, router with correction bias, 2 norms), eh_proj (2h -> h), enorm,
    hnorm, shared_head.norm, and its own copies of embed_tokens and shared_head.head (vocab x h each)."""
    from llmfit.engine.layers import LatentAttention, SparseIndexer

    h, vocab = out["hidden_size"], out["vocab_size"]
    indexer = None
    if out.get("index_n_heads"):
        indexer = SparseIndexer(n_heads=out["index_n_heads"], head_dim=out["index_head_dim"], topk=out["index_topk"],
                                q_lora_rank=out["q_lora_rank"])
    mla = LatentAttention(heads=out["num_attention_heads"], q_lora_rank=out.get("q_lora_rank"),
                          kv_lora_rank=out["kv_lora_rank"], qk_rope_head_dim=out["qk_rope_head_dim"],
                          qk_nope_head_dim=out["qk_nope_head_dim"], v_head_dim=out["v_head_dim"], indexer=indexer)
    params = sum(g.params for g in mla.tensor_groups(h, 1))
    experts = out.get("num_experts", 0)
    expert = 3 * h * (out.get("moe_intermediate_size") or 0)
    params += experts * expert + out.get("num_shared_experts", 0) * expert + experts * h
    params += experts if out.get("router_correction_bias") else 0
    return int(params + 2 * h + 2 * h * h + 3 * h + 2 * vocab * h)


def _llama4_text_fields(f: _Fields, config: dict[str, Any], model_type: str) -> dict[str, Any]:
    """Llama-4 text (modeling_llama4.py Llama4TextConfig): layers with RoPE (no_rope_layers[i] = 1) use chunked
    attention of attention_chunk_size, NoPE layers (0) attend globally; MoE every interleave_moe_layer_step-th
    layer (16 / 128 experts of intermediate_size, one shared expert), dense layers of intermediate_size_mlp;
    use_qk_norm is an L2 norm without weights."""
    out = _common(f, config, model_type, "Llama4ForCausalLM")
    layers = out["num_hidden_layers"]
    no_rope = f.data.get("no_rope_layers")
    if not isinstance(no_rope, list) or len(no_rope) != layers:
        interval = f.int("no_rope_layer_interval", default=4)
        no_rope = [int((i + 1) % interval != 0) for i in range(layers)]
    step = f.int("interleave_moe_layer_step", default=1)
    moe = f.data.get("moe_layers")
    moe_layers = set(moe) if isinstance(moe, list) else set(range(step - 1, layers, step))
    expert = f.int("intermediate_size")
    out |= {"layer_types": ["chunked_attention" if r else "full_attention" for r in no_rope],
            "attention_chunk_size": f.int("attention_chunk_size"),
            "attention_bias": f.bool("attention_bias", False),
            "mlp_layer_types": ["moe" if i in moe_layers else "dense" for i in range(layers)],
            "num_experts": f.int("num_local_experts"), "num_experts_per_tok": f.int("num_experts_per_tok"),
            "moe_intermediate_size": expert, "num_shared_experts": 1, "shared_expert_intermediate_size": expert,
            "intermediate_size": f.int("intermediate_size_mlp", default=expert)}
    return out


def _mllama_text_fields(f: _Fields, config: dict[str, Any], model_type: str) -> dict[str, Any]:
    """Llama-3.2-Vision text (modeling_mllama.py MllamaTextModel): cross_attention_layers are gated
    cross-attention layers to the image tokens; embed_tokens holds vocab_size + 8 rows, lm_head vocab_size."""
    out = _common(f, config, model_type, "MllamaForCausalLM")
    layers = out["num_hidden_layers"]
    cross = f.data.get("cross_attention_layers")
    if not isinstance(cross, list):
        raise ModelFileError(f"{f.where}: mllama needs cross_attention_layers")
    out |= {"layer_types": ["cross_attention" if i in cross else "full_attention" for i in range(layers)],
            "extra_params": {"embed_tokens: 8 extra image-token rows": 8 * out["hidden_size"]}}
    return out


def _falcon_h1_fields(f: _Fields, config: dict[str, Any], model_type: str) -> dict[str, Any]:
    """Falcon-H1 (modeling_falcon_h1.py): every layer runs attention and a Mamba-2 mixer in parallel
    (FalconH1DecoderLayer: self_attn + mamba, then feed_forward), two RMSNorms per layer. FalconH1Mixer:
    in_proj (mamba_proj_bias), conv1d (mamba_conv_bias), dt_bias / A_log / D, a gated RMSNorm only with
    mamba_rms_norm, out_proj with projectors_bias; d_ssm = mamba_d_ssm or mamba_expand x hidden."""
    out = _common(f, config, model_type, "FalconH1ForCausalLM")
    layers, hidden = out["num_hidden_layers"], out["hidden_size"]
    heads = f.int("mamba_n_heads")
    d_ssm = f.int("mamba_d_ssm", default=f.int("mamba_expand", default=2) * hidden)
    head = f.data.get("mamba_d_head")
    head_dim = head if isinstance(head, int) and not isinstance(head, bool) else d_ssm // heads
    out |= {"layer_types": ["full_attention"] * layers, "parallel_mamba": True,
            "attention_bias": f.bool("attention_bias", False), "mlp_bias": f.bool("mlp_bias", False),
            "mamba_intermediate_size": d_ssm, "mamba_n_heads": heads, "mamba_head_dim": head_dim,
            "mamba_d_state": f.int("mamba_d_state"), "mamba_d_conv": f.int("mamba_d_conv"),
            "mamba_n_groups": f.int("mamba_n_groups", default=1), "mamba_conv_bias": f.bool("mamba_conv_bias", True),
            "mamba_proj_bias": f.bool("mamba_proj_bias", False), "mamba_out_bias": f.bool("projectors_bias", False),
            "mamba_gated_norm": f.bool("mamba_rms_norm", False)}
    return out


# model_type -> (architecture reader). Multimodal wrappers name their text_config's model_type.
HYBRID_READERS: dict[str, Any] = {
    "qwen3_next": _qwen3_next_fields,
    "qwen3_5_text": _qwen3_next_fields,
    "qwen3_5_moe_text": _qwen3_next_fields,
    "nemotron_h": _nemotron_h_fields,
    "granitemoehybrid": _granite_hybrid_fields,
    "lfm2": _lfm2_fields,
    "jamba": _jamba_fields,
    "kimi_linear": _kimi_linear_fields,
    "deepseek_v32": _deepseek_v32_fields,
    "llama4_text": _llama4_text_fields,
    "mllama_text_model": _mllama_text_fields,
    "falcon_h1": _falcon_h1_fields,
}
# Multimodal wrapper -> the model_type of its text_config when the file omits it.
_TEXT_MODEL_TYPES = {"llama4": "llama4_text", "mllama": "mllama_text_model", "qwen3_5": "qwen3_5_text",
                     "qwen3_5_moe": "qwen3_5_moe_text", "gemma3": "gemma3_text", "mistral3": "mistral"}


def _llama4_vision(v: _Fields, text_hidden: int) -> dict[str, int]:
    """Llama-4 vision (modeling_llama4.py Llama4VisionModel): unfold patch embedding (C x p x p -> h, no
    bias), class embedding, (image/patch)^2 + 1 positions, pre/post LayerNorms, layers of biased q/k/v/o,
    biased fc1/fc2 and two LayerNorms; pixel-shuffle adapter MLP (intermediate -> projector_input_dim ->
    projector_output_dim, no bias); projector vision_output_dim -> text hidden (no bias).
    Check: Llama-4-Scout = 107,769,861,120 text + 871,932,416 = 108,641,793,536, the safetensors total."""
    h, inter, layers = v.int("hidden_size"), v.int("intermediate_size"), v.int("num_hidden_layers")
    patch, image, channels = v.int("patch_size"), v.int("image_size"), v.int("num_channels", default=3)
    positions = (image // patch) ** 2 + 1
    per_layer = 4 * (h * h + h) + (h * inter + inter) + (inter * h + h) + 2 * 2 * h
    tower = channels * patch * patch * h + h + positions * h + 2 * 2 * h + layers * per_layer
    adapter = inter * v.int("projector_input_dim") + v.int("projector_input_dim") * v.int("projector_output_dim")
    return {"vision tower (llama4 vision)": tower + adapter,
            "multimodal projector": v.int("vision_output_dim") * text_hidden}


def _qwen2_5_vl_vision(v: _Fields, text_hidden: int) -> dict[str, int]:
    """Qwen2.5-VL vision (modeling_qwen2_5_vl.py Qwen2_5_VisionTransformerPretrainedModel): Conv3d patch embed
    (C x temporal x p x p -> h, no bias), depth blocks of RMSNorm x 2, biased qkv and proj, biased SwiGLU
    MLP (gate/up/down of intermediate_size); merger: RMSNorm(h), Linear(4h -> 4h) and Linear(4h ->
    out_hidden_size), biased (spatial_merge_size^2 = 4 patches merged)."""
    h, inter, depth = v.int("hidden_size"), v.int("intermediate_size"), v.int("depth")
    patch, temporal, channels = v.int("patch_size"), v.int("temporal_patch_size", default=2), v.int("in_chans",
                                                                                                   default=3)
    merge = v.int("spatial_merge_size", default=2) ** 2 * h
    block = 2 * h + (h * 3 * h + 3 * h) + (h * h + h) + 2 * (h * inter + inter) + (inter * h + h)
    tower = channels * temporal * patch * patch * h + depth * block
    merger = h + (merge * merge + merge) + (merge * v.int("out_hidden_size", default=text_hidden)
                                           + v.int("out_hidden_size", default=text_hidden))
    return {"vision tower (qwen2.5-vl)": tower, "multimodal projector (merger)": merger}


def _mllama_vision(v: _Fields, text_hidden: int) -> dict[str, int]:
    """Llama-3.2-Vision (modeling_mllama.py MllamaVisionModel): patch conv (no bias), class embedding, gated
    positional embedding (positions x h + a tile embedding of (aspect ratios + 1) x tiles x positions x h +
    a gate), pre/post tile embeddings ((aspect ratios + 1) x tiles x h + a gate each), LayerNorms pre/post,
    num_hidden_layers local layers (q/k/v/o without bias, biased fc1/fc2, two LayerNorms) and
    num_global_layers gated layers (two gates more each); projector vision_output_dim -> text hidden,
    biased."""
    h, inter = v.int("hidden_size"), v.int("intermediate_size")
    patch, image, channels = v.int("patch_size"), v.int("image_size"), v.int("num_channels", default=3)
    tiles = v.int("max_num_tiles", default=4)
    ratios = v.data.get("supported_aspect_ratios")
    ratio_ids = (len(ratios) if isinstance(ratios, list) else 8) + 1
    positions = (image // patch) ** 2 + 1
    layer = 4 * h * h + (h * inter + inter) + (inter * h + h) + 2 * 2 * h
    tower = (channels * patch * patch * h + h + positions * h + ratio_ids * tiles * positions * h + 1
             + 2 * (ratio_ids * tiles * h + 1) + 2 * 2 * h + v.int("num_hidden_layers") * layer
             + v.int("num_global_layers") * (layer + 2))
    out_dim = v.int("vision_output_dim")
    return {"vision tower (mllama)": tower, "multimodal projector": out_dim * text_hidden + text_hidden}


def _mllama_image_tokens(config: dict[str, Any], where: str) -> int:
    """Image tokens each cross-attention layer caches per request (one image): max_num_tiles x
    ((image_size / patch_size)^2 + 1 class token) (modeling_mllama.py: cross_attention_states hold every
    tile's patches and class token; 4 x 1601 = 6404 for Llama-3.2-11B-Vision)."""
    vision = config.get("vision_config")
    v = _Fields(vision if isinstance(vision, dict) else {}, f"{where} vision_config")
    return v.int("max_num_tiles", default=4) * ((v.int("image_size") // v.int("patch_size")) ** 2 + 1)


_VISION_FORMULAS = {"llama4": _llama4_vision, "qwen2_5_vl": _qwen2_5_vl_vision, "mllama": _mllama_vision}


def _mistral3_vision(v: _Fields, top: _Fields, text_hidden: int) -> dict[str, int]:
    """Mistral-Small-3.1/3.2 (Mistral3ForConditionalGeneration): a Pixtral vision tower and a patch-merging projector.

    Tower, transformers models/pixtral/modeling_pixtral.py PixtralVisionModel: patch_conv Conv2d(C -> h, kernel
    patch_size, bias=False), ln_pre PixtralRMSNorm(h); per PixtralAttentionLayer q/k/v/o_proj Linear(h, h,
    bias=False), feed_forward PixtralMLP gate/up Linear(h, inter) and down Linear(inter, h) without bias,
    attention_norm and ffn_norm RMSNorm(h). The 2-D RoPE holds no parameters (non-persistent buffers).
    Projector, models/mistral3/modeling_mistral3.py Mistral3MultiModalProjector: norm Mistral3RMSNorm(h),
    patch_merger.merging_layer Linear(h x spatial_merge_size^2 -> h, bias=False), linear_1 Linear(h x feature
    layers -> text hidden) and linear_2 Linear(text hidden -> text hidden), both with bias =
    multimodal_projector_bias (projector_hidden_act is a parameter-free activation).
    Check: Mistral-Small-3.2-24B-Instruct-2506 = 23,572,403,200 text + 403,305,472 tower + 35,652,608 projector
    = 24,011,361,280, keras-hub's published count of the same checkpoint."""
    h, inter, layers = v.int("hidden_size"), v.int("intermediate_size"), v.int("num_hidden_layers")
    patch, channels = v.int("patch_size"), v.int("num_channels", default=3)
    per_layer = 4 * h * h + 3 * h * inter + 2 * h
    tower = channels * patch * patch * h + h + layers * per_layer
    merge = top.int("spatial_merge_size", default=2)
    feature_layer = top.data.get("vision_feature_layer", -1)
    feature_layers = len(feature_layer) if isinstance(feature_layer, list) and feature_layer else 1
    bias = top.bool("multimodal_projector_bias", False)
    projector = (h + h * merge * merge * h + h * feature_layers * text_hidden + text_hidden * text_hidden
                 + (2 * text_hidden if bias else 0))
    return {"vision tower (pixtral)": tower, "multimodal projector (patch merger)": projector}
