"""SGLang: its fraction is of the memory FREE after start-up, not of the device total.

python/sglang/srt/model_executor/model_runner.py profile_max_num_token:
    total_gpu_memory = free memory when the model runner starts (after the CUDA context and NCCL init)
    rest_memory = available_gpu_memory (free after the weights load) - total_gpu_memory x (1 - mem_fraction_static)
    max_total_num_tokens = rest_memory // cell_size, pages of page_size (1 by default)
so, per GPU, pool = (total - in use at start) x fraction - loaded weights. Activations and CUDA graphs live in the
(1 - fraction) left outside. The default fraction comes from the GPU's nvidia-smi capacity (server_args.py;
configs/engines/sglang.yaml has the rule of each version line).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from llmfit.engine import serving
from llmfit.engine.cache_policy import CachePolicy, SglangPolicy
from llmfit.engine.engine_data import SglangProfileData, pick_profile, sglang_profiles
from llmfit.engine.engines.base import Engine, EngineRule, ProfileSummary
from llmfit.engine.formats import WeightFormat
from llmfit.engine.records import replace
from llmfit.engine.runtime import OverheadLine, engine_batch_defaults
from llmfit.engine.serving import Deployment, FitResult, ServingOptions, Step
from llmfit.specs import GpuSpec, ModelSpec
from llmfit.units import GIB, MIB

if TYPE_CHECKING:
    from llmfit.engine.emit import LaunchCommand


def _capacity_mib(gpu: GpuSpec) -> int:
    # sglang/srt/utils get_device_memory_capacity -> get_nvgpu_memory_capacity: nvidia-smi memory.total in MiB.
    return (gpu.nvidia_smi_memory or gpu.usable_memory_bytes) // MIB


def mem_fraction_static(profile: SglangProfileData, gpu_mem_mib: int, tp: int, pp: int) -> tuple[float, str]:
    """server_args.py's default mem_fraction_static for a device of gpu_mem_mib (nvidia-smi MiB) and TP x PP."""
    if profile.reserved is not None:
        step = next(s for s in profile.reserved if s.below_mib is None or gpu_mem_mib < s.below_mib)
        reserved = (step.base_gib + step.per_parallel_gib * tp * pp) * 1024
        why = f"reserved ({step.base_gib} + {step.per_parallel_gib} x TP x PP {tp * pp}) GiB"
    else:
        assert profile.capacity_classes is not None and profile.reserve_terms is not None
        cls = next(c for c in profile.capacity_classes if c.below_mib is None or gpu_mem_mib < c.below_mib)
        graph_bs = cls.cuda_graph_max_bs[0 if tp < 4 else 1]
        terms = profile.reserve_terms
        reserved = (terms.constant_mib + max(cls.chunked_prefill_size, 2048) * terms.per_prefill_token_mib
                    + graph_bs * terms.per_graph_batch_mib + tp * pp * terms.per_parallel_mib)
        why = (f"reserved {terms.constant_mib:g} + chunked prefill {cls.chunked_prefill_size} x "
               f"{terms.per_prefill_token_mib:g} + CUDA graphs {graph_bs} x {terms.per_graph_batch_mib:g} + "
               f"TP x PP {tp * pp} x {terms.per_parallel_mib:g} MiB")
        if gpu_mem_mib > 60 * 1024:
            reserved = max(reserved, terms.floor_above_60gib_mib)
            why += f", at least {terms.floor_above_60gib_mib:g} MiB"
    fraction = round((gpu_mem_mib - reserved) / gpu_mem_mib, 3)
    return fraction, f"({gpu_mem_mib} MiB - {reserved:g} MiB) / {gpu_mem_mib} MiB = {fraction} ({why})"


