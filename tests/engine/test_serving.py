"""The serving budget of `fit`: per-GPU accounting, TP/PP/replicas, concurrency and its caps."""

from __future__ import annotations

import pytest

from llmfit.engine.formats import FORMATS
from llmfit.engine.serving import Deployment, ServingOptions, fit
from llmfit.errors import SpecError
from llmfit.specs import GpuSpec

GIB = 2**30


def gpu(memory_gib: float = 80) -> GpuSpec:
    return GpuSpec(name="test-gpu", memory=int(memory_gib * GIB), source="test")


def test_budget_is_memory_times_util_minus_weights_minus_overhead(registry):
    spec = registry.model("llama-3.1-8b")
    result = fit(spec, gpu(), FORMATS["bf16"], Deployment(gpu_count=1, tp=1, pp=1),
                 ServingOptions(context_tokens=8192, gpu_util=0.9))
    assert result.kv_budget_bytes_per_gpu == int(80 * GIB * 0.9) - result.weights_bytes - result.overhead_bytes_per_gpu
    assert result.overhead_bytes_per_gpu == sum(line.bytes_per_gpu for line in result.overhead_lines)
    assert result.weights_bytes == sum(line.bytes for line in result.weights_lines)
    # tokens: floor to whole 16-token blocks of 131,072 B/token
    assert result.kv_tokens == result.kv_budget_bytes_per_gpu // (131072 * 16) * 16
    assert result.vllm_max_concurrency == round(result.kv_tokens / 8192, 2)


def test_tp4_on_8_gpus_gives_two_replicas(registry):
    spec = registry.model("llama-3.1-70b")
    h100 = registry.gpu("h100-80")
    one = fit(spec, h100, FORMATS["fp16"], Deployment(gpu_count=4, tp=4, pp=1), ServingOptions(context_tokens=8192))
    two = fit(spec, h100, FORMATS["fp16"], Deployment(gpu_count=8, tp=4, pp=1), ServingOptions(context_tokens=8192))
    assert two.replicas == 2
    assert two.max_concurrency == 2 * one.max_concurrency
    assert two.kv_tokens == one.kv_tokens  # per replica
    assert two.weights_bytes_per_gpu == one.weights_bytes_per_gpu
    assert two.kv_budget_bytes == 8 * two.kv_budget_bytes_per_gpu


def test_tp16_replicates_the_8_kv_heads(registry):
    """Llama-3.1-70B, TP 16: each GPU holds 1 of 8 KV heads (each head on 2 GPUs), so one replica's
    per-token KV is 16 GPUs x 1 head, double the unsharded 8 heads."""
    spec = registry.model("llama-3.1-70b")
    result = fit(spec, registry.gpu("h100-80"), FORMATS["bf16"], Deployment(gpu_count=16, tp=16, pp=1),
                 ServingOptions(context_tokens=8192))
    unsharded = 80 * 2 * 8 * 128 * 2
    assert result.kv_bytes_per_token_per_gpu == unsharded // 8
    assert result.kv_bytes_per_token == 2 * unsharded


def test_falcon_71_heads_cannot_split_over_tp4(registry):
    with pytest.raises(SpecError, match="71 attention heads"):
        fit(registry.model("falcon-7b"), gpu(), FORMATS["bf16"], Deployment(gpu_count=4, tp=4, pp=1),
            ServingOptions(context_tokens=2048))


def test_max_num_seqs_caps_concurrency(registry):
    spec = registry.model("llama-3.1-8b")
    result = fit(spec, gpu(), FORMATS["bf16"], Deployment(gpu_count=1, tp=1, pp=1),
                 ServingOptions(context_tokens=128, max_num_seqs=256))
    assert result.capped_by_max_num_seqs and result.max_concurrency == 256


def test_pp_splits_layers_and_puts_embeddings_first(registry):
    spec = registry.model("llama-3.1-8b")
    whole = fit(spec, gpu(), FORMATS["bf16"], Deployment(gpu_count=1, tp=1, pp=1), ServingOptions(context_tokens=8192))
    pp2 = fit(spec, gpu(), FORMATS["bf16"], Deployment(gpu_count=2, tp=1, pp=2), ServingOptions(context_tokens=8192))
    assert pp2.weights_bytes_per_gpu == pytest.approx(whole.weights_bytes / 2, rel=0.01)
    assert pp2.kv_bytes_per_token_per_gpu == whole.kv_bytes_per_token // 2


def test_more_gpus_never_fewer_requests(registry):
    spec = registry.model("llama-3.1-70b")
    h100 = registry.gpu("h100-80")
    counts = [fit(spec, h100, FORMATS["fp8"], Deployment(gpu_count=n, tp=2, pp=1),
                  ServingOptions(context_tokens=8192)).max_concurrency for n in (2, 4, 6, 8)]
    assert counts == sorted(counts)


def test_bare_params_is_weights_only():
    result = fit(None, gpu(), FORMATS["int4-raw"], Deployment(gpu_count=1, tp=1, pp=1),
                 ServingOptions(context_tokens=8192), params=70_000_000_000)
    assert result.weights_bytes == 35_000_000_000
    assert result.kv_tokens is None and result.max_concurrency is None and result.fits
