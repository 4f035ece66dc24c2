"""KV cache: bytes per token, per request and per batch, layer by layer.

Per layer and token (field guide 4.2; vLLM/SGLang cell size):
- standard attention (MHA / GQA / MQA): 2 (K and V) x kv_heads x head_dim x bytes per value
- multi-head latent attention (DeepSeek-V2/V3): one latent of (kv_lora_rank + qk_rope_head_dim) values,
  no separate K and V (vLLM MLA backends, SGLang `cell_size` for MLA)
- sliding-window layers hold at most `sliding_window` tokens; global layers hold the whole context
Under tensor parallelism each GPU holds kv_heads / tp heads, but at least one: when tp exceeds the
KV heads (MQA, and MLA's single latent) the heads are replicated, as SGLang's
`get_num_kv_heads(tp) = max(1, kv_heads // tp)` and vLLM do. Pipeline parallelism splits the layers.
Paged allocation (vLLM's PagedAttention) rounds each request up to whole blocks of `block_size` tokens.
Each layer kind (llmfit/engine/layers.py) owns its figures: per-token bytes, token cap (window, chunk,
encoder tokens) and fixed per-sequence state (Mamba / linear attention / short conv), which
`kv_bytes_per_request` includes and `state_bytes_per_request` shows apart. `kv` gives each kind's own
bytes, without any engine's grouping or padding (the engines' cache policies apply those in `fit`).
"""

from __future__ import annotations

from dataclasses import field
from fractions import Fraction

from llmfit.engine.cache_policy import KV_DTYPE_BITS, CacheRequest, StageBudget, cache_lines
from llmfit.engine.layers import LayerKind
from llmfit.engine.records import record, replace
from llmfit.specs import ModelSpec
from llmfit.units import ceil_div

__all__ = ["KV_DTYPES", "KV_DTYPE_BITS", "KvKindLine", "KvLayerGroup", "KvLayout", "KvResult", "bytes_per_token",
           "kv_cache", "kv_heads_per_gpu", "kv_layout", "kv_shard_fraction", "request_bytes", "resolve_kv_dtype",
           "state_bytes"]

KV_DTYPES = ("auto", "fp16", "bf16", "fp8", "fp32", "q8_0", "q4_0")


def resolve_kv_dtype(kv_dtype: str, spec: ModelSpec, weight_format: str) -> str:
    """`auto` follows the model's compute dtype, as vLLM: the weight dtype when it is a float width,
    otherwise (quantized weights) the checkpoint's torch_dtype, never wider than 16 bits."""
    if kv_dtype != "auto":
        return kv_dtype
    if weight_format in ("fp32", "fp16", "bf16"):
        return weight_format
    return "fp16" if spec.torch_dtype == "float16" else "bf16"


@record
class KvLayerGroup:
    """Layers that cache the same way: their count, bytes per token per layer, and token cap."""

    kind: str  # the layer kind's name: full_attention / sliding_attention / chunked_attention / mla / mamba2 ...
    layers: int
    bytes_per_token_per_layer: int  # whole layer, all KV heads (before TP sharding); 0 for state-only kinds
    window_tokens: int | None  # cap on cached tokens (window, chunk, encoder tokens), None = whole context
    fixed_tokens: bool = False  # cross-attention: always window_tokens tokens, whatever the context
    state_bytes_per_layer: int = 0  # fixed per-sequence state (conv + SSM / recurrent), whole layer


@record
class KvLayout:
    """How a model caches: per-layer groups in one KV dtype."""

    kv_dtype: str
    bits_per_value: float
    values_per_token_per_layer: int  # 2 x kv_heads x head_dim, or the MLA latent width
    groups: list[KvLayerGroup]


def kv_layout(spec: ModelSpec, kv_dtype: str) -> KvLayout:
    """The model's layer groups at one KV dtype (whole layers, before TP), one entry per kind."""
    bits = KV_DTYPE_BITS[kv_dtype]
    groups: list[KvLayerGroup] = []
    values = 0
    for group in spec.layer_groups:
        kind = group.kind
        per_layer = sum((c.bytes_per_token for c in kind.cache_components(bits, 1)), Fraction(0))
        if kind.caches_tokens and not values:
            values = kind.kv_values_per_token
        groups.append(KvLayerGroup(kind=kind.name, layers=group.layers, bytes_per_token_per_layer=int(per_layer),
                                   window_tokens=kind.window, fixed_tokens=kind.token_cap(0) > 0,
                                   state_bytes_per_layer=kind.state_bytes(1)))
    return KvLayout(kv_dtype=kv_dtype, bits_per_value=float(bits), values_per_token_per_layer=values, groups=groups)


def _first_cache_kind(spec: ModelSpec) -> LayerKind | None:
    return next((g.kind for g in spec.layer_groups if g.kind.caches_tokens), None)


