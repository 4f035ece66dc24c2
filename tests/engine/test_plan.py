"""plan: the vectorised sweep agrees exactly with serving.fit (via engines.engine_fit); the Pareto front."""

from __future__ import annotations

import random

import pytest

from llmfit.engine.engines import engine_fit, sglang_mem_fraction
from llmfit.engine.formats import get_format
from llmfit.engine.plan import PlanTarget, pareto_front, plan, shapes, sweep
from llmfit.engine.records import replace
from llmfit.engine.serving import Deployment, ServingOptions
from llmfit.engine.speed import speed_bounds
from llmfit.engine.support import runs
from llmfit.presets import Registry

GPUS = ("a100-80", "h100-80", "l40s", "a10g", "mi300x")


@pytest.mark.parametrize("engine", ["vllm", "sglang", "trt-llm"])
@pytest.mark.parametrize("model", ["llama-3.1-70b", "qwen2.5-7b"])
def test_vectorised_sweep_agrees_exactly_with_fit(registry: Registry, engine: str, model: str) -> None:
    spec = registry.model(model)
    gpus = [registry.gpu(n) for n in GPUS]
    formats = [get_format(n) for n in ("bf16", "fp8", "awq", "fp32")]
    kvs = ["auto", "fp8"]
    target = PlanTarget(context_tokens=16384, concurrency=24, max_gpus=8, engine=engine)
    base = ServingOptions(context_tokens=16384)
    sw = sweep(spec, gpus, formats, kvs, target, base)
    rng = random.Random(9)
    indexes = [(rng.randrange(len(gpus)), rng.randrange(len(sw.shapes)), rng.randrange(len(formats)),
                rng.randrange(len(kvs))) for _ in range(60)]
    for index in indexes:
        gpu, shape, fmt, kv = sw.config(index)
        options = replace(base, kv_dtype=kv, min_concurrency=target.concurrency)
        result = engine_fit(spec, gpu, fmt, Deployment(gpu_count=shape.gpu_count, tp=shape.tp, pp=shape.pp),
                            options, engine)
        assert int(sw.budget[index]) == result.kv_budget_bytes_per_gpu, (index, engine)
        assert int(sw.max_concurrency[index]) == (result.max_concurrency or 0), (index, engine)
        assert int(sw.recommended[index]) == (result.recommended_concurrency or 0), (index, engine)
        # What the support matrix says the engine refuses is left out of the plan (never serves).
        assert bool(sw.fits[index]) == (result.fits and runs(engine, gpu, fmt, result.kv_dtype)), (index, engine)
        bounds = speed_bounds(spec, gpu, fmt, result, concurrency=target.concurrency)
        assert float(sw.tokens_per_second[index]) == bounds.tokens_per_second, (index, engine)


def test_shapes_keep_tp_inside_a_node_and_valid_for_the_heads(registry: Registry) -> None:
    # Llama-3.1-70B: 64 heads, 8 KV heads -> TP in {1, 2, 4, 8}; 16 GPUs, 8 per node.
    found = shapes(registry.model("llama-3.1-70b"), 16, 8)
    assert {s.tp for s in found} == {1, 2, 4, 8}
    assert all(s.tp * s.pp * s.replicas == s.gpu_count for s in found)
    assert any(s.tp == 8 and s.pp == 2 for s in found)  # a pipeline across two nodes
    assert not any(s.gpu_count == 16 and s.tp == 16 for s in found)


def test_sglang_default_fraction_follows_tp() -> None:
    # SGLang v0.5 server_args.py on an 80 GB H100 (81559 MiB): reserved = 512 + 8192 x 1.5 + graphs (256 below
    # TP4, 512 from it) x 2 + TP x 128 MiB; fraction = (81559 - reserved) / 81559, rounded to 3 places.
    assert [sglang_mem_fraction(tp) for tp in (1, 2, 4, 8)] == [0.835, 0.834, 0.824, 0.818]


