"""TensorRT-LLM: pool = free_gpu_memory_fraction (0.9) x memory FREE after the engine is loaded (weights +
activations + context) (tensorrt_llm/llmapi KvCacheConfig.free_gpu_memory_fraction): a fraction of what is left,
not of the total. The activation/context estimate is vLLM's profile run, used as an assumption."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from llmfit.engine import serving
from llmfit.engine.cache_policy import CachePolicy, TrtLlmPolicy
from llmfit.engine.engines.base import Engine, EngineRule
from llmfit.engine.engines.sglang import relabel
from llmfit.engine.engines.vllm import VllmEngine
from llmfit.engine.formats import WeightFormat
from llmfit.engine.records import replace
from llmfit.engine.runtime import OverheadLine
from llmfit.engine.serving import Deployment, FitResult, ServingOptions
from llmfit.specs import GpuSpec, ModelSpec

if TYPE_CHECKING:
    from llmfit.engine.emit import LaunchCommand

TRT_FREE_FRACTION = 0.9


class TrtLlmEngine(Engine):
    name: ClassVar[str] = "trt-llm"
    display: ClassVar[str] = "TensorRT-LLM"
    vendors: ClassVar[tuple[str, ...]] = ("nvidia",)

    def default_memory_fraction(self, gpu: GpuSpec, tp: int, pp: int = 1, version: str | None = None) -> float:
        return TRT_FREE_FRACTION

    def rule(self, spec: ModelSpec | None, gpu: GpuSpec, fmt: WeightFormat, tp: int, pp: int,
             options: ServingOptions, memory_fraction: float | None) -> EngineRule:
        base = VllmEngine().rule(spec, gpu, fmt, tp, pp, options, None)
        fraction = memory_fraction if memory_fraction is not None else TRT_FREE_FRACTION
        return replace(base, engine=self.name, memory_fraction=fraction)

    def fit(self, spec: ModelSpec | None, gpu: GpuSpec, fmt: WeightFormat, deployment: Deployment,
            options: ServingOptions, *, memory_fraction: float | None = None,
            params: int | None = None) -> FitResult:
        rule = self.rule(spec, gpu, fmt, deployment.tp, deployment.pp, options, memory_fraction)
        overhead = sum(line.bytes_per_gpu for line in rule.overhead_lines)
        options = replace(options, max_num_seqs=rule.max_num_seqs, kv_cache_memory_bytes=None)
        first = serving.fit(spec, gpu, fmt, deployment,
                            replace(options, gpu_util=1.0, overhead_override_bytes=overhead), params=params)
        free = first.kv_budget_bytes_per_gpu
        reserve = free - int(free * rule.memory_fraction) if free > 0 else 0
        lines = [*rule.overhead_lines, OverheadLine(
            name="kept free (1 - free_gpu_memory_fraction)", bytes_per_gpu=reserve,
            formula=f"(memory - weights - runtime) x (1 - {rule.memory_fraction})")]
        result = serving.fit(spec, gpu, fmt, deployment,
                             replace(options, gpu_util=1.0, overhead_override_bytes=overhead + reserve), params=params,
                             cache_policy=self.cache_policy())
        loaded = [line for line in rule.overhead_lines if "loaded with the weights" in line.name]
        return relabel(result, self.display, lines,
                       f"pool = {rule.memory_fraction} x (memory - weights - runtime) (TensorRT-LLM "
                       "free_gpu_memory_fraction: a share of FREE memory)", loaded_lines=loaded)

    def cache_policy(self, version: str | None = None) -> CachePolicy:
        return TrtLlmPolicy()

    def launch_command(self, result: FitResult, model_id: str, *, memory_fraction: float | None = None,
                       pin_kv_pool: bool = False) -> LaunchCommand:
        from llmfit.engine.emit import trtllm_command

        return trtllm_command(result, model_id, memory_fraction if memory_fraction is not None else TRT_FREE_FRACTION)

    def engine_report(self, result: FitResult) -> list[tuple[str, str, Any]]:
        if result.kv_tokens is None:
            return []
        return [("kv_tokens", f"[MemUsageChange] Allocated KV cache: {result.kv_tokens:,} tokens (max_tokens)",
                 result.kv_tokens)]
