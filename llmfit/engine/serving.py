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

from dataclasses import field
from fractions import Fraction
from typing import Annotated

from llmfit.engine.cache_policy import CachePolicy, CacheRequest, StageBudget
from llmfit.engine.formats import WeightFormat
from llmfit.engine.kv import (
    bytes_per_token,
    kv_layout,
    kv_shard_fraction,
    request_bytes,
    resolve_kv_dtype,
    state_bytes,
)
from llmfit.engine.layers import attention_kind, attention_kinds_of
from llmfit.engine.params import count_params
from llmfit.engine.records import Check, record, replace
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


@record
class Step:
    """One line of --explain: a formula, the numbers substituted, and the result."""

    label: str
    formula: str
    substituted: str
    result: int | float
    unit: str  # bytes, tokens, requests, params, ratio


@record
class Deployment:
    """How the GPUs are used: gpu_count = tp x pp x replicas."""

    gpu_count: Annotated[int, Check(gt=0)]
    tp: Annotated[int, Check(gt=0)]
    pp: Annotated[int, Check(gt=0)]

    @property
    def replicas(self) -> int:
        return self.gpu_count // (self.tp * self.pp)


@record
class ServingOptions:
    context_tokens: Annotated[int, Check(gt=0)]
    kv_dtype: str = "auto"
    gpu_util: Annotated[float, Check(gt=0, le=1)] = 0.9
    block_size: Annotated[int, Check(gt=0)] = 16
    # None: the engine version's default for the GPU (vLLM v1: 1024 on >= 70 GiB devices other than the A100, else
    # 256), which also sizes the profile run's sampler (runtime.engine_batch_defaults).
    max_num_seqs: Annotated[int, Check(gt=0)] | None = None  # None: the engine version's default for the GPU
    max_num_batched_tokens: Annotated[int, Check(gt=0)] | None = None
    engine_version: str = DEFAULT_ENGINE_VERSION  # any release number; the profile covering it is used
    # vLLM v0.21+ subtracts the CUDA-graph pool from the budget; None = the version's default, False =
    # VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS=0.
    cuda_graph_profiling: bool | None = None
    # Another engine's own release (SGLang '0.4.6'): its profile in configs/engines/<engine>.yaml; None = newest.
    engine_release: str | None = None
    # vLLM --kv-cache-memory-bytes: the pool is this figure, whatever gpu_memory_utilization says.
    kv_cache_memory_bytes: Annotated[int, Check(gt=0)] | None = None
    min_concurrency: Annotated[int, Check(ge=0)] = 1
    weights_override_bytes: Annotated[int, Check(gt=0)] | None = None
    overhead_override_bytes: Annotated[int, Check(ge=0)] | None = None
    headroom: Annotated[float, Check(ge=0, lt=1)] = HEADROOM


@record
class FitResult:
    """The answer of `fit`: keys as design.md fixes them (no suffix = whole deployment, _per_gpu = one GPU)."""

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
    # What the engine prints as "Model loading took": the weights plus buffers loaded with them (rotary
    # cos/sin cache, kernel layout padding), on the GPU whose stage limits the pool.
    loaded_weights_bytes_per_gpu: int = 0
    stage_weights_bytes_per_gpu: list[int] = field(default_factory=list)  # one GPU of each pipeline stage
    raw_weights_bytes: int  # params x nominal bits / 8
    bits_per_weight: float
    weights_lines: list[WeightLine]
    overhead_bytes: int
    overhead_bytes_per_gpu: int
    overhead_lines: list[OverheadLine]
    kv_bytes_per_token: int | None  # one replica, all its GPUs (replicated heads counted per GPU)
    kv_bytes_per_token_per_gpu: int | None
    kv_bytes_per_request: int | None  # one replica: KV of one request of context_tokens (whole blocks) + its state
    # Fixed per-sequence state of the recurrent layers (Mamba / Mamba-2 / Gated DeltaNet / KDA / short conv),
    # one replica, as the engine's cache policy counts it; included in kv_bytes_per_request; 0 without such
    # layers, None without an architecture (--params).
    state_bytes_per_request: int | None = None
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
    engine_version: str = ""  # the version profile used (e.g. "0.19" for any 0.12-0.20 release)
    limiting_stage: int = 0  # the pipeline stage whose pool is smallest (0 without PP)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)


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
    if not all(kind.splits_kv_evenly(tp) for kind in attention_kinds_of(spec)):
        raise SpecError(f"{spec.name}: {kv} KV heads cannot be split or replicated evenly over TP={tp}")
    if pp > spec.num_hidden_layers:
        raise SpecError(f"{spec.name}: PP={pp} exceeds its {spec.num_hidden_layers} layers")