def kv_heads_per_gpu(spec: ModelSpec, tp: int) -> int:
    """KV heads one GPU holds under tensor parallelism: kv_heads / tp, replicated to at least 1 (MLA: 1)."""
    kind = _first_cache_kind(spec)
    return kind.kv_heads_per_gpu(tp) if kind is not None else 1


def kv_shard_fraction(spec: ModelSpec, tp: int) -> Fraction:
    """The share of a layer's KV that one GPU holds (1 when the heads or MLA latent are replicated)."""
    for group in spec.layer_groups:
        if group.kind.caches_tokens:
            return group.kind.kv_shard(tp)
    return Fraction(1)


def state_bytes(spec: ModelSpec, tp: int = 1, *, layer_start: int = 0, layer_end: int | None = None) -> int:
    """Fixed per-sequence state of the layers [layer_start, layer_end) on one GPU under TP (x tp for a
    replica's total when the state shards evenly)."""
    end = spec.num_hidden_layers if layer_end is None else layer_end
    return sum(g.layers_in(layer_start, end) * g.kind.state_bytes(tp) for g in spec.layer_groups)


def _cached_tokens(tokens: int, group: KvLayerGroup, block_size: int) -> int:
    if not group.bytes_per_token_per_layer:
        return 0
    window = group.window_tokens
    capped = window if group.fixed_tokens and window else tokens if window is None else min(tokens, window)
    return ceil_div(capped, block_size) * block_size if block_size > 1 else capped


def request_bytes(layout: KvLayout, tokens: int, *, block_size: int = 1, layer_share: Fraction = Fraction(1),
                  head_share: Fraction = Fraction(1)) -> int:
    """KV bytes of one request of `tokens` tokens (rounded up to whole blocks), for a share of the layers
    and heads (one GPU's share under PP / TP). The fixed state of recurrent kinds is not included: see
    state_bytes and the cache policies (llmfit/engine/cache_policy.py)."""
    total = Fraction(0)
    for group in layout.groups:
        cached = _cached_tokens(tokens, group, block_size)
        total += group.layers * layer_share * group.bytes_per_token_per_layer * head_share * cached
    return ceil_div(total.numerator, total.denominator)


def bytes_per_token(layout: KvLayout, *, layer_share: Fraction = Fraction(1), head_share: Fraction = Fraction(1),
                    windowed: bool = True) -> int:
    """Marginal KV bytes per token of context, counting every layer (the full-context rate)."""
    total = Fraction(0)
    for group in layout.groups:
        total += group.layers * layer_share * group.bytes_per_token_per_layer * head_share
    return ceil_div(total.numerator, total.denominator)


@record
class AttentionVariant:
    name: str
    kv_heads: int
    kv_bytes_per_request: int
    ratio_to_mha: float


@record
class KvKindLine:
    """One layer kind's own share of a request (and one line for a sparse indexer's key cache)."""

    kind: str
    layers: int
    kv_bytes_per_token: int  # this kind's layers, one replica
    tokens_held_per_request: int  # block-rounded, capped at the kind's window / chunk / encoder tokens
    kv_bytes_per_request: int  # KV only
    state_bytes_per_request: int  # fixed state only
    bytes_per_request: int  # KV + state
    formula: str


@record
class KvResult:
    """`llmfit kv`: the cache of one model at a context, per token, per request and per batch."""

    model: str
    kv_dtype: str
    context_tokens: int
    batch: int
    block_size: int
    attention: str  # MHA / GQA / MQA / MLA, with sliding-window note, or the hybrid's kinds
    num_layers: int
    kv_heads: int
    head_dim: int
    kv_bytes_per_token: int  # all layers at full rate (global layers), an indexer's key cache included
    kv_bytes_per_request: int  # paged: rounded up to whole blocks, windows capped; + state_bytes_per_request
    state_bytes_per_request: int  # fixed per-sequence state of recurrent kinds (Mamba, linear attention, conv)
    kv_bytes_per_request_contiguous: int  # one contiguous reservation of the full context (+ state)
    total_bytes: int  # batch x kv_bytes_per_request
    layer_groups: list[KvLayerGroup]
    kinds: list[KvKindLine] = field(default_factory=list)
    typical_tokens: int | None = None
    typical_bytes_per_request: int | None = None  # paged allocation of a typical (shorter) request
    contiguous_waste_bytes: int | None = None  # what a full-context reservation wastes on a typical request
    paged_waste_bytes: int | None = None  # what block rounding wastes on a typical request
    # What the same model would cache with other attention layouts (guide 4.3).
    variants: list[AttentionVariant] = field(default_factory=list)


