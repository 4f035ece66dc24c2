"""Speed bounds (roofline): how fast a deployment can at best decode and prefill.

These are bounds, not predictions: a step can never be faster than the bytes it must read over the
memory bandwidth, nor than the FLOPs it must do over peak throughput. Efficiency factors scale the peaks
to what kernels reach; with both at 1.0 the figures are the pure hardware bound.

Decode (memory bound), one step of every running request, on the fullest GPU of a replica:
    bytes per round = pp x weights_per_gpu + requests_per_replica x kv_per_request_per_gpu
    step time       = bytes per round / (bandwidth x eff_memory)
With pipeline parallelism each stage reads its weights once per micro-batch and a round runs pp
micro-batches (vLLM's virtual engines), so a request gets one token per round. For a mixture of experts,
the weights read per step are the shared tensors plus the experts the batch touches: with uniform
routing a layer of E experts with k per token touches E x (1 - (1 - k/E)^B) distinct experts for B tokens.
Tensor-parallel all-reduce time is not counted (it only makes a step slower).

Prefill (compute bound), one prompt of P tokens on one replica (TP GPUs share the FLOPs):
    FLOPs = 2 x active_params x P + attention,
    attention = layers x heads x 2 x (qk_dim + v_dim) x causal pairs, pairs = P (P + 1) / 2
                (sliding-window layers: each token attends to at most `window` tokens)
    TTFT >= max(FLOPs / (tp x peak_TFLOPS x eff_compute), weights read once / (bandwidth x eff_memory))

Default efficiencies, with sources:
- memory 0.75: decode kernels reach 60-80 % of peak HBM/GDDR bandwidth in published measurements
  (llama.cpp decode speeds collected in the landscape notes 3.1: Qwen3.5-27B Q4_K_M on RTX 4090 ~40 tok/s
  measured vs 61 tok/s at peak bandwidth = 0.65; llm-cal docs/methodology.md uses 0.50 for decode).
- compute 0.5: FlashAttention-2 (Dao 2023, abstract) reaches "50-73 % of the theoretical maximum
  FLOPs/s on A100"; llm-cal uses 0.40 for prefill; LLM-Viewer issue #4 measured prefill at 0.43 of
  its roofline (6.98 ms predicted vs 16.1 ms on A100).
"""

from __future__ import annotations

from dataclasses import field
from fractions import Fraction
from typing import Annotated

from llmfit.engine.formats import WeightFormat
from llmfit.engine.kv import kv_layout, kv_shard_fraction, request_bytes, state_bytes
from llmfit.engine.records import Check, record
from llmfit.engine.serving import FitResult, Step
from llmfit.engine.weights import group_bytes
from llmfit.errors import SpecError
from llmfit.specs import GpuSpec, ModelSpec
from llmfit.units import ceil_div

DEFAULT_MEMORY_EFFICIENCY = 0.75
DEFAULT_COMPUTE_EFFICIENCY = 0.5


@record
class Efficiency:
    """Shares of the peak bandwidth and peak TFLOPS that kernels reach (1.0 = the pure roofline)."""

    memory: Annotated[float, Check(gt=0, le=1)] = DEFAULT_MEMORY_EFFICIENCY
    compute: Annotated[float, Check(gt=0, le=1)] = DEFAULT_COMPUTE_EFFICIENCY


def parse_efficiency(text: str | None) -> Efficiency:
    """`--efficiency 0.8` (both) or `0.8,0.5` (memory, compute)."""
    if text is None:
        return Efficiency()
    parts = [p.strip() for p in text.split(",")]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise SpecError(f"--efficiency: cannot read {text!r}; expected MEMORY[,COMPUTE], e.g. 0.75,0.5") from None
    if len(values) not in (1, 2) or not all(0 < v <= 1 for v in values):
        raise SpecError(f"--efficiency: {text!r} must be one or two numbers in (0, 1], e.g. 0.75,0.5")
    return Efficiency(memory=values[0], compute=values[-1])


