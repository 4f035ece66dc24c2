"""Runtime overhead of a serving engine, per GPU: what vLLM subtracts before the KV cache pool.

vLLM (v1 `gpu_worker.determine_available_memory`; V0 `worker.determine_num_available_blocks`):
    KV pool = total device memory x gpu_memory_utilization
              - (weights as loaded + torch activation peak of the profile run + non-torch memory)
The CUDA-graph pool is captured after the KV cache is allocated and is not subtracted up to v0.19 (its
v0.19 log prints "CUDA graph pool memory: 0.91 GiB (actual)" yet 0.95 x 79.19 - 17.12 = 58.11 GiB of KV);
profiling it became the default in v0.21 (gpu_worker.py: "CUDA graph memory profiling is enabled (default since
v0.21.0)"), modelled by `cuda_graph_bytes`. Version figures: configs/engines/vllm.yaml.

The activation peak is modelled from what the profile run allocates (vllm/v1/worker/gpu_model_runner.py
`profile_run`): one forward pass of `max_num_batched_tokens` tokens split over `max_num_seqs` dummy
requests (`_dummy_run`), then the sampler on the last token of each request (`_dummy_sampler_run`, with
temperature 0.5, top_p 0.9, top_k vocab-1). Its peak is the larger of two phases, plus the cuBLAS workspace
that the first GEMM allocates through PyTorch's caching allocator:

forward phase (the widest point of one layer; a layer's buffers are freed before the next):
    tokens x max(MLP, attention) x act_bytes, per token and GPU (TP shards the intermediate width)
    MLP, gated: residual + MLP input + down_proj output (3h) + gate_up (2I/tp) + SiLU(gate) and the
        product (2I/tp): SiluAndMul.forward_native materialises both when torch.compile runs the model
        (v1), the V0 eager engine's fused silu_and_mul kernel writes only the product (3h + 3I/tp)
    MLP, plain: 3h + up (I/tp) + activation (I/tp)
    MoE (fused_moe workspace): 3h + router logits (E) + top_k x (w13 output 2I_e/tp + activation I_e/tp
        + w2 output h) + shared experts 4 I_s/tp
    attention: 3h + q/k/v (q + 2 kv heads x head_dim / tp) + attention output (q heads x head_dim / tp)
sampler phase (rows = min(max_num_seqs, tokens) requests; only the last pipeline stage samples):
    rows x vocab x (logits in the model dtype + their float32 copy + the sampler's working set)
    + the forward pass's hidden states still held (tokens x h) + the sampled rows and their rand_like copy
    (2 x rows x h) [+ v0.19's Triton top-k/top-p buffer: min(SMs, rows) x vocab x 4 B]
    working set, v0.19: float32 probabilities + exponential noise = 8 B per logit (top-k/top-p masked in
        place by the Triton kernel of vllm PR #33538, or by FlashInfer's sampler: same 8 B either way)
    working set, v0.11 and V0: torch.sort of the float32 logits (PyTorch Sort.cu segmented_sort_pairs):
        sorted values 4 + int64 indices 8 + int64 reverse indices 8 + cub's double buffers 4 + 8 = 32 B

Checked against the shared logs (validation/vllm_kv.yaml) without a per-model factor: Llama-3.1-8B on
H100 1.885 GiB (v0.19 measured 1.89) and 4.757 GiB (v0.11: 4.76); Qwen3-0.6B 5.557 (5.56); Qwen3-32B
5.635 (5.64); gpt-oss 7.373 (7.38); Llama-3.3-70B TP2 4.835 (4.84); RTX 3090 V0 at max_model_len
20000 / 29000: 2.068 / 2.995 (2.07 / 2.99).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import lru_cache

from llmfit.engine.engine_data import NonTorch, VllmProfileData, pick_profile, vllm_profiles
from llmfit.engine.layers import attention_kind
from llmfit.engine.records import record
from llmfit.errors import SpecError
from llmfit.specs import ModelSpec
from llmfit.units import GIB, MIB

FP32_BYTES = 4


@record(kw_only=False)
class EngineProfile:
    """Constants of one vLLM version line (configs/engines/vllm.yaml, each figure with its source)."""

    key: str  # the profile's name, e.g. "0.19"
    name: str  # its label, e.g. "vLLM v0.12-v0.20"
    non_torch: NonTorch
    # The v1 engine (torch.compile, chunked prefill always on) or the V0 engine (eager, no chunking <= 32K).
    v1: bool
    # Bytes per logit the sampler holds beyond the logits and their float32 copy (see the module docstring).
    sampler_working_bytes: int
    # v0.19 Triton top-k/top-p: one float32 vocab row per program, min(SMs, rows) programs.
    triton_topk_buffer: bool
    # Whether the CUDA-graph pool estimate is subtracted from the KV budget by default (v0.21+).
    counts_cuda_graphs: bool
    cuda_graphs_switch: str | None
    source: str

    # Kept for callers of the former fixed profiles.
    @property
    def non_torch_tp1_bytes(self) -> int:
        return self.non_torch.tp1

    @property
    def non_torch_tp_bytes(self) -> int:
        return self.non_torch.nvlink

    @property
    def non_torch_pp_bytes(self) -> int:
        return self.non_torch.pp


def _profile(data: VllmProfileData) -> EngineProfile:
    return EngineProfile(key=data.name, name=data.label, non_torch=data.non_torch, v1=data.v1,
                         sampler_working_bytes=data.sampler_working_bytes,
                         triton_topk_buffer=data.triton_topk_buffer, counts_cuda_graphs=data.cuda_graphs_in_budget,
                         cuda_graphs_switch=data.cuda_graphs_switch,
                         source=f"{data.non_torch.source}; sampler: {data.sampler_source}")


class _Profiles(Mapping[str, EngineProfile]):
    """vLLM's version profiles by name, read from configs/engines/vllm.yaml on first use. Any release number
    ('0.9.2', 'v0.21.1') maps to the profile covering it (`resolve_engine_version`)."""

    _cache: dict[str, EngineProfile] | None = None

    def _all(self) -> dict[str, EngineProfile]:
        if self._cache is None:
            self._cache = {data.name: _profile(data) for data in vllm_profiles().profiles}
        return self._cache

    def __getitem__(self, key: str) -> EngineProfile:
        profiles = self._all()
        if key in profiles:
            return profiles[key]
        return profiles[resolve_engine_version(key)]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        try:
            resolve_engine_version(key)
        except SpecError:
            return False
        return True


@lru_cache(maxsize=256)
def resolve_engine_version(version: str | None) -> str:
    """The vLLM profile name covering a release number: '0.9.2' -> '0.8', '0.21.1' -> '0.21', None -> newest."""
    return str(pick_profile(vllm_profiles().profiles, version, "vLLM").name)


ENGINE_PROFILES: Mapping[str, EngineProfile] = _Profiles()
# The newest profile (configs/engines/vllm.yaml lists them oldest first).
DEFAULT_ENGINE_VERSION = "latest"

# Streaming multiprocessors per GPU preset (vendor datasheets; MI300X: compute units). Only v0.19's Triton
# top-k/top-p buffer depends on it (min(SMs, rows) vocab rows); unknown devices count as an H100 SXM (132).
SM_COUNTS: dict[str, int] = {
    "h100": 132, "h200": 132, "b200": 148, "a100": 108, "l40s": 142, "l40": 142, "l4": 58, "a10g": 80, "a10": 72,
    "t4": 40, "rtx-4090": 128, "rtx-3090": 82, "mi300x": 304,
}
DEFAULT_SM_COUNT = 132

# PyTorch aten/src/ATen/cuda/CublasHandlePool.cpp: the default cuBLAS workspace is 4096 KiB x 8 = 32 MiB on
# sm90 (Hopper), else 4096 KiB x 2 + 16 KiB x 8; allocated through the caching allocator by the first GEMM,
# which the profile run performs, so it is part of the torch peak.
CUBLAS_WORKSPACE_SM90_BYTES = 4096 * 1024 * 8
CUBLAS_WORKSPACE_BYTES = 4096 * 1024 * 2 + 16 * 1024 * 8

# V0: max_model_len above 32K turns chunked prefill on, with max_num_batched_tokens 512 (V0 SchedulerConfig).
V0_LONG_CONTEXT = 32 * 1024
V0_CHUNKED_BATCHED_TOKENS = 512
V0_MIN_BATCHED_TOKENS = 2048
V0_MAX_NUM_SEQS = 256


def default_max_num_batched_tokens(gpu_memory_bytes: int, gpu_name: str = "") -> int:
    """vLLM's default for `vllm serve` (v1 engine): 8192 tokens per step on >= 70 GiB devices other than the
    A100 (H100, H200, MI300X), 2048 below (vllm/engine/arg_utils.py get_batch_defaults, OPENAI_API_SERVER;
    the A100 exclusion is PR #17885)."""
    return 8192 if _large_device(gpu_memory_bytes, gpu_name) else 2048


def default_max_num_seqs(gpu_memory_bytes: int, gpu_name: str = "") -> int:
    """vLLM's default max_num_seqs for `vllm serve` (v1 engine): 1024 on the same large devices, 256 below."""
    return 1024 if _large_device(gpu_memory_bytes, gpu_name) else 256


def _large_device(gpu_memory_bytes: int, gpu_name: str) -> bool:
    return gpu_memory_bytes >= 70 * GIB and "a100" not in gpu_name.lower()


def engine_batch_defaults(engine_version: str, *, gpu_memory_bytes: int, gpu_name: str = "",
                          context_tokens: int | None = None) -> tuple[int, int]:
    """(max_num_batched_tokens, max_num_seqs) the engine version picks when the user sets neither."""
    profile = ENGINE_PROFILES[engine_version]
    if profile.v1:
        return (default_max_num_batched_tokens(gpu_memory_bytes, gpu_name),
                default_max_num_seqs(gpu_memory_bytes, gpu_name))
    context = context_tokens or V0_MIN_BATCHED_TOKENS
    if context > V0_LONG_CONTEXT:
        return V0_CHUNKED_BATCHED_TOKENS, V0_MAX_NUM_SEQS
    return max(context, V0_MIN_BATCHED_TOKENS), V0_MAX_NUM_SEQS


def sm_count(gpu_name: str) -> int:
    key = gpu_name.lower()
    for prefix in sorted(SM_COUNTS, key=len, reverse=True):
        if key.startswith(prefix):
            return SM_COUNTS[prefix]
    return DEFAULT_SM_COUNT


def cublas_workspace_bytes(compute_capability: str | None) -> int:
    return CUBLAS_WORKSPACE_SM90_BYTES if (compute_capability or "").startswith("9.") else CUBLAS_WORKSPACE_BYTES


@record
class OverheadLine:
    name: str
    bytes_per_gpu: int
    formula: str


@record
class ActivationPeak:
    """The profile run's torch peak on one GPU, by phase."""

    forward_bytes: int
    sampler_bytes: int
    workspace_bytes: int
    batched_tokens: int
    sampler_rows: int
    formula: str

    @property
    def peak_bytes(self) -> int:
        return max(self.forward_bytes, self.sampler_bytes) + self.workspace_bytes


def _forward_width(spec: ModelSpec, tp: int, v1: bool) -> tuple[int, str]:
    """Elements per token alive at the widest point of one layer on one GPU, and the term that sets it."""
    h = spec.hidden_size
    q, k, v, attn_out = attention_kind(spec).attention_widths()
    qkv = q + k + v
    attention = 3 * h + qkv // tp + attn_out // tp
    act_copies = 2 if v1 else 1  # v1: SiLU(gate) and the product; V0: the fused kernel's product only
    if spec.mlp_kind == "gated":
        dense = 3 * h + (2 + act_copies) * spec.intermediate_size // tp
    else:
        dense = 3 * h + 2 * spec.intermediate_size // tp
    widths = {"attention": attention}
    if not spec.is_moe or spec.first_k_dense_replace:
        widths["dense MLP"] = dense
    if spec.is_moe:
        expert = spec.moe_intermediate_size or spec.intermediate_size
        shared = spec.shared_expert_intermediate_size or expert * spec.num_shared_experts
        widths["MoE"] = (3 * h + spec.num_experts + spec.num_experts_per_tok * (3 * expert // tp + h)
                         + 4 * shared // tp)
    name = max(widths, key=lambda k: widths[k])
    return widths[name], name


def activation_peak(spec: ModelSpec, *, engine_version: str, batched_tokens: int, max_num_seqs: int,
                    act_bytes: int, tp: int = 1, gpu_name: str = "",
                    compute_capability: str | None = None) -> ActivationPeak:
    """Torch activation peak of the engine's profile run on one GPU (see the module docstring)."""
    profile = ENGINE_PROFILES[engine_version]
    h, vocab = spec.hidden_size, spec.vocab_size
    width, widest = _forward_width(spec, tp, profile.v1)
    forward = batched_tokens * width * act_bytes
    rows = min(max_num_seqs, batched_tokens)
    float_copy = FP32_BYTES if act_bytes < FP32_BYTES else 0  # .to(float32) is a no-op on fp32 logits
    per_logit = act_bytes + float_copy + profile.sampler_working_bytes
    sampler = rows * vocab * per_logit
    buffer = 0
    if profile.triton_topk_buffer:
        buffer = min(sm_count(gpu_name), rows) * vocab * FP32_BYTES
    held = batched_tokens * h * act_bytes + 2 * rows * h * act_bytes
    sampler_phase = sampler + buffer + held
    workspace = cublas_workspace_bytes(compute_capability)
    formula = (f"max(forward {batched_tokens} tokens x {width} ({widest}) x {act_bytes} B = "
               f"{forward / GIB:.3f} GiB, sampler {rows} rows x {vocab} vocab x {per_logit} B"
               + (f" + Triton buffer {buffer / MIB:.0f} MiB" if buffer else "")
               + f" + held hidden states {held / MIB:.0f} MiB = {sampler_phase / GIB:.3f} GiB)"
               f" + cuBLAS workspace {workspace / MIB:.3g} MiB")
    return ActivationPeak(forward_bytes=forward, sampler_bytes=sampler_phase, workspace_bytes=workspace,
                          batched_tokens=batched_tokens, sampler_rows=rows, formula=formula)


def activation_peak_bytes(spec: ModelSpec, *, batched_tokens: int, max_num_seqs: int, act_bytes: int,
                          tp: int = 1, engine_version: str = DEFAULT_ENGINE_VERSION) -> tuple[int, str]:
    """(bytes, formula) of the profile run's torch peak; see `activation_peak`."""
    peak = activation_peak(spec, engine_version=engine_version, batched_tokens=batched_tokens,
                           max_num_seqs=max_num_seqs, act_bytes=act_bytes, tp=tp)
    return peak.peak_bytes, peak.formula


def rope_cache_bytes(spec: ModelSpec, act_bytes: int) -> tuple[int, int]:
    """vLLM's rotary embedding registers one cos_sin_cache of max_position x rotary_dim in the model dtype,
    shared by all layers (vllm/model_executor/layers/rotary_embedding get_rope caches the module); it is
    loaded with the weights and counted in "Model loading took" (Llama-3.1-8B: 14.9575 GiB of parameters
    + 131072 x 128 x 2 B = 14.9888 GiB, as the V0 log prints). Returns (bytes, rotary_dim)."""
    rotary_dim = attention_kind(spec).rotary_dim or spec.real_head_dim
    return spec.max_position_embeddings * rotary_dim * act_bytes, rotary_dim


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def mxfp4_moe_layout_bytes(spec: ModelSpec, compute_capability: str | None, tp: int, pp: int) -> tuple[int, str]:
    """Bytes vLLM's MXFP4 MoE path adds to the experts when it lays them out at load time, per GPU.

    vLLM (model_executor/layers/quantization/mxfp4.py, Mxfp4MoEMethod.create_weights) allocates
    w13 = E x 2I' x H'/2 and w2 = E x H' x I'/2 bytes of packed FP4 plus one e8m0 scale per 32 values,
    with padded sizes that depend on the kernel backend it picks for the GPU:
      - Blackwell (cc 10.x, FlashInfer): I' = round_up(I, 256), H' = round_up(H, 256)
      - Hopper (cc 9.0, Triton kernels): I' = round_up(I, 64); the Hopper MX value layout of
        triton_kernels then tiles each row of packed values in 128-byte packs (k_tile 4 x warp_tile 2 x
        threads 4 x 4 bytes), so the payload's reduction axis is padded to 256 FP4 values
      - otherwise (Marlin, e.g. Ampere): I' = round_up(I, 128), H' = round_up(H, 256)
    Returns (extra bytes on the fullest GPU, formula); (0, "") when the padded sizes equal the real ones.
    """
    hidden = spec.hidden_size
    inter = (spec.moe_intermediate_size or spec.intermediate_size) // tp
    cc = compute_capability or ""
    if cc.startswith("10."):
        hidden_p, inter_p, k_pack = _round_up(hidden, 256), _round_up(inter, 256), 0
        backend = "FlashInfer (Blackwell)"
    elif cc.startswith("9."):
        hidden_p, inter_p, k_pack = hidden, _round_up(inter, 64), 128
        backend = "Triton kernels (Hopper)"
    else:
        hidden_p, inter_p, k_pack = _round_up(hidden, 256), _round_up(inter, 128), 0
        backend = "Marlin"

    def matrix(rows: int, cols: int, pad_payload: bool) -> int:
        payload_row = cols // 2
        if pad_payload and k_pack:
            payload_row = _round_up(payload_row, k_pack)
        return rows * payload_row + rows * (cols // 32)

    per_expert_padded = matrix(2 * inter_p, hidden_p, True) + matrix(hidden_p, inter_p, True)
    per_expert_real = matrix(2 * inter, hidden, False) + matrix(hidden, inter, False)
    extra = per_expert_padded - per_expert_real
    if extra <= 0:
        return 0, ""
    moe_layers = spec.num_hidden_layers - spec.first_k_dense_replace
    layers_on_gpu = min(moe_layers, -(-spec.num_hidden_layers // pp))
    total = extra * spec.num_experts * layers_on_gpu
    formula = (f"{backend}: {layers_on_gpu} MoE layers x {spec.num_experts} experts x {extra:,} B "
               f"(w13 {2 * inter_p}x{hidden_p}, w2 {hidden_p}x{inter_p} as laid out, vs {2 * inter}x{hidden})")
    return total, formula


# vllm/config/compilation.py CompilationConfig: max_cudagraph_capture_size defaults to min(max_num_seqs x 2, 512).
CUDA_GRAPH_MAX_CAPTURE = 512


def cuda_graph_bytes(spec: ModelSpec, *, max_num_seqs: int, tp: int, pp: int, act_bytes: int) -> tuple[int, str]:
    """The CUDA-graph pool vLLM v0.21+ subtracts from the budget (gpu_model_runner.profile_cudagraph_memory).

    Graphs of every capture size share one memory pool, captured largest first, so the pool is what one
    capture of the largest size keeps alive: the static buffers at the piecewise split points of each layer
    (vllm/compilation/backends.py splits the graph at the attention op): the q/k/v input and the attention
    output of every layer on this GPU, plus the residual and hidden stream (2 x hidden), for
    min(2 x max_num_seqs, 512) tokens."""
    tokens = min(2 * max_num_seqs, CUDA_GRAPH_MAX_CAPTURE)
    attention = attention_kind(spec)
    qkv = attention.attention_op_input_width(tp)
    out = attention.attention_widths()[3] // tp
    width = qkv + out + 2 * spec.hidden_size
    layers = -(-spec.num_hidden_layers // pp)
    total = tokens * width * act_bytes * layers
    formula = (f"{tokens} captured tokens x {layers} layers x (q/k/v {qkv} + attention out {out} + 2 x hidden "
               f"{spec.hidden_size}) x {act_bytes} B")
    return total, formula


def overhead_lines(spec: ModelSpec | None, *, engine_version: str, tp: int, pp: int, gpu_memory_bytes: int,
                   max_num_seqs: int | None = None, act_bytes: int = 2,
                   max_num_batched_tokens: int | None = None, gpu_name: str = "",
                   compute_capability: str | None = None, context_tokens: int | None = None,
                   weight_format: str | None = None, interconnect: str | None = None, samples: bool = True,
                   stage_layers: int | None = None, cuda_graphs: bool | None = None) -> list[OverheadLine]:
    """The runtime overhead lines of one GPU: non-torch memory, the profile run's activation peak, the rotary
    cache loaded with the weights and, from v0.21, the CUDA-graph pool. Unset batch limits take the engine
    version's defaults for the GPU. `samples`: this GPU is on the last pipeline stage, which alone runs the
    sampler (vllm/v1/worker/gpu_model_runner.py profile_run: `if get_pp_group().is_last_rank:
    _dummy_sampler_run`). `cuda_graphs`: None = the version's default (VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS)."""
    profile = ENGINE_PROFILES[engine_version]
    non_torch, why = profile.non_torch.bytes_for(tp, pp, interconnect)
    lines = [OverheadLine(name="non-torch memory", bytes_per_gpu=non_torch, formula=f"{profile.name}, {why}")]
    if spec is None:
        # No architecture: vLLM's smallest observed profile peak for a dense model stands in.
        lines.append(OverheadLine(name="activation peak (no architecture: assumed)", bytes_per_gpu=1024 * MIB,
                                  formula="1 GiB assumed: pass a model preset to compute it"))
        return lines
    default_tokens, default_seqs = engine_batch_defaults(engine_version, gpu_memory_bytes=gpu_memory_bytes,
                                                         gpu_name=gpu_name, context_tokens=context_tokens)
    seqs = max_num_seqs or default_seqs
    peak = activation_peak(spec, engine_version=engine_version,
                           batched_tokens=max_num_batched_tokens or default_tokens,
                           max_num_seqs=seqs, act_bytes=act_bytes, tp=tp,
                           gpu_name=gpu_name, compute_capability=compute_capability)
    if samples:
        lines.append(OverheadLine(name="activation peak (profile run)", bytes_per_gpu=peak.peak_bytes,
                                  formula=peak.formula))
    else:
        lines.append(OverheadLine(name="activation peak (profile run)",
                                  bytes_per_gpu=peak.forward_bytes + peak.workspace_bytes,
                                  formula=f"forward {peak.batched_tokens} tokens = {peak.forward_bytes / GIB:.3f} GiB"
                                  f" + cuBLAS workspace {peak.workspace_bytes / MIB:.3g} MiB (no sampler: not the "
                                  "last pipeline stage)"))
    rope, rotary_dim = rope_cache_bytes(spec, act_bytes)
    lines.append(OverheadLine(name="rotary cos/sin cache (loaded with the weights)", bytes_per_gpu=rope,
                              formula=f"{spec.max_position_embeddings} positions x {rotary_dim} x {act_bytes} B"))
    if weight_format is not None and weight_format.startswith("mxfp4") and spec.is_moe:
        layout, formula = mxfp4_moe_layout_bytes(spec, compute_capability, tp, pp)
        if layout:
            lines.append(OverheadLine(name="MXFP4 MoE kernel layout (loaded with the weights)",
                                      bytes_per_gpu=layout, formula=formula))
    graphs = profile.counts_cuda_graphs if cuda_graphs is None else cuda_graphs
    if graphs:
        graph, formula = cuda_graph_bytes(spec, max_num_seqs=seqs, tp=tp, pp=pp, act_bytes=act_bytes)
        lines.append(OverheadLine(name="CUDA graph pool (profiled into the budget)", bytes_per_gpu=graph,
                                  formula=formula + (f"; {profile.cuda_graphs_switch} turns it off"
                                                     if profile.cuda_graphs_switch else "")))
    return lines