def _divisors(n: int, limit: int = 64) -> list[int]:
    # Only the small ones are suggested; counting up to n hung on a preset with 10**12 heads.
    return [d for d in range(1, min(n, limit) + 1) if n % d == 0]


def stage_layers(num_layers: int, pp: int) -> list[int]:
    """Decoder layers per pipeline stage as vLLM splits them (vllm/distributed/utils.py get_pp_indices):
    num_layers // pp each, the remainder added one by one to the stages before the last (which holds the
    lm_head), from the second-to-last backwards."""
    per = [num_layers // pp] * pp
    for i in range(2, num_layers % pp + 2):
        per[-i] += 1
    return per


def _weights_per_gpu(spec: ModelSpec, fmt: WeightFormat, tp: int, pp: int) -> int:
    """Weights on the fullest GPU (the sum of its lines, see _stage_weights)."""
    return max(sum(stage.values()) for stage in _stage_weights(spec, fmt, tp, pp))


def _line_name(packed: bool, fmt: WeightFormat) -> str:
    # The names weight_bytes() gives its lines, so a per-GPU figure can sit beside each.
    if packed:
        return "packed weights"
    return "unquantized tensors" if fmt.is_quantized else "weights"


def _weights_per_gpu_by_line(spec: ModelSpec, fmt: WeightFormat, tp: int, pp: int) -> dict[str, int]:
    """Weights on the fullest GPU, by weight line."""
    return max(_stage_weights(spec, fmt, tp, pp), key=lambda lines: sum(lines.values()))


_STAGE_CACHE: dict[tuple[int, str, int, int], tuple[ModelSpec, list[dict[str, int]]]] = {}


def _stage_weights(spec: ModelSpec, fmt: WeightFormat, tp: int, pp: int) -> list[dict[str, int]]:
    """_stage_weights_uncached, memoised per (spec object, format, TP, PP): the plan sweep asks for each split
    once per GPU type."""
    key = (id(spec), fmt.name, tp, pp)
    hit = _STAGE_CACHE.get(key)
    if hit is not None and hit[0] is spec:
        return hit[1]
    if len(_STAGE_CACHE) > 4096:
        _STAGE_CACHE.clear()
    value = _stage_weights_uncached(spec, fmt, tp, pp)
    _STAGE_CACHE[key] = (spec, value)
    return value


def _stage_weights_uncached(spec: ModelSpec, fmt: WeightFormat, tp: int, pp: int) -> list[dict[str, int]]:
    """Weights on one GPU of each pipeline stage, by weight line: linear layers and the vocabulary sharded over
    TP, KV projections replicated when TP exceeds the KV heads, norms replicated, layers split over PP stages
    as vLLM splits them (stage 0 holds the embeddings, the last stage the lm_head)."""
    layers = spec.num_hidden_layers
    per_stage = stage_layers(layers, pp)
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
    return [{line: ceil_div(size.numerator, size.denominator) for line, size in lines.items()}
            for lines in stage_lines]


@record
class StagePlan:
    """Per pipeline stage (one GPU of each): layers, weights, runtime overhead lines and KV budget."""

    layers: list[int]
    weights: list[int]
    overheads: list[list[OverheadLine]]
    budgets: list[int]
    usable: int
    limiting: int  # the stage whose pool holds the fewest tokens


def stage_plan(spec: ModelSpec | None, gpu: GpuSpec, fmt: WeightFormat, tp: int, pp: int, options: ServingOptions,
               *, weights_per_gpu: int | None = None,
               overheads: list[list[OverheadLine]] | None = None) -> StagePlan:
    """The engine's budget rule per PP stage (vLLM: gpu_memory x gpu_util - weights - overhead on each worker;
    the pool is the smallest stage's). `weights_per_gpu` stands in for every stage when the weights are given
    (--weights) or there is no architecture. The plan sweep calls this once per (GPU, format, shape)."""
    assert options.max_num_seqs is not None
    act_bytes = 4 if fmt.name == "fp32" else 2
    layers_total = spec.num_hidden_layers if spec is not None else pp
    per_stage_layers = stage_layers(layers_total, pp)
    if spec is not None and options.weights_override_bytes is None:
        stage_weights = [sum(lines.values()) for lines in _stage_weights(spec, fmt, tp, pp)]
    else:
        assert weights_per_gpu is not None
        stage_weights = [weights_per_gpu] * pp
    stage_overheads: list[list[OverheadLine]] = []
    for stage in range(pp if overheads is None else 0):
        if options.overhead_override_bytes is not None:
            stage_overheads.append([OverheadLine(name="runtime overhead (given)",
                                                 bytes_per_gpu=options.overhead_override_bytes, formula="--overhead")])
            continue
        if 0 < stage < pp - 1:  # middle stages: the same lines as the first (no embeddings term, no sampler)
            stage_overheads.append(stage_overheads[0])
            continue
        stage_overheads.append(overhead_lines(
            spec, engine_version=options.engine_version, tp=tp, pp=pp, gpu_memory_bytes=gpu.usable_memory_bytes,
            max_num_seqs=options.max_num_seqs, act_bytes=act_bytes,
            max_num_batched_tokens=options.max_num_batched_tokens, gpu_name=gpu.name,
            compute_capability=gpu.compute_capability, context_tokens=options.context_tokens,
            weight_format=fmt.name, interconnect=gpu.interconnect, samples=stage == pp - 1,
            cuda_graphs=options.cuda_graph_profiling))
    if overheads is not None:  # the same lines computed before (they depend on the GPU and shape, not the format)
        stage_overheads = overheads
    usable = int(gpu.usable_memory_bytes * options.gpu_util)
    budgets = [usable - w - sum(line.bytes_per_gpu for line in lines)
               for w, lines in zip(stage_weights, stage_overheads, strict=True)]
    if options.kv_cache_memory_bytes is not None:
        # vLLM determine_available_memory: `if kv_cache_memory_bytes := cache_config.kv_cache_memory_bytes:
        # ... return kv_cache_memory_bytes` (profiling skipped, gpu_memory_utilization not respected).
        budgets = [options.kv_cache_memory_bytes] * pp
    # The smallest pool (ties: the later stage, which samples). Its tokens are counted at the KV per token of the
    # stage with the most layers (ceil(layers / pp)): vLLM takes the fewest blocks over the workers, which this
    # bounds from below (exact when the smallest pool is on a stage with the most layers, the usual case).
    limiting = min(range(pp), key=lambda s: (budgets[s], -s))
    return StagePlan(layers=per_stage_layers, weights=stage_weights, overheads=stage_overheads, budgets=budgets,
                     usable=usable, limiting=limiting)


def fit(spec: ModelSpec | None, gpu: GpuSpec, fmt: WeightFormat, deployment: Deployment, options: ServingOptions,
        *, params: int | None = None, cache_policy: CachePolicy | None = None) -> FitResult:
    """Plan one deployment. `spec` None means a bare parameter count (`--params`): weights only, no KV."""
    validate_deployment(spec, deployment)
    if options.max_num_seqs is None:
        _, default_seqs = engine_batch_defaults(options.engine_version, gpu_memory_bytes=gpu.usable_memory_bytes,
                                                gpu_name=gpu.name, context_tokens=options.context_tokens)
        options = replace(options, max_num_seqs=default_seqs)
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
    weights_lines = [replace(line, bytes_per_gpu=by_line.get(line.name, 0)) for line in weights.lines]
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

    # Runtime overhead per GPU, and the budget, stage by stage: the first stage holds the embeddings, the last the
    # lm_head and the sampler's peak; vLLM takes the smallest pool (gpu_worker: min num_gpu_blocks over workers).
    profile = ENGINE_PROFILES[options.engine_version]
    stages = stage_plan(spec, gpu, fmt, tp, pp, options, weights_per_gpu=weights_per_gpu)
    per_stage_layers, stage_weights = stages.layers, stages.weights
    stage_overheads, stage_budgets, limiting = stages.overheads, stages.budgets, stages.limiting
    usable = stages.usable
    lines = stage_overheads[limiting]
    overhead_per_gpu = sum(line.bytes_per_gpu for line in lines)
    stage_weights_per_gpu = stage_weights
    limiting_weights = stage_weights[limiting]  # weights_bytes_per_gpu stays the fullest GPU's
    for line in lines:
        steps.append(Step(label=line.name, formula=line.formula, substituted="", result=line.bytes_per_gpu,
                          unit="bytes"))
    loaded = limiting_weights + sum(line.bytes_per_gpu for line in lines if "loaded with the weights" in line.name)

    # Budget per GPU.
    budget_per_gpu = stage_budgets[limiting]
    if options.kv_cache_memory_bytes is not None:
        steps.append(Step(label="KV budget per GPU", formula="--kv-cache-memory-bytes (vLLM skips profiling)",
                          substituted="", result=budget_per_gpu, unit="bytes"))
    else:
        steps.append(Step(label="KV budget per GPU", formula="gpu_memory x gpu_util - weights - overhead",
                          substituted=f"{gpu.usable_memory_bytes:,} B x {options.gpu_util} - {limiting_weights:,} B"
                          f" - {overhead_per_gpu:,} B" + (f" (PP stage {limiting} of {pp})" if pp > 1 else ""),
                          result=budget_per_gpu, unit="bytes"))
    loads = all(budget > 0 for budget in stage_budgets)

    kv_dtype = "n/a"
    kv_per_token = kv_per_token_gpu = kv_per_request = kv_tokens = kv_blocks = state_per_request = None
    vllm_conc: float | None = None
    max_conc = recommended = None
    capped = False
    block = options.block_size
    if spec is not None:
        kv_dtype = resolve_kv_dtype(options.kv_dtype, spec, fmt.name)
        warnings += dtype_support_warnings(fmt, kv_dtype, gpu)
        layout = kv_layout(spec, kv_dtype)
        head_share = kv_shard_fraction(spec, tp)
        layer_share = Fraction(max(per_stage_layers), spec.num_hidden_layers)
        kv_per_token_gpu = bytes_per_token(layout, layer_share=layer_share, head_share=head_share)
        # One replica: every GPU's share, replicated heads counted on each GPU that holds them.
        kv_per_token = bytes_per_token(layout, head_share=head_share * tp)
        kv_per_request = request_bytes(layout, options.context_tokens, block_size=block, head_share=head_share * tp)
        request_per_gpu = request_bytes(layout, options.context_tokens, block_size=block, layer_share=layer_share,
                                        head_share=head_share)
        # Fixed state of the recurrent layers: one replica (every GPU's share), and one GPU of the stage holding
        # the most (kv.state_bytes; the cache policy's figure replaces the replica's below).
        starts = [sum(per_stage_layers[:s]) for s in range(pp)]
        state_per_request = state_bytes(spec, tp) * tp
        state_per_gpu = max(state_bytes(spec, tp, layer_start=starts[s], layer_end=starts[s] + per_stage_layers[s])
                            for s in range(pp))
        kv_per_request += state_per_request
        request_per_gpu += state_per_gpu
        steps.append(Step(label="KV per token", formula=f"layers x {attention_kind(spec).kv_formula_names} x bytes",
                          substituted=_kv_terms(spec, layout.bits_per_value), result=bytes_per_token(layout),
                          unit="bytes"))
        steps.append(Step(label="KV per request", formula="KV per token x context (blocks of "
                          f"{block}; sliding layers capped at the window)",
                          substituted=f"{bytes_per_token(layout, head_share=head_share * tp):,} B x "
                          f"{ceil_div(options.context_tokens, block) * block:,} tokens"
                          + (" (windowed layers capped)" if any(g.window_tokens for g in layout.groups) else ""),
                          result=kv_per_request - state_per_request, unit="bytes"))
        if state_per_request:
            steps.append(Step(label="fixed state per request", formula="per recurrent layer: conv state + "
                              "recurrent state, one per sequence whatever the context (one replica)",
                              substituted="; ".join(f"{g.layers} x ({g.kind.state_formula()})"
                                                    for g in spec.layer_groups if g.kind.has_state),
                              result=state_per_request, unit="bytes"))
        cache = None
        if cache_policy is not None:
            # The engine's cache policy (engine/cache_policy.py) over the stages' pools: paging, grouping and
            # admission per layer kind, as the engine does them.
            seqs = options.max_num_seqs
            tokens_step = options.max_num_batched_tokens or engine_batch_defaults(
                options.engine_version, gpu_memory_bytes=gpu.usable_memory_bytes, gpu_name=gpu.name,
                context_tokens=options.context_tokens)[0]
            # With PP, the smallest pool is held against the stage with the most layers (see stage_plan): a lower
            # bound of vLLM's fewest-blocks-over-workers, the figure plan's sweep computes too.
            widest = max(range(pp), key=lambda s: (per_stage_layers[s], -s))
            cache_stages = (StageBudget(layer_start=starts[widest],
                                        layer_end=starts[widest] + per_stage_layers[widest],
                                        budget_bytes_per_gpu=max(0, budget_per_gpu)),)
            request = CacheRequest(
                spec=spec, kv_dtype=kv_dtype, tp=tp, context_tokens=options.context_tokens, block_size=block,
                stages=cache_stages,
                max_num_batched_tokens=tokens_step, max_num_seqs=seqs)
            cache = cache_policy.plan(request)
            kv_per_token, kv_per_token_gpu = cache.kv_bytes_per_token, cache.kv_bytes_per_token_per_gpu
            kv_per_request = cache.kv_bytes_per_request  # the policy's: KV of the context + state (+ its padding)
            if pp > 1:
                # One replica's request spans every stage; the plan above sees the widest one only (vLLM's hybrid
                # allocator counts a request's pages on the stages it is given), so ask once more with all stages.
                every_stage = tuple(StageBudget(layer_start=starts[s], layer_end=starts[s] + per_stage_layers[s],
                                                budget_bytes_per_gpu=max(0, budget_per_gpu)) for s in range(pp))
                kv_per_request = cache_policy.plan(CacheRequest(**{**request.__dict__, "stages": every_stage})
                                                   ).kv_bytes_per_request
            state_per_request = cache.state_bytes_per_request
            if pp == 1:  # CachePlan.request_bytes_per_gpu counts every layer (B_needs.md); per stage: ours
                request_per_gpu = cache.request_bytes_per_gpu
            block = cache.block_size  # the block the engine uses (vLLM's hybrid allocator may raise it)
            notes.extend(cache.notes)
        if loads:
            per_block_gpu = bytes_per_token(layout, layer_share=layer_share, head_share=head_share) * block
            kv_blocks = budget_per_gpu // per_block_gpu
            kv_tokens = kv_blocks * block
            # Whole requests: the pool divided by one request's paged footprint on the fullest GPU.
            whole = budget_per_gpu // request_per_gpu if request_per_gpu else 0
            vllm_conc = kv_tokens / options.context_tokens
            if cache is not None:
                block, per_block_gpu = cache.block_size, cache.kv_bytes_per_token_per_gpu * cache.block_size
                kv_tokens, whole = cache.kv_tokens, cache.max_requests
                kv_blocks = kv_tokens // block
                vllm_conc = cache.engine_max_concurrency
            per_replica = min(whole, options.max_num_seqs)
            capped = whole > options.max_num_seqs
            max_conc = replicas * per_replica
            # Keep `headroom` of the pool free: the requests a pool of (1 - headroom) x the budget admits (the
            # engine's own split where it carves several pools from it, e.g. SGLang's state pool).
            smaller = cache_policy.requests_in(request, cache, int(budget_per_gpu * (1 - options.headroom))) \
                if cache is not None and cache_policy is not None else None
            if smaller is None:
                smaller = int((budget_per_gpu * (1 - options.headroom)) // request_per_gpu) if request_per_gpu else 0
            recommended = replicas * min(smaller, options.max_num_seqs)
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
    if pp > 1:
        notes.append(f"PP={pp}: layers per stage {per_stage_layers}; stage {limiting} has the smallest pool "
                     "(the first stage holds the embeddings, the last the lm_head and the sampler's peak)")
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
        loaded_weights_bytes_per_gpu=loaded,
        stage_weights_bytes_per_gpu=stage_weights_per_gpu,
        raw_weights_bytes=weights.raw_bytes,
        bits_per_weight=8 * weights_total / total_params,
        weights_lines=weights_lines,
        overhead_bytes=overhead_per_gpu * deployment.gpu_count,
        overhead_bytes_per_gpu=overhead_per_gpu,
        overhead_lines=lines,
        kv_bytes_per_token=kv_per_token,
        kv_bytes_per_token_per_gpu=kv_per_token_gpu,
        kv_bytes_per_request=kv_per_request,
        state_bytes_per_request=state_per_request,
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
        engine_version=profile.key,
        limiting_stage=limiting,
        warnings=warnings,
        notes=notes,
        steps=steps,
    )


def _kv_terms(spec: ModelSpec, bits: float) -> str:
    value_bytes = f"{bits / 8:g} B"
    return f"{spec.num_hidden_layers} x {attention_kind(spec).kv_formula_terms()} x {value_bytes}"
