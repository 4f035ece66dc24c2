"""KV cache layouts: GQA/MQA, explicit head_dim, sliding windows, MLA, paged blocks, TP replication."""

from __future__ import annotations

from fractions import Fraction

from llmfit.engine.kv import (
    bytes_per_token,
    kv_cache,
    kv_heads_per_gpu,
    kv_layout,
    kv_shard_fraction,
    request_bytes,
    resolve_kv_dtype,
)
from llmfit.specs import ModelSpec

GIB = 2**30

GEMMA2_9B = ModelSpec(name="gemma-2-9b", source="t", hidden_size=3584, num_hidden_layers=42, num_attention_heads=16,
                      num_key_value_heads=8, head_dim=256, intermediate_size=14336, vocab_size=256000,
                      max_position_embeddings=8192, sliding_window=4096, sliding_window_pattern=2,
                      tie_word_embeddings=True, norms_per_layer=4)
DEEPSEEK_V3 = ModelSpec(name="deepseek-v3", source="t", hidden_size=7168, num_hidden_layers=61,
                        num_attention_heads=128, num_key_value_heads=128, intermediate_size=18432,
                        moe_intermediate_size=2048, num_experts=256, num_experts_per_tok=8, num_shared_experts=1,
                        first_k_dense_replace=3, q_lora_rank=1536, kv_lora_rank=512, qk_rope_head_dim=64,
                        qk_nope_head_dim=128, v_head_dim=128, vocab_size=129280, max_position_embeddings=163840)
LLAMA31_70B = ModelSpec(name="llama-3.1-70b", source="t", hidden_size=8192, num_hidden_layers=80,
                        num_attention_heads=64, num_key_value_heads=8, intermediate_size=28672, vocab_size=128256,
                        max_position_embeddings=131072)


def test_gemma2_alternates_sliding_and_global_layers():
    """Gemma-2-9B at 8K: 21 global layers hold 8192 tokens, 21 sliding layers are capped at 4096.
    Per layer and token: 2 x 8 KV heads x head_dim 256 (not 3584/16 = 224) x 2 bytes = 8192 B."""
    layout = kv_layout(GEMMA2_9B, "bf16")
    kinds = {g.kind: g for g in layout.groups}
    assert kinds["full_attention"].layers == 21 and kinds["sliding_attention"].layers == 21
    assert kinds["full_attention"].bytes_per_token_per_layer == 2 * 8 * 256 * 2
    expected = 21 * 8192 * 8192 + 21 * 8192 * 4096
    assert request_bytes(layout, 8192) == expected
    # a naive "all layers, hidden/heads" estimate would be 42 x 2 x 8 x 224 x 2 x 8192
    assert kv_cache(GEMMA2_9B, kv_dtype="bf16", context_tokens=8192).kv_bytes_per_request == expected


def test_sliding_window_caps_long_contexts():
    layout = kv_layout(GEMMA2_9B, "bf16")
    at_32k = request_bytes(layout, 32768)
    assert at_32k == 21 * 8192 * 32768 + 21 * 8192 * 4096


def test_mla_caches_one_latent_per_layer():
    """DeepSeek-V3 MLA: 61 layers x (kv_lora_rank 512 + qk_rope_head_dim 64) x 2 bytes = 70,272 B per token,
    where a naive MHA formula gives 61 x 2 x 128 x 128 x 2 = 3,997,696 B."""
    layout = kv_layout(DEEPSEEK_V3, "bf16")
    assert bytes_per_token(layout) == 61 * 576 * 2 == 70_272


def test_mla_latent_is_replicated_on_every_tp_gpu():
    assert kv_heads_per_gpu(DEEPSEEK_V3, 8) == 1
    assert kv_shard_fraction(DEEPSEEK_V3, 8) == 1


def test_gqa_heads_replicate_when_tp_exceeds_them():
    """Llama-3.1-70B has 8 KV heads: TP 4 -> 2 heads per GPU; TP 16 -> 1 head per GPU (each head on 2 GPUs)."""
    assert kv_heads_per_gpu(LLAMA31_70B, 4) == 2
    assert kv_heads_per_gpu(LLAMA31_70B, 16) == 1
    assert kv_shard_fraction(LLAMA31_70B, 16) == Fraction(1, 8)


def test_paged_blocks_round_each_request_up():
    layout = kv_layout(LLAMA31_70B, "bf16")
    per_token = 80 * 2 * 8 * 128 * 2
    assert request_bytes(layout, 1000, block_size=16) == 1008 * per_token
    assert request_bytes(layout, 1000, block_size=1) == 1000 * per_token


def test_typical_request_waste_contiguous_vs_paged():
    result = kv_cache(LLAMA31_70B, kv_dtype="bf16", context_tokens=8192, block_size=16, typical_tokens=400)
    per_token = 80 * 2 * 8 * 128 * 2
    assert result.contiguous_waste_bytes == (8192 - 400) * per_token
    assert result.paged_waste_bytes == 0  # 400 is 25 whole blocks
    result = kv_cache(LLAMA31_70B, kv_dtype="bf16", context_tokens=8192, block_size=16, typical_tokens=401)
    assert result.paged_waste_bytes == 15 * per_token


def test_kv_dtypes():
    assert bytes_per_token(kv_layout(LLAMA31_70B, "fp8")) * 2 == bytes_per_token(kv_layout(LLAMA31_70B, "bf16"))
    assert bytes_per_token(kv_layout(LLAMA31_70B, "fp32")) == 2 * bytes_per_token(kv_layout(LLAMA31_70B, "bf16"))
    # llama.cpp q8_0: 34 bytes per 32 values
    assert bytes_per_token(kv_layout(LLAMA31_70B, "q8_0")) == 80 * 2 * 8 * 128 * 34 // 32


def test_auto_kv_dtype_follows_the_model_dtype():
    assert resolve_kv_dtype("auto", LLAMA31_70B, "fp32") == "fp32"
    assert resolve_kv_dtype("auto", LLAMA31_70B, "int4") == "bf16"
    assert resolve_kv_dtype("fp8", LLAMA31_70B, "bf16") == "fp8"


def test_more_context_never_less_memory():
    layout = kv_layout(GEMMA2_9B, "bf16")
    sizes = [request_bytes(layout, n, block_size=16) for n in (1, 15, 16, 17, 4095, 4096, 4097, 9000)]
    assert sizes == sorted(sizes)
