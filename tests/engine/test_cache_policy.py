"""Cache policies: the paged policy reproduces serving.fit's KV arithmetic for every preset (same numbers
as before layer kinds were types); the vLLM hybrid allocator's grouping, page size and admission."""

from __future__ import annotations

from fractions import Fraction

import pytest

from llmfit.engine.cache_policy import CacheRequest, StageBudget, VllmPagedPolicy
from llmfit.engine.kv import bytes_per_token, kv_layout, kv_shard_fraction, request_bytes
from llmfit.presets import load_registry
from llmfit.units import ceil_div

MODELS = {spec.name: spec for spec in load_registry().all_models()}


def _request(spec, tp: int, pp: int, context: int, budget: int, block: int = 16) -> CacheRequest:
    layers = spec.num_hidden_layers
    stages, start = [], 0
    for s in range(pp):
        size = layers // pp + (1 if s < layers % pp else 0)
        stages.append(StageBudget(start, start + size, budget))
        start += size
    return CacheRequest(spec=spec, kv_dtype="bf16", tp=tp, stages=tuple(stages), context_tokens=context,
                        block_size=block, max_num_batched_tokens=8192, max_num_seqs=256)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_paged_policy_matches_the_serving_arithmetic(name: str) -> None:
    spec = MODELS[name]
    if any(g.kind.has_state for g in spec.layer_groups):
        pytest.skip("hybrid model: no pre-kind arithmetic to compare with")
    budget = 40 * 2**30
    for tp in (1, 2, 8):
        if spec.num_attention_heads % tp:
            continue
        for context in (1000, 8192):
            plan = VllmPagedPolicy().plan(_request(spec, tp, 1, context, budget))
            layout = kv_layout(spec, "bf16")
            head = kv_shard_fraction(spec, tp)
            per_token_gpu = bytes_per_token(layout, head_share=head)
            assert plan.kv_bytes_per_token_per_gpu == per_token_gpu
            assert plan.kv_bytes_per_token == bytes_per_token(layout, head_share=head * tp)
            assert plan.kv_bytes_per_request == request_bytes(layout, context, block_size=16, head_share=head * tp)
            per_gpu = request_bytes(layout, context, block_size=16, head_share=head)
            assert plan.request_bytes_per_gpu == per_gpu
            assert plan.kv_tokens == budget // (per_token_gpu * 16) * 16
            assert plan.max_requests == budget // per_gpu
    # PP: a uniform model's fullest stage holds ceil(layers / pp) layers, as serving.fit's layer share.
    if all(g.kind.window is None for g in spec.layer_groups):
        plan = VllmPagedPolicy().plan(_request(spec, 1, 2, 8192, budget))
        layout = kv_layout(spec, "bf16")
        share = Fraction(ceil_div(spec.num_hidden_layers, 2), spec.num_hidden_layers)
        assert plan.kv_bytes_per_token_per_gpu == bytes_per_token(layout, layer_share=share)


def test_gemma3_27b_vllm_hybrid_pool_follows_vllms_grouping_and_sliding_admission() -> None:
    """vllm/v1/core/kv_cache_utils.py _get_kv_cache_groups_uniform_page_size: 10 full + 52 sliding layers,
    group_size = 10 (the fewer kind; 52 >= 1.5 x 10) -> 1 + cdiv(52, 10) = 7 groups, 8 padding layers.
    Page = 16 tokens x 2 x 16 KV heads x 128 x 2 B = 131,072 B; get_num_blocks: 20 GiB // page // 10 = 16,384;
    _report_kv_cache_config: 16,384 // 7 groups x 16 = 37,440 tokens. Concurrency at 32K
    (get_max_concurrency_for_kv_cache_config): full group cdiv(32768, 16) = 2048 pages, each sliding group
    SlidingWindowSpec: cdiv(min(1024 - 1 + 8192, 32768), 16) + 1 = 577 pages -> 2048 + 6 x 577 = 5510 pages per
    request; 16,384 / 5510 = 2.97."""
    from llmfit.engine.cache_policy import VllmHybridPolicy

    spec = MODELS["gemma-3-27b-pt"]
    plan = VllmHybridPolicy().plan(_request(spec, 1, 1, 32768, 20 * 2**30))
    assert plan.block_size == 16
    assert plan.kv_tokens == 16_384 // 7 * 16 == 37_440
    assert round(plan.engine_max_concurrency, 2) == 2.97 and plan.max_requests == 2
    assert any("7 groups of 10" in note and "8 padding" in note for note in plan.notes)
    # The sliding layers' own bytes stay capped at the window in the per-kind lines (no padding there).
    sliding = next(line for line in plan.lines if line.kind == "sliding_attention")
    assert sliding.layers == 52 and sliding.tokens_held_per_request == 1024


