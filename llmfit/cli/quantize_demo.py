"""`llmfit quantize-demo`: real quantization on real numbers (RTN schemes, AWQ, GPTQ, number formats)."""

from __future__ import annotations

import math
import re
from enum import StrEnum
from typing import Annotated, Any

import typer

from llmfit.cli.common import ExplainOpt, FormatOpt, UnitsOpt, emit, handle_errors
from llmfit.errors import LlmfitError, UnitError
from llmfit.render import OutputFormat
from llmfit.units import DisplayUnits

HELP = """Show what rounding does to weights, with the real algorithms.

With no arguments: the field guide's examples (3.2 four weights in int4, 3.3 per-tensor vs
per-channel, 6.5 the crushed row, 3.5 the AWQ channel A/B toy, 3.4 GPTQ vs round-to-nearest on a
generated layer with outlier channels, 2.3 number formats), computed.

Your numbers: --values "0.18,-0.91,1.62,2.94" (one row), or --rows with rows separated by ';' and
values by ',' (one row per output channel): --rows "0.12,-0.18,0.25,-0.31; 1.6,-2.1,2.4,-2.8".
A real layer: --matrix w.npy or --matrix model.safetensors:model.layers.0.mlp.down_proj.weight
(bf16, fp16, fp32 and fp8 tensors; [out, in] as stored by PyTorch). Only what is shown is read: a
layer over 4,194,304 weights is sampled to its first 4096 columns and evenly spaced rows, GPTQ and
AWQ run on at most 1024 x 1024 of it, --calibration on at most 8192 samples; each table says so.

Examples:

\b
  llmfit quantize-demo
  llmfit quantize-demo --values "0.18,-0.91,1.62,2.94" --bits 4
  llmfit quantize-demo --matrix model.safetensors:model.layers.0.mlp.down_proj.weight --gptq
"""

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


class SchemeOpt(StrEnum):
    per_tensor = "per-tensor"
    per_channel = "per-channel"
    group = "group"


def parse_numbers(text: str, *, what: str) -> list[float]:
    """'0.12, -0.18 0.25' -> floats (commas and/or spaces between values)."""
    parts = [p for p in re.split(r"[,\s]+", text.strip()) if p]
    if not parts:
        raise UnitError(f"{what}: no numbers in {text!r}")
    values = []
    for part in parts:
        if not re.fullmatch(_NUMBER, part):
            raise UnitError(f"{what}: {part!r} is not a number (in {text!r})")
        values.append(float(part))
    if not all(math.isfinite(v) for v in values):
        raise UnitError(f"{what}: numbers must be finite")
    return values


def parse_rows(text: str) -> list[list[float]]:
    """'a,b,c; d,e,f' -> [[a, b, c], [d, e, f]]: rows separated by ';' (or '/'), all the same length."""
    rows = [parse_numbers(chunk, what="--rows") for chunk in re.split(r"[;/]", text) if chunk.strip()]
    if not rows:
        raise UnitError(f"--rows: no rows in {text!r}; write e.g. \"0.1,-0.2;1.5,-2.5\"")
    if len({len(r) for r in rows}) != 1:
        raise UnitError(f"--rows: rows have different lengths {[len(r) for r in rows]}; each needs the same")
    return rows


def parse_scale(text: str) -> float:
    """'1/7', '0.142857', '1e-2' -> a positive float."""
    match = re.fullmatch(rf"\s*({_NUMBER})\s*(?:/\s*({_NUMBER})\s*)?", text)
    if not match:
        raise UnitError(f"--scale: cannot read {text!r}; write e.g. 1/7 or 0.01")
    numerator = float(match.group(1))
    denominator = float(match.group(2)) if match.group(2) else 1.0
    if denominator == 0 or numerator / denominator <= 0 or not math.isfinite(numerator / denominator):
        raise UnitError(f"--scale: {text!r} must be a positive number")
    return numerator / denominator


ValuesOpt = Annotated[str | None, typer.Option(
    "--values", help="One row of weights: \"0.18,-0.91,1.62,2.94\".", show_default=False)]
RowsOpt = Annotated[str | None, typer.Option(
    "--rows", help="Rows (output channels) separated by ';', values by ',': \"0.12,-0.18;1.6,-2.1\".",
    show_default=False)]
MatrixOpt = Annotated[str | None, typer.Option(
    "--matrix", metavar="FILE[:TENSOR]", help="A .npy file, or a tensor of a .safetensors file.",
    show_default=False)]
BitsOpt = Annotated[int, typer.Option("--bits", help="Integer width, 2..8.")]
SchemesOpt = Annotated[list[SchemeOpt] | None, typer.Option(
    "--scheme", help="Who shares a scale; repeat to compare. Default: per-tensor, per-channel, and group "
    "when --group-size is narrower than a row.", case_sensitive=False, show_default=False)]
GroupOpt = Annotated[int | None, typer.Option(
    "--group-size", help="Columns per scale for --scheme group (default 128 for --matrix).",
    show_default=False)]
SymmetricOpt = Annotated[bool, typer.Option(
    "--symmetric/--asymmetric", help="Symmetric [-(2^(b-1)-1), 2^(b-1)-1] or with a zero point [0, 2^b-1].")]
