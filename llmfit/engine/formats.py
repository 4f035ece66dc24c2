"""Weight formats: what one stored weight costs, from each format's definition.

Bits are exact `Fraction`s per weight, so `ceil(n * bits / 8)` is computed once and nothing ever
runs `bits // 8` (the bug that turns int4 into 0 bytes). A format says which tensors it packs
(linear layers, experts, everything) and in what width it leaves the rest.

Sources of the definitions:
- GPTQ/AWQ checkpoints (AutoGPTQ / AutoAWQ / vLLM loaders): per linear layer `qweight` (bits-wide
  integers packed in int32), `qzeros` (one bits-wide zero point per group and output column, packed),
  `scales` (one fp16 per group and output column); GPTQ also stores `g_idx` (one int32 per input
  feature). Embeddings, lm_head, norms and biases stay in fp16/bf16.
- bitsandbytes NF4 (Dettmers et al. 2023, QLoRA, section 3): blocks of 64 weights, one fp32 absmax
  per block = 0.5 bit/weight; double quantization stores the absmax in 8 bits with one fp32 constant
  per 256 blocks: 8/64 + 32/(64*256) = 0.127 bit/weight. bnb replaces nn.Linear layers only and
  skips lm_head; embeddings and norms stay 16-bit.
- FP8 (vLLM `--quantization fp8`): e4m3 weights, 1 byte, one fp32 scale per tensor; embeddings and
  lm_head are not quantized (they stay bf16), as vLLM's Fp8LinearMethod applies to linear layers.
- MXFP4 (OCP Microscaling spec v1.0): blocks of 32 e2m1 values (4 bits) sharing one e8m0 scale
  (8 bits) = 4.25 bit/weight; ggml's block_mxfp4 is the same 17 bytes per 32 weights.
- GGUF (ggml-org/llama.cpp ggml/src/ggml-common.h `static_assert(sizeof(block_*) == ...)`): see
  GGML_TYPES; k-quant mixes choose a type per tensor as llama.cpp's `llama_tensor_get_type` does.
"""

from __future__ import annotations

from dataclasses import field, replace
from fractions import Fraction
from typing import Literal, cast, get_args

from llmfit.engine.records import record
from llmfit.errors import SpecError

# ggml block types: (weights per block, bytes per block) from ggml-common.h.
GGML_TYPES: dict[str, tuple[int, int]] = {
    "f32": (1, 4),
    "f16": (1, 2),
    "bf16": (1, 2),
    "q8_0": (32, 34),  # fp16 scale + 32 int8
    "q4_0": (32, 18),  # fp16 scale + 32 x 4 bits
    "q4_1": (32, 20),  # fp16 scale and min + 32 x 4 bits
    "q5_0": (32, 22),
    "q5_1": (32, 24),
    "q2_k": (256, 84),  # "Effectively 2.625 bits per weight"
    "q3_k": (256, 110),  # 3.4375
    "q4_k": (256, 144),  # 4.5
    "q5_k": (256, 176),  # 5.5
    "q6_k": (256, 210),  # 6.5625
    "iq4_xs": (256, 136),
    "iq4_nl": (32, 18),
    "iq3_xxs": (256, 98),
    "iq2_xxs": (256, 66),
    "mxfp4": (32, 17),
}


def ggml_bits(type_name: str) -> Fraction:
    block, size = GGML_TYPES[type_name]
    return Fraction(size * 8, block)


Targets = Literal["all", "linear", "experts", "none"]


@record(kw_only=False)
class WeightFormat:
    """How a checkpoint stores its weights.

    `payload_bits` per packed weight; per group of `group_size` weights along the input dimension,
    `scale_bits` + `zero_bits` of metadata; `index_bits_per_col` per input feature of each packed
    matrix (GPTQ's g_idx). Tensors outside `targets` are stored in `other_bits`.
    """

    name: str
    description: str
    source: str
    payload_bits: Fraction
    targets: Targets
    other_bits: int = 16
    group_size: int | None = None
    scale_bits: int = 0
    zero_bits: int = 0
    # Metadata that is per block but not per group along the input (bnb double-quant constants).
    extra_bits_per_weight: Fraction = Fraction(0)
    index_bits_per_col: int = 0
    # Vector tensors (norms) width; GGUF stores them in f32.
    vector_bits: int | None = None
    gguf_mix: str | None = None
    aliases: tuple[str, ...] = field(default_factory=tuple)
    # Dtypes the GPU needs for native kernels (checked against the GPU preset).
    needs_native: str | None = None
    # The nominal width people quote (4 for int4), for the "nominal vs effective" line.
    nominal_bits: int = 16

    @property
    def is_quantized(self) -> bool:
        return self.targets != "none"

    def packed_bits_per_weight(self) -> Fraction:
        """Effective bits per packed weight when the input dimension is a multiple of the group size."""
        bits = self.payload_bits + self.extra_bits_per_weight
        if self.group_size:
            bits += Fraction(self.scale_bits + self.zero_bits, self.group_size)
        return bits


