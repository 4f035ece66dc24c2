"""config.json contents of the hybrid / multimodal families (trimmed to the fields llmfit reads), with
the source each was transcribed from."""

from __future__ import annotations

from typing import Any

# Qwen/Qwen3-Next-80B-A3B-Instruct config.json, as transcribed in a public test fixture (layer_types omitted:
# full_attention_interval 4 gives the same list).
QWEN3_NEXT_80B: dict[str, Any] = {
    "architectures": ["Qwen3NextForCausalLM"], "attention_bias": False, "decoder_sparse_step": 1,
    "dtype": "bfloat16", "full_attention_interval": 4, "head_dim": 256, "hidden_size": 2048,
    "intermediate_size": 5120, "linear_conv_kernel_dim": 4, "linear_key_head_dim": 128, "linear_num_key_heads": 16,
    "linear_num_value_heads": 32, "linear_value_head_dim": 128, "max_position_embeddings": 262144,
    "mlp_only_layers": [], "model_type": "qwen3_next", "moe_intermediate_size": 512, "norm_topk_prob": True,
    "num_attention_heads": 16, "num_experts": 512, "num_experts_per_tok": 10, "num_hidden_layers": 48,
    "num_key_value_heads": 2, "partial_rotary_factor": 0.25, "rope_scaling": None, "rope_theta": 5000000,
    "shared_expert_intermediate_size": 512, "tie_word_embeddings": False, "vocab_size": 151936,
}

# nvidia/NVIDIA-Nemotron-Nano-9B-v2 config.json (fields as in public test fixtures of hybrid-aware planners).
NEMOTRON_NANO_9B_V2: dict[str, Any] = {
    "architectures": ["NemotronHForCausalLM"], "model_type": "nemotron_h", "num_hidden_layers": 56,
    "hidden_size": 4480, "intermediate_size": 15680, "num_attention_heads": 40, "num_key_value_heads": 8,
    "head_dim": 128, "vocab_size": 131072, "max_position_embeddings": 131072, "tie_word_embeddings": False,
    "hybrid_override_pattern": "M-M-M-MM-M-M-M*-M-M-M*-M-M-M-M*-M-M-M-M*-M-MM-M-M-M-M-M-",
    "ssm_state_size": 128, "conv_kernel": 4, "n_groups": 8, "mamba_num_heads": 128, "mamba_head_dim": 80,
    "use_conv_bias": True, "use_bias": False, "attention_bias": False, "mlp_bias": False, "torch_dtype": "bfloat16",
}

# ibm-granite/granite-4.0-h-small config.json: the fields a public worked example quotes, plus the Mamba-2 head
# layout of the granite-4.0-h family (mamba_n_heads 128 x mamba_d_head 64 = 2 x 4096, mamba_n_groups 1). The
# positions of its 4 attention layers (36 mamba + 4 attention) are not quoted there: every 10th layer is
# assumed (it changes only the PP split, not the count).
GRANITE_40_H_SMALL: dict[str, Any] = {
    "architectures": ["GraniteMoeHybridForCausalLM"], "model_type": "granitemoehybrid", "hidden_size": 4096,
    "num_hidden_layers": 40, "num_attention_heads": 32, "num_key_value_heads": 8, "num_local_experts": 72,
    "num_experts_per_tok": 10, "shared_intermediate_size": 1536, "intermediate_size": 768, "mamba_d_state": 128,
    "mamba_d_conv": 4, "mamba_expand": 2, "mamba_n_heads": 128, "mamba_d_head": 64, "mamba_n_groups": 1,
    "mamba_conv_bias": True, "mamba_proj_bias": False, "attention_bias": False, "tie_word_embeddings": True,
    "vocab_size": 100352, "torch_dtype": "bfloat16", "max_position_embeddings": 131072,
    "layer_types": ["attention" if (i + 1) % 10 == 5 else "mamba" for i in range(40)],
}

