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