def _dense(name: str, bits: int, description: str, aliases: tuple[str, ...] = ()) -> WeightFormat:
    return WeightFormat(name=name, description=description, source="IEEE 754 / bfloat16 definitions",
                        payload_bits=Fraction(bits), targets="none", other_bits=bits, aliases=aliases,
                        nominal_bits=bits)


def _grouped(name: str, bits: int, group: int, *, gidx: bool, description: str,
             aliases: tuple[str, ...] = ()) -> WeightFormat:
    return WeightFormat(
        name=name, description=description,
        source="AutoGPTQ/AutoAWQ checkpoint layout (qweight, qzeros, scales fp16" + (", g_idx int32)" if gidx else ")"),
        payload_bits=Fraction(bits), targets="linear", group_size=group, scale_bits=16, zero_bits=bits,
        index_bits_per_col=32 if gidx else 0, aliases=aliases, nominal_bits=bits,
    )


def _gguf(name: str, description: str, base: str | None = None, mix: str | None = None) -> WeightFormat:
    bits = ggml_bits(base or name)
    return WeightFormat(name=name, description=description,
                        source="llama.cpp ggml-common.h block sizes; llama_tensor_get_type for mixes",
                        payload_bits=bits, targets="all", other_bits=32, vector_bits=32, gguf_mix=mix or name,
                        nominal_bits=int(bits))


