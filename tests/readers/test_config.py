"""config.json -> ModelSpec: real configs of each supported architecture against their published counts.

Config fields are those of shared/validation/architectures.yaml (each traced there to a vendored copy of
the HF config.json); the counts are the published ones of shared/validation/param_counts.yaml
(keras-hub presets, HF safetensors totals). A count that matches to the parameter cannot come from a
mis-read field.
"""

from __future__ import annotations

from typing import Any

import pytest

from llmfit.engine.layers import FullAttention, LatentAttention, SlidingAttention, attention_kind, kind_of_each_layer
from llmfit.engine.params import count_params
from llmfit.readers.config import ModelFileError, spec_fields
from llmfit.specs import ModelSpec


def _kinds(spec: ModelSpec) -> list[type]:
    """The kind type of each decoder layer (SlidingAttention is a FullAttention subclass: compared by type)."""
    return [type(kind) for kind in kind_of_each_layer(spec)]


def _spec(config: dict[str, Any]) -> ModelSpec:
    return ModelSpec(name="x", source="test", **spec_fields(config, "config.json"))


LLAMA_31_8B = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 4096,
               "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
               "num_key_value_heads": 8, "vocab_size": 128256, "max_position_embeddings": 131072,
               "tie_word_embeddings": False, "torch_dtype": "bfloat16",
               "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                "original_max_position_embeddings": 8192, "rope_type": "llama3"}}
MIXTRAL_8X7B = {"model_type": "mixtral", "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
                "num_attention_heads": 32, "num_key_value_heads": 8, "num_local_experts": 8,
                "num_experts_per_tok": 2, "vocab_size": 32000, "max_position_embeddings": 32768,
                "sliding_window": None, "tie_word_embeddings": False}
QWEN25_05B = {"model_type": "qwen2", "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
              "num_attention_heads": 14, "num_key_value_heads": 2, "vocab_size": 151936,
              "max_position_embeddings": 32768, "sliding_window": 32768, "use_sliding_window": False,
              "max_window_layers": 21, "tie_word_embeddings": True}
QWEN3_30B_A3B = {"model_type": "qwen3_moe", "hidden_size": 2048, "intermediate_size": 6144,
                 "moe_intermediate_size": 768, "num_hidden_layers": 48, "num_attention_heads": 32,
                 "num_key_value_heads": 4, "head_dim": 128, "num_experts": 128, "num_experts_per_tok": 8,
                 "decoder_sparse_step": 1, "mlp_only_layers": [], "vocab_size": 151936,
                 "max_position_embeddings": 40960, "tie_word_embeddings": False}
GEMMA2_9B = {"model_type": "gemma2", "hidden_size": 3584, "intermediate_size": 14336, "num_hidden_layers": 42,
             "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 256, "vocab_size": 256000,
             "max_position_embeddings": 8192, "sliding_window": 4096}
PHI3_MINI = {"model_type": "phi3", "hidden_size": 3072, "intermediate_size": 8192, "num_hidden_layers": 32,
             "num_attention_heads": 32, "num_key_value_heads": 32, "vocab_size": 32064,
             "max_position_embeddings": 4096, "tie_word_embeddings": False, "sliding_window": 2047}
GPT_OSS_20B = {"model_type": "gpt_oss", "hidden_size": 2880, "intermediate_size": 2880, "num_hidden_layers": 24,
               "num_attention_heads": 64, "num_key_value_heads": 8, "head_dim": 64, "num_local_experts": 32,
               "num_experts_per_tok": 4, "sliding_window": 128, "attention_bias": True, "vocab_size": 201088,
               "max_position_embeddings": 131072, "tie_word_embeddings": False,
               "layer_types": ["sliding_attention", "full_attention"] * 12,
               "rope_scaling": {"beta_fast": 32.0, "beta_slow": 1.0, "factor": 32.0,
                                "original_max_position_embeddings": 4096, "rope_type": "yarn"},
               "quantization_config": {"quant_method": "mxfp4"}}
DEEPSEEK_V3 = {"model_type": "deepseek_v3", "hidden_size": 7168, "intermediate_size": 18432,
               "moe_intermediate_size": 2048, "num_hidden_layers": 61, "first_k_dense_replace": 3,
               "moe_layer_freq": 1, "num_attention_heads": 128, "num_key_value_heads": 128, "q_lora_rank": 1536,
               "kv_lora_rank": 512, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128,
               "n_routed_experts": 256, "n_shared_experts": 1, "num_experts_per_tok": 8, "topk_method": "noaux_tc",
               "num_nextn_predict_layers": 1, "vocab_size": 129280, "max_position_embeddings": 163840,
               "rope_scaling": {"factor": 40, "original_max_position_embeddings": 4096, "type": "yarn"},
               "tie_word_embeddings": False}
FALCON_7B = {"model_type": "falcon", "vocab_size": 65024, "hidden_size": 4544, "num_hidden_layers": 32,
             "num_attention_heads": 71, "multi_query": True, "new_decoder_architecture": False,
             "parallel_attn": True, "bias": False, "alibi": False}
# google/gemma-3-4b-it config.json: the text_config lists only what differs from Gemma3TextConfig's defaults.
GEMMA3_4B = {"model_type": "gemma3", "architectures": ["Gemma3ForConditionalGeneration"],
             "text_config": {"hidden_size": 2560, "intermediate_size": 10240, "model_type": "gemma3_text",
                             "num_hidden_layers": 34, "sliding_window": 1024,
                             "rope_scaling": {"factor": 8.0, "rope_type": "linear"}},
             "vision_config": {"hidden_size": 1152, "image_size": 896, "intermediate_size": 4304,
                               "model_type": "siglip_vision_model", "num_attention_heads": 16,
                               "num_hidden_layers": 27, "patch_size": 14, "vision_use_head": False},
             "torch_dtype": "bfloat16"}


