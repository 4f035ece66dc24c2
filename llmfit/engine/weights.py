"""Weight memory: bytes of one copy of the weights under a format, as separate named lines.

Lines: packed (the quantized payload), quantization metadata (scales, zero points, g_idx,
bitsandbytes constants), and tensors kept unquantized (embeddings, lm_head, router, norms, biases).
`bytes = ceil(params x bits / 8)` per tensor group, in exact integer arithmetic.
"""

from __future__ import annotations

from fractions import Fraction

from llmfit.engine.formats import WeightFormat, ggml_bits, gguf_tensor_type
from llmfit.engine.params import TensorGroup, tensor_groups
from llmfit.engine.records import record
from llmfit.specs import ModelSpec
from llmfit.units import ceil_div


@record
class WeightLine:
    name: str
    params: int
    bytes: int  # one copy of the model
    note: str = ""
    bytes_per_gpu: int | None = None  # on the fullest GPU of a deployment (set by serving.fit)


@record
class WeightsResult:
    """One copy of the weights under a format."""

    format: str
    total_params: int
    weights_bytes: int
    packed_bytes: int
    quant_metadata_bytes: int
    unquantized_bytes: int
    raw_bytes: int  # params x nominal bits / 8: the figure people quote ("70B x 0.5 byte = 35 GB")
    bits_per_weight: float  # effective, whole model: 8 x weights_bytes / total_params
    nominal_bits: int
    lines: list[WeightLine]


@record
class GroupBytes:
    """The stored size of one tensor group."""

    group: TensorGroup
    packed: bool
    payload_bytes: int
    metadata_bytes: int = 0
    types: str = ""

    @property
    def bytes(self) -> int:
        return self.payload_bytes + self.metadata_bytes


def _bytes(params: int, bits: Fraction | int) -> int:
    value = Fraction(params) * Fraction(bits)
    return ceil_div(value.numerator, value.denominator * 8)


def _is_packed(group: TensorGroup, fmt: WeightFormat, has_experts: bool = False) -> bool:
    if fmt.targets == "all":
        return group.kind != "vector" or (fmt.vector_bits is not None and fmt.vector_bits < 16)
    if fmt.targets == "linear":
        return group.kind in ("linear", "expert")
    if fmt.targets == "experts":
        # MXFP4 as gpt-oss ships it packs the MoE experts only; a dense model has none, so its linear
        # layers are what such a checkpoint would pack.
        return group.kind == "expert" or (not has_experts and group.kind == "linear")
    return False


_GGUF_NAMES = {
    "attn.q_proj": "attn_q",
    "attn.k_proj": "attn_k",
    "attn.v_proj": "attn_v",
    "attn.o_proj": "attn_output",
    "attn.query_key_value": "attn_qkv",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
    "experts.gate_proj": "ffn_gate_exps",
    "experts.up_proj": "ffn_up_exps",
    "experts.down_proj": "ffn_down_exps",
    "shared_experts.gate_proj": "ffn_gate_shexp",
    "shared_experts.up_proj": "ffn_up_shexp",
    "shared_experts.down_proj": "ffn_down_shexp",
}


def _layer_span(group: TensorGroup, spec: ModelSpec) -> range:
    """Which layers a per-layer group covers (dense MLP layers come first in DeepSeek-style MoE)."""
    if spec.is_moe and spec.first_k_dense_replace:
        if group.name.startswith("mlp."):
            return range(spec.first_k_dense_replace)
        if group.name.startswith(("experts.", "shared_experts.", "router", "shared_expert_gate")):
            return range(spec.first_k_dense_replace, spec.num_hidden_layers)
    return range(spec.num_hidden_layers)


def _gguf_bits(group: TensorGroup, spec: ModelSpec, fmt: WeightFormat) -> tuple[int, str]:
    """Bytes of a tensor group in a GGUF mix, choosing the type layer by layer; returns (bytes, types used)."""
    mix = fmt.gguf_mix or fmt.name
    if group.kind == "vector" or group.kind == "router":
        return _bytes(group.params, 32), "f32"
    if group.kind == "embedding":
        kind = gguf_tensor_type(mix, "token_embd", None, spec.num_hidden_layers, n_per_row=group.cols,
                                arch=spec.architecture, has_output=not spec.tie_word_embeddings)
        return _bytes(group.params, ggml_bits(kind)), kind
    if group.kind == "lm_head":
        kind = gguf_tensor_type(mix, "output", None, spec.num_hidden_layers, n_per_row=group.cols,
                                arch=spec.architecture)
        return _bytes(group.params, ggml_bits(kind)), kind
    tensor = _GGUF_NAMES.get(group.name, "other")
    span = _layer_span(group, spec)
    per_layer = group.params // len(span)
    total = 0
    used: set[str] = set()
    for layer in span:
        kind = gguf_tensor_type(
            mix,
            tensor,
            layer,
            spec.num_hidden_layers,
            n_experts=spec.num_experts,
            gqa_ratio=spec.num_attention_heads // spec.kv_heads,
            n_per_row=group.cols,
            arch=spec.architecture,
            has_output=not spec.tie_word_embeddings,
        )
        used.add(kind)
        total += _bytes(per_layer, ggml_bits(kind))
    return total, "/".join(sorted(used))


