"""Hugging Face `config.json` -> ModelSpec, for the architectures llmfit can count exactly.

Each architecture's fields are read as its transformers configuration class and modeling code use
them (configuration_*.py / modeling_*.py of Llama, Mistral, Mixtral, Qwen2, Qwen3, Qwen2-MoE,
Qwen3-MoE, Gemma 2/3, Phi-3, DeepSeek-V2/V3, gpt-oss, Falcon). A field that is missing where the
architecture needs it, or a value llmfit cannot model, is refused with one line naming the file and the
field, never guessed. Multimodal configs (`text_config` + `vision_config`) are read as their language
model, with the vision tower and projector counted as their own `extra_params` lines.
"""

from __future__ import annotations

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

    def opt_int(self, key: str, *alternatives: str, minimum: int = 1) -> int | None:
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
    return length


def _layer_types(fields: _Fields, layers: int) -> list[str] | None:
    raw = fields.data.get("layer_types")
    if raw is None:
        return None
    allowed = ("full_attention", "sliding_attention", "linear_attention")
    if not isinstance(raw, list) or not all(isinstance(kind, str) for kind in raw):
        raise ModelFileError(f"{fields.where}: layer_types must be a list of strings")
    unknown = sorted({kind for kind in raw if kind not in allowed})
    if unknown:
        raise ModelFileError(f"{fields.where}: layer_types {', '.join(unknown)} not modelled "
                             f"(llmfit knows {', '.join(allowed)})")
    if len(raw) != layers:
        raise ModelFileError(f"{fields.where}: layer_types has {len(raw)} entries for {layers} layers")
    return list(raw)


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
    if model_type not in ARCHITECTURES:
        raise ModelFileError(f"{where}: model_type {model_type!r} is not supported "
                             f"(supported: {', '.join(sorted(ARCHITECTURES))})")
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
        nested.setdefault("model_type", "gemma3_text" if config.get("model_type") == "gemma3" else None)
        for key in ("torch_dtype", "dtype", "tie_word_embeddings"):
            if key not in nested and key in config:
                nested[key] = config[key]
        fields = text_spec_fields(nested, f"{where} text_config", nested=True)
        fields["architecture"] = (config.get("architectures") or [fields["architecture"]])[0]
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