ActivationsOpt = Annotated[str | None, typer.Option(
    "--activations", help="AWQ: activation magnitude per input column, \"20,0.5\" (or a .npy file).",
    show_default=False)]
AwqOpt = Annotated[bool, typer.Option("--awq", help="AWQ scale search on calibration inputs.")]
GptqOpt = Annotated[bool, typer.Option("--gptq", help="GPTQ vs round-to-nearest on calibration inputs.")]
CalibrationOpt = Annotated[str | None, typer.Option(
    "--calibration", metavar="FILE[:TENSOR]", help="Calibration inputs [samples, in_features] (.npy or "
    ".safetensors); default: generated with outlier channels.", show_default=False)]
SamplesOpt = Annotated[int, typer.Option("--samples", help="Generated calibration inputs, 1..8192.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of the generated calibration data, 0..2**32-1.")]
DampOpt = Annotated[float, typer.Option("--damp", help="GPTQ dampening, a share of mean(diag H).")]
FormatsOpt = Annotated[bool, typer.Option("--formats", help="Number formats: fp32 fp16 bf16 fp8 int8 int4.")]
ScaleOpt = Annotated[str | None, typer.Option(
    "--scale", help="Scale of the int8/int4 points near 1.0 in --formats, e.g. 1/7 (default: 0.01 and 1/7, "
    "as the guide).", show_default=False)]


@handle_errors
def quantize_demo(
    values: ValuesOpt = None,
    rows: RowsOpt = None,
    matrix: MatrixOpt = None,
    bits: BitsOpt = 4,
    scheme: SchemesOpt = None,
    group_size: GroupOpt = None,
    symmetric: SymmetricOpt = True,
    activations: ActivationsOpt = None,
    awq: AwqOpt = False,
    gptq: GptqOpt = False,
    calibration: CalibrationOpt = None,
    samples: SamplesOpt = 256,
    seed: SeedOpt = 0,
    damp: DampOpt = 0.01,
    formats: FormatsOpt = False,
    scale: ScaleOpt = None,
    fmt: FormatOpt = OutputFormat.table,
    units: UnitsOpt = DisplayUnits.gib,
    explain: ExplainOpt = False,
) -> None:
    # numpy is imported here only: nothing else in llmfit's start-up pays for it.
    try:
        from llmfit.engine import quantization as q
    except ModuleNotFoundError as error:
        if error.name != "numpy":
            raise
        raise LlmfitError("quantize-demo needs numpy: pip install 'llmfit-planner[quant]'") from None
    from llmfit.render.quantize import build_document

    if sum(x is not None for x in (values, rows, matrix)) > 1:
        raise UnitError("give one of --values, --rows, --matrix")
    if group_size is not None and group_size < 1:
        raise UnitError(f"--group-size: {group_size} must be >= 1")
    q.check_demo_sizes(samples, seed)
    q.check_bits(bits)
    scale_value = parse_scale(scale) if scale is not None else None
    schemes = [q.Scheme(s.value) for s in scheme] if scheme else None

    if values is None and rows is None and matrix is None:
        if activations or awq or gptq or calibration:
            raise UnitError("--activations, --awq, --gptq, --calibration need weights: "
                            "--values, --rows or --matrix")
        if formats:
            result = q.formats_only(scale_value)
        else:
            result = q.walkthrough(bits=bits, symmetric=symmetric, group_size=group_size, seed=seed,
                                   damp=damp, scale=scale_value)
    else:
        from llmfit import limits
        from llmfit.readers.matrix import read_calibration, read_matrix

        weights: Any
        if matrix is not None:
            # A real layer is sampled to limits.MAX_QUANT_WEIGHTS weights; the label says so.
            weights, label = read_matrix(matrix)
            mode, default_group = "matrix", 128
        else:
            given = parse_rows(rows or "") if values is None else [parse_numbers(values, what="--values")]
            weights = q.as_matrix(given)
            label, mode, default_group = "your weights", "values", None
        n_cols = len(weights[0])
        acts = None
        if activations is not None:
            is_file = activations.strip().lower().split(":")[0].endswith((".npy", ".safetensors"))
            acts = read_matrix(activations)[0].ravel().tolist() if is_file else \
                parse_numbers(activations, what="--activations")
        x, x_label = (read_calibration(calibration, n_cols, min(n_cols, limits.MAX_GPTQ_COLUMNS))
                      if calibration is not None else (None, "given"))
        result = q.analyze(
            weights, name=mode, source=label, bits=bits, schemes=schemes, symmetric=symmetric,
            group_size=group_size if group_size is not None else default_group, activations=acts, awq=awq,
            gptq=gptq, calibration=x, calibration_label=x_label, samples=samples, seed=seed, damp=damp,
            formats=formats, scale=scale_value, mode=mode,
        )
    emit(fmt, result, lambda: build_document(result, units), explain=explain)


def register(app: typer.Typer) -> None:
    from llmfit.cli.examples import epilog

    app.command("quantize-demo", help=HELP, epilog=epilog("quantize-demo"))(quantize_demo)
