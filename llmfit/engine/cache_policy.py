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

import functools
from abc import ABC, abstractmethod
from fractions import Fraction

from llmfit.engine.layers import CacheComponent, LayerGroup, LayerKind
from llmfit.engine.records import record
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


@record(kw_only=False)
class StageBudget:
    """One pipeline stage."""

    layer_start: int  # [layer_start, layer_end) decoder layer indices on this stage
    layer_end: int
    budget_bytes_per_gpu: int  # KV/state pool per GPU of this stage (the engine's budget rule computed it)


@record(kw_only=False)
class CacheRequest:
    spec: ModelSpec
    kv_dtype: str  # resolved ("bf16", "fp8", "q8_0", ...)
    tp: int
    stages: tuple[StageBudget, ...]
    context_tokens: int
    block_size: int  # the engine's configured block/page size (the policy may raise it, e.g. vLLM hybrid)
    max_num_batched_tokens: int
    max_num_seqs: int


@record(kw_only=False)
class CacheLine:
    """One line per layer kind (and one for a sparse indexer's key cache)."""

    kind: str
    layers: int
    kv_bytes_per_token: int  # one replica, this kind's layers, no engine padding
    state_bytes_per_request: int
    tokens_held_per_request: int
    bytes_per_request: int
    formula: str


@record(kw_only=False)
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


@record(kw_only=False)
class _KindFigures:
    """One layer group's figures at this request's dtype and TP."""

    group: LayerGroup
    per_token_gpu: Fraction  # per layer, one GPU
    state_gpu: int  # per layer, one GPU
    cap: int  # tokens one request keeps in this layer


# Memoized pure functions of frozen (hashable) layer kinds, a Fraction and ints: the Fraction arithmetic
# of a kind's per-token bytes is the same for every request with that dtype and TP, and `plan` asks the
# policies a few hundred times per sweep with a handful of (kind, dtype, TP) (issue 17). The results are
# the kinds' own (tuples of frozen records, Fractions), so memoizing changes no figure.
@functools.lru_cache(maxsize=4096)
def _components(kind: LayerKind, bits: Fraction, tp: int, indexer_bits: Fraction | None) -> tuple[CacheComponent, ...]:
    return tuple(kind.cache_components(bits, tp, indexer_bits=indexer_bits))


@functools.lru_cache(maxsize=4096)
def _per_token(kind: LayerKind, bits: Fraction, tp: int, indexer_bits: Fraction | None) -> Fraction:
    return kind.kv_bytes_per_token(bits, tp, indexer_bits=indexer_bits)


def _figures(request: CacheRequest, indexer_bits: Fraction | None = None) -> tuple[_KindFigures, ...]:
    bits = kv_bits(request.kv_dtype)
    return tuple(_KindFigures(group=g, per_token_gpu=_per_token(g.kind, bits, request.tp, indexer_bits),
                              state_gpu=g.kind.state_bytes(request.tp), cap=g.kind.token_cap(request.context_tokens))
                 for g in request.spec.layer_groups)


def cache_lines(request: CacheRequest, block: int, indexer_bits: Fraction | None = None) -> tuple[CacheLine, ...]:
    """Each kind's own bytes (one replica, no engine padding or grouping); a sparse indexer's key cache is
    its own line (at `indexer_bits` when the engine stores it at the KV type). Tokens held are block-rounded at
    `block` (1 = exact)."""
    return _cache_lines(tuple(request.spec.layer_groups), kv_bits(request.kv_dtype), request.tp,
                        request.context_tokens, block, indexer_bits)


@functools.lru_cache(maxsize=1024)
def _cache_lines(groups: tuple[LayerGroup, ...], bits: Fraction, tp: int, context_tokens: int, block: int,
                 indexer_bits: Fraction | None) -> tuple[CacheLine, ...]:
    """cache_lines of what it reads of a request (frozen layer groups and numbers), memoized: the lines do
    not depend on the stages, which is what `plan`'s policy calls vary (see _components)."""
    lines: list[CacheLine] = []
    for group in groups:
        kind, n = group.kind, group.layers
        cap = kind.token_cap(context_tokens)
        held = _round_up(cap, block) if cap else 0
        components = _components(kind, bits, tp, indexer_bits)
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