@record
class SpeedBounds:
    """Roofline bounds for one deployment at a concurrency. Times are lower bounds, rates upper bounds."""

    kind: str = "roofline bound"
    concurrency: int  # requests decoding at once, all replicas
    concurrency_per_replica: int
    context_tokens: int  # KV each request holds while decoding
    prompt_tokens: int
    memory_efficiency: float
    compute_efficiency: float
    bandwidth_bytes_per_s_per_gpu: int | None
    peak_flops_per_gpu: float | None
    compute_dtype: str
    weights_read_bytes_per_gpu: int  # per micro-batch step (MoE: only the experts the batch touches)
    kv_read_bytes_per_gpu: int  # per round, all requests of the replica on the fullest GPU
    decode_step_seconds: float | None
    tokens_per_second_per_request: float | None
    tokens_per_second: float | None  # aggregate, all replicas
    prefill_flops: int
    ttft_seconds: float | None  # one prompt of prompt_tokens on an idle replica
    prefill_tokens_per_second: float | None  # per replica
    notes: list[str] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)


def compute_dtype(fmt: WeightFormat, gpu: GpuSpec) -> str:
    """The matmul width: fp8 weights on fp8 tensor cores, fp32 for fp32, else 16-bit (weight-only
    quantization dequantizes to 16 bits inside the kernel)."""
    if fmt.name == "fp32":
        return "fp32"
    if fmt.needs_native == "fp8" and "fp8" in gpu.tflops:
        return "fp8"
    return "bf16" if "bf16" in gpu.tflops else "fp16"


def touched_expert_share(num_experts: int, experts_per_tok: int, tokens: int) -> float:
    """Expected share of a layer's experts that `tokens` tokens touch under uniform routing:
    1 - (1 - k/E)^B (each expert is missed by one token with probability 1 - k/E)."""
    if num_experts == 0 or tokens <= 0:
        return 0.0
    return 1.0 - (1.0 - experts_per_tok / num_experts) ** tokens


def attention_flops(spec: ModelSpec, prompt_tokens: int) -> int:
    """Token-mixing FLOPs of a causal prompt, each layer kind's own (llmfit/engine/layers.py
    prefill_flops): QK^T and AV over the pairs a layer attends (windows and chunks capped, MLA over
    qk_nope + qk_rope and v_head_dim, a sparse indexer's scoring), the scan of recurrent kinds."""
    return sum(group.layers * group.kind.prefill_flops(prompt_tokens) for group in spec.layer_groups)


def _expert_bytes_per_gpu(spec: ModelSpec, fmt: WeightFormat, result: FitResult) -> int:
    """Bytes of expert tensors on the fullest GPU: stored bytes / tp x (layers of the fullest stage / layers)."""
    expert = sum(item.bytes for item in group_bytes(spec, fmt) if item.group.kind == "expert")
    layers_stage = ceil_div(spec.num_hidden_layers, result.pp)
    per_gpu = Fraction(expert * layers_stage, spec.num_hidden_layers * result.tp)
    return min(result.weights_bytes_per_gpu, ceil_div(per_gpu.numerator, per_gpu.denominator))


