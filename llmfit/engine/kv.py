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
"""

from __future__ import annotations

from fractions import Fraction

from pydantic import BaseModel, ConfigDict

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
KV_DTYPES = ("auto", "fp16", "bf16", "fp8", "fp32", "q8_0", "q4_0")


def resolve_kv_dtype(kv_dtype: str, spec: ModelSpec, weight_format: str) -> str:
    """`auto` follows the model's compute dtype, as vLLM: the weight dtype when it is a float width,
    otherwise (quantized weights) the checkpoint's torch_dtype, never wider than 16 bits."""
    if kv_dtype != "auto":
        return kv_dtype
    if weight_format in ("fp32", "fp16", "bf16"):
        return weight_format
    return "fp16" if spec.torch_dtype == "float16" else "bf16"


class KvLayerGroup(BaseModel):
    """Layers that cache the same way: their count, bytes per token per layer, and token cap."""

    model_config = ConfigDict(frozen=True)

    kind: str  # full_attention / sliding_attention / mla
    layers: int
    bytes_per_token_per_layer: int  # whole layer, all KV heads (before TP sharding)
    window_tokens: int | None  # cap on cached tokens (sliding window), None = whole context


class KvLayout(BaseModel):
    """How a model caches: per-layer groups in one KV dtype."""

    model_config = ConfigDict(frozen=True)

    kv_dtype: str
    bits_per_value: float
    values_per_token_per_layer: int  # 2 x kv_heads x head_dim, or the MLA latent width
    groups: list[KvLayerGroup]


def kv_layout(spec: ModelSpec, kv_dtype: str) -> KvLayout:
    bits = KV_DTYPE_BITS[kv_dtype]
    groups: dict[tuple[str, int | None], int] = {}
    if spec.is_mla:
        values = (spec.kv_lora_rank or 0) + (spec.qk_rope_head_dim or 0)
        groups[("mla", None)] = spec.num_hidden_layers
    else:
        values = 2 * spec.kv_heads * spec.real_head_dim
        for kind in spec.attention_kinds:
            if kind == "linear_attention":
                continue  # a fixed-size recurrent state, not a per-token cache
            window = spec.sliding_window if kind == "sliding_attention" else None
            groups[(kind, window)] = groups.get((kind, window), 0) + 1
    per_layer = Fraction(values) * bits / 8
    per_layer_bytes = ceil_div(per_layer.numerator, per_layer.denominator)
    return KvLayout(
        kv_dtype=kv_dtype,
        bits_per_value=float(bits),
        values_per_token_per_layer=values,
        groups=[KvLayerGroup(kind=kind, layers=count, bytes_per_token_per_layer=per_layer_bytes, window_tokens=window)
                for (kind, window), count in groups.items()],
    )


