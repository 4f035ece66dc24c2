"""`plan`: every deployment of a model that serves a target, and the Pareto front of price, GPUs and speed.

Enumerated: GPU type x GPU count (1..max_gpus) x tensor-parallel size (a divisor of the count, at most a
node's GPUs, valid for the heads) x pipeline-parallel size (stages may span nodes) x data-parallel
replicas (the rest) x weight format x KV dtype. A configuration serves the target when it loads and
holds at least `concurrency` full-context requests (serving.fit's max_concurrency, under the engine's
budget rule from engines.py).

Speed: the sweep is vectorised. Everything that depends on the model's tensors (weights per GPU,
runtime overhead, KV bytes per request per GPU) is computed once per (format, TP, PP) or
(KV dtype, TP, PP) with the exact integer code of serving.fit; the per-configuration arithmetic
(budget, whole requests, replicas, verdict, roofline tokens/s) then runs on numpy int64/float64 arrays,
with the same operations in the same order, so it agrees exactly with fit (tests hold it to that).

Ranking: the front keeps the deployments no other serving deployment beats on all three of price per
hour (lower), GPUs (fewer) and aggregate tokens/s at the target concurrency (higher); sorted cheapest
first. GPUs without `price_per_hour` rank after priced ones, by GPU count.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from llmfit.engine.emit import LaunchCommand, launch_command
from llmfit.engine.engines import ENGINES, EngineRule, engine_fit, engine_rule
from llmfit.engine.formats import WeightFormat
from llmfit.engine.kv import kv_layout, kv_shard_fraction, request_bytes, resolve_kv_dtype
from llmfit.engine.serving import Deployment, FitResult, ServingOptions, _weights_per_gpu, validate_deployment
from llmfit.engine.speed import (
    Efficiency,
    SpeedBounds,
    speed_bounds,
    touched_expert_share,
)
from llmfit.engine.weights import group_bytes
from llmfit.errors import SpecError
from llmfit.specs import GpuSpec, ModelSpec
from llmfit.units import ceil_div

DEFAULT_DTYPES = ("bf16", "fp8", "awq")
DEFAULT_KV_DTYPES = ("auto", "fp8")


class PlanTarget(BaseModel):
    model_config = ConfigDict(frozen=True)

    context_tokens: int = Field(gt=0)
    concurrency: int = Field(gt=0)
    max_gpus: int = Field(default=16, gt=0, le=4096)
    gpus_per_node: int = Field(default=8, gt=0, le=4096)
    engine: str = "vllm"
    memory_fraction: float | None = Field(default=None, gt=0, le=1)
    efficiency: Efficiency = Efficiency()
    top: int = Field(default=10, gt=0)


@dataclass(frozen=True)
class Shape:
    """How `gpu_count` GPUs are split: tp x pp per replica, `replicas` replicas."""

    gpu_count: int
    tp: int
    pp: int

    @property
    def replicas(self) -> int:
        return self.gpu_count // (self.tp * self.pp)


def shapes(spec: ModelSpec, max_gpus: int, gpus_per_node: int) -> list[Shape]:
    """Every valid split of 1..max_gpus GPUs: TP within a node and valid for the heads, PP <= layers."""
    out = []
    for count in range(1, max_gpus + 1):
        for tp in (d for d in range(1, min(count, gpus_per_node) + 1) if count % d == 0):
            for pp in (d for d in range(1, count // tp + 1) if (count // tp) % d == 0):
                try:
                    validate_deployment(spec, Deployment(gpu_count=count, tp=tp, pp=pp))
                except SpecError:
                    continue
                out.append(Shape(count, tp, pp))
    return out


class PlanRow(BaseModel):
    """One deployment on the front."""

    model_config = ConfigDict(frozen=True)

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


class PlanResult(BaseModel):
    model_config = ConfigDict(frozen=True)

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
    notes: list[str] = []


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


def _stage_delta(spec: ModelSpec, gpu: GpuSpec, fmt: WeightFormat, sh: Shape, base: ServingOptions,
                 rule: EngineRule, fullest_weights: int,
                 lines_cache: dict[tuple[int, int, str], list[list[Any]]], key: tuple[int, int, str]) -> int:
    """fit's pool is the smallest PP stage's (serving.stage_plan); the sweep's budget uses the fullest stage's
    weights: add the difference, under the options the engine's fit runs serving.fit with."""
    from llmfit.engine.serving import stage_plan

    options = base.model_copy(update={"max_num_seqs": rule.max_num_seqs})
    if rule.engine != "vllm":  # SGLang and TRT-LLM run serving.fit with their overhead as one given figure
        options = options.model_copy(update={"overhead_override_bytes": sum(
            line.bytes_per_gpu for line in rule.overhead_lines)})
    stages = stage_plan(spec, gpu, fmt, sh.tp, sh.pp, options, overheads=lines_cache.get(key))
    lines_cache.setdefault(key, stages.overheads)
    overhead = sum(line.bytes_per_gpu for line in stages.overheads[stages.limiting])
    rule_overhead = sum(line.bytes_per_gpu for line in rule.overhead_lines)
    return stages.weights[stages.limiting] + overhead - fullest_weights - rule_overhead


