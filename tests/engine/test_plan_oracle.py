"""The optimised plan against a plain, unoptimised evaluation of the same rules (the oracle).

The oracle calls the scalar fit (engines.engine_fit) and speed.speed_bounds for every configuration,
and ranks with the original pure-Python Pareto loop; the sweep, its closed-form weights per GPU and
its vectorised front must give exactly the same numbers and rows.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from llmfit.engine.engines import engine_fit
from llmfit.engine.formats import get_format
from llmfit.engine.plan import (
    PlanTarget,
    _shape_key,
    _weights_by_split,
    engine_terms,
    pareto_front,
    plan,
    shapes,
    sweep,
)
from llmfit.engine.records import replace
from llmfit.engine.serving import Deployment, ServingOptions, _weights_per_gpu
from llmfit.engine.speed import speed_bounds
from llmfit.engine.support import runs as support_runs
from llmfit.presets import Registry


def reference_front(price: Any, gpus: Any, speed: Any, gpu_type: Any) -> list[int]:
    """The original front: each row in sorted order against every row kept so far."""
    priced = ~np.isnan(price)
    speed = np.where(np.isnan(speed), 0.0, speed)
    order = np.lexsort((-speed, gpus, np.where(priced, price, np.inf)))
    front: list[int] = []
    for i in order:
        dominated = False
        for j in front:
            if priced[i] and priced[j]:
                cheaper = price[j] <= price[i]
            elif gpu_type[i] == gpu_type[j]:
                cheaper = gpus[j] <= gpus[i]
            else:
                continue
            if cheaper and gpus[j] <= gpus[i] and speed[j] >= speed[i]:
                dominated = True
                break
        if not dominated:
            front.append(int(i))
    return front


def test_vectorised_front_is_the_reference_front() -> None:
    rng = np.random.default_rng(17)
    unit_price = np.array([np.nan, 1.5, 2.0, 3.0, np.nan])
    for _ in range(300):
        n = int(rng.integers(0, 80))
        types = rng.integers(0, len(unit_price), n)
        counts = rng.integers(1, 7, n)
        price = unit_price[types] * counts
        speed = rng.choice([0.0, 10.0, 20.0, 30.0, np.nan, 15.0, 20.000000001], n)  # ties and near-ties
        assert pareto_front(price, counts, speed, types) == reference_front(price, counts, speed, types)
        # Prices that vary inside a (type, count) cell: the front without the per-cell shortcut.
        price = np.where(np.isnan(price), np.nan, rng.choice([1.0, 2.0, 3.0], n))
        assert pareto_front(price, counts, speed, types) == reference_front(price, counts, speed, types)


@pytest.mark.parametrize("model", ["llama-3.1-70b", "qwen3-30b-a3b", "deepseek-v2-lite", "gpt-oss-20b",
                                   "gemma-3-27b-pt", "falcon-7b", "mixtral-8x7b-v0.1", "phi-4"])
def test_closed_form_weights_per_gpu_are_servings(registry: Registry, model: str) -> None:
    spec = registry.model(model)
    splits = sorted({(s.tp, s.pp) for s in shapes(spec, 32, 8)})
    for name in ("bf16", "awq", "q4_k_m", "nf4", "mxfp4"):
        fmt = get_format(name)
        fast = _weights_by_split(spec, fmt, splits)
        assert fast == {(tp, pp): _weights_per_gpu(spec, fmt, tp, pp) for tp, pp in splits}, (model, name)


left_out: set[tuple[int, int, int, int]] = set()


def plain_plan(spec: Any, gpus: list[Any], formats: list[Any], kvs: list[str], target: PlanTarget,
               base: ServingOptions) -> tuple[dict[tuple[int, int, int, int], tuple[int, int, bool, float]],
                                               list[tuple[int, int, int, int]]]:
    """Every configuration through the scalar fit; the front by the reference loop. Configurations that cannot
    run (support matrix) are in `left_out` (module-level, reset per call)."""
    left_out.clear()
    out = {}
    for gi, gpu in enumerate(gpus):
        for si, shape in enumerate(shapes(spec, target.max_gpus, target.gpus_per_node)):
            for fi, fmt in enumerate(formats):
                for ki, kv in enumerate(kvs):
                    options = replace(base, kv_dtype=kv, min_concurrency=target.concurrency)
                    deployment = Deployment(gpu_count=shape.gpu_count, tp=shape.tp, pp=shape.pp)
                    result = engine_fit(spec, gpu, fmt, deployment, options, target.engine,
                                        memory_fraction=target.memory_fraction)
                    bounds = speed_bounds(spec, gpu, fmt, result, concurrency=target.concurrency,
                                          efficiency=target.efficiency)
                    runs = not (fmt.needs_native == "fp4" and gpu.native_dtypes and "fp4" not in gpu.native_dtypes)
                    # The support matrix (configs/engines/support.yaml): what the engine refuses is left out.
                    runs = runs and support_runs(target.engine, gpu, fmt, result.kv_dtype)
                    if not runs:
                        left_out.add((gi, si, fi, ki))
                    tokens = bounds.tokens_per_second
                    out[(gi, si, fi, ki)] = (result.max_concurrency or 0, result.recommended_concurrency or 0,
                                             runs and result.fits, math.nan if tokens is None else tokens)
    serving = [index for index, row in out.items() if row[2]]
    every = shapes(spec, target.max_gpus, target.gpus_per_node)
    price = np.array([(gpus[g].price_per_hour if gpus[g].price_per_hour is not None else np.nan) * every[s].gpu_count
                      for g, s, _, _ in serving])
    counts = np.array([every[s].gpu_count for _, s, _, _ in serving])
    speed = np.array([out[i][3] for i in serving])
    types = np.array([g for g, _, _, _ in serving])
    front = reference_front(price, counts, speed, types) if serving else []
    return out, [serving[i] for i in front]


@pytest.mark.parametrize(("engine", "model", "fraction"), [
    ("vllm", "llama-3.1-70b", None), ("sglang", "qwen3-30b-a3b", None), ("trt-llm", "qwen2.5-7b", None),
    ("vllm", "gpt-oss-20b", 0.8),
    # SGLang's separate Mamba state pool: max and recommended from the policy's two pools, in both.
    ("sglang", "nvidia-nemotron-nano-9b-v2", None),
])
def test_plan_is_the_plain_evaluation(registry: Registry, engine: str, model: str, fraction: float | None) -> None:
    spec = registry.model(model)
    gpus = [registry.gpu(n) for n in ("a100-80", "h100-80", "l4", "rtx-4090")]
    formats = [get_format(n) for n in ("bf16", "fp8", "awq")]
    kvs = ["auto", "fp8"]
    target = PlanTarget(context_tokens=8192, concurrency=6, max_gpus=8, engine=engine, memory_fraction=fraction,
                        top=50)
    base = ServingOptions(context_tokens=8192)
    oracle, oracle_front = plain_plan(spec, gpus, formats, kvs, target, base)
    assert len(oracle_front) >= 3
    sw = sweep(spec, gpus, formats, kvs, target, base)
    for index, (max_conc, recommended, fits, tokens) in oracle.items():
        assert int(sw.max_concurrency[index]) == max_conc, index
        assert int(sw.recommended[index]) == recommended, index
        assert bool(sw.fits[index]) == fits, index
        got = float(sw.tokens_per_second[index])
        assert got == tokens or (math.isnan(got) and math.isnan(tokens)), index
    result = plan(spec, gpus, formats, kvs, target, base)
    assert result.configurations_evaluated == len(oracle) - len(left_out)
    assert result.configurations_serving == sum(1 for row in oracle.values() if row[2])
    assert result.front_size == len(oracle_front)
    shown = [(row.gpu, row.gpu_count, row.tp, row.pp, row.dtype) for row in result.rows]
    every = shapes(spec, target.max_gpus, target.gpus_per_node)
    expected = [(gpus[g].name, every[s].gpu_count, every[s].tp, every[s].pp, formats[f].name)
                for g, s, f, _ in oracle_front[:target.top]]
    assert shown == expected
    # The reverse question: the least-memory GPU with a serving single-GPU configuration.
    single = next(i for i, shape in enumerate(every) if shape.gpu_count == 1)
    serving_alone = [gpus[g] for g, s_, _, _ in (i for i, row in oracle.items() if row[2]) if s_ == single]
    smallest = min(serving_alone, key=lambda g: g.usable_memory_bytes).name if serving_alone else None
    assert result.smallest_single_gpu == smallest


@pytest.mark.parametrize("engine", ["vllm", "sglang", "trt-llm"])
def test_engine_terms_depend_only_on_the_shape_key(registry: Registry, engine: str) -> None:
    # The sweep evaluates the engine's rules once per GPU and _shape_key: that must lose nothing.
    base = ServingOptions(context_tokens=8192)
    for model in ("70b", "gpt-oss-20b"):
        spec = registry.model(model)
        for gpu_name in ("h100-80", "a100-80", "l4"):
            gpu = registry.gpu(gpu_name)
            for name in ("bf16", "fp32", "mxfp4"):
                fmt = get_format(name)
                seen: dict[Any, Any] = {}
                for tp in (1, 2, 4, 8):
                    for pp in (1, 2, 3, 4, 5, 7, 8, 12, 16, 24, 32, 48, 64, 80):
                        terms = engine_terms(engine, spec, gpu, fmt, tp, pp, base, None)
                        assert seen.setdefault(_shape_key(spec, fmt, tp, pp), terms) == terms, (model, tp, pp)


@pytest.mark.parametrize("model", ["qwen3-next-80b-a3b-instruct", "nvidia-nemotron-nano-9b-v2", "lfm2-1.2b",
                                   "ai21-jamba-mini-1.6"])
def test_sglang_recommends_fewer_requests_than_its_state_pool_holds(registry: Registry, model: str) -> None:
    # SGLang sizes its Mamba state slots from the pool (SglangPolicy.pools); keeping 30 % of the pool free
    # means asking with 70 % of it, so the recommendation stays below the maximum (it once exceeded it: 173 > 142
    # for Qwen3-Next on 4 x H100, the byte formula ignoring the slot count).
    from llmfit.engine.engines import engine_fit
    from llmfit.engine.serving import Deployment

    spec = registry.model(model)
    result = engine_fit(spec, registry.gpu("h100-80"), get_format("bf16"), Deployment(gpu_count=4, tp=4, pp=1),
                        ServingOptions(context_tokens=8192), "sglang")
    assert result.max_concurrency and result.recommended_concurrency is not None
    assert result.recommended_concurrency <= result.max_concurrency
    assert result.recommended_concurrency >= int(0.6 * result.max_concurrency)