_LLAMA4_VISION = {"model_type": "llama4_vision_model", "hidden_size": 1408, "intermediate_size": 5632,
                  "num_hidden_layers": 34, "num_attention_heads": 16, "image_size": 336, "patch_size": 14,
                  "num_channels": 3, "projector_input_dim": 4096, "projector_output_dim": 4096,
                  "pixel_shuffle_ratio": 0.5, "vision_output_dim": 4096}


def _llama4(experts: int, step: int, max_len: int) -> dict[str, Any]:
    return {
        "architectures": ["Llama4ForConditionalGeneration"], "model_type": "llama4",
        "text_config": {"model_type": "llama4_text", "hidden_size": 5120, "num_hidden_layers": 48,
                        "num_attention_heads": 40, "num_key_value_heads": 8, "head_dim": 128,
                        "intermediate_size": 8192, "intermediate_size_mlp": 16384, "num_local_experts": experts,
                        "num_experts_per_tok": 1, "interleave_moe_layer_step": step, "vocab_size": 202048,
                        "attention_chunk_size": 8192, "max_position_embeddings": max_len, "use_qk_norm": True,
                        "tie_word_embeddings": False, "attention_bias": False, "torch_dtype": "bfloat16",
                        "rope_scaling": {"rope_type": "llama3", "factor": 16.0 if experts == 16 else 8.0}},
        "vision_config": _LLAMA4_VISION, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
    }


# meta-llama/Llama-4-Scout-17B-16E(-Instruct) and Llama-4-Maverick-17B-128E(-Instruct) config.json
# (transformers Llama4Config / Llama4TextConfig / Llama4VisionConfig values of the published checkpoints).
LLAMA4_SCOUT = _llama4(16, 1, 10485760)
LLAMA4_MAVERICK = _llama4(128, 2, 1048576)

# Qwen/Qwen2.5-VL-7B-Instruct config.json (text fields at the top level, vision_config beside them).
QWEN25_VL_7B: dict[str, Any] = {
    "architectures": ["Qwen2_5_VLForConditionalGeneration"], "model_type": "qwen2_5_vl", "hidden_size": 3584,
    "intermediate_size": 18944, "num_hidden_layers": 28, "num_attention_heads": 28, "num_key_value_heads": 4,
    "vocab_size": 152064, "max_position_embeddings": 128000, "tie_word_embeddings": False,
    "torch_dtype": "bfloat16", "use_sliding_window": False, "sliding_window": 32768,
    "vision_config": {"model_type": "qwen2_5_vl", "depth": 32, "hidden_size": 1280, "intermediate_size": 3420,
                      "num_heads": 16, "in_chans": 3, "out_hidden_size": 3584, "patch_size": 14,
                      "spatial_merge_size": 2, "temporal_patch_size": 2, "window_size": 112},
}

# meta-llama/Llama-3.2-11B-Vision(-Instruct) config.json.
MLLAMA_11B: dict[str, Any] = {
    "architectures": ["MllamaForConditionalGeneration"], "model_type": "mllama", "torch_dtype": "bfloat16",
    "text_config": {"model_type": "mllama_text_model", "hidden_size": 4096, "num_hidden_layers": 40,
                    "num_attention_heads": 32, "num_key_value_heads": 8, "intermediate_size": 14336,
                    "vocab_size": 128256, "max_position_embeddings": 131072, "tie_word_embeddings": False,
                    "cross_attention_layers": [3, 8, 13, 18, 23, 28, 33, 38],
                    "rope_scaling": {"rope_type": "llama3", "factor": 8.0}},
    "vision_config": {"model_type": "mllama_vision_model", "hidden_size": 1280, "intermediate_size": 5120,
                      "num_hidden_layers": 32, "num_global_layers": 8, "num_attention_heads": 16,
                      "image_size": 560, "patch_size": 14, "num_channels": 3, "max_num_tiles": 4,
                      "vision_output_dim": 7680,
                      "supported_aspect_ratios": [[1, 1], [1, 2], [1, 3], [1, 4], [2, 1], [2, 2], [3, 1], [4, 1]]},
}

