"""Serving engines' KV budget rules, on top of `serving.fit` (which models vLLM).

- vLLM: pool = total x gpu_memory_utilization - (weights + activation peak + non-torch memory)
  (vllm/v1/worker/gpu_worker.py determine_available_memory): a fraction of TOTAL memory.
- SGLang: pool = total x mem_fraction_static - (weights + memory in use before loading: CUDA context)
  (python/sglang/srt/model_executor/model_runner.py profile_max_num_token: rest = available after weight
  load - total x (1 - mem_fraction_static)); activations and CUDA graphs live in the (1 - fraction)
  left outside. Default fraction by TP (python/sglang/srt/server_args.py, v0.4 __post_init__):
  0.88 (TP1), 0.87 (TP2), 0.85 (TP4), 0.81 (TP8), 0.79 (TP16). Pages of 1 token (page_size 1).
- TensorRT-LLM: pool = free_gpu_memory_fraction (0.9) x memory FREE after the engine is loaded
  (weights + activations + context) (TensorRT-LLM KvCacheConfig.free_gpu_memory_fraction): a fraction
  of what is left, not of the total. The activation/context estimate is vLLM's, used as an assumption.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from llmfit.engine import serving
from llmfit.engine.formats import WeightFormat
from llmfit.engine.runtime import OverheadLine, engine_batch_defaults, overhead_lines
from llmfit.engine.serving import Deployment, FitResult, ServingOptions, Step
from llmfit.specs import GpuSpec, ModelSpec

ENGINES = ("vllm", "sglang", "trt-llm")
ENGINE_NAMES = {"vllm": "vLLM", "sglang": "SGLang", "trt-llm": "TensorRT-LLM", "llama.cpp": "llama.cpp"}
TRT_FREE_FRACTION = 0.9
VLLM_GPU_UTIL = 0.9


def sglang_mem_fraction(tp: int) -> float:
    """SGLang's default mem_fraction_static for a tensor-parallel size (server_args.py, v0.4)."""
    if tp >= 16:
        return 0.79
    if tp >= 8:
        return 0.81
    if tp >= 4:
        return 0.85
    if tp >= 2:
        return 0.87
    return 0.88


def default_memory_fraction(engine: str, tp: int) -> float:
    """The engine's own default: vLLM gpu_memory_utilization 0.9, SGLang by TP, TRT-LLM 0.9 of free."""
    if engine == "sglang":
        return sglang_mem_fraction(tp)
    if engine == "trt-llm":
        return TRT_FREE_FRACTION
    return VLLM_GPU_UTIL


class EngineRule(BaseModel):
    """What one engine subtracts before the KV pool, per GPU, for one deployment shape."""

    model_config = ConfigDict(frozen=True)

    engine: str
    memory_fraction: float  # vLLM/SGLang: of total memory; TRT-LLM: of free memory
    block_size: int
    max_num_seqs: int  # as serving.fit resolves it for this GPU
    overhead_lines: list[OverheadLine]


def runtime_lines(spec: ModelSpec | None, gpu: GpuSpec, fmt: WeightFormat, tp: int, pp: int,
                  options: ServingOptions) -> tuple[list[OverheadLine], int]:
    """serving.fit's runtime overhead lines and resolved max_num_seqs for one GPU and shape, without the
    weights (the plan sweep needs them for hundreds of shapes). Mirrors fit's call; tests hold the two equal."""
    seqs = options.max_num_seqs
    if seqs is None:
        _, seqs = engine_batch_defaults(options.engine_version, gpu_memory_bytes=gpu.usable_memory_bytes,
                                        gpu_name=gpu.name, context_tokens=options.context_tokens)
    if options.overhead_override_bytes is not None:
        return [OverheadLine(name="runtime overhead (given)", bytes_per_gpu=options.overhead_override_bytes,
                             formula="--overhead")], seqs
    lines = overhead_lines(spec, engine_version=options.engine_version, tp=tp, pp=pp,
                           gpu_memory_bytes=gpu.usable_memory_bytes, max_num_seqs=seqs,
                           act_bytes=4 if fmt.name == "fp32" else 2,
                           max_num_batched_tokens=options.max_num_batched_tokens, gpu_name=gpu.name,
                           compute_capability=gpu.compute_capability, context_tokens=options.context_tokens,
                           weight_format=fmt.name)
    return lines, seqs


def engine_rule(engine: str, spec: ModelSpec | None, gpu: GpuSpec, fmt: WeightFormat, tp: int, pp: int,
                options: ServingOptions, memory_fraction: float | None) -> EngineRule:
    """Every engine shares vLLM's measured runtime model (non-torch memory, activation peak); SGLang
    counts only what is in use before the weights load against its static fraction."""
    fraction = memory_fraction if memory_fraction is not None else default_memory_fraction(engine, tp)
    lines, seqs = runtime_lines(spec, gpu, fmt, tp, pp, options)
    block = options.block_size
    if engine == "sglang":
        lines = [line for line in lines if line.name == "non-torch memory"]
        block = 1
    return EngineRule(engine=engine, memory_fraction=fraction, block_size=block, max_num_seqs=seqs,
                      overhead_lines=lines)