def test_trt_llm_pool_is_a_share_of_free_memory(registry: Registry) -> None:
    spec, gpu, fmt = registry.model("llama-3.1-8b"), registry.gpu("h100-80"), get_format("bf16")
    options = ServingOptions(context_tokens=8192)
    one = Deployment(gpu_count=1, tp=1, pp=1)
    trt = engine_fit(spec, gpu, fmt, one, options, "trt-llm")
    runtime = sum(line.bytes_per_gpu for line in trt.overhead_lines[:-1])
    free = gpu.memory - trt.weights_bytes_per_gpu - runtime
    assert trt.kv_budget_bytes_per_gpu == int(free * 0.9)
    vllm = engine_fit(spec, gpu, fmt, one, options, "vllm")
    # vLLM: 0.9 x total - weights - runtime; TRT-LLM: 0.9 x (total - weights - runtime): more KV by 0.1 x (w + o).
    assert trt.kv_budget_bytes_per_gpu - vllm.kv_budget_bytes_per_gpu == pytest.approx(
        0.1 * (trt.weights_bytes_per_gpu + runtime), abs=2)


def test_pareto_front_drops_dominated_rows_and_keeps_unpriced_types_apart() -> None:
    import numpy as np

    nan = float("nan")
    price = np.array([10.0, 20.0, 10.0, nan, nan, nan])
    gpus = np.array([2, 4, 4, 2, 4, 2])
    speed = np.array([100.0, 300.0, 50.0, 80.0, 70.0, 60.0])
    types = np.array([0, 0, 0, 1, 1, 2])
    front = pareto_front(price, gpus, speed, types)
    # Row 2 costs the same as row 0 with more GPUs and less speed; row 4 is beaten by row 3 (same type).
    assert front == [0, 1, 3, 5]


def test_plan_70b_at_32k_x64_has_multi_gpu_rows_with_commands(registry: Registry) -> None:
    spec = registry.model("llama-3.1-70b")
    gpus = [registry.gpu(n) for n in GPUS]
    result = plan(spec, gpus, [get_format("bf16"), get_format("fp8")], ["auto"],
                  PlanTarget(context_tokens=32768, concurrency=64))
    assert result.fits and result.rows
    assert all(row.gpu_count > 1 for row in result.rows)  # 64 x 32k of 70B KV needs several GPUs
    for row in result.rows:
        assert row.max_concurrency >= 64 and row.fit.fits
        assert row.launch.argv[:3] == ["vllm", "serve", "meta-llama/Llama-3.1-70B"]


def test_smallest_single_gpu_is_the_least_memory_that_serves(registry: Registry) -> None:
    spec = registry.model("llama-3.1-8b")
    gpus = [registry.gpu(n) for n in GPUS]
    target = PlanTarget(context_tokens=8192, concurrency=4)
    result = plan(spec, gpus, [get_format("bf16")], ["auto"], target)
    options = ServingOptions(context_tokens=8192, min_concurrency=4)
    one = Deployment(gpu_count=1, tp=1, pp=1)
    serving = [g for g in gpus if engine_fit(spec, g, get_format("bf16"), one, options).fits]
    assert result.smallest_single_gpu == min(serving, key=lambda g: g.usable_memory_bytes).name


def test_nothing_serves_an_impossible_target(registry: Registry) -> None:
    result = plan(registry.model("llama-3.1-70b"), [registry.gpu("a10g")], [get_format("bf16")], ["auto"],
                  PlanTarget(context_tokens=131072, concurrency=512, max_gpus=4))
    assert not result.fits and result.rows == [] and result.smallest_single_gpu is None


@pytest.mark.parametrize("gpu_name", GPUS)
def test_runtime_lines_are_the_lines_fit_computes(registry: Registry, gpu_name: str) -> None:
    from llmfit.engine.engines import runtime_lines

    spec, gpu = registry.model("llama-3.1-70b"), registry.gpu(gpu_name)
    for fmt_name, tp, pp in (("bf16", 8, 1), ("fp32", 8, 2), ("awq", 2, 1), ("fp8", 4, 4)):
        fmt = get_format(fmt_name)
        options = ServingOptions(context_tokens=32768)
        result = engine_fit(spec, gpu, fmt, Deployment(gpu_count=tp * pp, tp=tp, pp=pp), options)
        lines, seqs = runtime_lines(spec, gpu, fmt, tp, pp, options)
        assert lines == result.overhead_lines and seqs == result.max_num_seqs


