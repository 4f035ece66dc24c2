"""`fit`: does a model load on a deployment, and how many full-context requests does it then serve?

Per GPU, as vLLM accounts it:
    kv_budget_per_gpu = gpu_memory x gpu_util - weights_per_gpu - overhead_per_gpu
    kv_tokens (per replica) = min over its GPUs of floor(kv_budget_per_gpu / kv_bytes_per_token_per_gpu),
                              floored to whole blocks of block_size tokens
    vllm_concurrency = kv_tokens / context_tokens        (vLLM's "Maximum concurrency ...: X")
    max_concurrency  = replicas x min(floor(kv_tokens / blocks_per_request x block_size), max_num_seqs)
    recommended      = replicas x floor((1 - headroom) x the same), headroom 30 %
The headroom rule: the field guide (6.4, scenario A) computes 13 concurrent 8K requests and promises
8-10 "depending on jitter, batching, and actual runtime behavior"; keeping 30 % of the pool free turns
13.2 into 9, inside that range.
"""

from __future__ import annotations

from fractions import Fraction

from pydantic import BaseModel, ConfigDict, Field

from llmfit.engine.formats import WeightFormat
from llmfit.engine.kv import bytes_per_token, kv_layout, kv_shard_fraction, request_bytes, resolve_kv_dtype
from llmfit.engine.params import count_params
from llmfit.engine.runtime import (
    DEFAULT_ENGINE_VERSION,
    ENGINE_PROFILES,
    OverheadLine,
    engine_batch_defaults,
    overhead_lines,
)
from llmfit.engine.support import dtype_support_warnings
from llmfit.engine.weights import WeightLine, dense_param_bytes, group_bytes, weight_bytes
from llmfit.errors import SpecError
from llmfit.specs import GpuSpec, ModelSpec
from llmfit.units import ceil_div

HEADROOM = 0.30


class Step(BaseModel):
    """One line of --explain: a formula, the numbers substituted, and the result."""

    model_config = ConfigDict(frozen=True)

    label: str
    formula: str
    substituted: str
    result: int | float
    unit: str  # bytes, tokens, requests, params, ratio


class Deployment(BaseModel):
    """How the GPUs are used: gpu_count = tp x pp x replicas."""

    model_config = ConfigDict(frozen=True)

    gpu_count: int = Field(gt=0)
    tp: int = Field(gt=0)
    pp: int = Field(gt=0)

    @property
    def replicas(self) -> int:
        return self.gpu_count // (self.tp * self.pp)


class ServingOptions(BaseModel):
    model_config = ConfigDict(frozen=True)

    context_tokens: int = Field(gt=0)
    kv_dtype: str = "auto"
    gpu_util: float = Field(default=0.9, gt=0, le=1)
    block_size: int = Field(default=16, gt=0)
    # None: the engine version's default for the GPU (vLLM v1: 1024 on >= 70 GiB devices other than the A100, else
    # 256), which also sizes the profile run's sampler (runtime.engine_batch_defaults).
    max_num_seqs: int | None = Field(default=None, gt=0)  # None: the engine version's default for the GPU
    max_num_batched_tokens: int | None = Field(default=None, gt=0)
    engine_version: str = DEFAULT_ENGINE_VERSION
    min_concurrency: int = Field(default=1, ge=0)
    weights_override_bytes: int | None = Field(default=None, gt=0)
    overhead_override_bytes: int | None = Field(default=None, ge=0)
    headroom: float = Field(default=HEADROOM, ge=0, lt=1)