FORMATS: dict[str, WeightFormat] = {
    f.name: f
    for f in [
        _dense("fp32", 32, "IEEE float32"),
        _dense("fp16", 16, "IEEE float16", ("float16", "half")),
        _dense("bf16", 16, "bfloat16", ("bfloat16",)),
        WeightFormat(name="int8-raw", description="bare 8-bit integers, no scales (the guide's int8 column)",
                     source="field guide 1.2: params x 1 byte", payload_bits=Fraction(8), targets="all",
                     other_bits=8, vector_bits=8, nominal_bits=8),
        WeightFormat(name="int4-raw", description="bare 4-bit integers, no scales (the guide's 'int4 raw' column)",
                     source="field guide 1.2: params x 0.5 byte", payload_bits=Fraction(4), targets="all",
                     other_bits=4, vector_bits=4, nominal_bits=4),
        _grouped("int8", 8, 128, gidx=False,
                 description="8-bit weights, groups of 128, fp16 scales + 8-bit zeros; embeddings/lm_head 16-bit"),
        _grouped("int4", 4, 128, gidx=False,
                 description="4-bit weights, groups of 128, fp16 scales + 4-bit zeros; embeddings/lm_head 16-bit"),
        _grouped("gptq", 4, 128, gidx=True, description="GPTQ 4-bit, group 128 (qweight, qzeros, scales, g_idx)"),
        _grouped("awq", 4, 128, gidx=False, description="AWQ 4-bit GEMM, group 128 (qweight, qzeros, scales)"),
        WeightFormat(name="nf4", description="bitsandbytes NF4, blocks of 64, double quantization",
                     source="Dettmers et al. 2023 (QLoRA) 3: 8/64 + 32/(64*256) = 0.127 bit/weight of constants",
                     payload_bits=Fraction(4), targets="linear",
                     extra_bits_per_weight=Fraction(8, 64) + Fraction(32, 64 * 256),
                     nominal_bits=4),
        WeightFormat(name="nf4-nodq", description="bitsandbytes NF4, blocks of 64, fp32 absmax (no double quant)",
                     source="Dettmers et al. 2023 (QLoRA) 3: 32/64 = 0.5 bit/weight of constants",
                     payload_bits=Fraction(4), targets="linear", extra_bits_per_weight=Fraction(32, 64),
                     nominal_bits=4),
        WeightFormat(name="fp8", description="FP8 e4m3 weights, per-tensor scale; embeddings and lm_head in bf16",
                     source="vLLM --quantization fp8 (Fp8LinearMethod on linear layers only)",
                     payload_bits=Fraction(8), targets="linear", needs_native="fp8", nominal_bits=8),
        WeightFormat(name="mxfp4", description="MXFP4: blocks of 32 e2m1 values + one e8m0 scale, on the MoE "
                     "experts (gpt-oss layout; a dense model's linear layers); the rest bf16",
                     source="OCP Microscaling Formats v1.0; ggml block_mxfp4 (17 bytes / 32 weights); gpt-oss "
                     "model card: MoE weights in MXFP4, attention/router/embeddings in bf16",
                     payload_bits=Fraction(4), targets="experts", group_size=32, scale_bits=8, needs_native="fp4",
                     nominal_bits=4, aliases=("mxfp4-experts",)),
        WeightFormat(name="mxfp4-linear", description="MXFP4 on every linear layer (experts and attention); "
                     "embeddings, lm_head, router bf16",
                     source="OCP Microscaling Formats v1.0 (quantization_config without self_attn in "
                     "modules_to_not_convert)",
                     payload_bits=Fraction(4), targets="linear", group_size=32, scale_bits=8, needs_native="fp4",
                     nominal_bits=4),
        WeightFormat(name="fp8-block128", description="FP8 e4m3, one fp32 scale per 128x128 block; embeddings, "
                     "lm_head bf16", source="DeepSeek-V3 checkpoints / vLLM block fp8 (weight_block_size "
                     "[128, 128], weight_scale_inv fp32)", payload_bits=Fraction(8), targets="linear",
                     extra_bits_per_weight=Fraction(32, 128 * 128), needs_native="fp8", nominal_bits=8),
        WeightFormat(name="nvfp4", description="NVFP4: e2m1 in groups of 16, one fp8 e4m3 scale per group",
                     source="NVIDIA NVFP4 (compressed-tensors nvfp4-pack-quantized); per-tensor fp32 global "
                     "scale not counted", payload_bits=Fraction(4), targets="linear", group_size=16, scale_bits=8,
                     needs_native="fp4", nominal_bits=4),
        _gguf("q8_0", "GGUF Q8_0: 32 int8 + fp16 scale per block (8.5 bpw)"),
        _gguf("q4_0", "GGUF Q4_0: 32 x 4 bits + fp16 scale per block (4.5 bpw)"),
        _gguf("q4_1", "GGUF Q4_1 (5.0 bpw)"),
        _gguf("q5_0", "GGUF Q5_0 (5.5 bpw)"),
        _gguf("q5_1", "GGUF Q5_1 (6.0 bpw)"),
        _gguf("q6_k", "GGUF Q6_K (6.5625 bpw)"),
        _gguf("q5_k_m", "GGUF Q5_K_M mix: Q5_K with Q6_K for some attn_v/ffn_down and output", "q5_k"),
        _gguf("q5_k_s", "GGUF Q5_K_S: Q5_K, output Q6_K", "q5_k"),
        _gguf("q4_k_m", "GGUF Q4_K_M mix: Q4_K with Q6_K for half the attn_v/ffn_down and output", "q4_k"),
        _gguf("q4_k_s", "GGUF Q4_K_S: Q4_K, a few early ffn_down Q5_K, output Q6_K", "q4_k"),
        _gguf("q3_k_m", "GGUF Q3_K_M mix: Q3_K with Q4_K/Q5_K for attn_v, ffn_down, attn_output", "q3_k"),
        _gguf("q2_k", "GGUF Q2_K mix: Q2_K with Q3_K/Q4_K for attn_v, ffn_down and attn_output", "q2_k"),
        _gguf("q2_k_s", "GGUF Q2_K_S mix: Q2_K, Q4_K for attn_v (GQA >= 4) and the first eighth of ffn_down",
              "q2_k"),
        _gguf("q3_k_s", "GGUF Q3_K_S: Q3_K, output Q6_K", "q3_k"),
        _gguf("q3_k_l", "GGUF Q3_K_L mix: Q3_K with Q5_K for attn_v, ffn_down and attn_output", "q3_k"),
        _gguf("iq4_xs", "GGUF IQ4_XS mix: 4.25 bpw non-linear, Q5_K for attn_v (GQA >= 4) and early ffn_down"),
        _gguf("iq4_nl", "GGUF IQ4_NL mix: 4.5 bpw non-linear, Q5_K for attn_v (GQA >= 4) and early ffn_down"),
    ]
}
# Group-size variants: gptq-g32, awq-g64, int4-g32 ...
for _base in ("gptq", "awq", "int4", "int8"):
    for _group in (32, 64, 128, 256):
        _f = FORMATS[_base]
        FORMATS[f"{_base}-g{_group}"] = WeightFormat(
            **{**_f.__dict__, "name": f"{_base}-g{_group}", "group_size": _group,
               "description": _f.description.replace("group 128", f"group {_group}")
               .replace("groups of 128", f"groups of {_group}")}
        )