def _stage_figures(figures: tuple[_KindFigures, ...], stage: StageBudget, context: int, block: int
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

    def requests_in(self, request: CacheRequest, plan: CachePlan, pool_bytes_per_gpu: int) -> int | None:
        """Whole requests a pool of `pool_bytes_per_gpu` admits, where the engine carves more than one pool out
        of it (the recommended figure keeps a share of the pool free, asked with the smaller pool); None when
        the pool is one byte pool, which the caller divides by one request's bytes."""
        return None


@record(kw_only=False)
class _Totals:
    kv_per_token: int
    state: int
    request: int


@functools.lru_cache(maxsize=1024)  # a pure function of frozen records and ints (see _components)
def _replica_totals(figures: tuple[_KindFigures, ...], tp: int, block: int) -> _Totals:
    """One replica = every GPU's share (replicated heads counted on each GPU that holds them)."""
    per_token = sum((fig.group.layers * fig.per_token_gpu * tp for fig in figures), Fraction(0))
    per_request = sum((fig.group.layers * fig.per_token_gpu * tp * (_round_up(fig.cap, block) if fig.cap else 0)
                       for fig in figures), Fraction(0))
    state = sum(fig.group.layers * fig.state_gpu * tp for fig in figures)
    return _Totals(kv_per_token=_ceil(per_token), state=state, request=_ceil(per_request) + state)


@record(kw_only=False)
class VllmPagedPolicy(CachePolicy):
    """vLLM with one block size for every layer (V0, and v1 before the hybrid allocator): every layer
    gets a block table of `block_size` tokens; sliding-window layers keep at most the window
    (vllm/v1/kv_cache_interface.py SlidingWindowSpec), fixed states are added per request."""

    name: str = "vllm-paged"

    def plan(self, request: CacheRequest) -> CachePlan:
        return _paged_plan(request)


def _paged_plan(request: CacheRequest, indexer_bits: Fraction | None = None) -> CachePlan:
    """One block size for every layer (VllmPagedPolicy); `indexer_bits` as in cache_lines."""
    block = request.block_size
    figures = _figures(request, indexer_bits)
    totals = _replica_totals(figures, request.tp, block)
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
        lines=cache_lines(request, block, indexer_bits),
        steps=tuple(steps),
        notes=(),
    )


@record(kw_only=False)
class ExactPolicy(CachePolicy):
    """No engine: each kind's own bytes, exact tokens (block 1), no padding or grouping (`llmfit kv`)."""

    name: str = "exact"

    def plan(self, request: CacheRequest) -> CachePlan:
        return VllmPagedPolicy().plan(_with_block(request, 1))


@record(kw_only=False)
class _Spec:
    """One vLLM KVCacheSpec of the hybrid allocator: a kind's layers at their page (per GPU)."""

    key: tuple[str, int | None]  # (kind name, window / chunk / encoder tokens)
    layers: tuple[int, ...]
    bytes_per_token: Fraction  # per layer, one GPU (attention kinds)
    state_bytes: int  # per layer, one GPU (state kinds)
    cap_kind: str  # the kind's cache_family: full / sliding / chunked / cross / mla / state
    window: int | None