def _heads_name(heads: int, kv_heads: int) -> str:
    if kv_heads == 1:
        return "MQA"
    if kv_heads == heads:
        return "MHA"
    return f"GQA ({heads // kv_heads} query heads per KV head)"


def attention_name(spec: ModelSpec) -> str:
    """MHA / GQA / MQA / MLA with the window, or each kind of a hybrid with its layer count."""
    groups = spec.layer_groups
    kinds = [g.kind for g in groups]
    if len(kinds) == 1 and kinds[0].family_label:
        return kinds[0].family_label
    if all(k.cache_family in ("full", "sliding") for k in kinds):
        base = _heads_name(spec.num_attention_heads, spec.kv_heads)
        if any(k.cache_family == "sliding" for k in kinds):
            base += f" + sliding window {spec.sliding_window}"
        return base
    parts = []
    for group in groups:
        label = group.kind.name
        if group.kind.kv_head_layout:
            label += f" {_heads_name(spec.num_attention_heads, spec.kv_heads)}"
        if group.kind.window is not None:
            label += f" ({group.kind.window} tokens)"
        parts.append(f"{group.layers} {label}")
    return "hybrid: " + " + ".join(parts)


def _exact_request(spec: ModelSpec, kv_dtype: str, context_tokens: int) -> CacheRequest:
    return CacheRequest(spec=spec, kv_dtype=kv_dtype, tp=1, stages=(StageBudget(0, spec.num_hidden_layers, 0),),
                        context_tokens=context_tokens, block_size=1, max_num_batched_tokens=context_tokens,
                        max_num_seqs=1)


def kind_lines(spec: ModelSpec, *, kv_dtype: str, context_tokens: int, block_size: int) -> list[KvKindLine]:
    """Each kind's own bytes for one request (no engine grouping or padding), indexer key cache apart."""
    lines = cache_lines(_exact_request(spec, kv_dtype, context_tokens), block_size)
    return [KvKindLine(kind=line.kind, layers=line.layers, kv_bytes_per_token=line.kv_bytes_per_token,
                       tokens_held_per_request=line.tokens_held_per_request,
                       kv_bytes_per_request=line.bytes_per_request - line.state_bytes_per_request,
                       state_bytes_per_request=line.state_bytes_per_request, bytes_per_request=line.bytes_per_request,
                       formula=line.formula) for line in lines]


def kv_cache(spec: ModelSpec, *, kv_dtype: str, context_tokens: int, batch: int = 1, block_size: int = 16,
             typical_tokens: int | None = None) -> KvResult:
    layout = kv_layout(spec, kv_dtype)
    state = state_bytes(spec)
    per_request = request_bytes(layout, context_tokens, block_size=block_size) + state
    contiguous = request_bytes(layout, context_tokens, block_size=1) + state
    typical = waste_contig = waste_paged = None
    if typical_tokens is not None:
        typical = request_bytes(layout, typical_tokens, block_size=block_size) + state
        exact = request_bytes(layout, typical_tokens, block_size=1) + state
        waste_contig = contiguous - exact
        waste_paged = typical - exact
    variants = []
    if (all(g.kind.kv_head_layout or not g.kind.caches_tokens for g in spec.layer_groups)
            and _first_cache_kind(spec) is not None):
        mha_bytes = None
        for name, heads in (("MHA", spec.num_attention_heads), ("GQA-8", 8), ("MQA", 1)):
            if heads > spec.num_attention_heads or spec.num_attention_heads % heads:
                continue
            variant = replace(spec, num_key_value_heads=heads)
            size = request_bytes(kv_layout(variant, kv_dtype), context_tokens, block_size=block_size) + state
            mha_bytes = mha_bytes or size
            variants.append(AttentionVariant(name=name if name != "GQA-8" else "GQA (8 KV heads)",
                                             kv_heads=heads, kv_bytes_per_request=size,
                                             ratio_to_mha=size / mha_bytes))
    return KvResult(
        model=spec.name,
        kv_dtype=kv_dtype,
        context_tokens=context_tokens,
        batch=batch,
        block_size=block_size,
        attention=attention_name(spec),
        num_layers=spec.num_hidden_layers,
        kv_heads=spec.kv_heads,
        head_dim=spec.real_head_dim,
        kv_bytes_per_token=bytes_per_token(layout),
        kv_bytes_per_request=per_request,
        state_bytes_per_request=state,
        kv_bytes_per_request_contiguous=contiguous,
        total_bytes=per_request * batch,
        layer_groups=layout.groups,
        kinds=kind_lines(spec, kv_dtype=kv_dtype, context_tokens=context_tokens, block_size=block_size),
        typical_tokens=typical_tokens,
        typical_bytes_per_request=typical,
        contiguous_waste_bytes=waste_contig,
        paged_waste_bytes=waste_paged,
        variants=variants,
    )
