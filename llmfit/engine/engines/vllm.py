"""vLLM: pool = total device memory x gpu_memory_utilization - (weights + activation peak + non-torch memory
[+ CUDA-graph pool from v0.21]) per GPU (vllm/v1/worker/gpu_worker.py determine_available_memory; V0:
vllm/worker/worker.py determine_num_available_blocks). The version profiles are configs/engines/vllm.yaml;
serving.fit is this rule (runtime.overhead_lines its terms)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from llmfit.engine import serving
from llmfit.engine.cache_policy import CachePolicy, VllmHybridPolicy, VllmPagedPolicy
from llmfit.engine.engine_data import vllm_profiles
from llmfit.engine.engines.base import Engine, EngineRule, ProfileSummary
from llmfit.engine.formats import WeightFormat
from llmfit.engine.records import replace
from llmfit.engine.runtime import ENGINE_PROFILES, engine_batch_defaults, resolve_engine_version
from llmfit.engine.serving import Deployment, FitResult, ServingOptions
from llmfit.specs import GpuSpec, ModelSpec
from llmfit.units import GIB

if TYPE_CHECKING:
    from llmfit.engine.emit import LaunchCommand


class VllmEngine(Engine):
    name: ClassVar[str] = "vllm"
    display: ClassVar[str] = "vLLM"
    vendors: ClassVar[tuple[str, ...]] = ("nvidia", "amd", "intel")

    def profiles(self) -> list[ProfileSummary]:
        return [ProfileSummary(engine=self.name, profile=p.name, label=p.label, since=p.since, until=p.until,
                               changes=p.changes) for p in vllm_profiles().profiles]

    def resolve_version(self, version: str | None) -> str:
        return resolve_engine_version(version)

    def default_memory_fraction(self, gpu: GpuSpec, tp: int, pp: int = 1, version: str | None = None) -> float:
        # vllm/config/cache.py CacheConfig.gpu_memory_utilization = 0.9 (every profile's defaults)
        return float(vllm_profiles().profiles[-1].defaults.get("gpu_memory_utilization", 0.9))

    def cache_policy(self, version: str | None = None) -> CachePolicy:
        """v1 (0.8+): the hybrid KV cache manager (grouping, padding, sliding/chunked admission); V0: one block
        size for every layer, windows capped (engine/cache_policy.py)."""
        if ENGINE_PROFILES[version or "latest"].v1:
            return VllmHybridPolicy()
        return VllmPagedPolicy()

    def rule(self, spec: ModelSpec | None, gpu: GpuSpec, fmt: WeightFormat, tp: int, pp: int,
             options: ServingOptions, memory_fraction: float | None) -> EngineRule:
        seqs = options.max_num_seqs
        if seqs is None:
            _, seqs = engine_batch_defaults(options.engine_version, gpu_memory_bytes=gpu.usable_memory_bytes,
                                            gpu_name=gpu.name, context_tokens=options.context_tokens)
        opts = replace(options, max_num_seqs=seqs)
        plan = serving.stage_plan(spec, gpu, fmt, tp, pp, opts, weights_per_gpu=None if spec is not None else 0)
        fraction = memory_fraction if memory_fraction is not None else options.gpu_util
        return EngineRule(engine=self.name, memory_fraction=fraction, block_size=options.block_size,
                          max_num_seqs=seqs, overhead_lines=plan.overheads[plan.limiting])

    def fit(self, spec: ModelSpec | None, gpu: GpuSpec, fmt: WeightFormat, deployment: Deployment,
            options: ServingOptions, *, memory_fraction: float | None = None,
            params: int | None = None) -> FitResult:
        if memory_fraction is not None:
            options = replace(options, gpu_util=memory_fraction)
        return serving.fit(spec, gpu, fmt, deployment, options, params=params,
                           cache_policy=self.cache_policy(options.engine_version))

    def launch_command(self, result: FitResult, model_id: str, *, memory_fraction: float | None = None,
                       pin_kv_pool: bool = False) -> LaunchCommand:
        from llmfit.engine.emit import vllm_command

        return vllm_command(result, model_id, pin_kv_pool=pin_kv_pool)

    def engine_report(self, result: FitResult) -> list[tuple[str, str, Any]]:
        # The lines vLLM logs (gpu_worker.py / kv_cache_utils.py), formatted as vLLM formats them.
        rows: list[tuple[str, str, Any]] = [
            ("loaded_weights_bytes_per_gpu",
             f"Model loading took {result.loaded_weights_bytes_per_gpu / GIB:.2f} GiB memory",
             result.loaded_weights_bytes_per_gpu),
            ("kv_budget_bytes_per_gpu", f"Available KV cache memory: {result.kv_budget_bytes_per_gpu / GIB:.2f} GiB",
             result.kv_budget_bytes_per_gpu)]
        if result.kv_tokens is not None:
            rows.append(("kv_tokens", f"GPU KV cache size: {result.kv_tokens:,} tokens", result.kv_tokens))
        if result.vllm_max_concurrency is not None:
            rows.append(("vllm_max_concurrency", f"Maximum concurrency for {result.context_tokens:,} tokens per "
                         f"request: {result.vllm_max_concurrency:.2f}x", result.vllm_max_concurrency))
        return rows