def _vllm_specs(request: CacheRequest) -> list[_Spec]:
    """vLLM builds one KVCacheSpec per layer (Attention.get_kv_cache_spec, MambaBase.get_kv_cache_spec,
    DeepseekV32IndexerCache.get_kv_cache_spec); equal specs group together (kv_cache_utils.py)."""
    bits, tp = kv_bits(request.kv_dtype), request.tp
    specs: list[_Spec] = []
    for group in request.spec.layer_groups:
        kind = group.kind
        if kind.has_state:
            specs.append(_Spec((kind.name, None), group.layer_indices, Fraction(0), kind.state_bytes(tp),
                               kind.cache_family, None))
            continue
        if not kind.caches_tokens:
            continue
        # vLLM's KVCacheSpec per kind (vllm/v1/kv_cache_interface.py): the kind's cache family.
        for comp in _components(kind, bits, tp, None):
            specs.append(_Spec((comp.name, kind.window), group.layer_indices, comp.bytes_per_token, 0,
                               kind.cache_family, kind.window))
    return specs


@record(kw_only=False)
class VllmHybridPolicy(CachePolicy):
    """vLLM v1's hybrid KV cache manager (vllm/v1/core/kv_cache_utils.py get_kv_cache_groups,
    vllm/v1/kv_cache_interface.py, vllm/platforms/interface.py Platform._align_hybrid_block_size):

    1. page size: with Mamba-like state layers the attention block size is raised until one attention page
       holds one state: block = align x cdiv(state_page, align x attn_page_1_token), align = max(kernel
       block, --block-size) (16 for FlashAttention/Triton, 64 for FlashMLA); the state page is padded to the
       attention page (mamba_page_size_padded). Without state layers all pages already match.
    2. grouping (_get_kv_cache_groups_uniform_page_size): layers grouped by spec; group_size = the smallest
       layer count among specs (the largest if it is < 1.5 x the smallest); each spec split into
       cdiv(n, group_size) groups, padding layers in the last (Gemma-3-27B: 10 full + 52 sliding -> 7 groups
       of 10). A model whose layers all share one page but differ only in size (DeepSeek-V3.2's MLA and
       indexer) is one group (UniformTypeKVCacheSpecs), each layer its own tensor.
    3. num_blocks = budget // page_size // group_size (get_num_blocks), the smallest over PP stages;
       "GPU KV cache size" = num_blocks // len(groups) x min block size (_report_kv_cache_config).
    4. "Maximum concurrency" = num_blocks / cdiv(group_size x sum over groups of max_memory_usage_bytes,
       page_size x group_size) (get_max_concurrency_for_kv_cache_config); per group:
       full attention cdiv(max_model_len, block) pages; sliding window cdiv(min(window - 1 +
       max_num_batched_tokens, max_model_len), block) + 1 pages; chunked cdiv(min(chunk +
       max_num_batched_tokens, max_model_len), block) pages; Mamba one page (mamba_cache_mode 'none';
       'align' keeps 2) (SlidingWindowSpec / ChunkedLocalAttentionSpec / MambaSpec.max_memory_usage_bytes).
    """

    name: str = "vllm-hybrid"
    kernel_block_alignment: int = 16  # FlashAttentionBackend.get_supported_kernel_block_sizes: MultipleOf(16)
    mla_kernel_block_alignment: int = 64  # FlashMLA backends: block size 64
    mamba_pages_per_request: int = 1  # mamba_cache_mode 'none' (1 + speculative blocks); 'align': 2

    def plan(self, request: CacheRequest) -> CachePlan:
        specs = _vllm_specs(request)
        if not specs:  # attention-free and state-free: nothing to page
            return VllmPagedPolicy().plan(request)
        attn = [s for s in specs if s.cap_kind != "state"]
        state = [s for s in specs if s.cap_kind == "state"]
        notes: list[str] = []
        steps: list[tuple[str, str, str, int | float, str]] = []
        block = request.block_size
        if state and attn:
            has_mla = any(s.cap_kind == "mla" for s in attn)
            align = max(self.mla_kernel_block_alignment if has_mla else self.kernel_block_alignment, block)
            per_token_1 = _ceil(attn[0].bytes_per_token)
            state_page = max(s.state_bytes for s in state)
            raised = align * ceil_div(state_page, align * per_token_1)
            if raised > block:
                notes.append(f"vLLM raises the attention block size to {raised} tokens so one page "
                             f"({raised} x {per_token_1:,} B) holds one state ({state_page:,} B)")
                steps.append(("attention block size", "align x cdiv(state page, align x attention bytes/token)",
                              f"{align} x cdiv({state_page:,}, {align} x {per_token_1:,})", raised, "tokens"))
                block = raised
        page = _ceil(attn[0].bytes_per_token * block) if attn else max((s.state_bytes for s in state), default=0)
        # Page sizes of all attention specs must match (unify_kv_cache_spec_page_size raises the smaller
        # ones' block size by an integer ratio); when they differ only in size (MLA + indexer) vLLM keeps
        # one group with per-layer tensors (UniformTypeKVCacheSpecs).
        pages = {_ceil(s.bytes_per_token * block) for s in attn}
        uniform_type = len(pages) > 1 and not state and len({s.cap_kind for s in attn}) == 1
        if uniform_type:
            return self._uniform_type(request, block, steps, notes)
        counts = [len(s.layers) for s in specs]
        group_size = min(counts)
        if max(counts) < group_size * 1.5:
            group_size = max(counts)
        groups: list[tuple[_Spec, tuple[int, ...]]] = []
        for s in specs:
            n_groups = ceil_div(len(s.layers), group_size)
            for i in range(n_groups):
                groups.append((s, s.layers[i::n_groups]))
        padding = len(groups) * group_size - sum(counts)
        if len(groups) > 1:
            notes.append(f"vLLM hybrid allocator: {len(specs)} layer kinds in {len(groups)} groups of {group_size} "
                         f"layers ({padding} padding layers)")
            steps.append(("KV cache groups", "per kind cdiv(layers, group_size), group_size = fewest layers of a kind",
                          " + ".join(f"cdiv({len(s.layers)}, {group_size})" for s in specs), len(groups), "groups"))
        num_blocks = None
        stage_sizes: list[int] = []  # per PP stage: the layers per group it holds (its KV tensors)
        for stage in request.stages:
            size_s = max(sum(1 for i in members if stage.layer_start <= i < stage.layer_end) for _, members in groups)
            stage_sizes.append(size_s)
            if size_s == 0 or page == 0:
                continue
            blocks_s = max(0, stage.budget_bytes_per_gpu) // page // size_s
            num_blocks = blocks_s if num_blocks is None else min(num_blocks, blocks_s)
        num_blocks = num_blocks or 0
        context = request.context_tokens
        # Mamba groups' block size is max_model_len unless mamba_cache_mode is 'align' (vllm/platforms/interface.py).
        min_block = min(block if s.cap_kind != "state" else context for s, _ in groups)
        kv_tokens = num_blocks // len(groups) * min_block if groups else 0
        pages_per_request = sum(self._pages(s, request, block) for s, _ in groups)
        max_concurrency = num_blocks / pages_per_request if pages_per_request else 0.0
        steps.append(("GPU KV cache size", "num_blocks // groups x block",
                      f"{num_blocks:,} // {len(groups)} x {min_block}", kv_tokens, "tokens"))
        steps.append(("maximum concurrency", "num_blocks / pages per request (all groups)",
                      f"{num_blocks:,} / {pages_per_request}", round(max_concurrency, 2), "requests"))
        figures = _figures(request)
        totals = _replica_totals(figures, request.tp, block)
        # One request holds pages_per_request pages in each of a stage's size_s tensors (padding included).
        request_gpu = pages_per_request * page * max(stage_sizes, default=group_size)
        per_token_gpu = max(_stage_figures(figures, stage, context, block)[0] for stage in request.stages)
        return CachePlan(
            block_size=block,
            kv_bytes_per_token=totals.kv_per_token,
            kv_bytes_per_token_per_gpu=per_token_gpu,
            state_bytes_per_request=totals.state,
            kv_bytes_per_request=pages_per_request * page * sum(stage_sizes) * request.tp,
            request_bytes_per_gpu=request_gpu,
            kv_tokens=kv_tokens,
            max_requests=int(max_concurrency),
            engine_max_concurrency=max_concurrency,
            lines=cache_lines(request, block),
            steps=tuple(steps),
            notes=tuple(notes),
        )

    def _pages(self, spec: _Spec, request: CacheRequest, block: int) -> int:
        context, batched = request.context_tokens, request.max_num_batched_tokens
        if spec.cap_kind == "state":
            return self.mamba_pages_per_request
        if spec.cap_kind == "sliding" and spec.window:
            return ceil_div(min(spec.window - 1 + batched, context), block) + 1
        if spec.cap_kind == "chunked" and spec.window:
            return ceil_div(min(spec.window + batched, context), block)
        if spec.cap_kind == "cross" and spec.window:
            return ceil_div(spec.window, block)
        return ceil_div(context, block)

    def _uniform_type(self, request: CacheRequest, block: int, steps: list[tuple[str, str, str, int | float, str]],
                      notes: list[str]) -> CachePlan:
        plan = VllmPagedPolicy().plan(_with_block(request, block))
        notes.append("vLLM: one KV cache group, each layer its own tensor (UniformTypeKVCacheSpecs: same kind, "
                     "different page sizes, e.g. MLA + the sparse indexer's key cache)")
        return CachePlan(**{**plan.__dict__, "steps": tuple(steps) + plan.steps, "notes": tuple(notes)})