def group_bytes(spec: ModelSpec, fmt: WeightFormat) -> list[GroupBytes]:
    """Bytes of every tensor group of `spec` stored as `fmt` (payload, metadata, or unquantized)."""
    out: list[GroupBytes] = []
    for group in tensor_groups(spec):
        if fmt.gguf_mix:
            size, kinds = _gguf_bits(group, spec, fmt)
            if group.kind in ("vector", "router"):
                out.append(GroupBytes(group=group, packed=False, payload_bytes=size, types=kinds))
            else:
                out.append(GroupBytes(group=group, packed=True, payload_bytes=size, types=kinds))
        elif _is_packed(group, fmt, spec.is_moe):
            meta_bits = Fraction(group.params) * fmt.extra_bits_per_weight
            if fmt.group_size:
                groups_per_row = ceil_div(group.cols, fmt.group_size)
                meta_bits += group.rows * groups_per_row * group.count * (fmt.scale_bits + fmt.zero_bits)
            meta_bits += group.cols * group.count * fmt.index_bits_per_col
            out.append(
                GroupBytes(
                    group=group,
                    packed=True,
                    payload_bytes=_bytes(group.params, fmt.payload_bits),
                    metadata_bytes=ceil_div(meta_bits.numerator, meta_bits.denominator * 8),
                )
            )
        else:
            bits = fmt.vector_bits if (group.kind == "vector" and fmt.vector_bits) else fmt.other_bits
            out.append(GroupBytes(group=group, packed=False, payload_bytes=_bytes(group.params, bits)))
    return out


def weight_bytes(spec: ModelSpec, fmt: WeightFormat) -> WeightsResult:
    """Bytes of one copy of the weights of `spec` stored as `fmt`, line by line."""
    sized = group_bytes(spec, fmt)
    total_params = sum(item.group.params for item in sized)
    packed_params = sum(item.group.params for item in sized if item.packed)
    packed_bytes = sum(item.payload_bytes for item in sized if item.packed)
    meta_bytes = sum(item.metadata_bytes for item in sized)
    other_params = sum(item.group.params for item in sized if not item.packed)
    other_bytes = sum(item.payload_bytes for item in sized if not item.packed)
    gguf_types = {t for item in sized if item.packed and item.types for t in item.types.split("/")}

    lines: list[WeightLine] = []
    if fmt.is_quantized:
        note = f"{fmt.payload_bits} bits each" if not fmt.gguf_mix else "types " + ", ".join(sorted(gguf_types))
        lines.append(WeightLine(name="packed weights", params=packed_params, bytes=packed_bytes, note=note))
        if meta_bytes:
            lines.append(WeightLine(name="scales and zero points", params=0, bytes=meta_bytes, note=_meta_note(fmt)))
        if other_params:
            width = "f32" if fmt.gguf_mix else f"{fmt.other_bits}-bit"
            lines.append(
                WeightLine(
                    name="unquantized tensors",
                    params=other_params,
                    bytes=other_bytes,
                    note=f"embeddings, lm_head, router, norms, biases in {width}"
                    if not fmt.gguf_mix
                    else "norms and router in f32",
                )
            )
    else:
        lines.append(
            WeightLine(name="weights", params=other_params, bytes=other_bytes, note=f"{fmt.other_bits} bits each")
        )
    total_bytes = packed_bytes + meta_bytes + other_bytes
    return WeightsResult(
        format=fmt.name,
        total_params=total_params,
        weights_bytes=total_bytes,
        packed_bytes=packed_bytes,
        quant_metadata_bytes=meta_bytes,
        unquantized_bytes=other_bytes,
        raw_bytes=_bytes(total_params, fmt.nominal_bits),
        bits_per_weight=8 * total_bytes / total_params,
        nominal_bits=fmt.nominal_bits,
        lines=lines,
    )


def _meta_note(fmt: WeightFormat) -> str:
    parts = []
    if fmt.group_size:
        parts.append(
            f"{fmt.scale_bits}-bit scale"
            + (f" + {fmt.zero_bits}-bit zero" if fmt.zero_bits else "")
            + f" per {fmt.group_size} weights"
        )
    if fmt.index_bits_per_col:
        parts.append("g_idx int32 per input feature")
    if fmt.extra_bits_per_weight:
        parts.append(f"{float(fmt.extra_bits_per_weight):.3f} bit/weight of block constants")
    return "; ".join(parts)


def dense_param_bytes(params: int, fmt: WeightFormat) -> WeightsResult:
    """Weights of a bare parameter count (`--params N`): every parameter packed at the format's width.

    No architecture is known, so there are no embeddings to keep in 16 bits and no group geometry:
    metadata is counted per weight at the format's effective rate.
    """
    if fmt.is_quantized and fmt.targets != "all":
        bits = fmt.packed_bits_per_weight()
    elif fmt.is_quantized:
        bits = fmt.payload_bits
    else:
        bits = Fraction(fmt.other_bits)
    packed = _bytes(params, fmt.payload_bits if fmt.is_quantized else fmt.other_bits)
    total = _bytes(params, bits)
    lines = [
        WeightLine(
            name="weights",
            params=params,
            bytes=packed,
            note=f"{float(fmt.payload_bits if fmt.is_quantized else fmt.other_bits):g} bits each",
        )
    ]
    if total > packed:
        lines.append(WeightLine(name="scales and zero points", params=0, bytes=total - packed, note=_meta_note(fmt)))
    return WeightsResult(
        format=fmt.name,
        total_params=params,
        weights_bytes=total,
        packed_bytes=packed,
        quant_metadata_bytes=total - packed,
        unquantized_bytes=0,
        raw_bytes=_bytes(params, fmt.nominal_bits),
        bits_per_weight=8 * total / params,
        nominal_bits=fmt.nominal_bits,
        lines=lines,
    )