DENSE_FORMATS = ("fp32", "fp16", "bf16")
# The row set of `fit --dtype all`: the guide's 1.2 table plus the real checkpoint formats.
ALL_TABLE_FORMATS = ("fp32", "bf16", "fp8", "int8", "int8-raw", "int4", "int4-raw", "gptq", "awq", "nf4",
                     "q8_0", "q4_k_m", "q4_0")


def get_format(name: str) -> WeightFormat:
    """Look a format up by name or alias (case-insensitive); KeyError if unknown."""
    key = name.strip().lower()
    if key in FORMATS:
        return FORMATS[key]
    for fmt in FORMATS.values():
        if key in fmt.aliases:
            return fmt
    raise KeyError(name)


# ---- llama.cpp per-tensor type choice for the k-quant mixes (src/llama-quant.cpp llama_tensor_get_type) ----
# Followed rule by rule from ggml-org/llama.cpp src/llama-quant.cpp (llama_tensor_get_type, and the fallback for
# rows that are not a whole number of blocks in llama_model_quantize_impl). IQ2/IQ3 mixes need an importance
# matrix and are not modelled.

# The ftype's default tensor type (llama_model_quantize_impl's switch on ftype).
GGUF_BASE_TYPES: dict[str, str] = {
    "q2_k": "q2_k", "q2_k_s": "q2_k", "q3_k_s": "q3_k", "q3_k_m": "q3_k", "q3_k_l": "q3_k", "q4_k_s": "q4_k",
    "q4_k_m": "q4_k", "q5_k_s": "q5_k", "q5_k_m": "q5_k", "q6_k": "q6_k", "q8_0": "q8_0", "q4_0": "q4_0",
    "q4_1": "q4_1", "q5_0": "q5_0", "q5_1": "q5_1", "iq4_xs": "iq4_xs", "iq4_nl": "iq4_nl",
}

# A type whose block does not divide a row falls back (llama_model_quantize_impl, convert_incompatible_tensor);
# if the fallback's block does not divide the row either, the tensor stays F16.
GGUF_ROW_FALLBACK: dict[str, str] = {
    "q2_k": "iq4_nl", "q3_k": "iq4_nl", "iq4_xs": "iq4_nl", "q4_k": "q5_0", "q5_k": "q5_1", "q6_k": "q8_0",
}


def _use_more_bits(layer: int, n_layers: int) -> bool:
    """llama.cpp `use_more_bits`: the first and last eighth of the layers, and every third layer in between."""
    return layer < n_layers // 8 or layer >= 7 * n_layers // 8 or (layer - n_layers // 8) % 3 == 2


def _attn_v_type(mix: str, base: str, layer: int, n_layers: int, gqa_ratio: int, n_experts: int,
                 is_70b: bool) -> str:
    kind = base
    if mix == "q2_k":
        kind = "q4_k" if gqa_ratio >= 4 else "q3_k"
    elif mix == "q2_k_s" and gqa_ratio >= 4:
        kind = "q4_k"
    elif mix == "q3_k_m":
        kind = "q5_k" if layer < 2 else "q4_k"
    elif mix == "q3_k_l" or (mix in ("iq4_nl", "iq4_xs") and gqa_ratio >= 4):
        kind = "q5_k"
    elif mix in ("q4_k_m", "q5_k_m") and _use_more_bits(layer, n_layers):
        kind = "q6_k"
    elif mix == "q4_k_s" and layer < 4:
        kind = "q5_k"
    if is_70b and kind in ("q3_k", "q4_k"):
        # "In the 70B model we have 8 heads sharing the same attn_v weights ... quantizing this tensor with more bits"
        kind = "q5_k"
    if n_experts == 8:
        kind = "q8_0"  # "for the 8-expert model, bumping this to Q8_0 trades just ~128MB"
    return kind