def test_sglang_keeps_a_separate_state_pool() -> None:
    """sglang model_runner: mamba budget = rest x ratio / (1 + ratio) (mamba_full_memory_ratio 0.9), states =
    budget // state bytes per request; the rest is the attention token pool (page size 1)."""
    from llmfit.engine.cache_policy import SglangPolicy

    spec = MODELS["qwen3-next-80b-a3b-instruct"]
    budget = 20 * 2**30
    plan = SglangPolicy().plan(_request(spec, 1, 1, 32768, budget))
    state = 36 * 1_097_728
    states = int(budget * 0.9 / 1.9) // state
    assert plan.kv_tokens == (budget - states * state) // (12 * 2048)
    assert plan.max_requests == min(states, (budget - states * state) // (12 * 2048 * 32768))


def test_llamacpp_keeps_recurrent_state_in_f32() -> None:
    """llama.cpp: one recurrent cell per sequence, r and s tensors in f32 (llama-model.cpp create_memory): the
    Qwen3-Next GDN state of 1,097,728 B in bf16 is 2,195,456 B per layer there."""
    from llmfit.engine.cache_policy import LlamaCppPolicy

    spec = MODELS["qwen3-next-80b-a3b-instruct"]
    plan = LlamaCppPolicy().plan(_request(spec, 1, 1, 8192, 20 * 2**30, block=1))
    assert plan.state_bytes_per_request == 36 * 2 * 1_097_728
    assert plan.kv_bytes_per_request == 12 * 2048 * 8192 + 36 * 2 * 1_097_728


def test_vllm_hybrid_equals_paged_for_a_uniform_full_attention_model() -> None:
    """One group of every layer: num_blocks = budget // page // layers, the paged pool to the block."""
    from llmfit.engine.cache_policy import VllmHybridPolicy

    spec = MODELS["llama-3.1-8b"]
    request = _request(spec, 1, 1, 8192, 30 * 2**30)
    hybrid, paged = VllmHybridPolicy().plan(request), VllmPagedPolicy().plan(request)
    assert hybrid.kv_tokens == paged.kv_tokens and hybrid.max_requests == paged.max_requests
    assert hybrid.kv_bytes_per_request == paged.kv_bytes_per_request


def test_vllm_hybrid_projects_groups_onto_pp_stages() -> None:
    """kv_cache_utils.py: groups take layers[i::num_groups] so every PP stage holds about half of each group;
    each worker's tensors hold its share (group size on the stage), num_blocks the smallest over workers."""
    from llmfit.engine.cache_policy import VllmHybridPolicy

    spec = MODELS["gemma-3-27b-pt"]
    one = VllmHybridPolicy().plan(_request(spec, 1, 1, 32768, 20 * 2**30))
    two = VllmHybridPolicy().plan(_request(spec, 1, 2, 32768, 20 * 2**30))
    assert two.kv_tokens >= 2 * one.kv_tokens * 9 // 10  # each stage holds about half the layers
    assert two.request_bytes_per_gpu < one.request_bytes_per_gpu
    assert two.kv_bytes_per_request >= one.kv_bytes_per_request  # the same request, spread over the stages


def test_llamacpp_keeps_the_sparse_indexer_keys_at_the_kv_type() -> None:
    """llama.cpp src/llama-kv-cache-dsa.cpp: DeepSeek-V3.2's indexer keys are a second llama_kv_cache of one head
    of indexer_head_size (128) at type_k, as many cells as the MLA cache: 128 x 2 B = 256 B per token and layer in
    f16 (vLLM's 128 fp8 + 4 B scale = 132 B does not apply); with the latent (512 + 64) x 2 B = 1,152 B, 61 layers
    hold 61 x 1,408 = 85,888 B per token."""
    from llmfit.engine.cache_policy import LlamaCppPolicy

    spec = MODELS["deepseek-v3.2-exp"]
    plan = LlamaCppPolicy().plan(_request(spec, 1, 1, 4096, 20 * 2**30, block=1))
    assert plan.kv_bytes_per_token == 61 * (1152 + 256) == 85_888
    assert {line.kind: line.kv_bytes_per_token for line in plan.lines} == {"mla": 61 * 1152, "sparse_indexer": 61 * 256}
    assert plan.kv_bytes_per_request == 85_888 * 4096