def _options(target: PlanTarget, base: ServingOptions, kv: str) -> ServingOptions:
    return base.model_copy(update={"context_tokens": target.context_tokens, "kv_dtype": kv,
                                   "min_concurrency": target.concurrency})


def sweep(spec: ModelSpec, gpus: Sequence[GpuSpec], formats: Sequence[WeightFormat], kv_dtypes: Sequence[str],
          target: PlanTarget, base: ServingOptions,
          progress: Callable[[int, int], None] | None = None) -> Sweep:
    """Evaluate every configuration; `progress(done, total)` is called once per GPU type."""
    import numpy as np

    if target.engine not in ENGINES:
        raise SpecError(f"unknown engine {target.engine!r} (allowed: {', '.join(ENGINES)})")
    shape_list = shapes(spec, target.max_gpus, target.gpus_per_node)
    n_g, n_s, n_f, n_k = len(gpus), len(shape_list), len(formats), len(kv_dtypes)
    eff = target.efficiency

    # Per (format, shape): weights on the fullest GPU, and what a decode step reads of them.
    weights = np.zeros((n_f, n_s), dtype=np.int64)
    weights_read = np.zeros((n_f, n_s), dtype=np.float64)
    per_replica = np.array([ceil_div(target.concurrency, sh.replicas) for sh in shape_list], dtype=np.int64)
    for fi, fmt in enumerate(formats):
        expert_bytes = sum(i.bytes for i in group_bytes(spec, fmt) if i.group.kind == "expert") if spec.is_moe else 0
        by_split: dict[tuple[int, int], int] = {}
        for si, sh in enumerate(shape_list):
            if (sh.tp, sh.pp) not in by_split:
                by_split[(sh.tp, sh.pp)] = _weights_per_gpu(spec, fmt, sh.tp, sh.pp)
            w = by_split[(sh.tp, sh.pp)]
            weights[fi, si] = w
            weights_read[fi, si] = _weights_read(spec, w, expert_bytes, sh, int(per_replica[si]))

    # Per (format, KV dtype, shape): KV per request on the fullest GPU, paged and unpaged.
    kv_resolved = [[resolve_kv_dtype(kv, spec, fmt.name) for kv in kv_dtypes] for fmt in formats]
    request = np.zeros((n_f, n_k, n_s), dtype=np.int64)
    request_read = np.zeros((n_f, n_k, n_s), dtype=np.float64)
    block = 1 if target.engine == "sglang" else base.block_size
    cache: dict[tuple[str, int, int], tuple[int, int]] = {}
    for fi in range(n_f):
        for ki in range(n_k):
            layout = kv_layout(spec, kv_resolved[fi][ki])
            for si, sh in enumerate(shape_list):
                key = (layout.kv_dtype, sh.tp, sh.pp)
                if key not in cache:
                    layer_share = Fraction(ceil_div(spec.num_hidden_layers, sh.pp), spec.num_hidden_layers)
                    head_share = kv_shard_fraction(spec, sh.tp)
                    cache[key] = (request_bytes(layout, target.context_tokens, block_size=block,
                                                layer_share=layer_share, head_share=head_share),
                                  request_bytes(layout, target.context_tokens, block_size=1,
                                                layer_share=layer_share, head_share=head_share))
                request[fi, ki, si], request_read[fi, ki, si] = cache[key]

    # Per (GPU, shape, format): usable memory and runtime overhead under the engine's rule.
    usable = np.zeros((n_g, n_s), dtype=np.int64)
    overhead = np.zeros((n_g, n_s, n_f), dtype=np.int64)
    fraction = np.zeros((n_g, n_s), dtype=np.float64)
    caps = np.zeros((n_g, n_s), dtype=np.int64)
    valid_gf = np.ones((n_g, n_f), dtype=bool)
    bandwidth = np.array([g.memory_bandwidth_bytes_per_s or np.nan for g in gpus], dtype=np.float64)
    for gi, gpu in enumerate(gpus):
        for fi, fmt in enumerate(formats):
            # Formats whose kernels need hardware the GPU lacks are left out (fp8 on Ampere runs, via Marlin).
            valid_gf[gi, fi] = not (fmt.needs_native == "fp4" and "fp4" not in gpu.native_dtypes and gpu.native_dtypes)
        rules: dict[tuple[int, int, str], EngineRule] = {}
        deltas: dict[tuple[int, int, int], int] = {}
        stage_lines: dict[tuple[int, int, str], list[list[Any]]] = {}
        for si, sh in enumerate(shape_list):
            for fi, fmt in enumerate(formats):
                # The runtime lines depend on the activation width, and MXFP4 MoE on its kernel layout.
                width = "fp32" if fmt.name == "fp32" else "16-bit"
                key = (sh.tp, sh.pp, fmt.name if fmt.name.startswith("mxfp4") else width)
                if key not in rules:
                    rules[key] = engine_rule(target.engine, spec, gpu, fmt, sh.tp, sh.pp, base, target.memory_fraction)
                overhead[gi, si, fi] = sum(line.bytes_per_gpu for line in rules[key].overhead_lines)
                if sh.pp > 1:  # fit plans per PP stage (serving.stage_plan): its pool's stage, not the fullest
                    split = (sh.tp, sh.pp, fi)
                    if split not in deltas:
                        deltas[split] = _stage_delta(spec, gpu, fmt, sh, base, rules[key], int(weights[fi, si]),
                                                     stage_lines, key)
                    overhead[gi, si, fi] += deltas[split]
                fraction[gi, si] = rules[key].memory_fraction
                caps[gi, si] = rules[key].max_num_seqs
            if target.engine == "trt-llm":
                usable[gi, si] = int(gpu.usable_memory_bytes * 1.0)  # fit runs with gpu_util 1.0
            else:
                usable[gi, si] = int(gpu.usable_memory_bytes * float(fraction[gi, si]))
        if progress is not None:
            progress(gi + 1, n_g)

    # The per-configuration arithmetic of serving.fit, broadcast over [G, S, F, K].
    budget = usable[:, :, None] - weights.T[None, :, :] - overhead  # [G, S, F]
    if target.engine == "trt-llm":
        free = budget
        reserve = np.where(free > 0, free - np.floor(free * fraction[:, :, None]).astype(np.int64), 0)
        budget = free - reserve
    budget4 = np.broadcast_to(budget[:, :, :, None], (n_g, n_s, n_f, n_k))
    req4 = np.broadcast_to(np.transpose(request, (2, 0, 1))[None], (n_g, n_s, n_f, n_k))
    loads = budget4 > 0
    safe_req = np.where(req4 > 0, req4, 1)
    whole = np.where(req4 > 0, budget4 // safe_req, 0)
    replicas = np.array([sh.replicas for sh in shape_list], dtype=np.int64)[None, :, None, None]
    cap = caps[:, :, None, None]
    max_conc = np.where(loads, replicas * np.minimum(whole, cap), 0)
    headroom_whole = np.where(req4 > 0, np.floor_divide(budget4 * (1 - base.headroom), safe_req), 0).astype(np.int64)
    recommended = np.where(loads, replicas * np.minimum(headroom_whole, cap), 0)
    valid = np.broadcast_to(valid_gf[:, None, :, None], (n_g, n_s, n_f, n_k))
    fits = valid & loads & (max_conc >= target.concurrency)

    # Roofline tokens/s at the target concurrency (speed.speed_bounds, same order of operations).
    pp = np.array([sh.pp for sh in shape_list], dtype=np.float64)[None, :, None, None]
    per_rep = per_replica.astype(np.float64)[None, :, None, None]
    kv_read = per_rep * np.transpose(request_read, (2, 0, 1))[None]
    round_bytes = pp * weights_read.T[None, :, :, None] + kv_read
    step = round_bytes / (bandwidth[:, None, None, None] * eff.memory)
    tokens = replicas * per_rep / step
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


def pareto_front(price: Any, gpus: Any, speed: Any, gpu_type: Any) -> list[int]:
    """Indexes no other row beats on (price lower, GPUs fewer, speed higher). A missing price (nan) is
    unknown, not free: an unpriced row is compared on price only with rows of the same GPU type (where
    price follows the GPU count). nan speed counts as 0. Sorted: priced rows cheapest first, then unpriced
    rows by GPU count; ties go to the faster."""
    import numpy as np

    priced = ~np.isnan(price)
    speed = np.where(np.isnan(speed), 0.0, speed)
    order = np.lexsort((-speed, gpus, np.where(priced, price, np.inf)))
    front: list[int] = []
    for i in order:
        dominated = False
        for j in front:
            if priced[i] and priced[j]:
                cheaper = price[j] <= price[i]
            elif gpu_type[i] == gpu_type[j]:
                cheaper = gpus[j] <= gpus[i]
            else:
                continue  # unknown price on one side: not comparable
            # Sorted order puts the better of two equal rows first, so "no worse on all three" suffices.
            if cheaper and gpus[j] <= gpus[i] and speed[j] >= speed[i]:
                dominated = True
                break
        if not dominated:
            front.append(int(i))
    return front


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


def plan(spec: ModelSpec, gpus: Sequence[GpuSpec], formats: Sequence[WeightFormat], kv_dtypes: Sequence[str],
         target: PlanTarget, base: ServingOptions | None = None,
         progress: Callable[[int, int], None] | None = None) -> PlanResult:
    """Sweep, keep what serves the target, return the Pareto front (first `target.top` rows) and the
    smallest single GPU that serves it alone."""
    import numpy as np

    base = base or ServingOptions(context_tokens=target.context_tokens)
    sw = sweep(spec, gpus, formats, kv_dtypes, target, base, progress)
    serving = np.argwhere(sw.fits)
    notes: list[str] = []
    rows: list[PlanRow] = []
    front: list[int] = []
    if len(serving):
        price_gpu = np.array([g.price_per_hour if g.price_per_hour is not None else np.nan for g in gpus])
        counts = np.array([sh.gpu_count for sh in sw.shapes])
        price = price_gpu[serving[:, 0]] * counts[serving[:, 1]]
        speed = sw.tokens_per_second[tuple(serving.T)]
        # Ties on all three keys are broken towards fewer nodes, less PP, then the listed dtype order.
        front = pareto_front(price, counts[serving[:, 1]], speed, serving[:, 0])
        for rank, i in enumerate(front[:target.top], start=1):
            rows.append(_row(rank, spec, sw, tuple(int(x) for x in serving[i]), target, base,  # type: ignore[arg-type]
                             target.gpus_per_node))

    # Reverse question: the smallest single GPU (least memory) that serves the target alone.
    single_rows = [i for i, sh in enumerate(sw.shapes) if sh.gpu_count == 1]
    smallest = smallest_row = None
    if single_rows:
        si = single_rows[0]
        best: tuple[int, tuple[int, int, int, int]] | None = None
        for gi, gpu in enumerate(gpus):
            hits = np.argwhere(sw.fits[gi, si])
            if len(hits):
                speeds = [float(np.nan_to_num(sw.tokens_per_second[gi, si, f, k])) for f, k in hits]
                f, k = hits[int(np.argmax(speeds))]
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
        configurations_serving=len(serving), front_size=len(front), rows=rows, smallest_single_gpu=smallest,
        smallest_single_gpu_row=smallest_row, unpriced_gpus=unpriced, fits=bool(len(serving)), notes=notes,
    )


__all__ = ["DEFAULT_DTYPES", "DEFAULT_KV_DTYPES", "PlanResult", "PlanRow", "PlanTarget", "Sweep",
           "pareto_front", "plan", "shapes", "sweep"]
