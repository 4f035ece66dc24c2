"""A checkpoint's `quantization_config` -> the llmfit weight format its tensors are stored in.

Names are `--dtype` names where llmfit has one (bf16, gptq-g128, awq-g64, nf4, fp8, mxfp4, q4_k_m...);
the schemes below extend them with what real checkpoints use and the built-in list lacks. Layouts:
- GPTQ (AutoGPTQ/GPTQModel): qweight int32 [in*bits/32, out], qzeros int32 [in/g, out*bits/32],
  scales fp16 [in/g, out], g_idx int32 [in]; group_size -1 = one group per input row.
- AWQ (AutoAWQ GEMM): qweight int32 [in, out*bits/32], qzeros [in/g, out*bits/32], scales [in/g, out].
- bitsandbytes: 4-bit NF4/FP4 as formats.py; 8-bit LLM.int8: int8 weights + one fp32 scale (SCB) per
  output row.
- fp8 (vLLM/DeepSeek): e4m3 weights; `weight_block_size` [128, 128] adds one fp32 scale_inv per block.
- compressed-tensors (llm-compressor): float 8-bit = fp8; int 4-bit group g symmetric ("W4A16") =
  packed int32 + one 16-bit scale per group, no zero points; int 8-bit channel ("W8A8") = int8 + one
  scale per output row; nvfp4 = e2m1 in groups of 16 with an fp8 e4m3 scale each.
- mxfp4 (gpt-oss): only the experts; attention, router, embeddings and lm_head stay bf16
  (`modules_to_not_convert`).
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any

from llmfit.engine.formats import Targets, WeightFormat, get_format
from llmfit.readers.config import ModelFileError

# A group as large as any matrix row: ceil(cols / group) = 1, i.e. one scale per output row.
_PER_ROW = 2**40


def _packed(name: str, description: str, source: str, bits: int, group: int | None, *, scale_bits: int,
            zero_bits: int = 0, gidx: bool = False, targets: Targets = "linear",
            extra: Fraction = Fraction(0)) -> WeightFormat:
    return WeightFormat(name=name, description=description, source=source, payload_bits=Fraction(bits),
                        targets=targets, group_size=group, scale_bits=scale_bits, zero_bits=zero_bits,
                        index_bits_per_col=32 if gidx else 0, extra_bits_per_weight=extra, nominal_bits=bits)


def reader_format(name: str, *, fallback_bits: Fraction | None = None) -> WeightFormat:
    """The WeightFormat behind a checkpoint format name (a --dtype name or a scheme of this module)."""
    try:
        return get_format(name)
    except KeyError:
        pass
    match = re.fullmatch(r"(gptq|awq)-(\d+)bit-g(\d+|row)", name)
    if match:
        kind, bits = match.group(1), int(match.group(2))
        group = _PER_ROW if match.group(3) == "row" else int(match.group(3))
        return _packed(name, f"{kind.upper()} {bits}-bit, group {match.group(3)}", "AutoGPTQ/AutoAWQ layout",
                       bits, group, scale_bits=16, zero_bits=bits, gidx=kind == "gptq")
    match = re.fullmatch(r"w4a16-g(\d+)", name)
    if match:
        group = int(match.group(1))
        return _packed(name, f"compressed-tensors int4, group {group}, symmetric (16-bit scales, no zeros)",
                       "llm-compressor pack-quantized: weight_packed int32 + weight_scale per group", 4, group,
                       scale_bits=16)
    if name == "w8a8-int8":
        return _packed(name, "int8 weights, one scale per output channel", "compressed-tensors channel strategy",
                       8, _PER_ROW, scale_bits=32)
    if name == "bnb-int8":
        return _packed(name, "bitsandbytes LLM.int8: int8 weights, one fp32 scale (SCB) per output row",
                       "bitsandbytes Linear8bitLt", 8, _PER_ROW, scale_bits=32)
    if fallback_bits is not None:
        return WeightFormat(name=name, description=f"as stored: {float(fallback_bits):.3g} bits per weight on average",
                            source="checkpoint headers", payload_bits=fallback_bits, targets="all",
                            other_bits=16, vector_bits=None, nominal_bits=max(1, round(fallback_bits)))
    raise ModelFileError(f"weight format {name!r} of the checkpoint is not modelled")


def _group_name(kind: str, bits: int, group: int) -> str:
    label = "row" if group in (-1, 0) else str(group)
    if bits == 4 and label in ("32", "64", "128", "256"):
        return f"{kind}-g{label}"
    return f"{kind}-{bits}bit-g{label}"


def format_from_quantization(qc: dict[str, Any], where: str) -> tuple[str, int | None]:
    """(format name, packed bits per stored integer element or None) of a quantization_config.

    The second value tells the header reader how many weights one packed element holds (int32 of
    4-bit weights -> 8); None when weights are stored one per element.
    """
    method = str(qc.get("quant_method", "")).lower().replace("_", "-")
    if method in ("gptq", "awq"):
        bits = qc.get("bits", qc.get("w_bit", 4))
        group = qc.get("group_size", qc.get("q_group_size", 128))
        if not isinstance(bits, int) or bits not in (2, 3, 4, 8) or not isinstance(group, int):
            raise ModelFileError(f"{where}: quantization_config bits {bits!r} / group_size {group!r} not modelled")
        return _group_name(method, bits, group), 32 // bits if bits != 3 else None
    if method == "bitsandbytes":
        if qc.get("load_in_4bit") or qc.get("_load_in_4bit"):
            return ("nf4" if qc.get("bnb_4bit_use_double_quant") else "nf4-nodq"), 2
        if qc.get("load_in_8bit") or qc.get("_load_in_8bit"):
            return "bnb-int8", None
        raise ModelFileError(f"{where}: bitsandbytes quantization_config with neither load_in_4bit nor load_in_8bit")
    if method == "fp8":
        block = qc.get("weight_block_size")
        if block in (None, []):
            return "fp8", None
        if block == [128, 128]:
            return "fp8-block128", None
        raise ModelFileError(f"{where}: fp8 weight_block_size {block!r} not modelled (128x128 or per tensor)")
    if method == "mxfp4":
        skipped = " ".join(str(m) for m in qc.get("modules_to_not_convert") or [])
        # gpt-oss leaves attention (self_attn), router and embeddings in bf16: MXFP4 on the experts only.
        return ("mxfp4" if "self_attn" in skipped or not skipped else "mxfp4-linear"), 2
    if method == "compressed-tensors":
        return _compressed_tensors(qc, where)
    raise ModelFileError(f"{where}: quant_method {method!r} is not modelled (gptq, awq, bitsandbytes, fp8, "
                         "compressed-tensors, mxfp4); pass --dtype to plan with a format llmfit knows")


def _compressed_tensors(qc: dict[str, Any], where: str) -> tuple[str, int | None]:
    groups = qc.get("config_groups") or {}
    weights = [g.get("weights") for g in groups.values() if isinstance(g, dict) and isinstance(g.get("weights"), dict)]
    if not weights:
        raise ModelFileError(f"{where}: compressed-tensors quantization_config without config_groups weights")
    w: dict[str, Any] = weights[0] or {}  # each checked to be a dict just above
    bits, kind, strategy = w.get("num_bits"), w.get("type"), w.get("strategy")
    if kind == "float" and bits == 8:
        return ("fp8-block128" if strategy == "block" else "fp8"), None
    if kind == "float" and bits == 4:
        return "nvfp4", 2
    if kind == "int" and bits == 4 and strategy == "group" and isinstance(w.get("group_size"), int):
        return f"w4a16-g{w['group_size']}", 8
    if kind == "int" and bits == 8:
        return "w8a8-int8", None
    raise ModelFileError(f"{where}: compressed-tensors weights {kind} {bits}-bit {strategy} not modelled")
