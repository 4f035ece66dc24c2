"""Layer kinds: each kind's state and cache against the engines' own formulas (cited per test)."""

from __future__ import annotations

from fractions import Fraction

from llmfit.engine.cache_policy import CacheRequest, StageBudget, VllmHybridPolicy, recurrent_cell_bytes
from llmfit.engine.kv import kv_cache
from llmfit.engine.layers import GatedDeltaNet, Mamba2, ShortConv
from llmfit.presets import load_registry

REGISTRY = load_registry()


def _kind(name: str, kind_name: str):  # type: ignore[no-untyped-def]
    spec = REGISTRY.model(name)
    return next(g for g in spec.layer_groups if g.kind.name == kind_name)


def test_gated_deltanet_state_equals_vllm_state_shape() -> None:
    """vllm/model_executor/layers/mamba/mamba_utils.py MambaStateShapeCalculator.gated_delta_net_state_shape:
    conv (conv_dim / tp, kernel - 1), conv_dim = 2 x 16 x 128 + 32 x 128 = 8192; temporal (32 / tp, 128, 128);
    gated_delta_net_state_dtype: both in the model dtype (bf16) unless mamba_ssm_cache_dtype is set.
    Qwen3-Next at TP 1: 8192 x 3 x 2 + 32 x 128 x 128 x 2 = 49,152 + 1,048,576 = 1,097,728 B per layer."""
    group = _kind("qwen3-next-80b-a3b-instruct", "linear_attention")
    kind = group.kind
    assert isinstance(kind, GatedDeltaNet)
    assert kind.state_shapes(1) == ((8192, 3), (32, 128, 128))
    assert kind.state_bytes(1) == 8192 * 3 * 2 + 32 * 128 * 128 * 2 == 1_097_728
    assert kind.state_bytes(4) == 2048 * 3 * 2 + 8 * 128 * 128 * 2
    assert kind.kv_bytes_per_token(Fraction(16), 1) == 0 and group.layers == 36


def test_mamba2_state_equals_vllm_state_shape_with_group_replication() -> None:
    """mamba2_state_shape: n_groups' = n_groups + extra_groups_for_head_shards(n_groups, tp) (groups replicated to
    tp when tp does not divide them); conv ((intermediate + 2 n_groups' state) / tp, conv_kernel - 1);
    temporal (heads / tp, head_dim, state). Nemotron-Nano-9B-v2: intermediate 128 x 80 = 10240, 8 groups, state 128.
    TP 1: conv (12288, 3), temporal (128, 80, 128) -> 73,728 + 2,621,440 B (bf16).
    TP 16: 8 groups -> 16, conv (10240 + 2 x 16 x 128) / 16 = 896 -> 896 x 3 x 2 + 8 x 80 x 128 x 2."""
    kind = _kind("nvidia-nemotron-nano-9b-v2", "mamba2").kind
    assert isinstance(kind, Mamba2)
    assert kind.state_shapes(1) == ((12288, 3), (128, 80, 128))
    assert kind.state_bytes(1) == 12288 * 3 * 2 + 128 * 80 * 128 * 2 == 2_695_168
    assert kind.state_shapes(16) == ((896, 3), (8, 80, 128))
    assert kind.state_bytes(16) == 896 * 3 * 2 + 8 * 80 * 128 * 2
    # mamba_ssm_cache_dtype float32 (MambaStateDtypeCalculator._mamba_state_dtype): the SSM state doubles.
    fp32 = Mamba2(intermediate=10240, state_size=128, conv_kernel=4, num_heads=128, head_dim=80, n_groups=8,
                  conv_bits=16, state_bits=32)
    assert fp32.state_bytes(1) == 12288 * 3 * 2 + 128 * 80 * 128 * 4


def test_short_conv_state_equals_vllm_state_shape() -> None:
    """short_conv_state_shape: (conv_dim / tp, L_cache - 1) in the model dtype; vllm models/lfm2.py passes
    conv_dim = hidden_size. LFM2-1.2B: 2048 x 2 x 2 B = 8192 B per layer, 10 conv layers = 81,920 B per
    request (the figure a public planner's test derives for the same config)."""
    group = _kind("lfm2-1.2b", "short_conv")
    assert isinstance(group.kind, ShortConv)
    assert group.kind.state_shapes(1) == ((2048, 2), ())
    assert group.layers * group.kind.state_bytes(1) == 81_920
    # llama.cpp keeps the same conv state per sequence in f32 (llama-hparams.cpp n_embd_r: n_embd x (L_cache - 1)).
    assert recurrent_cell_bytes(group) == 2048 * 2 * 4


def test_qwen3_next_kv_state_constant_attention_grows() -> None:
    """`kv` at 4K and 128K: the 36 Gated DeltaNet layers keep 36 x 1,097,728 B whatever the context; the 12
    full-attention layers grow by 12 x 2 x 2 x 256 x 2 B = 24,576 B per token."""
    spec = REGISTRY.model("qwen3-next-80b-a3b-instruct")
    short = kv_cache(spec, kv_dtype="bf16", context_tokens=4096)
    long = kv_cache(spec, kv_dtype="bf16", context_tokens=131072)
    assert short.state_bytes_per_request == long.state_bytes_per_request == 36 * 1_097_728
    assert short.kv_bytes_per_token == long.kv_bytes_per_token == 24_576
    assert short.kv_bytes_per_request == 24_576 * 4096 + 36 * 1_097_728
    assert long.kv_bytes_per_request == 24_576 * 131072 + 36 * 1_097_728