@record(kw_only=False)
class SglangPolicy(CachePolicy):
    """SGLang: a token pool of page size 1 for the attention layers and, for hybrid models, a separate
    Mamba state pool (sglang/srt/model_executor/model_runner.py: mamba budget = rest x
    mamba_full_memory_ratio / (1 + ratio), max_mamba_cache_size = budget // state bytes per request; the
    rest sizes the full-attention token pool). Sliding-window layers (SWAKVPool) hold their window."""

    name: str = "sglang"
    mamba_full_memory_ratio: float = 0.9  # server_args.py default

    def pools(self, budget: int, state: int, kv_per_request: int) -> tuple[int, int, int]:
        """(state slots, attention pool bytes, whole requests) of a budget split the way SGLang splits it."""
        mamba_budget = int(budget * self.mamba_full_memory_ratio / (1 + self.mamba_full_memory_ratio))
        states = max(0, mamba_budget) // state
        attn_budget = max(0, budget - states * state)
        by_tokens = attn_budget // kv_per_request if kv_per_request else states
        return states, attn_budget, min(states, by_tokens)

    def requests_in(self, request: CacheRequest, plan: CachePlan, pool_bytes_per_gpu: int) -> int | None:
        state = _stage_max_state(request)
        if not state:
            return None
        return self.pools(pool_bytes_per_gpu, state, plan.request_bytes_per_gpu - state)[2]

    def plan(self, request: CacheRequest) -> CachePlan:
        # A sparse indexer's keys at the KV cache type (src/llama-kv-cache-dsa.cpp), not vLLM's fp8 + scales.
        paged = _paged_plan(_with_block(request, 1), kv_bits(request.kv_dtype))
        state = _stage_max_state(request)
        if not state:
            return paged
        budget = min(s.budget_bytes_per_gpu for s in request.stages)
        mamba_budget = int(budget * self.mamba_full_memory_ratio / (1 + self.mamba_full_memory_ratio))
        states, attn_budget, max_requests = self.pools(budget, state, paged.request_bytes_per_gpu - state)
        per_token = paged.kv_bytes_per_token_per_gpu
        kv_tokens = attn_budget // per_token if per_token else 0
        notes = (f"SGLang: separate Mamba state pool of {states:,} requests ({mamba_budget:,} B, "
                 f"mamba_full_memory_ratio {self.mamba_full_memory_ratio}); attention pool {kv_tokens:,} tokens",)
        return CachePlan(**{**paged.__dict__, "kv_tokens": kv_tokens, "max_requests": max_requests,
                            "engine_max_concurrency": kv_tokens / request.context_tokens, "notes": notes})


