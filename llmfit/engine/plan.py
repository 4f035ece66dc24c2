"""`plan`: every deployment of a model that serves a target, and the Pareto front of price, GPUs and speed.

Enumerated: GPU type x GPU count (1..max_gpus) x tensor-parallel size (a divisor of the count, at most a
node's GPUs, valid for the heads) x pipeline-parallel size (stages may span nodes) x data-parallel
replicas (the rest) x weight format x KV dtype. A configuration serves the target when it loads and
holds at least `concurrency` full-context requests (serving.fit's max_concurrency, under the engine's
budget rule from engines.py).

Speed (issue 17: 10^5 configurations < 0.5 s, 10^6 < 3 s): nothing is computed per configuration in
Python. Tensor byte counts come from weights.group_bytes once per format; weights on the fullest GPU
are then closed-form per (TP, PP) (`_weights_by_split`: per-layer bytes x the fullest stage's layer
share, plus the embeddings or lm_head on their stage, exactly serving._weights_per_gpu); KV per
request once per (KV bits, TP, PP, block). The per-configuration arithmetic (budget, whole requests,
replicas, verdict, roofline tokens/s) runs on numpy int64/float64 arrays with the same operations in
the same order as serving.fit and speed.speed_bounds; what depends on a shape only through its (TP, PP)
split (budget, whole requests per replica) is computed per split and multiplied by the replicas per
shape. The Pareto front is a vectorised prefix-max scan over the first fastest serving configuration of
each (GPU type, GPU count), found on the grid (issue 17: --max-gpus 128 within 2x the default sweep).
tests/engine/test_plan.py holds all of it to a plain evaluation: engine_fit and speed_bounds per
configuration and a pure-Python front.

Engine terms (where an engine's rules enter the sweep):
  - `engine_terms(engine, spec, gpu, fmt, tp, pp, base, memory_fraction) -> EngineTerms`: the memory
    the budget starts from, the runtime lines of the first and of the last PP stage (serving.stage_plan),
    TRT-LLM's share of free memory, max_num_seqs, the KV block size and max_num_batched_tokens for one
    (GPU, format, shape). The per-stage weights (`_stage_weights_by_split`: first, fullest middle, last
    stage, as serving.stage_layers splits the layers) are added per format and split, and the pool is
    the smallest stage's as in serving.stage_plan (TRT-LLM: the limiting stage's lines on every stage).
    It is evaluated once per GPU and `_shape_key(spec, fmt, tp, pp, engine)` (format's activation width
    and MXFP4 layout, TP, PP > 1, the fullest stage's layers, SGLang's TP x PP); the sweep drops the stage
    layers from the key and adds the CUDA-graph pool's difference (runtime.cuda_graph_bytes), the only
    line that reads them outside MXFP4. A test compares the terms across every key's shapes.
  - KV per request: the engine's cache policy (`kv_policy_request`, what serving.fit asks of it for the
    widest stage: pool // this = its max_requests) per (KV dtype, TP, widest stage, block, batched
    tokens), and fit's own per-stage figure (`kv_request_terms`) for the recommendation with PP > 1.
  - What the support matrix says the engine cannot run (support.runs) is left out.

Ranking: the front keeps the deployments no other serving deployment beats on all three of price per
hour (lower), GPUs (fewer) and aggregate tokens/s at the target concurrency (higher); sorted cheapest
first. GPUs without `price_per_hour` rank after priced ones, by GPU count.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Annotated, Any

from llmfit.engine.cache_policy import CacheRequest, SglangPolicy, StageBudget, kv_bits
from llmfit.engine.emit import LaunchCommand, launch_command
from llmfit.engine.engines import ENGINES, engine_fit, engine_rule, get_engine
from llmfit.engine.formats import WeightFormat
from llmfit.engine.kv import KvLayout, kv_layout, kv_shard_fraction, request_bytes, resolve_kv_dtype, state_bytes
from llmfit.engine.layers import LayerGroup, build_layer_groups
from llmfit.engine.records import Check, record, replace
from llmfit.engine.runtime import ENGINE_PROFILES, cuda_graph_bytes, engine_batch_defaults
from llmfit.engine.serving import (
    Deployment,
    FitResult,
    ServingOptions,
    _line_name,
    stage_layers,
    stage_plan,
    validate_deployment,
)
from llmfit.engine.speed import (
    Efficiency,
    SpeedBounds,
    speed_bounds,
    touched_expert_share,
)
from llmfit.engine.support import runs
from llmfit.engine.weights import group_bytes
from llmfit.errors import SpecError
from llmfit.specs import GpuSpec, ModelSpec
from llmfit.units import ceil_div

DEFAULT_DTYPES = ("bf16", "fp8", "awq")
DEFAULT_KV_DTYPES = ("auto", "fp8")


@record
class PlanTarget:
    context_tokens: Annotated[int, Check(gt=0)]
    concurrency: Annotated[int, Check(gt=0)]
    max_gpus: Annotated[int, Check(gt=0, le=4096)] = 16
    gpus_per_node: Annotated[int, Check(gt=0, le=4096)] = 8
    engine: str = "vllm"
    memory_fraction: Annotated[float, Check(gt=0, le=1)] | None = None
    efficiency: Efficiency = field(default_factory=Efficiency)
    top: Annotated[int, Check(gt=0)] = 10


@record(kw_only=False)
class Shape:
    """How `gpu_count` GPUs are split: tp x pp per replica, `replicas` replicas."""

    gpu_count: int
    tp: int
    pp: int

    @property
    def replicas(self) -> int:
        return self.gpu_count // (self.tp * self.pp)


def shapes(spec: ModelSpec, max_gpus: int, gpus_per_node: int) -> list[Shape]:
    """Every valid split of 1..max_gpus GPUs: TP within a node and valid for the heads, PP <= layers.
    serving.validate_deployment decides; what it reads of a split besides TP and PP is that TP x PP
    divides the count, true here by construction, so it is asked once per (TP, PP)."""
    out = []
    valid: dict[tuple[int, int], bool] = {}
    # The divisors of every n <= max_gpus, ascending, by a sieve (the loops below visit them in the same
    # order as trial division over 1..n would, without the ~n checks per count and TP).
    divisors: list[list[int]] = [[] for _ in range(max_gpus + 1)]
    for d in range(1, max_gpus + 1):
        for multiple in range(d, max_gpus + 1, d):
            divisors[multiple].append(d)
    for count in range(1, max_gpus + 1):
        for tp in (d for d in divisors[count] if d <= gpus_per_node):
            for pp in divisors[count // tp]:
                if (tp, pp) not in valid:
                    try:
                        validate_deployment(spec, Deployment(gpu_count=count, tp=tp, pp=pp))
                        valid[(tp, pp)] = True
                    except SpecError:
                        valid[(tp, pp)] = False
                if valid[(tp, pp)]:
                    out.append(Shape(count, tp, pp))
    return out


@record
class PlanRow:
    """One deployment on the front."""

    rank: int
    gpu: str
    gpu_count: int
    nodes: int
    tp: int
    pp: int
    replicas: int
    dtype: str
    kv_dtype: str
    price_per_hour: float | None  # whole deployment, USD
    price_per_hour_per_gpu: float | None
    max_concurrency: int
    recommended_concurrency: int
    weights_bytes_per_gpu: int
    kv_budget_bytes_per_gpu: int
    kv_budget_bytes: int
    tokens_per_second: float | None  # aggregate roofline bound at the target concurrency
    tokens_per_second_per_request: float | None
    ttft_seconds: float | None
    launch: LaunchCommand
    fit: FitResult
    speed: SpeedBounds


@record
class PlanResult:
    model: str
    engine: str
    context_tokens: int
    concurrency: int
    max_gpus: int
    gpus_per_node: int
    gpu_types: list[str]
    dtypes: list[str]
    kv_dtypes: list[str]
    configurations_evaluated: int
    configurations_serving: int
    front_size: int  # Pareto-optimal deployments (rows shows the first `top`)
    rows: list[PlanRow]
    smallest_single_gpu: str | None  # the GPU with the least memory that serves the target alone
    smallest_single_gpu_row: PlanRow | None
    unpriced_gpus: list[str]
    fits: bool
    notes: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------------ the sweep


@dataclass
class Sweep:
    """The vectorised sweep: flat arrays over configurations, indexable back to their axes."""

    gpus: list[GpuSpec]
    shapes: list[Shape]
    formats: list[WeightFormat]
    kv_dtypes: list[str]
    valid: Any  # bool[G, S, F, K]
    budget: Any  # int64[G, S, F, K]: KV budget per GPU
    max_concurrency: Any  # int64
    recommended: Any  # int64
    fits: Any  # bool
    tokens_per_second: Any  # float64 (nan when the GPU has no bandwidth)
    kv_resolved: list[list[str]]  # [F][K] the KV dtype `auto` resolves to

    @property
    def size(self) -> int:
        return int(self.valid.sum())

    def config(self, index: tuple[int, int, int, int]) -> tuple[GpuSpec, Shape, WeightFormat, str]:
        g, s, f, k = index
        return self.gpus[g], self.shapes[s], self.formats[f], self.kv_dtypes[k]


@record
class _GroupedSpec(ModelSpec):
    """A ModelSpec whose layer groups are built once (ModelSpec.layer_groups rebuilds them on each read; the
    sweep's cache-policy and KV terms read them a few hundred times)."""

    @functools.cached_property
    def layer_groups(self) -> tuple[LayerGroup, ...]:
        return tuple(build_layer_groups(self))


def _grouped(spec: ModelSpec) -> ModelSpec:
    if isinstance(spec, _GroupedSpec) or type(spec) is not ModelSpec:
        return spec
    grouped = object.__new__(_GroupedSpec)  # the same field values, already checked: no __post_init__ again
    grouped.__dict__.update(spec.__dict__)
    return grouped


def _options(target: PlanTarget, base: ServingOptions, kv: str) -> ServingOptions:
    return replace(base, context_tokens=target.context_tokens, kv_dtype=kv, min_concurrency=target.concurrency)


# ------------------------------------------------------------------------------------------ engine terms


@record(kw_only=False)
class EngineTerms:
    """Everything engine-specific about one (GPU, format, shape) that the budget needs, per GPU."""

    usable_bytes_per_gpu: int  # the memory the budget starts from
    first_overhead_bytes_per_gpu: int  # runtime lines of the first (and every middle) PP stage
    last_overhead_bytes_per_gpu: int  # runtime lines of the last stage (sampler peak); PP 1: the only stage
    free_fraction: float | None  # TRT-LLM: the pool is this share of what is left; None: all of it
    max_num_seqs: int
    block_size: int
    batched_tokens: int  # max_num_batched_tokens as fit resolves it (the cache policy reads it)


def engine_terms(engine: str, spec: ModelSpec, gpu: GpuSpec, fmt: WeightFormat, tp: int, pp: int,
                 base: ServingOptions, memory_fraction: float | None) -> EngineTerms:
    """The one place the sweep asks an engine for its rules (engines.engine_rule, serving.stage_plan).

    The runtime lines come per stage kind (first, last), not of the limiting stage: which stage limits
    depends on the weights, which the sweep adds per format and split (serving.stage_plan's rule)."""
    tokens, default_seqs = engine_batch_defaults(base.engine_version, gpu_memory_bytes=gpu.usable_memory_bytes,
                                                 gpu_name=gpu.name, context_tokens=base.context_tokens)
    tokens = base.max_num_batched_tokens or tokens
    if engine == "sglang":  # fit runs serving.fit with the rule's lines as one figure on every stage
        rule = engine_rule(engine, spec, gpu, fmt, tp, pp, base, memory_fraction)
        overhead = sum(line.bytes_per_gpu for line in rule.overhead_lines)
        return EngineTerms(int(gpu.usable_memory_bytes * float(rule.memory_fraction)), overhead, overhead, None,
                           rule.max_num_seqs, rule.block_size, tokens)
    # vLLM's rule (TRT-LLM's is vLLM's, engines/trtllm.py), per stage: engines.VllmEngine.rule resolves
    # max_num_seqs and the fraction the same way and keeps only the limiting stage's lines.
    seqs = base.max_num_seqs or default_seqs
    stages = stage_plan(spec, gpu, fmt, tp, pp, replace(base, max_num_seqs=seqs))
    first = sum(line.bytes_per_gpu for line in stages.overheads[0])
    last = sum(line.bytes_per_gpu for line in stages.overheads[-1])
    if pp == 1:
        first = last
    if engine == "trt-llm":  # engine_fit runs TRT-LLM with gpu_util 1.0 and keeps a share of the free memory
        fraction = memory_fraction if memory_fraction is not None else get_engine(engine).default_memory_fraction(
            gpu, tp, pp)
        return EngineTerms(int(gpu.usable_memory_bytes * 1.0), first, last, fraction, seqs, base.block_size, tokens)
    fraction = memory_fraction if memory_fraction is not None else base.gpu_util
    return EngineTerms(int(gpu.usable_memory_bytes * float(fraction)), first, last, None, seqs, base.block_size,
                       tokens)


def _shape_key(spec: ModelSpec, fmt: WeightFormat, tp: int, pp: int, engine: str | None = None) -> tuple[Any, ...]:
    """What of (format, shape) the engine rules read, so `engine_terms` is evaluated once per key and GPU:
    runtime.overhead_lines reads TP, whether PP > 1 (non-torch memory), and the layers on the fullest stage
    (the CUDA-graph pool, an MXFP4 MoE checkpoint's kernel layout); SGLang's mem_fraction_static reads
    TP x PP (engine None: every engine's reads). tests/engine/test_plan_oracle.py checks the terms are
    equal across each key's shapes; widen the key when an engine's rule reads more."""
    parallel = tp * pp if engine in (None, "sglang") else None
    return (_format_key(fmt), tp, pp > 1, ceil_div(spec.num_hidden_layers, pp), parallel)


def _format_key(fmt: WeightFormat) -> str:
    """What of the format the engine rules read: the activation width, and MXFP4's MoE kernel layout."""
    if fmt.name.startswith("mxfp4"):
        return fmt.name
    return "fp32" if fmt.name == "fp32" else "16-bit"


def kv_request_terms(spec: ModelSpec, layout: KvLayout, context_tokens: int, tp: int, pp: int,
                     block_size: int) -> tuple[int, int]:
    """KV bytes of one full-context request on the fullest GPU: (block-rounded, unrounded + fixed state as
    speed.speed_bounds reads it)."""
    stage = ceil_div(spec.num_hidden_layers, pp)
    layer_share = Fraction(stage, spec.num_hidden_layers)
    head_share = kv_shard_fraction(spec, tp)
    return (request_bytes(layout, context_tokens, block_size=block_size, layer_share=layer_share,
                          head_share=head_share),
            request_bytes(layout, context_tokens, block_size=1, layer_share=layer_share, head_share=head_share)
            + state_bytes(spec, tp, layer_end=stage))


@functools.lru_cache(maxsize=4096)
def _stage_layers(num_layers: int, pp: int) -> tuple[int, ...]:
    """serving.stage_layers, memoized: a pure function of two ints that the sweep asks per format and split
    (~1,000 times at --max-gpus 128); a tuple, so the cached value cannot be changed by a caller."""
    return tuple(stage_layers(num_layers, pp))


@functools.lru_cache(maxsize=4096)
def _stage_holds(num_layers: int, pp: int) -> tuple[int, int, int]:
    """Layers of stage 0, of the fullest middle stage (-1 without one) and of the last, as stage_layers splits."""
    per_stage = _stage_layers(num_layers, pp)
    return per_stage[0], max(per_stage[1:-1]) if pp > 2 else -1, per_stage[-1]


def _widest_stage(spec: ModelSpec, pp: int) -> tuple[int, int]:
    """[start, end) of the first stage with the most layers, the stage serving.fit holds the cache policy to."""
    return _widest_span(spec.num_hidden_layers, pp)


@functools.lru_cache(maxsize=4096)
def _widest_span(num_layers: int, pp: int) -> tuple[int, int]:
    """_widest_stage of (layers, PP), memoized: a pure function of two ints, O(PP), asked per split and per
    cache-policy call (~300 times at --max-gpus 128)."""
    per_stage = _stage_layers(num_layers, pp)
    widest = max(range(pp), key=lambda s: (per_stage[s], -s))
    start = sum(per_stage[:widest])
    return start, start + per_stage[widest]


def kv_policy_request(engine: str, spec: ModelSpec, kv_dtype: str, context_tokens: int, tp: int, pp: int,
                      block_size: int, batched_tokens: int, max_num_seqs: int, version: str) -> tuple[int, int]:
    """What one full-context request takes of a pool under the engine's cache policy, as serving.fit asks it:
    the stage with the most layers (the first of them), its pool divided by this gives the policy's
    max_requests (paged: request bytes; vLLM hybrid: pages per request x page x layers per group); and
    SGLang's per-request state when it keeps one in a separate pool (then max_requests is _sglang_requests)."""
    start, end = _widest_stage(spec, pp)
    policy = get_engine(engine).cache_policy(version)
    cache = policy.plan(CacheRequest(
        spec=spec, kv_dtype=kv_dtype, tp=tp, context_tokens=context_tokens, block_size=block_size,
        stages=(StageBudget(layer_start=start, layer_end=end, budget_bytes_per_gpu=0),),
        max_num_batched_tokens=batched_tokens, max_num_seqs=max_num_seqs))
    state = 0
    if isinstance(policy, SglangPolicy):  # recurrent state in its own pool: max_requests is not pool // request
        state = sum(g.layers_in(start, end) * g.kind.state_bytes(tp) for g in spec.layer_groups)
    return int(cache.request_bytes_per_gpu), state


# ------------------------------------------------------------------------------------------ weights per GPU


def _stage_weights_by_split(spec: ModelSpec, fmt: WeightFormat, splits: Sequence[tuple[int, int]]
                            ) -> dict[tuple[int, int], tuple[int, int, int]]:
    """serving._stage_weights' per-stage sums for every (TP, PP) in `splits`, from one pass over the tensor
    groups: (first stage, the fullest middle stage or -1 without one, last stage).

    Per TP, each line's bytes on one GPU are summed over the groups once, apart by where they live:
    per-layer groups (spread over the stages by their layer counts), the lm_head (last stage) and the
    rest (embeddings, final norm: first stage). Per PP (layers split as serving.stage_layers, vLLM's
    get_pp_indices), only three stages matter: stage 0, the middle stage with the most layers (the middle
    stages share stage 0's runtime lines) and the last. Each line is rounded up on its own, then summed."""
    layers = spec.num_hidden_layers
    items = group_bytes(spec, fmt)
    out: dict[tuple[int, int], tuple[int, int, int]] = {}
    # Per TP: each line's per-layer, first-stage and last-stage bytes on one GPU as integers over a common
    # denominator, so each PP split is integer arithmetic only.
    by_tp: dict[int, tuple[int, list[tuple[int, int, int]]]] = {}
    for tp, pp in splits:
        if tp not in by_tp:
            kv_share = kv_shard_fraction(spec, tp)
            sums: dict[str, list[Fraction]] = {}  # line -> [per layer, first stage, last stage]
            for item in items:
                group = item.group
                if group.kind in ("vector", "router") or group.name == "attn.kv_a_proj_with_mqa":
                    shard = Fraction(1)
                elif group.name in ("attn.k_proj", "attn.v_proj"):
                    shard = kv_share
                else:
                    shard = Fraction(1, tp)
                where = 0 if group.per_layer else 2 if group.kind == "lm_head" else 1
                parts = [(_line_name(item.packed, fmt), item.payload_bytes)]
                if item.metadata_bytes:
                    parts.append(("scales and zero points", item.metadata_bytes))
                for line, size in parts:
                    sums.setdefault(line, [Fraction(0), Fraction(0), Fraction(0)])[where] += size * shard
            denominator = math.lcm(*(value.denominator for values in sums.values() for value in values))
            by_tp[tp] = (denominator, [(int(per * denominator), int(first * denominator), int(last * denominator))
                                       for per, first, last in sums.values()])
        denominator, lines = by_tp[tp]
        # Stage 0 (embeddings), the middle stage with the most layers, the last (lm_head); -1: no middle stage.
        held_first, held_middle, held_last = _stage_holds(layers, pp)
        # Each line on a stage, in units of 1 / (layers x denominator) bytes, rounded up line by line: per-layer
        # bytes x the stage's layers, plus the embeddings' line on stage 0 and the lm_head's on the last.
        unit = layers * denominator
        first_total = sum(-(-(per * held_first + first * layers + (last * layers if pp == 1 else 0)) // unit)
                          for per, first, last in lines)
        if pp == 1:
            out[(tp, pp)] = (first_total, -1, first_total)
            continue
        middle_total = sum(-(-(per * held_middle) // unit) for per, _, _ in lines) if pp > 2 else -1
        last_total = sum(-(-(per * held_last + last * layers) // unit) for per, _, last in lines)
        out[(tp, pp)] = (first_total, middle_total, last_total)
    return out


def _weights_by_split(spec: ModelSpec, fmt: WeightFormat, splits: Sequence[tuple[int, int]]) -> dict[tuple[int, int],
                                                                                                        int]:
    """serving._weights_per_gpu (the fullest GPU) for every (TP, PP) in `splits`."""
    return {split: max(stages) for split, stages in _stage_weights_by_split(spec, fmt, splits).items()}


# ------------------------------------------------------------------------------------------ the sweep


def sweep(spec: ModelSpec, gpus: Sequence[GpuSpec], formats: Sequence[WeightFormat], kv_dtypes: Sequence[str],
          target: PlanTarget, base: ServingOptions,
          progress: Callable[[int, int], None] | None = None) -> Sweep:
    """Evaluate every configuration; `progress(done, total)` is called once per GPU type."""
    import numpy as np

    if target.engine not in ENGINES:
        raise SpecError(f"unknown engine {target.engine!r} (allowed: {', '.join(ENGINES)})")
    spec = _grouped(spec)
    shape_list = shapes(spec, target.max_gpus, target.gpus_per_node)
    n_g, n_s, n_f, n_k = len(gpus), len(shape_list), len(formats), len(kv_dtypes)
    eff = target.efficiency
    splits = sorted({(sh.tp, sh.pp) for sh in shape_list})
    split_index = {split: i for i, split in enumerate(splits)}
    shape_split = np.array([split_index[(sh.tp, sh.pp)] for sh in shape_list], dtype=np.intp)
    keys = sorted({_format_key(fmt) for fmt in formats})
    format_key = np.array([keys.index(_format_key(fmt)) for fmt in formats], dtype=np.intp)
    replicas_s = np.array([sh.replicas for sh in shape_list], dtype=np.int64)
    per_replica = -(-target.concurrency // replicas_s)  # ceil_div, int64

    # Per (format, split): weights on each stage kind's GPU and the fullest; per (format, shape) what a
    # decode step reads of them. Everything of the budget and the whole requests per replica depends on the
    # shape only through its (TP, PP) split, so it is computed per split ([G, P, F, K], P = the distinct
    # splits, ~5x fewer than the shapes at --max-gpus 128) and only the replicas are spread over the shapes.
    n_p = len(splits)
    weights = np.zeros((n_f, n_p), dtype=np.int64)
    stage_w = np.zeros((3, n_f, n_p), dtype=np.int64)  # first, fullest middle (-1: none), last
    weights_read = np.zeros((n_f, n_s), dtype=np.float64)
    for fi, fmt in enumerate(formats):
        by_split = _stage_weights_by_split(spec, fmt, splits)
        stage_w[:, fi] = np.array([by_split[split] for split in splits], dtype=np.int64).T
        weights[fi] = stage_w[:, fi].max(axis=0)
        weights_s = weights[fi, shape_split]
        if spec.is_moe:
            expert_bytes = sum(i.bytes for i in group_bytes(spec, fmt) if i.group.kind == "expert")
            weights_read[fi] = [_weights_read(spec, int(weights_s[si]), expert_bytes, sh, int(per_replica[si]))
                                for si, sh in enumerate(shape_list)]
        else:
            weights_read[fi] = weights_s

    # Per (GPU, split, format key): the engine's terms; then spread over shapes and formats.
    n_q = len(keys)
    first_format = [next(f for f in formats if _format_key(f) == key) for key in keys]
    shape_keys = [[_shape_key(spec, fmt, tp, pp, target.engine) for fmt in first_format] for tp, pp in splits]
    # The distinct keys in the order the (split, format key) loop meets them, each with the split and format
    # it is first met at; every GPU asks the engine per distinct key only, and the [G, P, Q] grids index them.
    first_met: dict[tuple[Any, ...], tuple[int, int, WeightFormat]] = {}
    for (tp, pp), split_keys in zip(splits, shape_keys, strict=True):
        for fmt, key in zip(first_format, split_keys, strict=True):
            first_met.setdefault(key, (tp, pp, fmt))
    key_ids = {key: i for i, key in enumerate(first_met)}
    key_index = np.array([key_ids[key] for split_keys in shape_keys for key in split_keys], dtype=np.intp)  # [P*Q]
    terms: list[EngineTerms] = []  # [G][distinct key] flattened
    # vLLM and TRT-LLM: the fullest stage's layers enter the runtime lines only through the CUDA-graph pool
    # (the same line on every stage), so one engine_terms per key without them, the pool's difference added.
    graphs = target.engine != "sglang" and (base.cuda_graph_profiling if base.cuda_graph_profiling is not None
                                            else ENGINE_PROFILES[base.engine_version].counts_cuda_graphs)
    graph_pools: dict[tuple[int, int, int, int], int] = {}
    graph_deltas: list[int] = []  # beside `terms`

    def graph_pool(max_num_seqs: int, tp: int, pp: int, act: int) -> int:
        """runtime.cuda_graph_bytes, once per (max_num_seqs, TP, PP, activation bytes): GPUs share them."""
        key = (max_num_seqs, tp, pp, act)
        if key not in graph_pools:
            graph_pools[key] = cuda_graph_bytes(spec, max_num_seqs=max_num_seqs, tp=tp, pp=pp, act_bytes=act)[0]
        return graph_pools[key]

    for gi, gpu in enumerate(gpus):
        known: dict[tuple[Any, ...], tuple[EngineTerms, int]] = {}  # the terms and the PP they were asked at
        for key, (tp, pp, fmt) in first_met.items():
            mxfp4 = fmt.name.startswith("mxfp4")
            coarse = (*key[:3], key[3] if mxfp4 or not graphs else None, *key[4:])
            if coarse not in known:
                known[coarse] = (engine_terms(target.engine, spec, gpu, fmt, tp, pp, base, target.memory_fraction), pp)
            found, asked = known[coarse]
            delta = 0  # the CUDA-graph pool's difference on every stage, added to both overheads below
            if graphs and asked != pp:
                act = 4 if fmt.name == "fp32" else 2
                delta = graph_pool(found.max_num_seqs, tp, pp, act) - graph_pool(found.max_num_seqs, tp, asked, act)
            terms.append(found)
            graph_deltas.append(delta)
        if progress is not None:
            progress(gi + 1, n_g)

    def grid(values: list[Any], dtype: Any) -> Any:
        return np.array(values, dtype=dtype).reshape(n_g, len(first_met))[:, key_index].reshape(n_g, n_p, n_q)

    usable = grid([t.usable_bytes_per_gpu for t in terms], np.int64)
    deltas = grid(graph_deltas, np.int64)
    first_o = grid([t.first_overhead_bytes_per_gpu for t in terms], np.int64) + deltas
    last_o = grid([t.last_overhead_bytes_per_gpu for t in terms], np.int64) + deltas
    free_fraction = grid([np.nan if t.free_fraction is None else t.free_fraction for t in terms], np.float64)
    caps = grid([t.max_num_seqs for t in terms], np.int64)
    # The KV class of a (GPU, split, format key): what the cache policy reads besides dtype and split.
    classes = sorted({(t.block_size, t.batched_tokens) for t in terms})
    class_grid = grid([classes.index((t.block_size, t.batched_tokens)) for t in terms], np.intp)
    pick = (slice(None), slice(None), format_key)  # [G, P, Q] -> [G, P, F]
    usable3, first3, last3, free3, caps3 = usable[pick], first_o[pick], last_o[pick], free_fraction[pick], caps[pick]

    # Per (KV class, format, KV dtype, split): what one request takes of the pool under the engine's cache
    # policy (max_requests) and by fit's own per-stage figure (recommended with PP > 1), and what it reads.
    kv_resolved = [[resolve_kv_dtype(kv, spec, fmt.name) for kv in kv_dtypes] for fmt in formats]
    # What can run at all: MXFP4 on a GPU whose known native dtypes lack fp4, and what the support matrix
    # (configs/engines/support.yaml, support.runs) says the engine refuses, are left out.
    valid_gfk = np.array([[[not (fmt.needs_native == "fp4" and "fp4" not in gpu.native_dtypes and gpu.native_dtypes)
                            and runs(target.engine, gpu, fmt, kv_resolved[fi][ki]) for ki in range(n_k)]
                           for fi, fmt in enumerate(formats)] for gpu in gpus], dtype=bool).reshape(n_g, n_f, n_k)
    n_c = len(classes)
    request = np.zeros((n_c, n_f, n_k, n_p), dtype=np.int64)
    request_rec = np.zeros((n_c, n_f, n_k, n_p), dtype=np.int64)
    request_read = np.zeros((n_f, n_k, n_p), dtype=np.float64)
    request_state = np.zeros((n_c, n_f, n_k, n_p), dtype=np.int64)  # SGLang's separate state pool, per request
    own: dict[tuple[Any, ...], tuple[int, int]] = {}  # (KV bits, TP, stage layers, block)
    policy: dict[tuple[Any, ...], tuple[int, int]] = {}  # (KV bits, TP, stage, block, batched); max_num_seqs unread
    layouts = {kv: kv_layout(spec, kv) for kv in {kv for row in kv_resolved for kv in row}}
    # The policies read max_num_batched_tokens only for windowed (sliding, chunked, cross) layers' admission.
    windowed = any(getattr(group.kind, "window", None) for group in spec.layer_groups)
    uniform = len(spec.layer_groups) == 1
    # One layer kind: the policy reads the widest stage's layer count only; else which layers it holds.
    widest = [_widest_stage(spec, pp) for _, pp in splits]
    # serving.fit's own per-stage request figure adds the fixed state of the stage holding the most.
    stage_state: dict[tuple[int, int], int] = dict.fromkeys(splits, 0)
    for tp, pp in splits if any(group.kind.has_state for group in spec.layer_groups) else ():
        per_stage = stage_layers(spec.num_hidden_layers, pp)
        starts = [sum(per_stage[:st]) for st in range(pp)]
        stage_state[(tp, pp)] = max(state_bytes(spec, tp, layer_start=starts[st],
                                                layer_end=starts[st] + per_stage[st]) for st in range(pp))
    spans = [(end - start,) if uniform else (start, end) for start, end in widest]
    # A row over the splits depends on the class and format only through (resolved KV dtype, block, batched
    # tokens when windowed): each distinct row is built once, in Python lists, and copied into the arrays.
    # A KV dtype enters only as its bits per value: every cache policy reads request.kv_dtype through
    # cache_policy.kv_bits, and kv.kv_layout's groups (all kv.request_bytes reads) come from the bits, so
    # bf16 and fp16 KV (`auto` of a bf16 and of an fp16 checkpoint) share their rows and calls.
    rows: dict[tuple[Any, ...], tuple[list[int], list[int], list[float], list[int]]] = {}
    for ci, (block, batched) in enumerate(classes):
        for fi in range(n_f):
            for ki in range(n_k):
                kv = kv_resolved[fi][ki]
                bits = kv_bits(kv)
                rkey = (bits, block, batched if windowed else None)
                if rkey not in rows:
                    row_req: list[int] = []
                    row_rec: list[int] = []
                    row_read: list[float] = []
                    row_state: list[int] = []
                    for pi, (tp, pp) in enumerate(splits):
                        okey = (bits, tp, ceil_div(spec.num_hidden_layers, pp), block)
                        if okey not in own:
                            own[okey] = kv_request_terms(spec, layouts[kv], target.context_tokens, tp, pp, block)
                        pkey = (bits, tp, spans[pi], block, batched if windowed else None)
                        if pkey not in policy:
                            policy[pkey] = kv_policy_request(target.engine, spec, kv, target.context_tokens, tp, pp,
                                                             block, batched, 1, base.engine_version)
                        paged, read = own[okey]
                        row_read.append(read)
                        row_req.append(policy[pkey][0])
                        row_state.append(policy[pkey][1])
                        row_rec.append(policy[pkey][0] if pp == 1 else paged + stage_state[(tp, pp)])
                    rows[rkey] = (row_req, row_rec, row_read, row_state)
                row_req, row_rec, row_read, row_state = rows[rkey]
                request[ci, fi, ki], request_rec[ci, fi, ki] = row_req, row_rec
                request_read[fi, ki], request_state[ci, fi, ki] = row_read, row_state

    def per_config(values: Any) -> Any:
        """[class, F, K, split] -> [G, P, F, K]; with one class a broadcast view of [P, F, K]."""
        if n_c == 1:
            return np.transpose(values[0], (2, 0, 1))[None]
        cls = class_grid[pick]  # [G, P, F]
        return values[cls[:, :, :, None], np.arange(n_f)[None, None, :, None], np.arange(n_k)[None, None, None, :],
                      np.arange(n_p)[None, :, None, None]]

    req4, rec4 = per_config(request), per_config(request_rec)
    state4 = per_config(request_state) if request_state.any() else None
    shape4 = (n_g, n_s, n_f, n_k)

    # The per-configuration arithmetic of serving.fit, broadcast over [G, P, F, K] (per split, see above),
    # then times the replicas over [G, S, F, K]; the 4-D arrays are made once each and updated in place (a
    # 10^6-configuration plan stays under 200 MiB).
    # Per stage (serving.stage_plan): usable - weights - runtime lines; the pool is the smallest stage's.
    w_first, w_mid, w_last = stage_w[0].T[None], stage_w[1].T[None], stage_w[2].T[None]  # [1, P, F]
    t_first = w_first + first3
    t_mid = np.where(w_mid >= 0, w_mid + first3, t_first)
    t_last = w_last + last3
    t_max = np.maximum(np.maximum(t_first, t_mid), t_last)
    trt = ~np.isnan(free3)
    budget = usable3 - t_max  # [G, P, F]
    if trt.any():
        # TRT-LLM: the limiting stage's runtime lines (ties: the later stage) on every stage, then its share.
        limiting = np.where(t_last >= np.maximum(t_first, t_mid), last3, first3)
        free = usable3 - weights.T[None, :, :] - limiting
        fraction = np.where(trt, free3, 0.0)
        reserve = np.where(free > 0, free - np.floor(free * fraction).astype(np.int64), 0)
        budget = np.where(trt, free - reserve, budget)
    budget4 = np.broadcast_to(np.take(budget, shape_split, axis=1)[:, :, :, None], shape4)  # [G, S, F] viewed
    loads = budget[:, :, :, None] > 0  # [G, P, F, 1]
    replicas = replicas_s[None, :, None, None]
    cap = caps3[:, :, :, None]

    def spread(whole: Any) -> Any:
        """[G, P, F, K] requests per replica -> [G, S, F, K] times each shape's replicas (a fresh array)."""
        out = np.take(whole, shape_split, axis=1)
        np.multiply(out, replicas, out=out)
        return out

    def whole_requests(pool: Any, req: Any) -> Any:
        """replicas x min(whole requests of `req` bytes in `pool`, the cap), 0 where nothing loads."""
        positive = req > 0
        whole = np.floor_divide(pool, np.where(positive, req, 1))  # a fresh [G, P, F, K] array
        if whole.dtype != np.int64:
            whole = whole.astype(np.int64)
        if not positive.all():
            whole = np.where(positive, whole, 0)
        np.minimum(whole, cap, out=whole)
        np.multiply(whole, loads, out=whole)
        return spread(whole)

    def two_pools(pool_bytes: Any, state4: Any) -> Any:
        """SGLang with recurrent layers: cache_policy.SglangPolicy.pools, elementwise."""
        pool = np.maximum(pool_bytes, 0)
        ratio = SglangPolicy().mamba_full_memory_ratio
        mamba = np.floor(pool * ratio / (1 + ratio)).astype(np.int64)
        has_state = state4 > 0
        states = np.where(has_state, mamba // np.where(has_state, state4, 1), 0)
        attn = np.maximum(pool - states * state4, 0)
        kv_req = req4 - state4
        by_tokens = np.where(kv_req > 0, attn // np.where(kv_req > 0, kv_req, 1), states)
        plain = np.where(req4 > 0, pool // np.where(req4 > 0, req4, 1), 0)
        whole = np.where(has_state, np.minimum(states, by_tokens), plain)
        return spread(np.minimum(whole, cap) * loads)

    if state4 is None:
        max_conc = whole_requests(budget[:, :, :, None], req4)
        recommended = whole_requests(budget[:, :, :, None] * (1 - base.headroom), rec4)
    else:  # serving.fit asks the policy with the smaller pool (CachePolicy.requests_in)
        max_conc = two_pools(budget[:, :, :, None], state4)
        recommended = two_pools((budget[:, :, :, None] * (1 - base.headroom)).astype(np.int64), state4)
    valid = np.broadcast_to(valid_gfk[:, None, :, :], shape4)
    # max_concurrency is 0 where nothing loads and the target concurrency is >= 1: this is `loads & ...`.
    fits = valid & (max_conc >= target.concurrency)

    # Roofline tokens/s at the target concurrency (speed.speed_bounds, same order of operations).
    bandwidth = np.array([g.memory_bandwidth_bytes_per_s or np.nan for g in gpus], dtype=np.float64)
    pp_s = np.array([sh.pp for sh in shape_list], dtype=np.float64)[None, :, None, None]
    per_rep = per_replica.astype(np.float64)[None, :, None, None]
    kv_read = per_rep * np.transpose(request_read[:, :, shape_split], (2, 0, 1))[None]
    round_bytes = pp_s * weights_read.T[None, :, :, None] + kv_read  # [1, S, F, K]
    tokens = round_bytes / (bandwidth[:, None, None, None] * eff.memory)  # the decode step, [G, S, F, K]
    np.divide(replicas * per_rep, tokens, out=tokens)
    return Sweep(gpus=list(gpus), shapes=shape_list, formats=list(formats), kv_dtypes=list(kv_dtypes),
                 valid=valid, budget=budget4, max_concurrency=max_conc, recommended=recommended, fits=fits,
                 tokens_per_second=tokens, kv_resolved=kv_resolved)


def _weights_read(spec: ModelSpec, weights_per_gpu: int, expert_bytes: int, shape: Shape, per_replica: int) -> int:
    """speed.speed_bounds' weights read per micro-batch step (MoE: shared tensors + touched experts)."""
    if not spec.is_moe:
        return weights_per_gpu
    layers_stage = ceil_div(spec.num_hidden_layers, shape.pp)
    share = Fraction(expert_bytes * layers_stage, spec.num_hidden_layers * shape.tp)
    experts = min(weights_per_gpu, ceil_div(share.numerator, share.denominator))
    micro = max(1, ceil_div(per_replica, shape.pp))
    touched = touched_expert_share(spec.num_experts, spec.num_experts_per_tok, micro)
    return weights_per_gpu - experts + round(experts * touched)


# ------------------------------------------------------------------------------------------ the front


def _fastest_per_cell(price: Any, gpus: Any, speed: Any, gpu_type: Any) -> Any:
    """Indexes (ascending) of the first fastest row of each (GPU type, GPU count) cell, or None when the
    cells do not apply (types not small non-negative integers, or a price that varies inside a cell).

    Rows of one cell have the same price and GPU count, so the fastest (the first of equal ones, as the
    stable sort orders them) beats every other row of its cell, and whatever those rows would beat."""
    import numpy as np

    if gpu_type.dtype.kind not in "iu" or gpu_type.min() < 0 or gpus.min() < 1:
        return None
    width = int(gpus.max()) + 1
    cells = int(gpu_type.max()) + 1
    if cells * width > 1 << 24:
        return None
    cell = gpu_type.astype(np.int64) * width + gpus
    key = np.where(np.isnan(price), -1.0, price)
    # One price per cell: write each row's price into its cell (which of a cell's rows lands does not
    # matter) and read it back; every row reads its own price exactly when its cell has one price.
    written = np.empty(cells * width)
    written[cell] = key
    if not np.array_equal(written[cell], key):
        return None
    best = np.full(cells * width, -np.inf)
    np.maximum.at(best, cell, speed)
    candidates = np.flatnonzero(speed == best[cell])
    _, first = np.unique(cell[candidates], return_index=True)
    return np.sort(candidates[first])


def _dense_rank(values: Any) -> Any:
    """0-based ranks of `values` with equal values sharing a rank (int64)."""
    import numpy as np

    order = np.argsort(values, kind="stable")
    ordered = values[order]
    steps = np.concatenate(([0], (ordered[1:] != ordered[:-1]).astype(np.int64)))
    rank = np.empty(len(values), dtype=np.int64)
    rank[order] = np.cumsum(steps)
    return rank


def _beaten_by_fewer(m_count: Any, m_rank: Any, thresholds: Any) -> Any:
    """For members in order (GPU counts, non-negative ranks): whether an earlier member with fewer GPUs has
    at least the rank; `thresholds` are the distinct counts but the smallest, ascending.

    Every threshold in one [m, T] running maximum: column t holds the ranks of the members with fewer GPUs
    than thresholds[t] (else -1), as the narrowest integers that hold them; the running maximum down the
    rows (over members, each step one vector operation across the thresholds) gives at row i the best of
    the members up to i. A member asks the column of its own count at the row before it."""
    import numpy as np

    top = int(m_rank.max())
    narrow = np.int16 if top < 2**15 - 1 else np.int32 if top < 2**31 - 1 else np.int64
    column = np.searchsorted(thresholds, m_count, side="right")  # count thresholds[t - 1]: t; the fewest: 0
    eligible = np.where(column[:, None] <= np.arange(len(thresholds))[None, :], m_rank.astype(narrow)[:, None],
                        narrow(-1))  # [m, T]
    np.maximum.accumulate(eligible, axis=0, out=eligible)
    rows = np.arange(len(m_rank))
    asks = (column > 0) & (rows > 0)
    best = np.where(asks, eligible[np.maximum(rows - 1, 0), np.maximum(column - 1, 0)], -1)
    return best >= m_rank


def pareto_front(price: Any, gpus: Any, speed: Any, gpu_type: Any) -> list[int]:
    """Indexes no other row beats on (price lower, GPUs fewer, speed higher). A missing price (nan) is
    unknown, not free: an unpriced row is compared on price only with rows of the same GPU type (where
    price follows the GPU count). nan speed counts as 0. Sorted: priced rows cheapest first, then unpriced
    rows by GPU count; ties go to the faster, then to the earlier row.

    Vectorised. In that order a row's dominators all come before it (no dearer, no larger, no slower),
    so a row is dominated exactly when an earlier row of its comparison group (all priced rows; the
    unpriced rows of one GPU type) with no more GPUs is at least as fast. Speeds become dense integer
    ranks (exact ties). First pass: an earlier row with the same GPU count (a segmented running
    maximum). The survivors then meet the earlier survivors with fewer GPUs, one running maximum per
    distinct GPU count (at most --max-gpus of them): a dominator that did not survive is itself beaten by
    an earlier survivor with the same count, which then beats the row too."""
    import numpy as np

    price = np.asarray(price, dtype=np.float64)
    gpus = np.asarray(gpus, dtype=np.int64)
    raw_speed = np.asarray(speed, dtype=np.float64)
    speed = np.where(np.isnan(raw_speed), 0.0, raw_speed)
    n = len(price)
    if n == 0:
        return []
    types = np.asarray(gpu_type)
    keep = _fastest_per_cell(price, gpus, speed, types)
    if keep is not None and len(keep) < n:  # only the first fastest row of a (GPU type, count) can be on it
        return [int(keep[i]) for i in pareto_front(price[keep], gpus[keep], speed[keep], types[keep])]
    priced = ~np.isnan(price)
    speed_rank = _dense_rank(speed)
    price_rank = _dense_rank(np.where(priced, price, np.inf))
    low = int(gpus.min())
    span = int(gpus.max()) - low + 1
    # One int64 key for (price, GPUs, -speed); a stable sort keeps the input order among exact ties.
    key = (price_rank * span + (gpus - low)) * (int(speed_rank.max()) + 1) + (int(speed_rank.max()) - speed_rank)
    order = np.argsort(key, kind="stable")
    rank = speed_rank[order]
    types = types.astype(np.int64)
    group = np.where(priced, -1, types)[order]
    count = gpus[order]
    # First pass: segments of equal (group, GPU count), positions kept in sorted order.
    group_rank = group + 1 if types.min() >= 0 else _dense_rank(group)
    seg_key = group_rank * span + (count - low)
    if int(seg_key.max()) < 2**15:
        seg_key = seg_key.astype(np.int16)  # numpy's stable sort of 16-bit integers is a radix sort
    seg_order = np.argsort(seg_key, kind="stable")
    seg_key_group, seg_key_count = group[seg_order], count[seg_order]
    starts = np.ones(n, dtype=bool)
    starts[1:] = (seg_key_group[1:] != seg_key_group[:-1]) | (seg_key_count[1:] != seg_key_count[:-1])
    segment = np.cumsum(starts) - 1
    lifted = rank[seg_order] + segment * (n + 1)  # later segments lie above earlier ones: the max restarts
    running = np.maximum.accumulate(lifted)
    before = np.concatenate(([-1], running[:-1])) - segment * (n + 1)
    before[starts] = -1
    dominated = np.zeros(n, dtype=bool)
    dominated[seg_order] = before >= rank[seg_order]
    # Second pass: survivors against earlier survivors of their group with fewer GPUs. All groups at once
    # when the [members, thresholds] matrix is small: members ordered by group (sorted order kept inside
    # each), ranks lifted by group so an earlier group's ranks all lie below a later group's (they never
    # beat them, as in the first pass); else group by group.
    alive = np.flatnonzero(~dominated)
    labels, label_of = np.unique(group[alive], return_inverse=True)
    thresholds = np.unique(count[alive])[1:]
    if len(thresholds) and len(thresholds) * len(alive) <= 1 << 22:
        by_group = np.argsort(label_of, kind="stable")
        members = alive[by_group]
        lifted = rank[members] + label_of[by_group].astype(np.int64) * (n + 1)
        dominated[members] |= _beaten_by_fewer(count[members], lifted, thresholds)
        return [int(i) for i in order[~dominated]]
    for label in labels:
        members = alive[group[alive] == label]
        m_count, m_rank = count[members], rank[members]
        thresholds = np.unique(m_count)[1:]
        if not len(thresholds):
            continue  # one GPU count in the group: the first pass decided
        if len(thresholds) * len(members) <= 1 << 22:
            dominated[members] |= _beaten_by_fewer(m_count, m_rank, thresholds)
            continue
        for threshold in thresholds:
            eligible = np.where(m_count < threshold, m_rank, -1)
            best = np.concatenate(([-1], np.maximum.accumulate(eligible)[:-1]))
            here = m_count == threshold
            dominated[members[here]] |= best[here] >= m_rank[here]
    return [int(i) for i in order[~dominated]]


def _row(rank: int, spec: ModelSpec, sw: Sweep, index: tuple[int, int, int, int], target: PlanTarget,
         base: ServingOptions, gpus_per_node: int) -> PlanRow:
    gpu, shape, fmt, kv = sw.config(index)
    options = _options(target, base, kv)
    deployment = Deployment(gpu_count=shape.gpu_count, tp=shape.tp, pp=shape.pp)
    result = engine_fit(spec, gpu, fmt, deployment, options, target.engine, memory_fraction=target.memory_fraction)
    bounds = speed_bounds(spec, gpu, fmt, result, concurrency=target.concurrency, efficiency=target.efficiency)
    fraction = target.memory_fraction if target.memory_fraction is not None else 0.9
    launch = launch_command(target.engine, result, spec.hf_id or spec.name, memory_fraction=fraction)
    price = gpu.price_per_hour
    return PlanRow(
        rank=rank, gpu=gpu.name, gpu_count=shape.gpu_count, nodes=ceil_div(shape.gpu_count, gpus_per_node),
        tp=shape.tp, pp=shape.pp, replicas=shape.replicas, dtype=fmt.name, kv_dtype=result.kv_dtype,
        price_per_hour=None if price is None else price * shape.gpu_count, price_per_hour_per_gpu=price,
        max_concurrency=result.max_concurrency or 0, recommended_concurrency=result.recommended_concurrency or 0,
        weights_bytes_per_gpu=result.weights_bytes_per_gpu, kv_budget_bytes_per_gpu=result.kv_budget_bytes_per_gpu,
        kv_budget_bytes=result.kv_budget_bytes, tokens_per_second=bounds.tokens_per_second,
        tokens_per_second_per_request=bounds.tokens_per_second_per_request, ttft_seconds=bounds.ttft_seconds,
        launch=launch, fit=result, speed=bounds,
    )


def _first_fastest_per_cell(sw: Sweep) -> Any:
    """Flat [G, S, F, K] indexes (ascending) of the first fastest serving configuration of each (GPU type,
    GPU count) cell: what pareto_front's _fastest_per_cell keeps of every serving row (a cell's rows have
    one price here, the GPU's price x the count), found on the grid, so the front is given about one row
    per cell instead of every serving configuration (~110k at --max-gpus 128) and its own reduction keeps
    them all. None where _fastest_per_cell might not apply (its cell bound) or the shapes are not in GPU
    count order (shapes() lists them so); the caller then passes every serving row."""
    import numpy as np

    n_g, n_s, n_f, n_k = sw.fits.shape
    counts = np.array([sh.gpu_count for sh in sw.shapes], dtype=np.int64)
    if not n_s or counts.min() < 1 or (counts[1:] < counts[:-1]).any() or n_g * (int(counts.max()) + 1) > 1 << 24:
        return None
    fits = sw.fits.reshape(n_g, n_s, n_f * n_k)
    masked = np.where(fits, sw.tokens_per_second.reshape(n_g, n_s, n_f * n_k), -np.inf)
    masked[np.isnan(masked)] = 0.0  # pareto_front: nan speed counts as 0
    new_count = np.ones(n_s, dtype=bool)
    np.not_equal(counts[1:], counts[:-1], out=new_count[1:])
    starts = np.flatnonzero(new_count)  # each count's first shape
    count_of = np.cumsum(new_count) - 1  # [S] -> its count's segment
    best = np.maximum.reduceat(masked.max(axis=2), starts, axis=1)  # [G, counts]: the cell's fastest
    hit = (masked == best[:, count_of, None]) & fits  # [G, S, F x K]
    first_shape = np.minimum.reduceat(np.where(hit.any(axis=2), np.arange(n_s), n_s), starts, axis=1)
    g_idx, c_idx = np.nonzero(first_shape < n_s)  # GPU type, then count: ascending flat order
    s_idx = first_shape[g_idx, c_idx]
    return (g_idx * n_s + s_idx) * (n_f * n_k) + hit[g_idx, s_idx].argmax(axis=1)


def plan(spec: ModelSpec, gpus: Sequence[GpuSpec], formats: Sequence[WeightFormat], kv_dtypes: Sequence[str],
         target: PlanTarget, base: ServingOptions | None = None,
         progress: Callable[[int, int], None] | None = None) -> PlanResult:
    """Sweep, keep what serves the target, return the Pareto front (first `target.top` rows) and the
    smallest single GPU that serves it alone."""
    import numpy as np

    base = base or ServingOptions(context_tokens=target.context_tokens)
    sw = sweep(spec, gpus, formats, kv_dtypes, target, base, progress)
    serving = int(np.count_nonzero(sw.fits))
    notes: list[str] = []
    rows: list[PlanRow] = []
    front: list[int] = []  # flat indexes in [G, S, F, K] order
    if serving:
        shape4 = sw.fits.shape
        kept = _first_fastest_per_cell(sw)
        candidates = np.flatnonzero(sw.fits) if kept is None else kept  # flat indexes, ascending
        gpu_of = candidates // (shape4[1] * shape4[2] * shape4[3])
        shape_of = (candidates // (shape4[2] * shape4[3])) % shape4[1]
        price_gpu = np.array([g.price_per_hour if g.price_per_hour is not None else np.nan for g in gpus])
        counts = np.array([sh.gpu_count for sh in sw.shapes])
        price = price_gpu[gpu_of] * counts[shape_of]
        speed = sw.tokens_per_second.reshape(-1)[candidates]
        # Ties on all three keys are broken towards fewer nodes, less PP, then the listed dtype order.
        front = [int(candidates[i]) for i in pareto_front(price, counts[shape_of], speed, gpu_of)]
        del gpu_of, shape_of, price, speed, candidates
        for rank, flat in enumerate(front[:target.top], start=1):
            index = tuple(int(x) for x in np.unravel_index(flat, shape4))
            rows.append(_row(rank, spec, sw, index, target, base, target.gpus_per_node))  # type: ignore[arg-type]

    # Reverse question: the smallest single GPU (least memory) that serves the target alone.
    single_rows = [i for i, sh in enumerate(sw.shapes) if sh.gpu_count == 1]
    smallest = smallest_row = None
    if single_rows:
        si = single_rows[0]
        best: tuple[int, tuple[int, int, int, int]] | None = None
        for gi, gpu in enumerate(gpus):
            hits = sw.fits[gi, si]  # [F, K]
            if hits.any():
                # The fastest serving (format, KV dtype), the first of equals in row order (nan speed = 0).
                speeds = np.where(hits, np.nan_to_num(sw.tokens_per_second[gi, si]), -np.inf)
                f, k = np.unravel_index(int(np.argmax(speeds)), speeds.shape)
                if best is None or gpu.usable_memory_bytes < gpus[best[1][0]].usable_memory_bytes:
                    best = (gpu.usable_memory_bytes, (gi, si, int(f), int(k)))
        if best is not None:
            smallest_row = _row(0, spec, sw, best[1], target, base, target.gpus_per_node)
            smallest = smallest_row.gpu

    unpriced = sorted({g.name for g in gpus if g.price_per_hour is None})
    if unpriced:
        notes.append(f"no price_per_hour in the presets of {', '.join(unpriced)}: ranked after priced GPUs, by GPU "
                     "count and speed")
    if len(front) > target.top:
        notes.append(f"{len(front)} deployments on the Pareto front; showing the first {target.top} (--top)")
    notes.append("serves = loads and holds at least the target number of full-context requests; tokens/s are "
                 "roofline upper bounds at the target concurrency")
    return PlanResult(
        model=spec.name, engine=target.engine, context_tokens=target.context_tokens, concurrency=target.concurrency,
        max_gpus=target.max_gpus, gpus_per_node=target.gpus_per_node, gpu_types=[g.name for g in gpus],
        dtypes=[f.name for f in formats], kv_dtypes=list(kv_dtypes), configurations_evaluated=sw.size,
        configurations_serving=serving, front_size=len(front), rows=rows, smallest_single_gpu=smallest,
        smallest_single_gpu_row=smallest_row, unpriced_gpus=unpriced, fits=bool(serving), notes=notes,
    )


__all__ = ["DEFAULT_DTYPES", "DEFAULT_KV_DTYPES", "PlanResult", "PlanRow", "PlanTarget", "Sweep",
           "pareto_front", "plan", "shapes", "sweep"]
