"""Runtime overhead of a serving engine, per GPU: what vLLM subtracts before the KV cache pool.

vLLM (v1 `gpu_worker.determine_available_memory`): the KV pool is
    total device memory x gpu_memory_utilization - (weights + torch activation peak of the profile run
    + non-torch memory [+ CUDA-graph pool, from v0.21 on])
so the overhead is three named lines. Engine-level constants below carry their source; there are no
per-model factors: the activation peak is computed from the architecture.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from llmfit.specs import ModelSpec
from llmfit.units import GIB, MIB


@dataclass(frozen=True)
class EngineProfile:
    """Constants of one engine version, each with its source."""

    name: str
    # Non-torch memory (CUDA context, cuBLAS workspace; NCCL buffers with TP >= 2), per GPU.
    non_torch_tp1_bytes: int
    non_torch_tp_bytes: int
    non_torch_pp_bytes: int
    # Whether the CUDA-graph pool is subtracted from the KV budget.
    counts_cuda_graphs: bool
    # Multiplier on the modelled activation peak of the profile run (1.0 = the v1 engine's accounting).
    activation_scale: float
    source: str


ENGINE_PROFILES: dict[str, EngineProfile] = {
    "0.19": EngineProfile(
        name="vLLM v0.19",
        non_torch_tp1_bytes=round(0.25 * GIB),
        non_torch_tp_bytes=round(2.07 * GIB),
        non_torch_pp_bytes=round(0.07 * GIB),
        counts_cuda_graphs=False,
        activation_scale=1.0,
        source="llm-d-planner PR #205 accuracy report (vLLM v0.19.0, H100): non-torch 0.25 GiB at TP1, "
        "2.07-2.13 GiB at TP2/4 (NCCL buffers), 0.07 GiB at PP2/4",
    ),
    "0.11": EngineProfile(
        name="vLLM v0.11",
        non_torch_tp1_bytes=round(0.13 * GIB),
        non_torch_tp_bytes=round(0.54 * GIB),
        non_torch_pp_bytes=round(0.13 * GIB),
        counts_cuda_graphs=False,
        activation_scale=2.5,
        source="llm-d-planner docs/empirical-vllm-memory-results.md (vLLM v0.11.0, H100): non-torch "
        "0.13-0.14 GiB at TP1, 0.54-0.55 GiB at TP2; activation peak ~2.5x v0.19's for the same model",
    ),
}
DEFAULT_ENGINE_VERSION = "0.19"


def default_max_num_batched_tokens(gpu_memory_bytes: int) -> int:
    """vLLM's default for `vllm serve`: 8192 tokens per step on >= 70 GiB devices (H100, MI300X), 2048 below
    (vllm/engine/arg_utils.py, default_max_num_batched_tokens for UsageContext.OPENAI_API_SERVER)."""
    return 8192 if gpu_memory_bytes >= 70 * GIB else 2048


class OverheadLine(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    bytes_per_gpu: int
    formula: str


def activation_peak_bytes(spec: ModelSpec, *, batched_tokens: int, max_num_seqs: int, act_bytes: int,
                          tp: int = 1) -> tuple[int, str]:
    """Torch activation peak of vLLM's profile run, per GPU.

    The profile run pushes `batched_tokens` tokens through one forward pass, then samples `max_num_seqs`
    rows. Its peak is the widest point of a layer (buffers of one layer are freed before the next):
      tokens x (residual + normed input h + 2 x h + q/k/v width/tp + gate_up 2I/tp + act I/tp) x act_bytes
    plus the sampler: max_num_seqs x vocab x 4 B (fp32 logits) x 2 (logits and probabilities).
    """
    h = spec.hidden_size
    if spec.is_mla:
        qkv = spec.num_attention_heads * ((spec.qk_nope_head_dim or 0) + (spec.qk_rope_head_dim or 0)) * 2
    else:
        qkv = (spec.num_attention_heads + 2 * spec.kv_heads) * spec.real_head_dim
    inter = spec.intermediate_size
    if spec.is_moe:
        inter = max(spec.intermediate_size if spec.first_k_dense_replace else 0,
                    (spec.moe_intermediate_size or spec.intermediate_size) * spec.num_experts_per_tok)
    width = 2 * h + qkv // tp + 3 * inter // tp
    layer_peak = batched_tokens * width * act_bytes
    sampler = max_num_seqs * spec.vocab_size * 4 * 2
    formula = (f"{batched_tokens} tokens x ({2 * h} + {qkv // tp} + 3 x {inter // tp}) x {act_bytes} B"
               f" + {max_num_seqs} seqs x {spec.vocab_size} vocab x 4 B x 2")
    return layer_peak + sampler, formula


def overhead_lines(spec: ModelSpec | None, *, engine_version: str, tp: int, pp: int, gpu_memory_bytes: int,
                   max_num_seqs: int, act_bytes: int = 2,
                   max_num_batched_tokens: int | None = None) -> list[OverheadLine]:
    """The runtime overhead lines of one GPU: non-torch memory, activation peak (and CUDA graphs if counted)."""
    profile = ENGINE_PROFILES[engine_version]
    if tp > 1:
        non_torch = profile.non_torch_tp_bytes
        why = f"{profile.name}, TP={tp}: CUDA context + NCCL buffers"
    elif pp > 1:
        non_torch = profile.non_torch_pp_bytes
        why = f"{profile.name}, PP={pp}"
    else:
        non_torch = profile.non_torch_tp1_bytes
        why = f"{profile.name}, one GPU: CUDA context, cuBLAS workspace"
    lines = [OverheadLine(name="non-torch memory", bytes_per_gpu=non_torch, formula=why)]
    if spec is not None:
        tokens = max_num_batched_tokens or default_max_num_batched_tokens(gpu_memory_bytes)
        peak, formula = activation_peak_bytes(spec, batched_tokens=tokens, max_num_seqs=max_num_seqs,
                                              act_bytes=act_bytes, tp=tp)
        if profile.activation_scale != 1.0:
            peak = round(peak * profile.activation_scale)
            formula = f"{profile.activation_scale} x ({formula})"
        lines.append(OverheadLine(name="activation peak (profile run)", bytes_per_gpu=peak, formula=formula))
    else:
        # No architecture: vLLM's smallest observed profile peak for a dense model stands in.
        lines.append(OverheadLine(name="activation peak (no architecture: assumed)", bytes_per_gpu=1024 * MIB,
                                  formula="1 GiB assumed: pass a model preset to compute it"))
    return lines