def _stage_max_state(request: CacheRequest) -> int:
    tp = request.tp
    return max(sum(g.layers_in(s.layer_start, s.layer_end) * g.kind.state_bytes(tp) for g in request.spec.layer_groups)
               for s in request.stages)


@record(kw_only=False)
class LlamaCppPolicy(CachePolicy):
    """llama.cpp: a KV cache of cells (one per token of -c, all sequences together when unified), a
    sliding-window cache of size_swa cells (llama-kv-cache-iswa.cpp), and for recurrent layers one cell
    per sequence (src/llama-memory-recurrent.cpp: mem_size = max(1, n_seq_max)) holding conv state
    n_embd_r() and SSM state n_embd_s() (src/llama-hparams.cpp) in f32 (llama-model.cpp create_memory:
    type_r = type_s = GGML_TYPE_F32). The state shapes are vLLM's at TP 1 (same formulas: Mamba-2, Gated
    DeltaNet and KDA n_embd_r / n_embd_s). A sparse indexer's keys are cached at the KV type, not vLLM's fp8
    (src/llama-kv-cache-dsa.cpp)."""

    name: str = "llama.cpp"
    state_bits: int = 32
    ubatch: int = 512
    pad: int = 256

    def plan(self, request: CacheRequest) -> CachePlan:
        # A sparse indexer's keys at the KV cache type (src/llama-kv-cache-dsa.cpp), not vLLM's fp8 + scales.
        paged = _paged_plan(_with_block(request, 1), kv_bits(request.kv_dtype))
        state_per_seq = sum(g.layers * recurrent_cell_bytes(g, self.state_bits) for g in request.spec.layer_groups)
        per_request = paged.kv_bytes_per_request - paged.state_bytes_per_request + state_per_seq
        budget = min(s.budget_bytes_per_gpu for s in request.stages)
        max_requests = max(0, budget) // per_request if per_request else 0
        return CachePlan(**{**paged.__dict__, "state_bytes_per_request": state_per_seq,
                            "kv_bytes_per_request": per_request, "request_bytes_per_gpu": per_request,
                            "max_requests": max_requests,
                            "notes": ("llama.cpp: recurrent state in f32, one cell per sequence",)
                            if state_per_seq else ()})