class FitResult(BaseModel):
    """The answer of `fit`: keys as design.md fixes them (no suffix = whole deployment, _per_gpu = one GPU)."""

    model_config = ConfigDict(frozen=True)

    model: str
    gpu: str
    gpu_count: int
    tp: int
    pp: int
    replicas: int
    dtype: str
    kv_dtype: str
    context_tokens: int
    engine: str
    gpu_util: float
    block_size: int
    total_params: int
    active_params: int
    gpu_memory_bytes_per_gpu: int
    usable_bytes_per_gpu: int  # gpu_memory x gpu_util
    weights_bytes: int  # one copy of the weights
    weights_bytes_per_gpu: int
    raw_weights_bytes: int  # params x nominal bits / 8
    bits_per_weight: float
    weights_lines: list[WeightLine]
    overhead_bytes: int
    overhead_bytes_per_gpu: int
    overhead_lines: list[OverheadLine]
    kv_bytes_per_token: int | None  # one replica, all its GPUs (replicated heads counted per GPU)
    kv_bytes_per_token_per_gpu: int | None
    kv_bytes_per_request: int | None  # one request of context_tokens, rounded up to whole blocks
    kv_budget_bytes: int
    kv_budget_bytes_per_gpu: int
    kv_tokens: int | None  # per replica, floored to whole blocks
    kv_blocks: int | None  # per replica
    vllm_max_concurrency: float | None  # kv_tokens / context_tokens, per replica, as vLLM prints it
    max_concurrency: int | None  # whole requests at full context, all replicas
    recommended_concurrency: int | None
    max_num_seqs: int
    capped_by_max_num_seqs: bool
    min_concurrency: int
    fits: bool
    loads: bool  # weights + overhead fit, whatever the KV
    free_bytes_per_gpu: int  # device memory left outside gpu_util x memory after everything
    warnings: list[str] = []
    notes: list[str] = []
    steps: list[Step] = []


def validate_deployment(spec: ModelSpec | None, deployment: Deployment) -> None:
    """Refuse splits an engine would refuse (vLLM: heads divisible by TP; layers >= PP)."""
    tp, pp = deployment.tp, deployment.pp
    if deployment.gpu_count % (tp * pp):
        raise SpecError(f"{deployment.gpu_count} GPUs cannot be split into TP={tp} x PP={pp} replicas "
                        f"(gpu_count must be a multiple of tp x pp = {tp * pp})")
    if spec is None:
        return
    heads = spec.num_attention_heads
    if heads % tp:
        raise SpecError(f"{spec.name}: {heads} attention heads cannot be split over TP={tp} "
                        f"(TP must divide the heads; valid: {', '.join(str(d) for d in _divisors(heads) if d <= 64)})")
    kv = spec.kv_heads
    if not spec.is_mla and ((tp <= kv and kv % tp) or (tp > kv and tp % kv)):
        raise SpecError(f"{spec.name}: {kv} KV heads cannot be split or replicated evenly over TP={tp}")
    if pp > spec.num_hidden_layers:
        raise SpecError(f"{spec.name}: PP={pp} exceeds its {spec.num_hidden_layers} layers")


def _divisors(n: int, limit: int = 64) -> list[int]:
    # Only the small ones are suggested; counting up to n hung on a preset with 10**12 heads.
    return [d for d in range(1, min(n, limit) + 1) if n % d == 0]


def _weights_per_gpu(spec: ModelSpec, fmt: WeightFormat, tp: int, pp: int) -> int:
    """Weights on the fullest GPU (the sum of its lines, see _weights_per_gpu_by_line)."""
    return sum(_weights_per_gpu_by_line(spec, fmt, tp, pp).values())


def _line_name(packed: bool, fmt: WeightFormat) -> str:
    # The names weight_bytes() gives its lines, so a per-GPU figure can sit beside each.
    if packed:
        return "packed weights"
    return "unquantized tensors" if fmt.is_quantized else "weights"