def test_engines_skip_devices_they_do_not_run_on(registry) -> None:
    from llmfit.engine.engines import engine_runs_on

    assert engine_runs_on("vllm", registry.gpu("mi300x")) and engine_runs_on("vllm", registry.gpu("h100-80"))
    assert not engine_runs_on("trt-llm", registry.gpu("mi300x"))
    assert not any(engine_runs_on(e, registry.gpu("m4-max")) for e in ("vllm", "sglang", "trt-llm"))


def test_plan_leaves_out_what_the_support_matrix_says_cannot_run(registry: Registry) -> None:
    # configs/engines/support.yaml: TensorRT-LLM drives NVIDIA GPUs only (not the MI300X, CDNA3) and refuses
    # fp8 weights on Ampere (the A100); the H100 runs both.
    spec = registry.model("qwen2.5-7b")
    gpus = [registry.gpu(n) for n in ("a100-80", "h100-80", "mi300x")]
    formats = [get_format("bf16"), get_format("fp8")]
    target = PlanTarget(context_tokens=8192, concurrency=1, max_gpus=2, engine="trt-llm", top=100)
    sw = sweep(spec, gpus, formats, ["auto"], target, ServingOptions(context_tokens=8192))
    assert not sw.valid[2].any() and not sw.fits[2].any()  # MI300X: nothing
    assert not sw.valid[0, :, 1].any() and sw.valid[0, :, 0].all()  # A100: bf16 only
    assert sw.valid[1].all() and sw.fits[1].any()  # H100: everything runs
    result = plan(spec, gpus, formats, ["auto"], target)
    assert result.configurations_evaluated == int(sw.valid.sum()) < sw.valid.size
    assert all(row.gpu != "mi300x" and not (row.gpu == "a100-80" and row.dtype == "fp8") for row in result.rows)
    assert result.rows


@pytest.mark.parametrize("engine", ["vllm", "sglang", "trt-llm"])
@pytest.mark.parametrize("model", ["ai21-jamba-mini-1.6", "granite-4.0-h-small", "gemma-3-27b-pt"])
def test_sweep_agrees_with_fit_on_hybrid_and_state_models(registry: Registry, engine: str, model: str) -> None:
    # Cache policies that are not plain paging: vLLM's hybrid allocator (raised block, groups, sliding admission),
    # SGLang's separate Mamba state pool, per-stage state with PP.
    spec = registry.model(model)
    gpus = [registry.gpu(n) for n in ("a100-80", "h100-80", "l4")]
    formats = [get_format(n) for n in ("bf16", "fp8")]
    kvs = ["auto", "fp8"]
    target = PlanTarget(context_tokens=32768, concurrency=4, max_gpus=8, engine=engine)
    base = ServingOptions(context_tokens=32768)
    sw = sweep(spec, gpus, formats, kvs, target, base)
    rng = random.Random(5)
    for _ in range(80):
        index = (rng.randrange(len(gpus)), rng.randrange(len(sw.shapes)), rng.randrange(len(formats)),
                 rng.randrange(len(kvs)))
        gpu, shape, fmt, kv = sw.config(index)
        options = replace(base, kv_dtype=kv, min_concurrency=target.concurrency)
        result = engine_fit(spec, gpu, fmt, Deployment(gpu_count=shape.gpu_count, tp=shape.tp, pp=shape.pp),
                            options, engine)
        assert int(sw.budget[index]) == result.kv_budget_bytes_per_gpu, (index, engine)
        assert int(sw.max_concurrency[index]) == (result.max_concurrency or 0), (index, engine)
        assert int(sw.recommended[index]) == (result.recommended_concurrency or 0), (index, engine)
        assert bool(sw.fits[index]) == (result.fits and runs(engine, gpu, fmt, result.kv_dtype)), (index, engine)