# moonshotai/Kimi-Linear-48B-A3B-Instruct config.json ("released 48B config" in a public test fixture).
KIMI_LINEAR_48B: dict[str, Any] = {
    "architectures": ["KimiLinearForCausalLM"], "model_type": "kimi_linear", "hidden_act": "silu",
    "q_lora_rank": None, "mla_use_nope": True, "moe_router_activation_func": "sigmoid", "num_expert_group": 1,
    "topk_group": 1, "moe_layer_freq": 1, "tie_word_embeddings": False, "hidden_size": 2304,
    "num_hidden_layers": 27, "vocab_size": 163840, "num_attention_heads": 32, "num_key_value_heads": 32,
    "kv_lora_rank": 512, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128, "num_experts": 256,
    "num_experts_per_token": 8, "num_shared_experts": 1, "moe_intermediate_size": 1024,
    "routed_scaling_factor": 2.446, "moe_renormalize": True, "first_k_dense_replace": 1, "intermediate_size": 9216,
    "max_position_embeddings": 1048576, "torch_dtype": "bfloat16",
    "linear_attn_config": {"full_attn_layers": [4, 8, 12, 16, 20, 24, 27], "head_dim": 128, "num_heads": 32,
                           "short_conv_kernel_size": 4,
                           "kda_layers": [i for i in range(1, 28) if i not in (4, 8, 12, 16, 20, 24, 27)]},
}

# ai21labs/AI21-Jamba-Mini-1.6 config.json (JambaConfig values of the published checkpoint).
JAMBA_MINI_16: dict[str, Any] = {
    "architectures": ["JambaForCausalLM"], "model_type": "jamba", "attn_layer_offset": 4, "attn_layer_period": 8,
    "expert_layer_offset": 1, "expert_layer_period": 2, "hidden_size": 4096, "intermediate_size": 14336,
    "mamba_conv_bias": True, "mamba_d_conv": 4, "mamba_d_state": 16, "mamba_dt_rank": 256, "mamba_expand": 2,
    "mamba_proj_bias": False, "max_position_embeddings": 262144, "num_attention_heads": 32, "num_experts": 16,
    "num_experts_per_tok": 2, "num_hidden_layers": 32, "num_key_value_heads": 8, "tie_word_embeddings": False,
    "vocab_size": 65536, "torch_dtype": "bfloat16",
}

# LiquidAI/LFM2-1.2B config.json (fields as quoted in public test fixtures of the published file).
LFM2_12B: dict[str, Any] = {
    "architectures": ["Lfm2ForCausalLM"], "model_type": "lfm2", "hidden_size": 2048, "num_hidden_layers": 16,
    "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 65536, "max_position_embeddings": 128000,
    "conv_L_cache": 3, "conv_bias": False, "full_attn_idxs": [2, 5, 8, 10, 12, 14], "block_ff_dim": 12288,
    "intermediate_size": 12288, "block_auto_adjust_ff_dim": True, "block_ffn_dim_multiplier": 1.0,
    "block_multiple_of": 256, "tie_embedding": True, "torch_dtype": "bfloat16",
}

# Qwen/Qwen3.5-2B config.json (text_config as quoted in public fixtures of revision 15852e8c; vision_config omitted).
QWEN35_2B_TEXT: dict[str, Any] = {
    "model_type": "qwen3_5_text", "hidden_size": 2048, "intermediate_size": 6144, "num_hidden_layers": 24,
    "num_attention_heads": 8, "num_key_value_heads": 2, "head_dim": 256, "vocab_size": 248320,
    "mtp_num_hidden_layers": 1, "tie_word_embeddings": True, "linear_num_key_heads": 16, "linear_num_value_heads": 16,
    "linear_key_head_dim": 128, "linear_value_head_dim": 128, "linear_conv_kernel_dim": 4,
    "full_attention_interval": 4, "max_position_embeddings": 262144, "torch_dtype": "bfloat16",
}