@pytest.mark.parametrize(("config", "published"), [
    (LLAMA_31_8B, 8_030_261_248),  # keras-hub llama3.1_8b
    (MIXTRAL_8X7B, 46_702_792_704),  # keras-hub mixtral_8_7b_en
    (QWEN25_05B, 494_032_768),  # keras-hub qwen2.5_0.5b_en (tied, q/k/v biases)
    (QWEN3_30B_A3B, 30_532_122_624),  # keras-hub qwen3_moe_30b_a3b_en
    (GEMMA2_9B, 9_241_705_984),  # keras-hub gemma2_9b_en (tied, 4 norms per layer)
    (PHI3_MINI, 3_821_079_552),  # keras-hub phi3_mini_4k_instruct_en
    (GPT_OSS_20B, 20_914_757_184),  # HF safetensors total of openai/gpt-oss-20b
    (GEMMA3_4B, 4_300_079_472),  # HF safetensors total of google/gemma-3-4b-it, vision tower included
], ids=["llama-3.1-8b", "mixtral-8x7b", "qwen2.5-0.5b", "qwen3-30b-a3b", "gemma-2-9b", "phi-3-mini", "gpt-oss-20b",
        "gemma-3-4b"])
def test_config_counts_equal_published(config: dict[str, Any], published: int) -> None:
    assert count_params(_spec(config)).total_params == published


def test_moe_active_params() -> None:
    # Qwen3-30B-A3B: 3,353,032,704 active (keras-hub "3.3 billion activated"; exact figure in param_counts.yaml).
    assert count_params(_spec(QWEN3_30B_A3B)).active_params == 3_353_032_704
    # Mixtral's "12.9B active": 2 of 8 experts plus everything else.
    assert round(count_params(_spec(MIXTRAL_8X7B)).active_params / 1e9, 1) == 12.9


def test_deepseek_v3_main_model_is_671b() -> None:
    # DeepSeek-V3 report: 671B total (main model; the MTP module adds 14B to the 685B on the Hub), 37B active.
    counts = count_params(_spec(DEEPSEEK_V3))
    assert round(counts.total_params / 1e9) == 671
    # "37B activated": the report does not say whether embeddings count; ours include embed_tokens and
    # lm_head (0.93B each); without the input embeddings it rounds to 37B.
    assert round((counts.active_params - counts.embedding_params) / 1e9) == 37
    spec = _spec(DEEPSEEK_V3)
    assert isinstance(attention_kind(spec), LatentAttention)
    assert spec.first_k_dense_replace == 3 and spec.router_correction_bias
    # yarn: original 4096 x factor 40 (vLLM's derived max_model_len).
    assert spec.max_position_embeddings == 163_840


def test_falcon_7b_mqa_and_derived_count() -> None:
    spec = _spec(FALCON_7B)
    assert (spec.num_key_value_heads, spec.intermediate_size, spec.norms_per_layer) == (1, 4 * 4544, 1)
    assert spec.tie_word_embeddings and spec.max_position_embeddings == 2048
    # shared/validation/param_counts.yaml: derived 6,921,720,704 (no primary published figure).
    assert count_params(spec).total_params == 6_921_720_704


def test_attention_layouts() -> None:
    assert _kinds(_spec(GPT_OSS_20B)).count(SlidingAttention) == 12
    assert _kinds(_spec(GEMMA2_9B))[:2] == [SlidingAttention, FullAttention]
    gemma3 = _spec(GEMMA3_4B)
    assert _kinds(gemma3)[:6] == [SlidingAttention] * 5 + [FullAttention]
    assert gemma3.qk_norm and gemma3.head_dim == 256 and gemma3.sliding_window == 1024
    assert set(gemma3.extra_params) == {"vision tower (siglip_vision_model)", "multimodal projector"}
    assert _kinds(_spec(PHI3_MINI)) == [SlidingAttention] * 32
    assert _kinds(_spec(QWEN25_05B)) == [FullAttention] * 24  # use_sliding_window false
    # Llama-3 rope scaling keeps max_position_embeddings (vLLM skips llama3/longrope).
    assert _spec(LLAMA_31_8B).max_position_embeddings == 131072


@pytest.mark.parametrize(("config", "message"), [
    ({**LLAMA_31_8B, "model_type": "mamba"}, "model_type 'mamba' is not supported"),
    ({k: v for k, v in LLAMA_31_8B.items() if k != "hidden_size"}, "missing hidden_size"),
    ({**LLAMA_31_8B, "num_hidden_layers": "32"}, "num_hidden_layers must be an integer"),
    ({**GPT_OSS_20B, "layer_types": ["full_attention"] * 3}, "layer_types has 3 entries for 24 layers"),
    ({**QWEN3_30B_A3B, "mlp_only_layers": [5]}, "not a leading block"),
    ({**LLAMA_31_8B, "torch_dtype": "int8"}, "torch_dtype 'int8' not modelled"),
    ({k: v for k, v in LLAMA_31_8B.items() if k != "model_type"}, "no model_type"),
    ({**GEMMA3_4B, "vision_config": {"model_type": "pixtral"}}, "vision_config model_type 'pixtral'"),
])
def test_bad_configs_are_one_clear_line(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ModelFileError, match=message) as error:
        spec_fields(config, "config.json")
    assert "\n" not in str(error.value) and str(error.value).startswith("config.json")