class SglangEngine(Engine):
    name: ClassVar[str] = "sglang"
    display: ClassVar[str] = "SGLang"
    vendors: ClassVar[tuple[str, ...]] = ("nvidia", "amd")

    def _profile(self, version: str | None) -> SglangProfileData:
        return pick_profile(sglang_profiles().profiles, version, "SGLang")  # type: ignore[no-any-return]

    def profiles(self) -> list[ProfileSummary]:
        return [ProfileSummary(engine=self.name, profile=p.name, label=p.label, since=p.since, until=p.until,
                               changes=p.changes) for p in sglang_profiles().profiles]

    def resolve_version(self, version: str | None) -> str:
        return self._profile(version).name

    def default_memory_fraction(self, gpu: GpuSpec, tp: int, pp: int = 1, version: str | None = None) -> float:
        return mem_fraction_static(self._profile(version), _capacity_mib(gpu), tp, pp)[0]

    def cache_policy(self, version: str | None = None) -> CachePolicy:
        """Page 1 token, recurrent state in its own pool (engine/cache_policy.py SglangPolicy)."""
        return SglangPolicy()

    def rule(self, spec: ModelSpec | None, gpu: GpuSpec, fmt: WeightFormat, tp: int, pp: int,
             options: ServingOptions, memory_fraction: float | None, version: str | None = None) -> EngineRule:
        profile = self._profile(version or options.engine_release)
        if memory_fraction is None:
            fraction, why = mem_fraction_static(profile, _capacity_mib(gpu), tp, pp)
        else:
            fraction, why = memory_fraction, "--mem-fraction-static given"
        seqs = options.max_num_seqs
        if seqs is None:
            _, seqs = engine_batch_defaults(options.engine_version, gpu_memory_bytes=gpu.usable_memory_bytes,
                                            gpu_name=gpu.name, context_tokens=options.context_tokens)
        init = sglang_profiles().init_used
        assert init is not None
        in_use, where = init.bytes_for(tp, pp, gpu.interconnect)
        plan = serving.stage_plan(spec, gpu, fmt, tp, pp, replace(options, max_num_seqs=seqs),
                                  weights_per_gpu=None if spec is not None else 0)
        loaded = [line for line in plan.overheads[plan.limiting] if "loaded with the weights" in line.name]
        lines = [OverheadLine(name="in use at start-up x mem_fraction_static", bytes_per_gpu=round(in_use * fraction),
                              formula=f"{in_use / GIB:.2f} GiB ({where}) x {fraction}: the fraction is of the "
                              f"memory free after start-up; mem_fraction_static {why}"),
                 *loaded]
        return EngineRule(engine=self.name, memory_fraction=fraction, block_size=1, max_num_seqs=seqs,
                          overhead_lines=lines)

    def fit(self, spec: ModelSpec | None, gpu: GpuSpec, fmt: WeightFormat, deployment: Deployment,
            options: ServingOptions, *, memory_fraction: float | None = None,
            params: int | None = None) -> FitResult:
        rule = self.rule(spec, gpu, fmt, deployment.tp, deployment.pp, options, memory_fraction,
                         version=options.engine_release)
        overhead = sum(line.bytes_per_gpu for line in rule.overhead_lines)
        opts = replace(options, max_num_seqs=rule.max_num_seqs, gpu_util=rule.memory_fraction, block_size=1,
                       overhead_override_bytes=overhead, kv_cache_memory_bytes=None)
        result = serving.fit(spec, gpu, fmt, deployment, opts, params=params, cache_policy=self.cache_policy())
        return relabel(result, "SGLang", rule.overhead_lines,
                       f"pool = (memory - in use at start-up) x mem_fraction_static {rule.memory_fraction} - loaded "
                       "weights (SGLang profile_max_num_token); activations and CUDA graphs use the rest",
                       loaded_lines=[line for line in rule.overhead_lines if "loaded with the weights" in line.name])

    def launch_command(self, result: FitResult, model_id: str, *, memory_fraction: float | None = None,
                       pin_kv_pool: bool = False) -> LaunchCommand:
        from llmfit.engine.emit import sglang_command

        return sglang_command(result, model_id)

    def engine_report(self, result: FitResult) -> list[tuple[str, str, Any]]:
        if result.kv_tokens is None or not result.kv_bytes_per_token_per_gpu:
            return []
        half = result.kv_tokens * result.kv_bytes_per_token_per_gpu / 2 / GIB
        # model_runner.py init_memory_pool / memory_pool.py MHATokenToKVPool: "KV Cache is allocated. #tokens: %d,
        # K size: %.2f GB, V size: %.2f GB" (GB = 2**30 bytes there)
        return [("kv_tokens", f"KV Cache is allocated. #tokens: {result.kv_tokens}, K size: {half:.2f} GB, "
                 f"V size: {half:.2f} GB", result.kv_tokens),
                ("loaded_weights_bytes_per_gpu",
                 f"Load weight end. mem usage={result.loaded_weights_bytes_per_gpu / GIB:.2f} GB",
                 result.loaded_weights_bytes_per_gpu)]


def relabel(result: FitResult, engine: str, lines: list[OverheadLine], why: str,
            loaded_lines: list[OverheadLine] | None = None) -> FitResult:
    """A serving.fit result run with the engine's overhead as one given figure, with the engine's lines put back."""
    steps: list[Step] = []
    for step in result.steps:
        if step.label == "runtime overhead (given)":
            steps += [Step(label=line.name, formula=line.formula, substituted="", result=line.bytes_per_gpu,
                           unit="bytes") for line in lines]
        elif step.label == "KV budget per GPU":
            names = " + ".join(line.name for line in lines)
            steps.append(replace(step, formula=f"gpu_memory x fraction - weights - ({names})"))
        else:
            steps.append(step)
    notes = [n for n in result.notes if "accounting" not in n] + [why]
    loaded = result.weights_bytes_per_gpu + sum(line.bytes_per_gpu for line in loaded_lines or [])
    return replace(result, engine=engine, overhead_lines=lines, steps=steps, notes=notes,
                   loaded_weights_bytes_per_gpu=loaded)
