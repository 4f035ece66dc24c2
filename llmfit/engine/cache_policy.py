"""Cache policies: how an engine lays out each layer kind's KV and state, and what its pool admits.

A layer kind (llmfit/engine/layers.py) says what one layer caches per token and per sequence; the
policy says how an engine pages, groups, pads and admits it. The engine types (llmfit/engine/engines.py)
hold one policy per version. Every rule cites the engine source it follows.

Common arithmetic (per replica, fullest GPU):
    kv_bytes_per_token_per_gpu = sum over the stage's layers of kind.kv_bytes_per_token(kv_bits, tp)
    kv_tokens                  = min over stages of floor(budget / (bytes per token x block)) x block
    request_bytes_per_gpu      = sum over layers of bytes/token x block-rounded token_cap(context) + state
    max_requests               = min over stages of floor(budget / request_bytes_per_gpu)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from fractions import Fraction

from llmfit.engine.layers import LayerGroup
from llmfit.errors import SpecError
from llmfit.specs import ModelSpec
from llmfit.units import ceil_div

# Bits per cached value. q8_0 / q4_0 are llama.cpp's block formats (34 / 18 bytes per 32 values).
KV_DTYPE_BITS: dict[str, Fraction] = {
    "fp32": Fraction(32),
    "fp16": Fraction(16),
    "bf16": Fraction(16),
    "fp8": Fraction(8),
    "fp8_e4m3": Fraction(8),
    "fp8_e5m2": Fraction(8),
    "q8_0": Fraction(34 * 8, 32),
    "q4_0": Fraction(18 * 8, 32),
}


@dataclass(frozen=True)
class StageBudget:
    """One pipeline stage."""

    layer_start: int  # [layer_start, layer_end) decoder layer indices on this stage
    layer_end: int
    budget_bytes_per_gpu: int  # KV/state pool per GPU of this stage (the engine's budget rule computed it)


@dataclass(frozen=True)
class CacheRequest:
    spec: ModelSpec
    kv_dtype: str  # resolved ("bf16", "fp8", "q8_0", ...)
    tp: int
    stages: tuple[StageBudget, ...]
    context_tokens: int
    block_size: int  # the engine's configured block/page size (the policy may raise it, e.g. vLLM hybrid)
    max_num_batched_tokens: int
    max_num_seqs: int


@dataclass(frozen=True)
class CacheLine:
    """One line per layer kind (and one for a sparse indexer's key cache)."""

    kind: str
    layers: int
    kv_bytes_per_token: int  # one replica, this kind's layers, no engine padding
    state_bytes_per_request: int
    tokens_held_per_request: int
    bytes_per_request: int
    formula: str


@dataclass(frozen=True)
class CachePlan:
    block_size: int  # block/page size actually used
    kv_bytes_per_token: int  # one replica (design.md rule)
    kv_bytes_per_token_per_gpu: int  # fullest GPU
    state_bytes_per_request: int  # one replica
    kv_bytes_per_request: int  # one replica: KV of its context (block-rounded, windows capped) + state
    request_bytes_per_gpu: int  # fullest GPU
    kv_tokens: int  # per replica, what the engine prints as "GPU KV cache size: N tokens"
    max_requests: int  # whole full-context requests the pool admits per replica (before max_num_seqs)
    engine_max_concurrency: float  # what the engine prints as "Maximum concurrency for N tokens per request"
    lines: tuple[CacheLine, ...]
    steps: tuple[tuple[str, str, str, int | float, str], ...]  # (label, formula, substituted, result, unit)
    notes: tuple[str, ...]


def kv_bits(kv_dtype: str) -> Fraction:
    if kv_dtype not in KV_DTYPE_BITS:
        raise SpecError(f"unknown KV cache dtype {kv_dtype!r} (known: {', '.join(KV_DTYPE_BITS)})")
    return KV_DTYPE_BITS[kv_dtype]


def _ceil(value: Fraction) -> int:
    return ceil_div(value.numerator, value.denominator)


def _round_up(tokens: int, block: int) -> int:
    return ceil_div(tokens, block) * block if block > 1 else tokens


@dataclass(frozen=True)
class _KindFigures:
    """One layer group's figures at this request's dtype and TP."""

    group: LayerGroup
    per_token_gpu: Fraction  # per layer, one GPU
    state_gpu: int  # per layer, one GPU
    cap: int  # tokens one request keeps in this layer


def _figures(request: CacheRequest) -> list[_KindFigures]:
    bits = kv_bits(request.kv_dtype)
    return [_KindFigures(group=g, per_token_gpu=g.kind.kv_bytes_per_token(bits, request.tp),
                         state_gpu=g.kind.state_bytes(request.tp), cap=g.kind.token_cap(request.context_tokens))
            for g in request.spec.layer_groups]


def cache_lines(request: CacheRequest, block: int) -> tuple[CacheLine, ...]:
    """Each kind's own bytes (one replica, no engine padding or grouping); a sparse indexer's key cache is
    its own line. Tokens held are block-rounded at `block` (1 = exact)."""
    bits, tp = kv_bits(request.kv_dtype), request.tp
    lines: list[CacheLine] = []
    for group in request.spec.layer_groups:
        kind, n = group.kind, group.layers
        cap = kind.token_cap(request.context_tokens)
        held = _round_up(cap, block) if cap else 0
        components = kind.cache_components(bits, tp)
        state = kind.state_bytes(tp) * tp * n
        if not components:
            lines.append(CacheLine(kind=kind.name, layers=n, kv_bytes_per_token=0, state_bytes_per_request=state,
                                   tokens_held_per_request=0, bytes_per_request=state,
                                   formula=f"{n} layers x ({kind.state_formula()})"))
            continue
        for i, comp in enumerate(components):
            per_token = _ceil(comp.bytes_per_token * tp * n)
            own_state = state if i == 0 else 0
            lines.append(CacheLine(kind=comp.name, layers=n, kv_bytes_per_token=per_token,
                                   state_bytes_per_request=own_state, tokens_held_per_request=held,
                                   bytes_per_request=_ceil(comp.bytes_per_token * tp * n * held) + own_state,
                                   formula=f"{n} layers x {comp.formula}"))
    return tuple(lines)


def _stage_figures(figures: list[_KindFigures], stage: StageBudget, context: int, block: int
                   ) -> tuple[int, int, int]:
    """(KV bytes per token, state bytes per request, request bytes) on one GPU of a stage."""
    per_token = Fraction(0)
    request = Fraction(0)
    state = 0
    for fig in figures:
        n = fig.group.layers_in(stage.layer_start, stage.layer_end)
        per_token += n * fig.per_token_gpu
        request += n * fig.per_token_gpu * (_round_up(fig.cap, block) if fig.cap else 0)
        state += n * fig.state_gpu
    return _ceil(per_token), state, _ceil(request) + state


class CachePolicy(ABC):
    """How one engine caches: block/page size, grouping, admission."""

    name: str = ""

    @abstractmethod
    def plan(self, request: CacheRequest) -> CachePlan: ...


@dataclass(frozen=True)
class _Totals:
    kv_per_token: int
    state: int
    request: int


def _replica_totals(figures: list[_KindFigures], request: CacheRequest, block: int) -> _Totals:
    """One replica = every GPU's share (replicated heads counted on each GPU that holds them)."""
    tp = request.tp
    per_token = sum((fig.group.layers * fig.per_token_gpu * tp for fig in figures), Fraction(0))
    per_request = sum((fig.group.layers * fig.per_token_gpu * tp * (_round_up(fig.cap, block) if fig.cap else 0)
                       for fig in figures), Fraction(0))
    state = sum(fig.group.layers * fig.state_gpu * tp for fig in figures)
    return _Totals(kv_per_token=_ceil(per_token), state=state, request=_ceil(per_request) + state)


@dataclass(frozen=True)
class VllmPagedPolicy(CachePolicy):
    """vLLM with one block size for every layer (V0, and v1 before the hybrid allocator): every layer
    gets a block table of `block_size` tokens; sliding-window layers keep at most the window
    (vllm/v1/kv_cache_interface.py SlidingWindowSpec), fixed states are added per request."""

    name: str = "vllm-paged"

    def plan(self, request: CacheRequest) -> CachePlan:
        block = request.block_size
        figures = _figures(request)
        totals = _replica_totals(figures, request, block)
        per_stage = [(stage, *_stage_figures(figures, stage, request.context_tokens, block))
                     for stage in request.stages]
        fullest = max(per_stage, key=lambda s: (s[1], s[3]))
        kv_tokens = min((s[0].budget_bytes_per_gpu // (s[1] * block)) * block if s[1] else 0 for s in per_stage)
        if kv_tokens < 0:
            kv_tokens = 0
        max_requests = min(max(0, s[0].budget_bytes_per_gpu) // s[3] if s[3] else 0 for s in per_stage)
        context = request.context_tokens
        steps: list[tuple[str, str, str, int | float, str]] = []
        stage0, per_token_gpu = fullest[0], fullest[1]
        steps.append(("KV tokens per replica", "floor(budget / (bytes per token x block)) x block",
                      f"floor({stage0.budget_bytes_per_gpu:,} / {per_token_gpu * block:,}) x {block}", kv_tokens,
                      "tokens"))
        return CachePlan(
            block_size=block,
            kv_bytes_per_token=totals.kv_per_token,
            kv_bytes_per_token_per_gpu=per_token_gpu,
            state_bytes_per_request=totals.state,
            kv_bytes_per_request=totals.request,
            request_bytes_per_gpu=fullest[3],
            kv_tokens=kv_tokens,
            max_requests=max_requests,
            engine_max_concurrency=kv_tokens / context,
            lines=cache_lines(request, block),
            steps=tuple(steps),
            notes=(),
        )


@dataclass(frozen=True)
class ExactPolicy(CachePolicy):
    """No engine: each kind's own bytes, exact tokens (block 1), no padding or grouping (`llmfit kv`)."""

    name: str = "exact"

    def plan(self, request: CacheRequest) -> CachePlan:
        return VllmPagedPolicy().plan(_with_block(request, 1))


def _with_block(request: CacheRequest, block: int) -> CacheRequest:
    return CacheRequest(spec=request.spec, kv_dtype=request.kv_dtype, tp=request.tp, stages=request.stages,
                        context_tokens=request.context_tokens, block_size=block,
                        max_num_batched_tokens=request.max_num_batched_tokens, max_num_seqs=request.max_num_seqs)


__all__ = ["KV_DTYPE_BITS", "CacheLine", "CachePlan", "CachePolicy", "CacheRequest", "ExactPolicy",
           "StageBudget", "VllmPagedPolicy", "cache_lines", "kv_bits"]