def engine_fit(spec: ModelSpec | None, gpu: GpuSpec, fmt: WeightFormat, deployment: Deployment,
               options: ServingOptions, engine: str = "vllm", *, memory_fraction: float | None = None,
               params: int | None = None) -> FitResult:
    """`serving.fit` under one engine's budget rule (see the module docstring). vLLM is fit itself."""
    if engine == "vllm" and memory_fraction is None:
        return serving.fit(spec, gpu, fmt, deployment, options, params=params)
    rule = engine_rule(engine, spec, gpu, fmt, deployment.tp, deployment.pp, options, memory_fraction)
    options = options.model_copy(update={"max_num_seqs": rule.max_num_seqs})
    overhead = sum(line.bytes_per_gpu for line in rule.overhead_lines)
    if engine in ("vllm", "sglang"):
        opts = options.model_copy(update={"gpu_util": rule.memory_fraction, "block_size": rule.block_size,
                                          "overhead_override_bytes": overhead})
        result = serving.fit(spec, gpu, fmt, deployment, opts, params=params)
        lines = rule.overhead_lines
        why = (f"pool = memory x mem_fraction_static {rule.memory_fraction} - weights - memory in use before "
               "loading (SGLang); activations and CUDA graphs use the rest" if engine == "sglang" else "")
    else:  # trt-llm: a fraction of what is free after the weights and the runtime
        first = serving.fit(spec, gpu, fmt, deployment, options.model_copy(update={
            "gpu_util": 1.0, "overhead_override_bytes": overhead}), params=params)
        free = first.kv_budget_bytes_per_gpu
        reserve = free - int(free * rule.memory_fraction) if free > 0 else 0
        lines = [*rule.overhead_lines, OverheadLine(
            name="kept free (1 - free_gpu_memory_fraction)", bytes_per_gpu=reserve,
            formula=f"(memory - weights - runtime) x (1 - {rule.memory_fraction})")]
        result = serving.fit(spec, gpu, fmt, deployment, options.model_copy(update={
            "gpu_util": 1.0, "overhead_override_bytes": overhead + reserve}), params=params)
        why = (f"pool = {rule.memory_fraction} x (memory - weights - runtime) (TensorRT-LLM "
               "free_gpu_memory_fraction: a share of FREE memory)")
    steps: list[Step] = []
    for step in result.steps:
        if step.label == "runtime overhead (given)":
            steps += [Step(label=line.name, formula=line.formula, substituted="", result=line.bytes_per_gpu,
                           unit="bytes") for line in lines]
        else:
            steps.append(_relabel(step, lines))
    notes = [n for n in result.notes if "accounting" not in n] + [why]
    return result.model_copy(update={"engine": ENGINE_NAMES[engine], "overhead_lines": lines, "steps": steps,
                                     "notes": notes})


def _relabel(step: Step, lines: list[OverheadLine]) -> Step:
    if step.label == "KV budget per GPU":
        names = " + ".join(line.name for line in lines)
        return step.model_copy(update={"formula": f"gpu_memory x fraction - weights - ({names})"})
    return step


def solve_context(spec: ModelSpec, gpu: GpuSpec, fmt: WeightFormat, deployment: Deployment,
                  options: ServingOptions, engine: str, memory_fraction: float | None) -> tuple[FitResult, str]:
    """The longest context (up to the model's maximum) at which min_concurrency requests still fit.
    Served requests never grow with the context, so a bisection over tokens finds the exact boundary."""
    def result_at(tokens: int) -> FitResult:
        return engine_fit(spec, gpu, fmt, deployment, options.model_copy(update={"context_tokens": tokens}),
                          engine, memory_fraction=memory_fraction)

    wanted = max(1, options.min_concurrency)
    options = options.model_copy(update={"min_concurrency": wanted})
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


# Which accelerators each serving engine runs on (the engines' installation docs): vLLM and SGLang on
# NVIDIA CUDA and AMD ROCm (vLLM also Intel XPU), TensorRT-LLM on NVIDIA only. None of them drives an
# Apple-silicon GPU (vLLM's macOS build runs on the CPU): plan leaves such devices out for them.
ENGINE_VENDORS: dict[str, tuple[str, ...]] = {
    "vllm": ("nvidia", "amd", "intel"),
    "sglang": ("nvidia", "amd"),
    "trt-llm": ("nvidia",),
}


def engine_runs_on(engine: str, gpu: GpuSpec) -> bool:
    return gpu.vendor in ENGINE_VENDORS.get(engine, (gpu.vendor,))