def _weights_per_gpu_by_line(spec: ModelSpec, fmt: WeightFormat, tp: int, pp: int) -> dict[str, int]:
    """Weights on the fullest GPU, by weight line: linear layers and the vocabulary sharded over TP, KV
    projections replicated when TP exceeds the KV heads, norms replicated, layers split over PP stages
    (stage 0 holds the embeddings, the last stage the lm_head)."""
    layers = spec.num_hidden_layers
    per_stage = [layers // pp + (1 if s < layers % pp else 0) for s in range(pp)]
    kv_share = kv_shard_fraction(spec, tp)
    stage_lines: list[dict[str, Fraction]] = [{} for _ in range(pp)]

    def add(stage: int, line: str, size: Fraction) -> None:
        stage_lines[stage][line] = stage_lines[stage].get(line, Fraction(0)) + size

    for item in group_bytes(spec, fmt):
        group = item.group
        if group.kind == "vector" or group.kind == "router":
            shard = Fraction(1)
        elif group.name in ("attn.k_proj", "attn.v_proj", "attn.kv_a_proj_with_mqa"):
            shard = kv_share if group.name != "attn.kv_a_proj_with_mqa" else Fraction(1)
        else:
            shard = Fraction(1, tp)
        parts = [(_line_name(item.packed, fmt), Fraction(item.payload_bytes) * shard)]
        if item.metadata_bytes:
            parts.append(("scales and zero points", Fraction(item.metadata_bytes) * shard))
        for line, size in parts:
            if group.per_layer:
                for stage in range(pp):
                    add(stage, line, size * per_stage[stage] / layers)
            elif group.kind == "lm_head":
                add(pp - 1, line, size)
            else:  # embeddings, final norm, extra towers: first stage
                add(0, line, size)
    fullest = max(stage_lines, key=lambda lines: sum(lines.values()))
    return {line: ceil_div(size.numerator, size.denominator) for line, size in fullest.items()}


def fit(spec: ModelSpec | None, gpu: GpuSpec, fmt: WeightFormat, deployment: Deployment, options: ServingOptions,
        *, params: int | None = None) -> FitResult:
    """Plan one deployment. `spec` None means a bare parameter count (`--params`): weights only, no KV."""
    validate_deployment(spec, deployment)
    if options.max_num_seqs is None:
        _, default_seqs = engine_batch_defaults(options.engine_version, gpu_memory_bytes=gpu.usable_memory_bytes,
                                                gpu_name=gpu.name, context_tokens=options.context_tokens)
        options = options.model_copy(update={"max_num_seqs": default_seqs})
    assert options.max_num_seqs is not None
    tp, pp, replicas = deployment.tp, deployment.pp, deployment.replicas
    steps: list[Step] = []
    warnings: list[str] = []
    notes: list[str] = []

    # Weights.
    if spec is not None:
        counts = count_params(spec)
        weights = weight_bytes(spec, fmt)
        total_params, active_params = counts.total_params, counts.active_params
        by_line = _weights_per_gpu_by_line(spec, fmt, tp, pp)
    else:
        assert params is not None
        weights = dense_param_bytes(params, fmt)
        total_params = active_params = params
        by_line = {line.name: ceil_div(line.bytes, tp * pp) for line in weights.lines}
    weights_per_gpu = sum(by_line.values())
    weights_total = weights.weights_bytes
    weights_lines = [line.model_copy(update={"bytes_per_gpu": by_line.get(line.name, 0)}) for line in weights.lines]
    steps.append(Step(label="weights", formula="params x bits / 8 (+ scales, zero points, 16-bit tensors)",
                      substituted=f"{total_params:,} params x {weights.bits_per_weight:.4g} bits / 8",
                      result=weights_total, unit="bytes"))
    if options.weights_override_bytes is not None:
        weights_total = options.weights_override_bytes
        weights_per_gpu = ceil_div(weights_total, tp * pp)
        weights_lines = [WeightLine(name="weights (given)", params=total_params, bytes=weights_total,
                                    bytes_per_gpu=weights_per_gpu,
                                    note="--weights")]
        steps[-1] = Step(label="weights", formula="given with --weights", substituted="", result=weights_total,
                         unit="bytes")
    if tp * pp > 1:
        steps.append(Step(label="weights per GPU", formula="linear layers / TP, layers / PP, norms replicated",
                          substituted=f"TP={tp}, PP={pp}", result=weights_per_gpu, unit="bytes"))

    # Runtime overhead per GPU.
    profile = ENGINE_PROFILES[options.engine_version]
    if options.overhead_override_bytes is not None:
        lines = [OverheadLine(name="runtime overhead (given)", bytes_per_gpu=options.overhead_override_bytes,
                              formula="--overhead")]
    else:
        act_bytes = 4 if fmt.name == "fp32" else 2
        lines = overhead_lines(spec, engine_version=options.engine_version, tp=tp, pp=pp,
                               gpu_memory_bytes=gpu.usable_memory_bytes, max_num_seqs=options.max_num_seqs,
                               act_bytes=act_bytes, max_num_batched_tokens=options.max_num_batched_tokens,
                               gpu_name=gpu.name, compute_capability=gpu.compute_capability,
                               context_tokens=options.context_tokens, weight_format=fmt.name)
    overhead_per_gpu = sum(line.bytes_per_gpu for line in lines)
    for line in lines:
        steps.append(Step(label=line.name, formula=line.formula, substituted="", result=line.bytes_per_gpu,
                          unit="bytes"))

    # Budget per GPU.
    usable = int(gpu.usable_memory_bytes * options.gpu_util)
    budget_per_gpu = usable - weights_per_gpu - overhead_per_gpu
    steps.append(Step(label="KV budget per GPU", formula="gpu_memory x gpu_util - weights - overhead",
                      substituted=f"{gpu.usable_memory_bytes:,} B x {options.gpu_util} - {weights_per_gpu:,} B"
                      f" - {overhead_per_gpu:,} B", result=budget_per_gpu, unit="bytes"))
    loads = budget_per_gpu > 0

    kv_dtype = "n/a"
    kv_per_token = kv_per_token_gpu = kv_per_request = kv_tokens = kv_blocks = None
    vllm_conc: float | None = None
    max_conc = recommended = None
    capped = False
    block = options.block_size
    if spec is not None:
        kv_dtype = resolve_kv_dtype(options.kv_dtype, spec, fmt.name)
        warnings += dtype_support_warnings(fmt, kv_dtype, gpu)
        layout = kv_layout(spec, kv_dtype)
        head_share = kv_shard_fraction(spec, tp)
        layers_max_stage = ceil_div(spec.num_hidden_layers, pp)
        layer_share = Fraction(layers_max_stage, spec.num_hidden_layers)
        kv_per_token_gpu = bytes_per_token(layout, layer_share=layer_share, head_share=head_share)
        # One replica: every GPU's share, replicated heads counted on each GPU that holds them.
        kv_per_token = bytes_per_token(layout, head_share=head_share * tp)
        kv_per_request = request_bytes(layout, options.context_tokens, block_size=block, head_share=head_share * tp)
        request_per_gpu = request_bytes(layout, options.context_tokens, block_size=block, layer_share=layer_share,
                                        head_share=head_share)
        steps.append(Step(label="KV per token", formula="layers x 2 x kv_heads x head_dim x bytes"
                          if not spec.is_mla else "layers x (kv_lora_rank + qk_rope_head_dim) x bytes",
                          substituted=_kv_terms(spec, layout.bits_per_value), result=bytes_per_token(layout),
                          unit="bytes"))
        steps.append(Step(label="KV per request", formula="KV per token x context (blocks of "
                          f"{block}; sliding layers capped at the window)",
                          substituted=f"{bytes_per_token(layout, head_share=head_share * tp):,} B x "
                          f"{ceil_div(options.context_tokens, block) * block:,} tokens"
                          + (" (windowed layers capped)" if any(g.window_tokens for g in layout.groups) else ""),
                          result=kv_per_request, unit="bytes"))
        if loads:
            per_block_gpu = bytes_per_token(layout, layer_share=layer_share, head_share=head_share) * block
            kv_blocks = budget_per_gpu // per_block_gpu
            kv_tokens = kv_blocks * block
            # Whole requests: the pool divided by one request's paged footprint on the fullest GPU.
            whole = budget_per_gpu // request_per_gpu if request_per_gpu else 0
            vllm_conc = kv_tokens / options.context_tokens
            per_replica = min(whole, options.max_num_seqs)
            capped = whole > options.max_num_seqs
            max_conc = replicas * per_replica
            recommended = replicas * min(int((budget_per_gpu * (1 - options.headroom)) // request_per_gpu)
                                         if request_per_gpu else 0, options.max_num_seqs)
            steps.append(Step(label="KV tokens per replica",
                              formula="floor(budget / (bytes per token x block)) x block",
                              substituted=f"floor({budget_per_gpu:,} / {per_block_gpu:,}) x {block}",
                              result=kv_tokens, unit="tokens"))
            steps.append(Step(label="max concurrency", formula="replicas x min(floor(budget / KV per request), "
                              "max_num_seqs)", substituted=f"{replicas} x min(floor({budget_per_gpu:,} / "
                              f"{request_per_gpu:,}), {options.max_num_seqs})", result=max_conc, unit="requests"))
            steps.append(Step(label="recommended concurrency", formula=f"keep {options.headroom:.0%} of the pool free",
                              substituted=f"{replicas} x floor({1 - options.headroom:.2f} x {budget_per_gpu:,} / "
                              f"{request_per_gpu:,})", result=recommended, unit="requests"))
        if options.context_tokens > spec.max_position_embeddings:
            warnings.append(f"context {options.context_tokens:,} exceeds {spec.name}'s maximum "
                            f"{spec.max_position_embeddings:,} tokens (needs rope scaling); computed anyway")
        if capped:
            notes.append(f"max_num_seqs={options.max_num_seqs} caps the concurrency (the pool holds more)")
    else:
        warnings += dtype_support_warnings(fmt, "auto", gpu)
        notes.append("bare parameter count: weights only, no architecture for the KV cache or activations")

    required = options.min_concurrency
    if spec is not None:
        fits = loads and (required == 0 or (max_conc or 0) >= required)
    else:
        fits = loads
    free = gpu.usable_memory_bytes - usable
    notes.append(f"KV pool per GPU uses gpu_util={options.gpu_util}; {profile.name} accounting")
    return FitResult(
        model=spec.name if spec is not None else f"{total_params:,} params",
        gpu=gpu.name,
        gpu_count=deployment.gpu_count,
        tp=tp,
        pp=pp,
        replicas=replicas,
        dtype=fmt.name,
        kv_dtype=kv_dtype,
        context_tokens=options.context_tokens,
        engine=profile.name,
        gpu_util=options.gpu_util,
        block_size=block,
        total_params=total_params,
        active_params=active_params,
        gpu_memory_bytes_per_gpu=gpu.usable_memory_bytes,
        usable_bytes_per_gpu=usable,
        weights_bytes=weights_total,
        weights_bytes_per_gpu=weights_per_gpu,
        raw_weights_bytes=weights.raw_bytes,
        bits_per_weight=8 * weights_total / total_params,
        weights_lines=weights_lines,
        overhead_bytes=overhead_per_gpu * deployment.gpu_count,
        overhead_bytes_per_gpu=overhead_per_gpu,
        overhead_lines=lines,
        kv_bytes_per_token=kv_per_token,
        kv_bytes_per_token_per_gpu=kv_per_token_gpu,
        kv_bytes_per_request=kv_per_request,
        kv_budget_bytes=budget_per_gpu * deployment.gpu_count,
        kv_budget_bytes_per_gpu=budget_per_gpu,
        kv_tokens=kv_tokens,
        kv_blocks=kv_blocks,
        vllm_max_concurrency=round(vllm_conc, 2) if vllm_conc is not None else None,
        max_concurrency=max_conc,
        recommended_concurrency=recommended,
        max_num_seqs=options.max_num_seqs,
        capped_by_max_num_seqs=capped,
        min_concurrency=options.min_concurrency,
        fits=fits,
        loads=loads,
        free_bytes_per_gpu=free,
        warnings=warnings,
        notes=notes,
        steps=steps,
    )


def _kv_terms(spec: ModelSpec, bits: float) -> str:
    value_bytes = f"{bits / 8:g} B"
    if spec.is_mla:
        return f"{spec.num_hidden_layers} x ({spec.kv_lora_rank} + {spec.qk_rope_head_dim}) x {value_bytes}"
    return f"{spec.num_hidden_layers} x 2 x {spec.kv_heads} x {spec.real_head_dim} x {value_bytes}"