def test_llama4_chunked_layers_are_capped_at_the_chunk() -> None:
    """Llama-4 Scout at 128K: 36 chunked layers hold one chunk of 8192 tokens, 12 NoPE layers the whole context;
    2 x 8 KV heads x 128 x 2 B = 4096 B per token and layer."""
    spec = REGISTRY.model("llama-4-scout-17b-16e-instruct")
    result = kv_cache(spec, kv_dtype="bf16", context_tokens=131072, block_size=16)
    lines = {line.kind: line for line in result.kinds}
    assert lines["chunked_attention"].layers == 36 and lines["chunked_attention"].tokens_held_per_request == 8192
    assert lines["full_attention"].layers == 12 and lines["full_attention"].tokens_held_per_request == 131072
    assert result.kv_bytes_per_request == 36 * 4096 * 8192 + 12 * 4096 * 131072


def test_deepseek_v32_indexer_cache_is_its_own_line() -> None:
    """DeepSeek-V3.2: per MLA layer a latent of 512 + 64 values (bf16: 1152 B) and the indexer's key cache of
    128 fp8 values + 128 / 128 x 4 B scale = 132 B (vllm deepseek_v2.py Indexer: DeepseekV32IndexerCache(
    head_dim=index_head_dim + index_head_dim // 128 * 4, dtype=uint8)), at its own precision: fp8 KV does not
    halve it."""
    spec = REGISTRY.model("deepseek-v3.2-exp")
    bf16 = kv_cache(spec, kv_dtype="bf16", context_tokens=8192)
    fp8 = kv_cache(spec, kv_dtype="fp8", context_tokens=8192)
    lines = {line.kind: line for line in bf16.kinds}
    assert lines["sparse_indexer"].kv_bytes_per_token == 61 * 132
    assert lines["mla"].kv_bytes_per_token == 61 * 576 * 2
    assert bf16.kv_bytes_per_token == 61 * (1152 + 132)
    assert fp8.kv_bytes_per_token == 61 * (576 + 132)


def test_vllm_raises_the_attention_block_so_a_page_holds_a_gdn_state() -> None:
    """vllm/platforms/interface.py _align_hybrid_block_size: block = 16 x cdiv(state page, 16 x attention page of one
    token). Qwen3-Next TP 1: 16 x cdiv(1,097,728, 16 x 2048) = 16 x 34 = 544 tokens (page 1,114,112 B, the state
    padded up to it). Groups: 12 full + 36 GDN layers -> group_size 12 -> 4 groups; num_blocks = budget // page // 12;
    GPU KV cache size = num_blocks // 4 x 544."""
    spec = REGISTRY.model("qwen3-next-80b-a3b-instruct")
    budget = 20 * 2**30
    request = CacheRequest(spec=spec, kv_dtype="bf16", tp=1, stages=(StageBudget(0, 48, budget),),
                           context_tokens=32768, block_size=16, max_num_batched_tokens=8192, max_num_seqs=256)
    plan = VllmHybridPolicy().plan(request)
    assert plan.block_size == 544
    blocks = budget // (544 * 2048) // 12
    assert plan.kv_tokens == blocks // 4 * 544
    # one request: cdiv(32768, 544) = 61 attention pages + one state page in each of the 3 GDN groups
    assert round(plan.engine_max_concurrency, 4) == round(blocks / (61 + 3), 4)
    assert plan.state_bytes_per_request == 36 * 1_097_728


def test_falcon_h1_runs_attention_and_mamba2_in_every_layer() -> None:
    """Falcon-H1-1.5B: every layer index in both groups; mamba2_state_shape with d_ssm 3072, 1 group, state 256:
    conv (3072 + 2 x 256, 3), temporal (48, 64, 256); the attention layers cache 2 x 2 x 128 x 2 B per token."""
    spec = REGISTRY.model("falcon-h1-1.5b-instruct")
    groups = {g.kind.name: g for g in spec.layer_groups}
    assert groups["full_attention"].layer_indices == groups["mamba2"].layer_indices == tuple(range(24))
    assert groups["mamba2"].kind.state_shapes(1) == ((3584, 3), (48, 64, 256))  # type: ignore[attr-defined]
    result = kv_cache(spec, kv_dtype="bf16", context_tokens=4096, block_size=1)
    assert result.kv_bytes_per_token == 24 * 2 * 2 * 128 * 2
    assert result.state_bytes_per_request == 24 * (3584 * 3 * 2 + 48 * 64 * 256 * 2)


def test_every_preset_layer_is_in_a_group_and_kinds_are_known() -> None:
    """layer_groups cover every decoder layer (a parallel hybrid's layers twice: attention and Mamba-2)."""
    for spec in REGISTRY.all_models():
        covered = sorted(i for g in spec.layer_groups for i in g.layer_indices)
        assert set(covered) == set(range(spec.num_hidden_layers)), spec.name
        if not spec.parallel_mamba:
            assert len(covered) == spec.num_hidden_layers, spec.name