def speed_bounds(spec: ModelSpec | None, gpu: GpuSpec, fmt: WeightFormat, result: FitResult, *,
                 concurrency: int | None = None, prompt_tokens: int | None = None,
                 efficiency: Efficiency | None = None) -> SpeedBounds:
    """Roofline bounds for a fitted deployment. `concurrency` defaults to the recommended concurrency
    (all replicas); `prompt_tokens` to the context."""
    eff = efficiency or Efficiency()
    replicas = result.replicas
    total = concurrency if concurrency is not None else (result.recommended_concurrency or 1)
    total = max(1, total)
    per_replica = ceil_div(total, replicas)
    prompt = prompt_tokens or result.context_tokens
    steps: list[Step] = []
    notes: list[str] = []
    bandwidth = gpu.memory_bandwidth_bytes_per_s
    dtype = compute_dtype(fmt, gpu)
    tflops = gpu.tflops.get(dtype)
    peak = tflops * 1e12 if tflops else None

    # Weights read per micro-batch step on the fullest GPU.
    weights_read = result.weights_bytes_per_gpu
    micro_batch = max(1, ceil_div(per_replica, result.pp))
    if spec is not None and spec.is_moe:
        expert_bytes = _expert_bytes_per_gpu(spec, fmt, result)
        share = touched_expert_share(spec.num_experts, spec.num_experts_per_tok, micro_batch)
        weights_read = result.weights_bytes_per_gpu - expert_bytes + round(expert_bytes * share)
        steps.append(Step(label="weights read per step (MoE)",
                          formula="shared tensors + experts x (1 - (1 - k/E)^B)",
                          substituted=f"{result.weights_bytes_per_gpu - expert_bytes:,} B + {expert_bytes:,} B x "
                          f"(1 - (1 - {spec.num_experts_per_tok}/{spec.num_experts})^{micro_batch})",
                          result=weights_read, unit="bytes"))

    # KV read per round on the fullest GPU: every request of the replica reads its whole cache once.
    kv_read = 0
    if spec is not None and result.kv_bytes_per_request is not None:
        layout = kv_layout(spec, result.kv_dtype)
        layers_stage = ceil_div(spec.num_hidden_layers, result.pp)
        per_request_gpu = request_bytes(layout, result.context_tokens, block_size=1,
                                        layer_share=Fraction(layers_stage, spec.num_hidden_layers),
                                        head_share=kv_shard_fraction(spec, result.tp))
        # Recurrent kinds read (and write) their fixed state once per step.
        per_request_gpu += state_bytes(spec, result.tp, layer_end=layers_stage)
        kv_read = per_replica * per_request_gpu
    round_bytes = result.pp * weights_read + kv_read

    step_s = tok_s_req = tok_s = None
    if bandwidth:
        step_s = round_bytes / (bandwidth * eff.memory)
        tok_s_req = 1.0 / step_s
        tok_s = replicas * per_replica / step_s
        steps.append(Step(label="decode step (lower bound)",
                          formula="(pp x weights_per_gpu + requests_per_replica x KV_per_request_per_gpu) / "
                          "(bandwidth x eff_memory)",
                          substituted=f"({result.pp} x {weights_read:,} B + {per_replica} x "
                          f"{kv_read // per_replica:,} B) / ({bandwidth / 1e12:g} TB/s x {eff.memory})",
                          result=round(step_s * 1000, 3), unit="ms"))
        steps.append(Step(label="decode tokens/s (upper bound)", formula="replicas x requests / step time",
                          substituted=f"{replicas} x {per_replica} / {step_s * 1000:.3f} ms",
                          result=round(tok_s, 1), unit="tokens/s"))
    else:
        notes.append(f"{gpu.name}: no memory bandwidth in the preset, so no decode bound")

    active = result.active_params
    flops = 2 * active * prompt + (attention_flops(spec, prompt) if spec is not None else 0)
    ttft = prefill_rate = None
    if peak:
        compute_s = flops / (result.tp * peak * eff.compute)
        memory_s = result.pp * result.weights_bytes_per_gpu / (bandwidth * eff.memory) if bandwidth else 0.0
        ttft = max(compute_s, memory_s)
        prefill_rate = prompt / ttft
        steps.append(Step(label="prefill FLOPs", formula="2 x active_params x prompt + attention "
                          "(layers x heads x 2 x (qk_dim + v_dim) x causal pairs)",
                          substituted=f"2 x {active:,} x {prompt:,} + {flops - 2 * active * prompt:,}",
                          result=flops, unit="FLOPs"))
        steps.append(Step(label="time to first token (lower bound)",
                          formula="max(FLOPs / (tp x peak x eff_compute), weights / (bandwidth x eff_memory))",
                          substituted=f"max({flops:.3e} / ({result.tp} x {tflops:g} TFLOPS {dtype} x {eff.compute}),"
                          f" {memory_s * 1000:.3f} ms)", result=round(ttft * 1000, 3), unit="ms"))
    else:
        notes.append(f"{gpu.name}: no {dtype} TFLOPS in the preset, so no prefill bound")
    notes.append("bounds: a real engine is slower (scheduling, all-reduce, kernel launch, sampling)")
    return SpeedBounds(
        concurrency=replicas * per_replica,
        concurrency_per_replica=per_replica,
        context_tokens=result.context_tokens,
        prompt_tokens=prompt,
        memory_efficiency=eff.memory,
        compute_efficiency=eff.compute,
        bandwidth_bytes_per_s_per_gpu=bandwidth,
        peak_flops_per_gpu=peak,
        compute_dtype=dtype,
        weights_read_bytes_per_gpu=weights_read,
        kv_read_bytes_per_gpu=kv_read,
        decode_step_seconds=step_s,
        tokens_per_second_per_request=tok_s_req,
        tokens_per_second=tok_s,
        prefill_flops=flops,
        ttft_seconds=ttft,
        prefill_tokens_per_second=prefill_rate,
        notes=notes,
        steps=steps,
    )
