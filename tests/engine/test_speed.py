"""Roofline bounds: hand-computed from the H100 datasheet (3.35 TB/s, 989.5 dense bf16 TFLOPS)."""

from __future__ import annotations

import pytest

from llmfit.engine.formats import get_format
from llmfit.engine.serving import Deployment, ServingOptions, fit
from llmfit.engine.speed import Efficiency, attention_flops, parse_efficiency, speed_bounds, touched_expert_share
from llmfit.errors import SpecError
from llmfit.presets import Registry


def test_decode_step_reads_weights_plus_kv(registry: Registry) -> None:
    spec, gpu, fmt = registry.model("llama-3.1-8b"), registry.gpu("h100-80"), get_format("bf16")
    result = fit(spec, gpu, fmt, Deployment(gpu_count=1, tp=1, pp=1), ServingOptions(context_tokens=8192))
    bounds = speed_bounds(spec, gpu, fmt, result, concurrency=4, efficiency=Efficiency(memory=1.0, compute=1.0))
    # KV of Llama-3.1-8B in bf16: 32 layers x 2 x 8 heads x 128 x 2 B = 131,072 B/token (vLLM log, 128 KiB).
    kv_per_request = 131_072 * 8192
    expected_bytes = result.weights_bytes_per_gpu + 4 * kv_per_request
    assert bounds.kv_read_bytes_per_gpu == 4 * kv_per_request
    assert bounds.decode_step_seconds == pytest.approx(expected_bytes / 3.35e12)
    assert bounds.tokens_per_second == pytest.approx(4 / bounds.decode_step_seconds)


def test_prefill_flops_and_ttft(registry: Registry) -> None:
    spec, gpu, fmt = registry.model("llama-3.1-8b"), registry.gpu("h100-80"), get_format("bf16")
    result = fit(spec, gpu, fmt, Deployment(gpu_count=1, tp=1, pp=1), ServingOptions(context_tokens=8192))
    bounds = speed_bounds(spec, gpu, fmt, result, prompt_tokens=2048, efficiency=Efficiency(memory=1, compute=0.5))
    # Attention: 32 layers x 32 heads x 2 x (128 + 128) x 2048 x 2049 / 2 causal pairs.
    attention = 32 * 32 * 2 * 256 * (2048 * 2049 // 2)
    assert attention_flops(spec, 2048) == attention
    assert bounds.prefill_flops == 2 * result.active_params * 2048 + attention
    assert bounds.ttft_seconds == pytest.approx(bounds.prefill_flops / (989.5e12 * 0.5))


def test_tensor_parallel_shares_prefill_and_pipeline_serialises_decode(registry: Registry) -> None:
    spec, gpu, fmt = registry.model("llama-3.1-70b"), registry.gpu("h100-80"), get_format("bf16")
    options = ServingOptions(context_tokens=8192)
    tp4 = fit(spec, gpu, fmt, Deployment(gpu_count=4, tp=4, pp=1), options)
    pp4 = fit(spec, gpu, fmt, Deployment(gpu_count=4, tp=1, pp=4), options)
    eff = Efficiency(memory=1.0, compute=1.0)
    b_tp, b_pp = (speed_bounds(spec, gpu, fmt, r, concurrency=1, efficiency=eff) for r in (tp4, pp4))
    assert b_tp.ttft_seconds == pytest.approx(b_tp.prefill_flops / (4 * 989.5e12))
    assert b_pp.ttft_seconds == pytest.approx(b_pp.prefill_flops / 989.5e12)
    # One request on PP=4 waits for all four stages: 4 x a quarter of the weights.
    assert b_pp.decode_step_seconds == pytest.approx(
        (4 * pp4.weights_bytes_per_gpu + b_pp.kv_read_bytes_per_gpu) / 3.35e12)


def test_expert_touch_probability() -> None:
    # One token touches k of E experts; many tokens touch nearly all.
    assert touched_expert_share(128, 4, 1) == pytest.approx(4 / 128)
    assert touched_expert_share(8, 2, 2) == pytest.approx(1 - (6 / 8) ** 2)
    assert touched_expert_share(128, 4, 10_000) == pytest.approx(1.0)


def test_parse_efficiency() -> None:
    assert parse_efficiency("0.8") == Efficiency(memory=0.8, compute=0.8)
    assert parse_efficiency("0.7,0.4") == Efficiency(memory=0.7, compute=0.4)
    for bad in ("0", "1.5", "a,b", "0.1,0.2,0.3"):
        with pytest.raises(SpecError):
            parse_efficiency(bad)