def _ffn_down_type(mix: str, base: str, layer: int, n_layers: int, falcon: bool) -> str:
    if mix == "q2_k":
        return "q3_k"
    if mix == "q2_k_s":
        return "q4_k" if layer < n_layers // 8 else base
    if mix == "q3_k_m":
        if layer < n_layers // 16:
            return "q5_k"
        return "q4_k" if not falcon or _use_more_bits(layer, n_layers) else "q3_k"
    if mix == "q3_k_l":
        return "q4_k" if falcon else "q5_k"
    if mix == "q4_k_m":
        if falcon:
            return "q6_k" if layer < n_layers // 16 else "q5_k" if _use_more_bits(layer, n_layers) else "q4_k"
        return "q6_k" if _use_more_bits(layer, n_layers) else base
    if mix in ("iq4_nl", "iq4_xs") and layer < n_layers // 8:
        return "q5_k"  # without an importance matrix, as a file from a plain `llama-quantize` is
    if mix == "q5_k_m" and _use_more_bits(layer, n_layers):
        return "q6_k"
    if mix == "q4_k_s" and not falcon and layer < n_layers // 8:
        return "q5_k"
    return base


def _attn_output_type(mix: str, base: str, n_experts: int, falcon: bool) -> str:
    if falcon:
        return "q4_k" if mix == "q3_k_l" else base
    if n_experts == 8:
        return "q5_k" if mix in ("q2_k", "q3_k_s", "q3_k_m", "iq4_nl", "q4_k_s", "q4_k_m", "iq4_xs") else base
    return {"q2_k": "q3_k", "q3_k_m": "q4_k", "q3_k_l": "q5_k"}.get(mix, base)


def _fits_rows(kind: str, n_per_row: int | None) -> bool:
    return n_per_row is None or n_per_row % GGML_TYPES[kind][0] == 0


def gguf_tensor_type(mix: str, tensor: str, layer: int | None, n_layers: int, *, n_experts: int = 0,
                     gqa_ratio: int = 1, n_per_row: int | None = None, arch: str | None = None,
                     has_output: bool = True, is_70b: bool | None = None, n_ffn_down: int | None = None) -> str:
    """The ggml type llama.cpp's quantizer writes for one tensor under a file type (mix).

    tensor is one of: token_embd, output, attn_q, attn_k, attn_v, attn_qkv, attn_output, ffn_gate, ffn_up,
    ffn_down and their expert variants (ffn_*_exps, ffn_*_shexp). `n_per_row` is the row length (input
    features): a type whose block does not divide it falls back as llama.cpp does. `has_output` False (tied
    embeddings) quantizes token_embd with the output rule. `is_70b` None infers llama.cpp's LLM_TYPE_70B
    from 80 layers (Llama-2/3 70B, Qwen2 72B). `n_ffn_down` counts the ffn_down tensors (default n_layers).
    """
    base = GGUF_BASE_TYPES[mix]
    falcon = (arch or "").lower().startswith("falcon")
    if is_70b is None:
        is_70b = n_layers == 80
    if tensor == "output" or (tensor == "token_embd" and not has_output):
        if falcon or not _fits_rows(base, n_per_row):
            return "q8_0"
        return base if base == "q8_0" else "q6_k"
    if tensor == "token_embd" or layer is None:
        kind = base
    elif tensor == "attn_v":
        kind = _attn_v_type(mix, base, layer, n_layers, gqa_ratio, n_experts, is_70b)
    elif tensor == "attn_k":
        kind = "q8_0" if n_experts == 8 else base
    elif tensor.startswith("ffn_down"):
        kind = _ffn_down_type(mix, base, layer, n_ffn_down or n_layers, falcon)
    elif tensor == "attn_output":
        kind = _attn_output_type(mix, base, n_experts, falcon)
    elif tensor == "attn_qkv":
        kind = {"q3_k_m": "q4_k", "q3_k_l": "q4_k", "q4_k_m": "q5_k", "q5_k_m": "q6_k"}.get(mix, base)
    else:
        kind = base
    if not _fits_rows(kind, n_per_row):
        kind = GGUF_ROW_FALLBACK.get(kind, "f16")
        if not _fits_rows(kind, n_per_row):
            kind = "f16"
    return kind


def checkpoint_format(spec_format: str, tensors: str | None) -> WeightFormat:
    """The format a preset says its published checkpoint uses (e.g. gpt-oss: mxfp4 on the experts;
    DeepSeek-V3: fp8 on the linear layers), with the tensors it covers."""
    fmt = get_format(spec_format)
    if tensors is None or tensors == fmt.targets:
        return fmt
    if tensors not in get_args(Targets):
        raise SpecError(f"checkpoint tensors {tensors!r}: one of {', '.join(get_args(Targets))}")
    return replace(fmt, targets=cast(Targets, tensors))
