"""Parameter counts from the architecture, against published counts (hand-checked shapes)."""

from __future__ import annotations

from llmfit.engine.params import count_params, tensor_groups
from llmfit.engine.records import replace
from llmfit.specs import ModelSpec


def spec(**fields) -> ModelSpec:
    return ModelSpec(name=fields.pop("name", "test"), source="test", **fields)


LLAMA2_7B = {
    "hidden_size": 4096,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "intermediate_size": 11008,
    "vocab_size": 32000,
    "max_position_embeddings": 4096,
}


def test_llama2_7b_exact():
    """Together / keras-hub: 6,738,415,616. By hand: 2 x 32000 x 4096 (embed, lm_head) + 32 x (4 x 4096^2
    + 3 x 4096 x 11008 + 2 x 4096) + 4096."""
    by_hand = 2 * 32000 * 4096 + 32 * (4 * 4096**2 + 3 * 4096 * 11008 + 2 * 4096) + 4096
    assert by_hand == 6_738_415_616
    assert count_params(spec(**LLAMA2_7B)).total_params == by_hand


def test_falcon_fused_qkv_mqa_parallel_layernorm_tied():
    falcon = spec(
        architecture="FalconForCausalLM",
        hidden_size=4544,
        num_hidden_layers=32,
        num_attention_heads=71,
        num_key_value_heads=1,
        intermediate_size=18176,
        vocab_size=65024,
        max_position_embeddings=2048,
        mlp_kind="plain",
        norm_kind="layernorm",
        norms_per_layer=1,
        tie_word_embeddings=True,
    )
    per_layer = 4544 * (71 + 2) * 64 + 4544 * 4544 + 2 * 4544 * 18176 + 2 * 4544
    assert count_params(falcon).total_params == 65024 * 4544 + 32 * per_layer + 2 * 4544 == 6_921_720_704


def test_qwen25_attention_biases():
    """Qwen2: bias on q, k, v (not o). HF safetensors total 7,615,616,512."""
    qwen = spec(
        hidden_size=3584,
        num_hidden_layers=28,
        num_attention_heads=28,
        num_key_value_heads=4,
        intermediate_size=18944,
        vocab_size=152064,
        max_position_embeddings=32768,
        attention_bias=True,
    )
    assert count_params(qwen).total_params == 7_615_616_512
    no_bias = replace(qwen, attention_bias=False)
    assert count_params(qwen).total_params - count_params(no_bias).total_params == 28 * (3584 + 2 * 512)


def test_mixtral_total_and_active():
    """Mixtral-8x7B: 46,702,792,704 total; ~12.9B active (non-expert + 2 of 8 experts per layer)."""
    mixtral = spec(
        hidden_size=4096,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=8,
        intermediate_size=14336,
        vocab_size=32000,
        max_position_embeddings=32768,
        num_experts=8,
        num_experts_per_tok=2,
    )
    counts = count_params(mixtral)
    assert counts.total_params == 46_702_792_704
    expert = 3 * 4096 * 14336
    assert counts.expert_params == 32 * 8 * expert
    assert counts.active_params == counts.total_params - 32 * 6 * expert
    assert round(counts.active_params / 1e9, 1) == 12.9


def test_mla_shapes_deepseek_v2_lite():
    """DeepSeek-V2-Lite MLA (no q LoRA): q_proj h x heads x (nope + rope); kv_a h x (512 + 64); kv_b 512 x
    heads x (nope + v); o heads x v x h; MoE with 2 shared experts and a dense first layer."""
    lite = spec(
        hidden_size=2048,
        num_hidden_layers=27,
        num_attention_heads=16,
        num_key_value_heads=16,
        intermediate_size=10944,
        moe_intermediate_size=1408,
        num_experts=64,
        num_experts_per_tok=6,
        num_shared_experts=2,
        first_k_dense_replace=1,
        kv_lora_rank=512,
        qk_rope_head_dim=64,
        qk_nope_head_dim=128,
        v_head_dim=128,
        vocab_size=102400,
        max_position_embeddings=163840,
    )
    groups = {g.name: g for g in tensor_groups(lite)}
    assert groups["attn.q_proj"].rows == 16 * 192
    assert groups["attn.kv_a_proj_with_mqa"].rows == 576
    assert groups["attn.kv_b_proj"].rows == 16 * 256 and groups["attn.kv_b_proj"].cols == 512
    assert groups["mlp.gate_proj"].count == 1  # the dense first layer
    assert groups["experts.gate_proj"].count == 26 * 64
    assert groups["shared_experts.gate_proj"].rows == 2 * 1408
    counts = count_params(lite)
    assert 15.6e9 < counts.total_params < 15.8e9  # published "15.7B total"
    # llmfit counts the embedding table in the active parameters (Mixtral's "12.9B active" convention);
    # DeepSeek's "2.4B activated" leaves the input embedding lookup out (V3's card: 36.6B activated,
    # "including 0.9B for the output Head" but not the input embedding).
    assert 2.35e9 < counts.active_params - counts.embedding_params < 2.5e9


def test_counts_do_not_depend_on_tied_lm_head_twice():
    tied = spec(**{**LLAMA2_7B, "tie_word_embeddings": True})
    assert count_params(spec(**LLAMA2_7B)).total_params - count_params(tied).total_params == 32000 * 4096