# deepseek-ai/DeepSeek-V3.2-Exp config.json: the DeepSeek-V3 fields plus the indexer's (index_n_heads 64,
# index_head_dim 128, index_topk 2048).
DEEPSEEK_V32_EXP: dict[str, Any] = {
    "architectures": ["DeepseekV32ForCausalLM"], "model_type": "deepseek_v32", "hidden_size": 7168,
    "num_hidden_layers": 61, "num_attention_heads": 128, "num_key_value_heads": 128, "intermediate_size": 18432,
    "vocab_size": 129280, "max_position_embeddings": 163840, "q_lora_rank": 1536, "kv_lora_rank": 512,
    "qk_rope_head_dim": 64, "qk_nope_head_dim": 128, "v_head_dim": 128, "n_routed_experts": 256,
    "num_experts_per_tok": 8, "n_shared_experts": 1, "moe_intermediate_size": 2048, "first_k_dense_replace": 3,
    "topk_method": "noaux_tc", "moe_layer_freq": 1, "num_nextn_predict_layers": 1, "tie_word_embeddings": False,
    "index_n_heads": 64, "index_head_dim": 128, "index_topk": 2048, "torch_dtype": "bfloat16",
    "rope_scaling": {"type": "yarn", "factor": 40, "original_max_position_embeddings": 4096},
}

# tiiuae/Falcon-H1-1.5B(-Instruct) config.json: the widths as quoted in public planners' test fixtures (24 layers,
# hidden 2048, intermediate 4608, 8 q / 2 kv heads of 128, vocab 65537; Mamba-2 d_ssm 3072 = 48 heads x 64, 1 group,
# state 256, conv 4) and the transformers Falcon-H1 table (H1 1.5B: depth 24, dim 2048, 8 / 2 heads, 48 Mamba
# heads, d_state 256); bias and norm flags are FalconH1Config's defaults (mamba_rms_norm false, projectors_bias
# false, mamba_conv_bias true, mamba_proj_bias false), not read from the published file.
FALCON_H1_15B: dict[str, Any] = {
    "architectures": ["FalconH1ForCausalLM"], "model_type": "falcon_h1", "num_hidden_layers": 24,
    "hidden_size": 2048, "intermediate_size": 4608, "num_attention_heads": 8, "num_key_value_heads": 2,
    "head_dim": 128, "vocab_size": 65537, "mamba_d_state": 256, "mamba_d_conv": 4, "mamba_n_groups": 1,
    "mamba_n_heads": 48, "mamba_d_head": 64, "mamba_d_ssm": 3072, "max_position_embeddings": 131072,
    "tie_word_embeddings": False, "torch_dtype": "bfloat16",
}

# mistralai/Mistral-Small-3.2-24B-Instruct-2506 config.json (Mistral3ForConditionalGeneration: a Mistral text_config, a
# Pixtral vision_config, the projector fields at the top level). Values as the HF file gives them; the same fields are
# quoted verbatim in public code (FLUX.2's text-encoder loader, which loads this checkpoint, and a C++ test's
# "kRealConfig" of Mistral-Small-3.1-24B-Instruct-2503, which has the same shapes).
MISTRAL_SMALL_32_24B: dict[str, Any] = {
    "architectures": ["Mistral3ForConditionalGeneration"], "image_token_index": 10, "model_type": "mistral3",
    "multimodal_projector_bias": False, "projector_hidden_act": "gelu", "spatial_merge_size": 2,
    "text_config": {"attention_dropout": 0.0, "head_dim": 128, "hidden_act": "silu", "hidden_size": 5120,
                    "initializer_range": 0.02, "intermediate_size": 32768, "max_position_embeddings": 131072,
                    "model_type": "mistral", "num_attention_heads": 32, "num_hidden_layers": 40,
                    "num_key_value_heads": 8, "rms_norm_eps": 1e-05, "rope_theta": 1000000000.0,
                    "sliding_window": None, "use_cache": True, "vocab_size": 131072},
    "torch_dtype": "bfloat16",
    "vision_config": {"attention_dropout": 0.0, "head_dim": 64, "hidden_act": "silu", "hidden_size": 1024,
                      "image_size": 1540, "initializer_range": 0.02, "intermediate_size": 4096,
                      "model_type": "pixtral", "num_attention_heads": 16, "num_channels": 3,
                      "num_hidden_layers": 24, "patch_size": 14, "rope_theta": 10000.0},
    "vision_feature_layer": -1,
}
