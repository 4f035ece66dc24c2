"""Serving engines as types: `get_engine(name)` -> an Engine (base.py) that owns its version profiles, budget
rule, cache policy, support, launch command and log format. The functions below keep the older call sites
(`engine_fit(..., engine="sglang")`) working through the types."""

from __future__ import annotations

from llmfit.engine.engines.base import Engine, EngineRule, ProfileSummary
from llmfit.engine.engines.llamacpp import LlamaCppEngine
from llmfit.engine.engines.sglang import SglangEngine, mem_fraction_static
from llmfit.engine.engines.trtllm import TRT_FREE_FRACTION, TrtLlmEngine
from llmfit.engine.engines.vllm import VllmEngine
from llmfit.engine.formats import WeightFormat
from llmfit.engine.records import replace
from llmfit.engine.runtime import OverheadLine
from llmfit.engine.serving import Deployment, FitResult, ServingOptions
from llmfit.errors import SpecError
from llmfit.specs import GpuSpec, ModelSpec

_ENGINES: dict[str, Engine] = {e.name: e for e in (VllmEngine(), SglangEngine(), TrtLlmEngine(), LlamaCppEngine())}
ENGINES = ("vllm", "sglang", "trt-llm")  # the paged-pool engines fit and plan compare
ENGINE_NAMES = {name: engine.display for name, engine in _ENGINES.items()}
ENGINE_VENDORS: dict[str, tuple[str, ...]] = {name: engine.vendors for name, engine in _ENGINES.items()}
VLLM_GPU_UTIL = 0.9

__all__ = ["ENGINES", "ENGINE_NAMES", "ENGINE_VENDORS", "TRT_FREE_FRACTION", "Engine", "EngineRule",
           "LlamaCppEngine", "ProfileSummary", "SglangEngine", "TrtLlmEngine", "VllmEngine", "all_engines",
           "default_memory_fraction", "engine_fit", "engine_rule", "engine_runs_on", "get_engine",
           "mem_fraction_static", "runtime_lines", "sglang_mem_fraction", "solve_context"]


def get_engine(name: str) -> Engine:
    key = name.strip().lower()
    aliases = {"trtllm": "trt-llm", "tensorrt-llm": "trt-llm", "llamacpp": "llama.cpp", "llama-cpp": "llama.cpp"}
    key = aliases.get(key, key)
    if key not in _ENGINES:
        raise SpecError(f"unknown engine {name!r} (allowed: {', '.join(_ENGINES)})")
    return _ENGINES[key]


def all_engines() -> list[Engine]:
    return list(_ENGINES.values())


def sglang_mem_fraction(tp: int, gpu: GpuSpec | None = None) -> float:
    """SGLang's default mem_fraction_static (newest profile) for a GPU (an 80 GB H100 when none is given)."""
    from llmfit.units import MIB

    gpu = gpu or GpuSpec(name="h100-80", memory=81559 * MIB, source="default")
    return SglangEngine().default_memory_fraction(gpu, tp)


def default_memory_fraction(engine: str, tp: int, gpu: GpuSpec | None = None) -> float:
    if engine == "sglang":
        return sglang_mem_fraction(tp, gpu)
    return get_engine(engine).default_memory_fraction(gpu or GpuSpec(name="gpu", memory=80 * 2**30,
                                                                     source="default"), tp)


def runtime_lines(spec: ModelSpec | None, gpu: GpuSpec, fmt: WeightFormat, tp: int, pp: int,
                  options: ServingOptions) -> tuple[list[OverheadLine], int]:
    """serving.fit's runtime overhead lines (of the PP stage with the smallest pool) and resolved max_num_seqs
    for one GPU and shape: the same code as fit (serving.stage_plan); tests hold the two equal."""
    rule = VllmEngine().rule(spec, gpu, fmt, tp, pp, options, None)
    return rule.overhead_lines, rule.max_num_seqs


def engine_rule(engine: str, spec: ModelSpec | None, gpu: GpuSpec, fmt: WeightFormat, tp: int, pp: int,
                options: ServingOptions, memory_fraction: float | None) -> EngineRule:
    return get_engine(engine).rule(spec, gpu, fmt, tp, pp, options, memory_fraction)


def engine_fit(spec: ModelSpec | None, gpu: GpuSpec, fmt: WeightFormat, deployment: Deployment,
               options: ServingOptions, engine: str = "vllm", *, memory_fraction: float | None = None,
               params: int | None = None) -> FitResult:
    """`fit` under one engine's budget rule."""
    return get_engine(engine).fit(spec, gpu, fmt, deployment, options, memory_fraction=memory_fraction,
                                  params=params)


def engine_runs_on(engine: str, gpu: GpuSpec) -> bool:
    return get_engine(engine).runs_on(gpu)


def solve_context(spec: ModelSpec, gpu: GpuSpec, fmt: WeightFormat, deployment: Deployment,
                  options: ServingOptions, engine: str, memory_fraction: float | None) -> tuple[FitResult, str]:
    """The longest context (up to the model's maximum) at which min_concurrency requests still fit.
    Served requests never grow with the context, so a bisection over tokens finds the exact boundary."""
    def result_at(tokens: int) -> FitResult:
        return engine_fit(spec, gpu, fmt, deployment, replace(options, context_tokens=tokens),
                          engine, memory_fraction=memory_fraction)

    wanted = max(1, options.min_concurrency)
    options = replace(options, min_concurrency=wanted)
    high = spec.max_position_embeddings
    top = result_at(high)
    if top.fits:
        return top, "the model's maximum context"
    low_result = result_at(1)
    if not low_result.fits:
        return low_result, "nothing fits, even 1 token"
    low = 1
    while high - low > 1:
        mid = (low + high) // 2
        if result_at(mid).fits:
            low = mid
        else:
            high = mid
    return result_at(low), f"memory: {low + 1:,} tokens would hold fewer than {wanted} requests"