def recurrent_cell_bytes(group: LayerGroup, bits: int = 32) -> int:
    """One llama.cpp recurrent cell of a layer: (n_embd_r + n_embd_s) values at `bits` (f32)."""
    return group.kind.state_values() * bits // 8


@record(kw_only=False)
class TrtLlmPolicy(CachePolicy):
    """TensorRT-LLM: paged KV blocks of tokens_per_block (default 64; tensorrt_llm/llmapi KvCacheConfig),
    windowed layers capped at their window (max_attention_window per layer), recurrent states in a
    separate per-sequence pool (tensorrt_llm/_torch/pyexecutor/mamba_cache_manager.py)."""

    name: str = "tensorrt-llm"

    def plan(self, request: CacheRequest) -> CachePlan:
        return VllmPagedPolicy().plan(request)


def _with_block(request: CacheRequest, block: int) -> CacheRequest:
    return CacheRequest(spec=request.spec, kv_dtype=request.kv_dtype, tp=request.tp, stages=request.stages,
                        context_tokens=request.context_tokens, block_size=block,
                        max_num_batched_tokens=request.max_num_batched_tokens, max_num_seqs=request.max_num_seqs)


__all__ = ["KV_DTYPE_BITS", "CacheLine", "CachePlan", "CachePolicy", "CacheRequest", "ExactPolicy", "LlamaCppPolicy",
           "SglangPolicy", "StageBudget", "TrtLlmPolicy", "VllmHybridPolicy", "VllmPagedPolicy", "cache_lines",
           "kv_bits", "recurrent_cell_bytes"]
