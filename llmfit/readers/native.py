"""`fit` without --dtype: plan with the format the model is really stored in, and its measured bytes.

A spec read from a file carries a CheckpointInfo. Its format (bf16, gptq-g128, q4_k_m ...) becomes
the weight format; when the headers' stored bytes differ from what llmfit's formula predicts for that
format (a GGUF whose quantizer chose other types per tensor, GPTQ biases, a vision tower stored in
another dtype), the measured bytes win and the weight lines say so, with the prediction beside them.
A preset without a checkpoint plans in its torch_dtype (bf16, fp16 or fp32).
"""

from __future__ import annotations

from llmfit.engine.formats import FORMATS, WeightFormat, checkpoint_format
from llmfit.engine.records import replace
from llmfit.engine.serving import FitResult, Step
from llmfit.engine.weights import WeightLine, weight_bytes
from llmfit.readers.quant import reader_format
from llmfit.readers.snapshot import average_bits
from llmfit.specs import ModelSpec

_TORCH_FORMAT = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}


def native_format(spec: ModelSpec | None) -> WeightFormat:
    """The checkpoint's own format; else the model's torch_dtype; a bare --params model: bf16."""
    if spec is None:
        return FORMATS["bf16"]
    if spec.checkpoint is not None:
        return reader_format(spec.checkpoint.format, fallback_bits=average_bits(spec))
    if spec.checkpoint_format is not None:  # a preset whose published checkpoint is quantized (gpt-oss, DeepSeek)
        return checkpoint_format(spec.checkpoint_format, spec.checkpoint_format_tensors)
    return FORMATS[_TORCH_FORMAT[spec.torch_dtype]]


def measured_weights_bytes(spec: ModelSpec | None, fmt: WeightFormat) -> int | None:
    """The checkpoint's loaded bytes when they differ from llmfit's formula for `fmt`, else None
    (the formula's per-tensor lines and TP/PP sharding are then exact and kept)."""
    if spec is None or spec.checkpoint is None or spec.checkpoint.stored_bytes is None:
        return None
    stored = spec.checkpoint.stored_bytes
    return None if stored == weight_bytes(spec, fmt).weights_bytes else stored


def label_measured(result: FitResult, spec: ModelSpec | None, predicted_fmt: WeightFormat,
                   measured: int | None) -> FitResult:
    """Name the measured weights' source in the lines, the --explain step and the notes."""
    if spec is None or spec.checkpoint is None:
        return result
    info = spec.checkpoint
    notes = [*result.notes, *info.notes]
    if measured is None:
        if info.stored_bytes is not None:
            notes.append(f"weights match the checkpoint ({info.format_note or info.reader}): "
                         f"{info.stored_bytes:,} B")
        return replace(result, notes=notes)
    predicted = weight_bytes(spec, predicted_fmt).weights_bytes
    if info.bytes_by_dtype:
        lines = [WeightLine(name=f"stored {dtype} tensors", params=0, bytes=size, note=info.format_note or info.reader,
                            bytes_per_gpu=size if result.gpu_count == 1 else None)
                 for dtype, size in sorted(info.bytes_by_dtype.items(), key=lambda item: -item[1])]
    else:
        lines = [WeightLine(name="stored tensors", params=0, bytes=measured, note=info.format_note or info.reader,
                            bytes_per_gpu=result.weights_bytes_per_gpu)]
    notes.append(f"weights are the checkpoint's stored bytes ({measured:,} B); llmfit's {predicted_fmt.name} "
                 f"formula predicts {predicted:,} B ({(measured - predicted) / predicted:+.2%})")
    steps = list(result.steps)
    for i, step in enumerate(steps):
        if step.label == "weights":
            steps[i] = Step(label="weights", formula="sum of stored tensor bytes (file headers)",
                            substituted=", ".join(f"{d} {b:,} B" for d, b in info.bytes_by_dtype.items()),
                            result=measured, unit="bytes")
    return replace(result, weights_lines=lines, notes=notes, steps=steps)