def kv_heads_per_gpu(spec: ModelSpec, tp: int) -> int:
    """KV heads one GPU holds under tensor parallelism: kv_heads / tp, replicated to at least 1."""
    if spec.is_mla:
        return 1
    return max(1, spec.kv_heads // tp)


def kv_shard_fraction(spec: ModelSpec, tp: int) -> Fraction:
    """The share of a layer's KV that one GPU holds (1 when the heads or MLA latent are replicated)."""
    if spec.is_mla:
        return Fraction(1)
    return Fraction(kv_heads_per_gpu(spec, tp), spec.kv_heads)


def _cached_tokens(tokens: int, window: int | None, block_size: int) -> int:
    capped = tokens if window is None else min(tokens, window)
    return ceil_div(capped, block_size) * block_size if block_size > 1 else capped


def request_bytes(layout: KvLayout, tokens: int, *, block_size: int = 1, layer_share: Fraction = Fraction(1),
                  head_share: Fraction = Fraction(1)) -> int:
    """KV bytes of one request of `tokens` tokens (rounded up to whole blocks), for a share of the layers
    and heads (one GPU's share under PP / TP)."""
    total = Fraction(0)
    for group in layout.groups:
        cached = _cached_tokens(tokens, group.window_tokens, block_size)
        total += group.layers * layer_share * group.bytes_per_token_per_layer * head_share * cached
    return ceil_div(total.numerator, total.denominator)


def bytes_per_token(layout: KvLayout, *, layer_share: Fraction = Fraction(1), head_share: Fraction = Fraction(1),
                    windowed: bool = True) -> int:
    """Marginal KV bytes per token of context, counting every layer (the full-context rate)."""
    total = Fraction(0)
    for group in layout.groups:
        total += group.layers * layer_share * group.bytes_per_token_per_layer * head_share
    return ceil_div(total.numerator, total.denominator)


class AttentionVariant(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    kv_heads: int
    kv_bytes_per_request: int
    ratio_to_mha: float


class KvResult(BaseModel):
    """`llmfit kv`: the cache of one model at a context, per token, per request and per batch."""

    model_config = ConfigDict(frozen=True)

    model: str
    kv_dtype: str
    context_tokens: int
    batch: int
    block_size: int
    attention: str  # MHA / GQA / MQA / MLA, with sliding-window note
    num_layers: int
    kv_heads: int
    head_dim: int
    kv_bytes_per_token: int  # all layers at full rate (global layers)
    kv_bytes_per_request: int  # paged: rounded up to whole blocks, windows capped
    kv_bytes_per_request_contiguous: int  # one contiguous reservation of the full context
    total_bytes: int  # batch x kv_bytes_per_request
    layer_groups: list[KvLayerGroup]
    typical_tokens: int | None = None
    typical_bytes_per_request: int | None = None  # paged allocation of a typical (shorter) request
    contiguous_waste_bytes: int | None = None  # what a full-context reservation wastes on a typical request
    paged_waste_bytes: int | None = None  # what block rounding wastes on a typical request
    # What the same model would cache with other attention layouts (guide 4.3).
    variants: list[AttentionVariant] = []


def attention_name(spec: ModelSpec) -> str:
    if spec.is_mla:
        return "MLA"
    if spec.kv_heads == 1:
        base = "MQA"
    elif spec.kv_heads == spec.num_attention_heads:
        base = "MHA"
    else:
        base = f"GQA ({spec.num_attention_heads // spec.kv_heads} query heads per KV head)"
    if any(k == "sliding_attention" for k in spec.attention_kinds):
        base += f" + sliding window {spec.sliding_window}"
    return base


def kv_cache(spec: ModelSpec, *, kv_dtype: str, context_tokens: int, batch: int = 1, block_size: int = 16,
             typical_tokens: int | None = None) -> KvResult:
    layout = kv_layout(spec, kv_dtype)
    per_request = request_bytes(layout, context_tokens, block_size=block_size)
    contiguous = request_bytes(layout, context_tokens, block_size=1)
    typical = waste_contig = waste_paged = None
    if typical_tokens is not None:
        typical = request_bytes(layout, typical_tokens, block_size=block_size)
        exact = request_bytes(layout, typical_tokens, block_size=1)
        waste_contig = contiguous - exact
        waste_paged = typical - exact
    variants = []
    if not spec.is_mla:
        mha_bytes = None
        for name, heads in (("MHA", spec.num_attention_heads), ("GQA-8", 8), ("MQA", 1)):
            if heads > spec.num_attention_heads or spec.num_attention_heads % heads:
                continue
            variant = spec.model_copy(update={"num_key_value_heads": heads})
            size = request_bytes(kv_layout(variant, kv_dtype), context_tokens, block_size=block_size)
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
        kv_bytes_per_request_contiguous=contiguous,
        total_bytes=per_request * batch,
        layer_groups=layout.groups,
        typical_tokens=typical_tokens,
        typical_bytes_per_request=typical,
        contiguous_waste_bytes=waste_contig,
        paged_waste_bytes=waste_paged,
        variants=variants,
    )

