"""Weight quantization on real numbers: round-to-nearest (per-tensor, per-channel, group-wise), AWQ, GPTQ.

Pure: numpy in, frozen pydantic results out; no I/O, no printing. This is the only engine module that
imports numpy, and nothing imports it at llmfit start-up (the CLI imports it inside its command body).

Conventions (field guide, chapter 3): a weight matrix W has one row per output channel and one column
per input channel; a layer computes y = W x. Integer codes q live in [qmin, qmax]:

- symmetric (no zero point): q in [-(2^(b-1) - 1), 2^(b-1) - 1] (int4: [-7, 7]), s = max|w| / qmax,
  q = clip(round(w / s), qmin, qmax), w_hat = s * q;
- asymmetric (zero point z): q in [0, 2^b - 1], s = (max w - min w) / (2^b - 1), z = round(-min w / s),
  q = clip(round(w / s) + z, 0, 2^b - 1), w_hat = s * (q - z).

round() is numpy's round-half-to-even, as torch.round and the GPTQ/AWQ reference code use.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from enum import StrEnum
from fractions import Fraction

import numpy as np

from llmfit import limits
from llmfit.engine.records import record
from llmfit.errors import UnitError

# Stored size of one scale: fp16, as GPTQ/AWQ checkpoints (and llama.cpp's q4_0) keep them.
SCALE_BYTES = 2
# Matrices up to this many weights carry their codes and dequantized values in the result (JSON).
DETAIL_LIMIT = 256
# Per-row statistics: all rows up to this many, else the rows with the lowest SQNR.
ROWS_LIMIT = 16


class Scheme(StrEnum):
    """Who shares a scale: the whole tensor, one output channel (row), or a group of columns in a row."""

    per_tensor = "per-tensor"
    per_channel = "per-channel"
    group = "group"


# --------------------------------------------------------------------------------------------- results


@record
class Metrics:
    """Error of w_hat against w over a set of weights."""

    n_weights: int
    mse: float
    max_abs_error: float
    # 10 log10(sum w^2 / sum (w - w_hat)^2); None when the error is exactly zero (infinite SQNR).
    sqnr_db: float | None
    # Share of the nonzero weights that dequantize to exactly zero (crushed).
    zero_fraction: float


@record
class RowMetrics:
    row: int
    max_abs: float
    scales: list[float]
    mse: float
    max_abs_error: float
    sqnr_db: float | None
    zero_fraction: float


@record
class Storage:
    """Bytes one scheme stores: packed integer codes + fp16 scales (+ zero points packed at `bits`)."""

    weights_bytes: int
    scales_bytes: int
    zero_points_bytes: int
    total_bytes: int
    fp16_bytes: int
    bits_per_weight: float


@record
class SchemeResult:
    scheme: Scheme
    bits: int
    symmetric: bool
    group_size: int | None
    qmin: int
    qmax: int
    n_scales: int
    metrics: Metrics
    storage: Storage
    rows: list[RowMetrics]
    rows_selection: str
    # Detail for small matrices only (None beyond DETAIL_LIMIT weights): [row][group] and [row][col].
    scales: list[list[float]] | None = None
    zero_points: list[list[int]] | None = None
    group_min: list[list[float]] | None = None
    group_max: list[list[float]] | None = None
    codes: list[list[int]] | None = None
    # w / s (before rounding), w_hat, and w_hat - w, as the guide's tables show them.
    scaled: list[list[float]] | None = None
    dequantized: list[list[float]] | None = None
    errors: list[list[float]] | None = None


@record
class NumberLine:
    """Data for the number-line picture: the grid of one scale, values, and where each one lands."""

    label: str
    scale: float
    zero_point: int
    grid: list[float]
    values: list[float]
    dequantized: list[float]
    codes: list[int]


@record
class QuantExample:
    name: str
    title: str
    source: str
    shape: list[int]
    weights: list[list[float]] | None
    schemes: list[SchemeResult]
    number_lines: list[NumberLine]


@record
class AwqAlpha:
    alpha: float
    output_error: float


@record
class AwqResult:
    """Round-to-nearest vs activation-aware scaling (AWQ), output error on the calibration inputs."""

    title: str
    source: str
    shape: list[int]
    bits: int
    scheme: Scheme
    group_size: int | None
    symmetric: bool
    activation_magnitudes: list[float] | None
    contributions: list[list[float]] | None
    weights: list[list[float]] | None
    rtn_dequantized: list[list[float]] | None
    awq_dequantized: list[list[float]] | None
    channel_scales: list[float] | None
    search: list[AwqAlpha]
    best_alpha: float
    rtn_output_error: float
    awq_output_error: float
    reference_output_norm: float


@record
class GptqResult:
    """||W X - W_hat X||_F for round-to-nearest vs GPTQ at the same bits, scheme and group size."""

    title: str
    source: str
    shape: list[int]
    n_samples: int
    calibration: str
    bits: int
    scheme: Scheme
    group_size: int | None
    symmetric: bool
    damp: float
    block_size: int
    reference_output_norm: float
    rtn_output_error: float
    gptq_output_error: float
    rtn_relative_error: float
    gptq_relative_error: float
    rtn_weight_mse: float
    gptq_weight_mse: float


@record
class FormatInfo:
    """A number format from its definition: floats from (exponent, mantissa) bits, integers from bits."""

    name: str
    kind: str
    bits: int
    exponent_bits: int | None = None
    mantissa_bits: int | None = None
    bias: int | None = None
    has_infinity: bool | None = None
    largest: float
    smallest_normal: float | None = None
    smallest_subnormal: float | None = None
    spacing_near_one: float
    spacing_near_largest: float
    decimal_digits: float | None = None
    qmin: int | None = None
    qmax: int | None = None
    scale: float | None = None
    points_near_one: list[float]
    points_in_range: list[bool]


@record
class QuantizeDemoResult:
    """Everything `llmfit quantize-demo` shows; dumped as is for --format json."""

    mode: str
    bits: int
    symmetric: bool
    examples: list[QuantExample]
    awq: list[AwqResult]
    gptq: list[GptqResult]
    formats: list[FormatInfo]


# --------------------------------------------------------------------------------------------- core


def int_range(bits: int, symmetric: bool) -> tuple[int, int]:
    """Integer code range: symmetric [-(2^(b-1) - 1), 2^(b-1) - 1] (int4 [-7, 7]), asymmetric [0, 2^b - 1]."""
    check_bits(bits)
    if symmetric:
        top = 2 ** (bits - 1) - 1
        return -top, top
    return 0, 2**bits - 1


def check_bits(bits: int) -> None:
    if not 2 <= bits <= 8:
        raise UnitError(f"--bits: {bits} is out of range; allowed 2..8")


@record(kw_only=False)
class Quantized:
    """Round-to-nearest outcome for a 2-D matrix: codes, dequantized values, and per-[row][group] params."""

    codes: np.ndarray
    dequantized: np.ndarray
    scales: np.ndarray  # [rows, groups]
    zero_points: np.ndarray  # [rows, groups] (zeros when symmetric)
    group_min: np.ndarray
    group_max: np.ndarray
    group_size: int  # columns per group (== columns for per-tensor / per-channel)


def as_matrix(values: np.ndarray | Sequence[float] | Sequence[Sequence[float]]) -> np.ndarray:
    """A float64 2-D copy: a vector becomes one row; >2-D tensors are (shape[0], -1) as conv weights are."""
    array = np.array(values, dtype=np.float64)
    if array.ndim == 0:
        array = array.reshape(1, 1)
    elif array.ndim == 1:
        array = array.reshape(1, -1)
    elif array.ndim > 2:
        array = array.reshape(array.shape[0], -1)
    if array.size == 0:
        raise UnitError("no weights given: the matrix is empty")
    if not np.all(np.isfinite(array)):
        raise UnitError("the weights contain NaN or infinity")
    if array.size > limits.MAX_QUANT_WEIGHTS or array.shape[0] > limits.MAX_QUANT_ROWS:
        raise UnitError(f"the weights: {array.shape[0]:,} x {array.shape[1]:,} is more than quantize-demo rounds "
                        f"at once (limit {limits.MAX_QUANT_WEIGHTS:,} weights, {limits.MAX_QUANT_ROWS:,} rows); "
                        "--matrix samples a larger layer")
    return array


def check_values(array: np.ndarray, what: str) -> None:
    """Finite and within MAX_ABS_VALUE, so that every square and sum below stays finite (no NaN ever
    reaches a result, no numpy overflow warning is printed)."""
    if not np.all(np.isfinite(array)):
        raise UnitError(f"{what} contain NaN or infinity")
    if array.size and float(np.max(np.abs(array))) > limits.MAX_ABS_VALUE:
        raise UnitError(f"{what} contain |value| {float(np.max(np.abs(array))):.3g}, beyond any real weight or "
                        f"activation (limit {limits.MAX_ABS_VALUE:g})")


def check_demo_sizes(samples: int, seed: int) -> None:
    """--samples in [1, MAX_SAMPLES] and --seed in [0, MAX_SEED] (numpy seeds are unsigned)."""
    if isinstance(samples, bool) or not 1 <= samples <= limits.MAX_SAMPLES:
        raise UnitError(f"--samples: {samples} is out of range; allowed 1..{limits.MAX_SAMPLES:,}")
    if isinstance(seed, bool) or not 0 <= seed <= limits.MAX_SEED:
        raise UnitError(f"--seed: {seed} is out of range; allowed 0..{limits.MAX_SEED:,}")


def _check_calibrated_size(w: np.ndarray, x: np.ndarray, what: str) -> None:
    """GPTQ / AWQ work is rows x columns x samples (and a columns x columns Hessian): held to the limits
    before any BLAS call (analyze samples a larger layer first)."""
    n_rows, n_cols = w.shape
    if n_rows > limits.MAX_GPTQ_ROWS or n_cols > limits.MAX_GPTQ_COLUMNS:
        raise UnitError(f"{what}: a {n_rows:,} x {n_cols:,} layer is larger than {what} runs on "
                        f"({limits.MAX_GPTQ_ROWS:,} rows x {limits.MAX_GPTQ_COLUMNS:,} columns)")
    if x.ndim == 2 and x.shape[1] > limits.MAX_SAMPLES:
        raise UnitError(f"{what}: {x.shape[1]:,} calibration inputs, more than {limits.MAX_SAMPLES:,}")
    check_values(x, "the calibration inputs")


def scale_and_zero(
    lo: np.ndarray, hi: np.ndarray, bits: int, symmetric: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Scale and zero point from a range: symmetric s = max(|lo|, |hi|) / qmax, z = 0;
    asymmetric s = (hi - lo) / (2^b - 1), z = round(-lo / s) (the range is widened to include 0).

    A group of zeros gets s = 1 so that it still decodes to zeros (no division by zero).
    """
    qmin, qmax = int_range(bits, symmetric)
    if symmetric:
        scale = np.maximum(np.abs(lo), np.abs(hi)) / qmax
        zero = np.zeros_like(scale)
    else:
        lo = np.minimum(lo, 0.0)
        hi = np.maximum(hi, 0.0)
        scale = (hi - lo) / (qmax - qmin)
        safe = np.where(scale > 0, scale, 1.0)
        zero = np.clip(np.rint(-lo / safe), qmin, qmax)
    scale = np.where(scale > 0, scale, 1.0)
    return scale, zero


def quantize_with(
    w: np.ndarray, scale: np.ndarray, zero: np.ndarray, bits: int, symmetric: bool
) -> tuple[np.ndarray, np.ndarray]:
    """q = clip(round(w / s) + z, qmin, qmax), w_hat = s (q - z), elementwise with broadcast s, z."""
    qmin, qmax = int_range(bits, symmetric)
    codes = np.clip(np.rint(w / scale) + zero, qmin, qmax)
    return codes, scale * (codes - zero)


def resolve_group_size(scheme: Scheme, n_cols: int, group_size: int | None) -> int:
    if scheme is Scheme.group:
        if group_size is None or group_size < 1:
            raise UnitError(f"--group-size: {group_size} must be a positive number of columns")
        return min(group_size, n_cols)
    return n_cols


def quantize_rtn(
    weights: np.ndarray, bits: int, scheme: Scheme, *, symmetric: bool = True, group_size: int | None = None
) -> Quantized:
    """Round-to-nearest quantization of a matrix (field guide 3.1-3.3).

    Per-tensor: one (s, z) from the whole matrix. Per-channel: one per row (output channel). Group: one
    per run of `group_size` consecutive columns in each row (the last group may be shorter), as GPTQ/AWQ
    checkpoints with group size 128 store them. Formulas in the module docstring.
    """
    w = as_matrix(weights)
    n_rows, n_cols = w.shape
    gs = resolve_group_size(scheme, n_cols, group_size)
    n_groups = math.ceil(n_cols / gs)
    pad = n_groups * gs - n_cols
    if scheme is Scheme.per_tensor:
        lo = np.full((n_rows, 1), w.min())
        hi = np.full((n_rows, 1), w.max())
    else:
        # Pad the last group with its own first value so min/max are those of the real columns.
        padded = np.concatenate([w, np.repeat(w[:, -gs:][:, :1], pad, axis=1)], axis=1) if pad else w
        blocks = padded.reshape(n_rows, n_groups, gs)
        if pad:
            last = w[:, (n_groups - 1) * gs :]
            lo = blocks.min(axis=2)
            hi = blocks.max(axis=2)
            lo[:, -1] = last.min(axis=1)
            hi[:, -1] = last.max(axis=1)
        else:
            lo = blocks.min(axis=2)
            hi = blocks.max(axis=2)
    scale, zero = scale_and_zero(lo, hi, bits, symmetric)
    expand = np.repeat(np.arange(n_groups), gs)[:n_cols]
    codes, dequantized = quantize_with(w, scale[:, expand], zero[:, expand], bits, symmetric)
    return Quantized(codes, dequantized, scale, zero, lo, hi, gs)


def _group_index(qz: Quantized) -> np.ndarray:
    """Column -> its group's index into the [row][group] scale arrays."""
    return np.repeat(np.arange(qz.scales.shape[1]), qz.group_size)[: qz.codes.shape[1]]


def error_metrics(w: np.ndarray, w_hat: np.ndarray) -> Metrics:
    """MSE = mean (w - w_hat)^2; max |w - w_hat|; SQNR = 10 log10(sum w^2 / sum (w - w_hat)^2) dB;
    zero_fraction = #(w != 0 and w_hat == 0) / #(w != 0)."""
    err = w - w_hat
    noise = float(np.sum(err * err))
    signal = float(np.sum(w * w))
    nonzero = w != 0
    n_nonzero = int(np.count_nonzero(nonzero))
    crushed = int(np.count_nonzero(nonzero & (w_hat == 0)))
    return Metrics(
        n_weights=int(w.size),
        mse=float(np.mean(err * err)),
        max_abs_error=float(np.max(np.abs(err))),
        sqnr_db=None if noise == 0 else (10 * math.log10(signal / noise) if signal > 0 else -math.inf),
        zero_fraction=crushed / n_nonzero if n_nonzero else 0.0,
    )


def storage_bytes(n_weights: int, n_scales: int, bits: int, symmetric: bool) -> Storage:
    """Bytes = ceil(n_weights * bits / 8) packed codes + n_scales * 2 (fp16 scales)
    + ceil(n_scales * bits / 8) packed zero points when asymmetric (GPTQ's qzeros layout)."""
    weights_bytes = math.ceil(n_weights * bits / 8)
    scales_bytes = n_scales * SCALE_BYTES
    zero_bytes = 0 if symmetric else math.ceil(n_scales * bits / 8)
    total = weights_bytes + scales_bytes + zero_bytes
    return Storage(
        weights_bytes=weights_bytes,
        scales_bytes=scales_bytes,
        zero_points_bytes=zero_bytes,
        total_bytes=total,
        fp16_bytes=n_weights * 2,
        bits_per_weight=total * 8 / n_weights,
    )


def _rounded(array: np.ndarray, digits: int = 10) -> list[list[float]]:
    # + 0.0 turns -0.0 into 0.0 so a zero error never prints as "-0.00".
    return [[round(float(v), digits) + 0.0 for v in row] for row in np.atleast_2d(array)]


def scheme_result(
    weights: np.ndarray, bits: int, scheme: Scheme, *, symmetric: bool = True, group_size: int | None = None
) -> SchemeResult:
    """Quantize with one scheme and measure it: overall and per-row metrics, storage, small-matrix detail."""
    w = as_matrix(weights)
    qz = quantize_rtn(w, bits, scheme, symmetric=symmetric, group_size=group_size)
    qmin, qmax = int_range(bits, symmetric)
    n_scales = 1 if scheme is Scheme.per_tensor else int(qz.scales.size)
    row_metrics = []
    for index in range(w.shape[0]):
        m = error_metrics(w[index], qz.dequantized[index])
        scales = [float(qz.scales[index, 0])] if scheme is Scheme.per_tensor else qz.scales[index].tolist()
        row_metrics.append(
            RowMetrics(
                row=index,
                max_abs=float(np.max(np.abs(w[index]))),
                scales=[float(s) for s in scales],
                mse=m.mse,
                max_abs_error=m.max_abs_error,
                sqnr_db=m.sqnr_db,
                zero_fraction=m.zero_fraction,
            )
        )
    if len(row_metrics) <= ROWS_LIMIT:
        selection = "all"
    else:
        row_metrics = sorted(row_metrics, key=lambda r: math.inf if r.sqnr_db is None else r.sqnr_db)[:8]
        selection = f"8 rows with the lowest SQNR of {w.shape[0]}"
    small = w.size <= DETAIL_LIMIT
    per_tensor = scheme is Scheme.per_tensor
    return SchemeResult(
        scheme=scheme,
        bits=bits,
        symmetric=symmetric,
        group_size=qz.group_size if scheme is Scheme.group else None,
        qmin=qmin,
        qmax=qmax,
        n_scales=n_scales,
        metrics=error_metrics(w, qz.dequantized),
        storage=storage_bytes(int(w.size), n_scales, bits, symmetric),
        rows=row_metrics,
        rows_selection=selection,
        scales=_rounded(qz.scales[:1, :1] if per_tensor else qz.scales, 12) if small else None,
        zero_points=(qz.zero_points[:1, :1] if per_tensor else qz.zero_points).astype(int).tolist()
        if small
        else None,
        group_min=_rounded(qz.group_min[:1, :1] if per_tensor else qz.group_min) if small else None,
        group_max=_rounded(qz.group_max[:1, :1] if per_tensor else qz.group_max) if small else None,
        codes=qz.codes.astype(int).tolist() if small else None,
        scaled=_rounded(w / qz.scales[:, _group_index(qz)]) if small else None,
        dequantized=_rounded(qz.dequantized) if small else None,
        errors=_rounded(qz.dequantized - w) if small else None,
    )


def number_line(
    values: Sequence[float], bits: int, scheme: Scheme, *, label: str, weights: np.ndarray | None = None,
    row: int = 0, symmetric: bool = True,
) -> NumberLine:
    """Grid {s (k - z) : k in [qmin, qmax]} of the scale row `row` gets under `scheme` applied to `weights`
    (the whole matrix, so that a per-tensor scale is the shared one), with the row's values and landings."""
    w = as_matrix(weights if weights is not None else values)
    qz = quantize_rtn(w, bits, scheme, symmetric=symmetric)
    qmin, qmax = int_range(bits, symmetric)
    scale = float(qz.scales[row, 0])
    zero = int(qz.zero_points[row, 0])
    grid = [scale * (k - zero) for k in range(qmin, qmax + 1)]
    return NumberLine(
        label=label,
        scale=scale,
        zero_point=zero,
        grid=grid,
        values=[float(v) for v in w[row]],
        dequantized=[float(v) for v in qz.dequantized[row]],
        codes=[int(c) for c in qz.codes[row]],
    )


def example(
    name: str, title: str, source: str, weights: np.ndarray | Sequence[Sequence[float]], bits: int,
    schemes: Sequence[Scheme], *, symmetric: bool = True, group_size: int | None = None,
    lines: bool = True,
) -> QuantExample:
    """One worked example: each scheme's result, and number lines for the row with the smallest range
    (the one a shared scale crushes) under each scheme that gives it a different grid."""
    w = as_matrix(weights)
    results = [scheme_result(w, bits, s, symmetric=symmetric, group_size=group_size) for s in schemes]
    number_lines: list[NumberLine] = []
    if lines and w.shape[1] <= 32:
        row = int(np.argmin(np.max(np.abs(w), axis=1)))
        seen: set[float] = set()
        for s in schemes:
            if s is Scheme.group:
                continue
            line = number_line(w[row], bits, s, weights=w, row=row, symmetric=symmetric,
                               label=f"row {row + 1}, {s.value} {_int_name(bits)}")
            if line.scale not in seen:
                seen.add(line.scale)
                number_lines.append(line)
    return QuantExample(
        name=name,
        title=title,
        source=source,
        shape=list(w.shape),
        weights=_rounded(w) if w.size <= DETAIL_LIMIT else None,
        schemes=results,
        number_lines=number_lines,
    )


def _int_name(bits: int) -> str:
    return f"int{bits}"


# --------------------------------------------------------------------------------------------- AWQ


def awq_search(
    weights: np.ndarray, calibration: np.ndarray, bits: int, scheme: Scheme, *, symmetric: bool = True,
    group_size: int | None = None, n_grid: int = 20, title: str = "AWQ", source: str = "",
    activation_magnitudes: Sequence[float] | None = None,
) -> AwqResult:
    """Activation-aware weight quantization's scale search (Lin et al. 2023, "AWQ", section 3.2).

    With a_j = mean |X_j| the activation magnitude of input channel j (X: [in, samples]), for each alpha
    on the grid {0, 1/n, ..., 1}: s_j = a_j^alpha, normalised s / sqrt(max s * min s) as the reference
    code does; W' = Q(W diag(s)) diag(s)^-1 (the 1/s is folded into the previous op at inference);
    error(alpha) = ||W X - W' X||_F. The alpha with the smallest error is chosen; alpha = 0 is plain
    round-to-nearest. (The reference implementation also searches a clipping ratio; not done here.)
    """
    w = as_matrix(weights)
    x = np.asarray(calibration, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] != w.shape[1]:
        raise UnitError(f"activations: need one value per input channel ({w.shape[1]}), got shape {x.shape}")
    _check_calibrated_size(w, x, "AWQ")
    magnitude = np.mean(np.abs(x), axis=1)
    magnitude = np.where(magnitude > 0, magnitude, 1e-8)
    reference = w @ x

    def dequantize(alpha: float) -> tuple[np.ndarray, np.ndarray]:
        s = np.clip(magnitude**alpha, 1e-4, None)
        s = s / math.sqrt(float(s.max() * s.min()))
        qz = quantize_rtn(w * s[None, :], bits, scheme, symmetric=symmetric, group_size=group_size)
        return qz.dequantized / s[None, :], s

    search = []
    best: tuple[float, float, np.ndarray, np.ndarray] | None = None
    for i in range(n_grid + 1):
        alpha = i / n_grid
        w_hat, s = dequantize(alpha)
        err = float(np.linalg.norm(reference - w_hat @ x))
        search.append(AwqAlpha(alpha=alpha, output_error=err))
        if best is None or err < best[1] - 1e-15:
            best = (alpha, err, w_hat, s)
    assert best is not None
    rtn_hat = quantize_rtn(w, bits, scheme, symmetric=symmetric, group_size=group_size).dequantized
    small = w.size <= DETAIL_LIMIT
    acts = [float(a) for a in activation_magnitudes] if activation_magnitudes is not None else None
    return AwqResult(
        title=title,
        source=source,
        shape=list(w.shape),
        bits=bits,
        scheme=scheme,
        group_size=group_size if scheme is Scheme.group else None,
        symmetric=symmetric,
        activation_magnitudes=acts,
        contributions=_rounded(w * np.asarray(acts)[None, :]) if acts is not None and small else None,
        weights=_rounded(w) if small else None,
        rtn_dequantized=_rounded(rtn_hat) if small else None,
        awq_dequantized=_rounded(best[2]) if small else None,
        channel_scales=[float(v) for v in best[3]] if w.shape[1] <= DETAIL_LIMIT else None,
        search=search,
        best_alpha=best[0],
        rtn_output_error=float(np.linalg.norm(reference - rtn_hat @ x)),
        awq_output_error=best[1],
        reference_output_norm=float(np.linalg.norm(reference)),
    )


def awq_from_magnitudes(
    weights: np.ndarray | Sequence[Sequence[float]], activations: Sequence[float], bits: int, scheme: Scheme,
    *, symmetric: bool = True, group_size: int | None = None, title: str = "AWQ", source: str = "",
) -> AwqResult:
    """AWQ when only per-channel activation magnitudes a are known: calibration X = diag(a), i.e. one
    input per channel at its typical magnitude, so ||(W - W') X||_F^2 = sum_ij ((w_ij - w'_ij) a_j)^2
    (the expected squared output error for inputs +-a_j with independent signs)."""
    a = np.asarray(activations, dtype=np.float64)
    w = as_matrix(weights)
    if a.ndim != 1 or a.size != w.shape[1]:
        raise UnitError(f"--activations: need {w.shape[1]} values (one per input column), got {a.size}")
    if np.any(a < 0) or not np.all(np.isfinite(a)):
        raise UnitError("--activations: magnitudes must be finite and >= 0")
    if w.shape[1] > limits.MAX_GPTQ_COLUMNS or w.shape[0] > limits.MAX_GPTQ_ROWS:
        raise UnitError(f"AWQ: a {w.shape[0]:,} x {w.shape[1]:,} layer is larger than AWQ runs on "
                        f"({limits.MAX_GPTQ_ROWS:,} rows x {limits.MAX_GPTQ_COLUMNS:,} columns)")
    return awq_search(w, np.diag(a), bits, scheme, symmetric=symmetric, group_size=group_size,
                      title=title, source=source, activation_magnitudes=a.tolist())


# --------------------------------------------------------------------------------------------- GPTQ


def gptq_quantize(
    weights: np.ndarray, calibration: np.ndarray, bits: int, scheme: Scheme, *, symmetric: bool = True,
    group_size: int | None = None, damp: float = 0.01, block_size: int = 128,
) -> tuple[np.ndarray, int]:
    """GPTQ (Frantar et al. 2022, "GPTQ: Accurate Post-Training Quantization for Generative Pre-trained
    Transformers", Algorithm 1), returns (W_hat, block size used).

    H = 2 X X^T over calibration inputs X [in, samples]; dead inputs (H_jj = 0) get H_jj = 1 and W_:j = 0;
    H += damp * mean(diag H) * I; U = upper Cholesky factor of H^-1 (H^-1 = U^T U). Columns are quantized
    in order; after column j, the error e = (w_j - q_j) / U_jj is fed to the not-yet-quantized columns:
    W_:,k -= e U_jk (k > j). Updates are applied lazily per block of columns (the paper's "lazy batch").
    Scales: per-tensor/per-channel from the original W; group-wise from the updated W when a group
    starts, as the reference implementation does (block size is a multiple of the group size, so a
    group's columns are up to date when it starts).
    """
    w = as_matrix(weights).copy()
    x = np.asarray(calibration, dtype=np.float64)
    n_rows, n_cols = w.shape
    if x.ndim != 2 or x.shape[0] != n_cols:
        raise UnitError(f"calibration: need inputs of shape [{n_cols}, samples], got {list(x.shape)}")
    if not 0 <= damp < 1:
        raise UnitError(f"--damp: {damp} must be in [0, 1)")
    _check_calibrated_size(w, x, "GPTQ")
    h = 2.0 * (x @ x.T)
    dead = np.diag(h) == 0
    h[dead, dead] = 1.0
    w[:, dead] = 0.0
    h[np.diag_indices(n_cols)] += damp * float(np.mean(np.diag(h)))
    try:
        h_inv = np.linalg.inv(np.linalg.cholesky(h))  # L^-1, with H = L L^T
        u = np.linalg.cholesky(h_inv.T @ h_inv).T  # H^-1 = L^-T L^-1 = U^T U
    except np.linalg.LinAlgError:
        raise UnitError("calibration: the Hessian is not positive definite; raise --damp") from None

    gs = resolve_group_size(scheme, n_cols, group_size)
    if scheme is Scheme.group:
        block = gs * max(1, block_size // gs)
        scale = zero = np.zeros((n_rows, 1))
    else:
        block = min(block_size, n_cols)
        base = quantize_rtn(w, bits, scheme, symmetric=symmetric)
        scale, zero = base.scales[:, :1], base.zero_points[:, :1]
    w_hat = np.zeros_like(w)
    for i1 in range(0, n_cols, block):
        i2 = min(i1 + block, n_cols)
        w1 = w[:, i1:i2].copy()
        err1 = np.zeros_like(w1)
        u1 = u[i1:i2, i1:i2]
        for i in range(i2 - i1):
            col = i1 + i
            if scheme is Scheme.group and col % gs == 0:
                stop = min(col + gs, n_cols)
                group = np.concatenate([w1[:, i:], w[:, i2:]], axis=1)[:, : stop - col]
                scale, zero = scale_and_zero(
                    group.min(axis=1, keepdims=True), group.max(axis=1, keepdims=True), bits, symmetric
                )
            _, q = quantize_with(w1[:, i : i + 1], scale, zero, bits, symmetric)
            w_hat[:, col] = q[:, 0]
            e = (w1[:, i] - q[:, 0]) / u1[i, i]
            w1[:, i:] -= np.outer(e, u1[i, i:])
            err1[:, i] = e
        w[:, i2:] -= err1 @ u[i1:i2, i2:]
    return w_hat, block


def outlier_calibration(
    n_inputs: int, n_samples: int, *, seed: int = 0, n_outliers: int | None = None
) -> np.ndarray:
    """Generated calibration inputs X [in, samples]: correlated Gaussian features (a random low-rank mix
    plus noise) with a few outlier channels 20x larger, as LLM activations have (Dettmers et al. 2022)."""
    check_demo_sizes(n_samples, seed)
    if not 1 <= n_inputs <= limits.MAX_GPTQ_COLUMNS:
        raise UnitError(f"calibration: {n_inputs:,} inputs, allowed 1..{limits.MAX_GPTQ_COLUMNS:,}")
    rng = np.random.default_rng(seed)
    rank = max(1, n_inputs // 4)
    x = rng.standard_normal((n_inputs, rank)) @ rng.standard_normal((rank, n_samples)) / math.sqrt(rank)
    x += 0.3 * rng.standard_normal((n_inputs, n_samples))
    k = n_outliers if n_outliers is not None else max(1, n_inputs // 32)
    x[rng.choice(n_inputs, size=k, replace=False)] *= 20.0
    return x


def generated_weights(n_rows: int, n_cols: int, *, seed: int = 0) -> np.ndarray:
    """A generated weight matrix: Gaussian, std 1/sqrt(in), a few rows 10x larger (uneven channels)."""
    rng = np.random.default_rng(seed + 1)
    w = rng.standard_normal((n_rows, n_cols)) / math.sqrt(n_cols)
    w[rng.choice(n_rows, size=max(1, n_rows // 16), replace=False)] *= 10.0
    return w


def gptq_compare(
    weights: np.ndarray, calibration: np.ndarray, bits: int, scheme: Scheme, *, symmetric: bool = True,
    group_size: int | None = None, damp: float = 0.01, block_size: int = 128, title: str = "GPTQ",
    source: str = "", calibration_label: str = "given",
) -> GptqResult:
    """Round-to-nearest vs GPTQ on the same W, X, bits, scheme: ||W X - W_hat X||_F for each, also
    relative to ||W X||_F, and the plain weight MSE (GPTQ trades weight error for output error)."""
    w = as_matrix(weights)
    x = np.asarray(calibration, dtype=np.float64)
    w_gptq, block = gptq_quantize(w, x, bits, scheme, symmetric=symmetric, group_size=group_size,
                                  damp=damp, block_size=block_size)
    w_rtn = quantize_rtn(w, bits, scheme, symmetric=symmetric, group_size=group_size).dequantized
    reference = w @ x
    ref_norm = float(np.linalg.norm(reference))
    rtn_err = float(np.linalg.norm(reference - w_rtn @ x))
    gptq_err = float(np.linalg.norm(reference - w_gptq @ x))
    return GptqResult(
        title=title,
        source=source,
        shape=list(w.shape),
        n_samples=int(x.shape[1]),
        calibration=calibration_label,
        bits=bits,
        scheme=scheme,
        group_size=resolve_group_size(scheme, w.shape[1], group_size) if scheme is Scheme.group else None,
        symmetric=symmetric,
        damp=damp,
        block_size=block,
        reference_output_norm=ref_norm,
        rtn_output_error=rtn_err,
        gptq_output_error=gptq_err,
        rtn_relative_error=rtn_err / ref_norm if ref_norm else 0.0,
        gptq_relative_error=gptq_err / ref_norm if ref_norm else 0.0,
        rtn_weight_mse=float(np.mean((w - w_rtn) ** 2)),
        gptq_weight_mse=float(np.mean((w - w_gptq) ** 2)),
    )


# --------------------------------------------------------------------------------------------- formats


@record(kw_only=False)
class FloatDef:
    """A binary floating-point format: 1 sign bit, e exponent bits (bias 2^(e-1) - 1), m mantissa bits.
    `ieee`: the top exponent is reserved for inf/NaN; otherwise (OCP fp8 E4M3FN) only all-ones is NaN."""

    name: str
    exponent_bits: int
    mantissa_bits: int
    ieee: bool = True


FLOAT_FORMATS: tuple[FloatDef, ...] = (
    FloatDef("fp32", 8, 23),
    FloatDef("fp16", 5, 10),
    FloatDef("bf16", 8, 7),
    FloatDef("fp8-e4m3", 4, 3, ieee=False),
    FloatDef("fp8-e5m2", 5, 2),
)


def float_format(fmt: FloatDef, n_points: int = 2) -> FormatInfo:
    """Properties of a float format from its definition (IEEE 754; OCP 8-bit FP spec for fp8):
    bias = 2^(e-1) - 1; emax = 2^e - 2 - bias (IEEE) or 2^e - 1 - bias (E4M3FN, whose top mantissa
    pattern is NaN); largest = (2 - 2^-m) 2^emax (IEEE) or (2 - 2^(1-m)) 2^emax (E4M3FN: 448);
    smallest normal 2^(1-bias), smallest subnormal 2^(1-bias-m); spacing 2^-m at 1.0 (2^-(m+1) just
    below it) and 2^(emax-m) near the largest value."""
    e, m = fmt.exponent_bits, fmt.mantissa_bits
    bias = 2 ** (e - 1) - 1
    if fmt.ieee:
        emax = 2**e - 2 - bias
        largest = (2 - Fraction(1, 2**m)) * Fraction(2) ** emax
    else:
        emax = 2**e - 1 - bias
        largest = (2 - Fraction(2, 2**m)) * Fraction(2) ** emax
    below = [1 - k * Fraction(1, 2 ** (m + 1)) for k in range(n_points, 0, -1)]
    above = [1 + k * Fraction(1, 2**m) for k in range(1, n_points + 1)]
    points = [*below, Fraction(1), *above]
    return FormatInfo(
        name=fmt.name,
        kind="float",
        bits=1 + e + m,
        exponent_bits=e,
        mantissa_bits=m,
        bias=bias,
        has_infinity=fmt.ieee,
        largest=float(largest),
        smallest_normal=float(Fraction(2) ** (1 - bias)),
        smallest_subnormal=float(Fraction(2) ** (1 - bias - m)),
        spacing_near_one=float(Fraction(1, 2**m)),
        spacing_near_largest=float(Fraction(2) ** (emax - m)),
        decimal_digits=(m + 1) * math.log10(2),
        points_near_one=[float(p) for p in points],
        points_in_range=[True] * len(points),
    )


def int_format(bits: int, scale: float, n_points: int = 3) -> FormatInfo:
    """A symmetric integer format with scale s: levels k s for k in [-(2^(b-1) - 1), 2^(b-1) - 1]; step s
    everywhere; largest qmax s. Points near 1.0: k s for k = round(1/s) - n .. round(1/s) + n, flagged
    when k is outside the code range (the field guide's int4 line 0.57 .. 1.43 is s = 1/7, whose
    1.14, 1.29, 1.43 would need codes 8..10: beyond int4's 7)."""
    if not (math.isfinite(scale) and scale > 0):
        raise UnitError(f"--scale: {scale} must be a positive number")
    qmin, qmax = int_range(bits, True)
    centre = round(1.0 / scale)
    ks = list(range(centre - n_points, centre + n_points + 1))
    return FormatInfo(
        name=_int_name(bits),
        kind="int",
        bits=bits,
        largest=qmax * scale,
        spacing_near_one=scale,
        spacing_near_largest=scale,
        qmin=qmin,
        qmax=qmax,
        scale=scale,
        points_near_one=[k * scale for k in ks],
        points_in_range=[qmin <= k <= qmax for k in ks],
    )


# The field guide's 2.3 number line: int4 with scale 1/7, int8 with scale 0.01.
GUIDE_INT_SCALES = {4: 1 / 7, 8: 0.01}


def formats_table(scale: float | None = None) -> list[FormatInfo]:
    """fp32, fp16, bf16, fp8 e4m3 and e5m2 from their definitions, then int8 and int4 at `scale`
    (default: the guide's 0.01 and 1/7)."""
    floats = [float_format(f) for f in FLOAT_FORMATS]
    ints = [int_format(b, scale if scale is not None else GUIDE_INT_SCALES[b]) for b in (8, 4)]
    return floats + ints


# --------------------------------------------------------------------------------------------- demo

GUIDE_3_2 = [[0.18, -0.91, 1.62, 2.94]]
GUIDE_3_3 = [[0.12, -0.18, 0.25, -0.31], [1.6, -2.1, 2.4, -2.8]]
GUIDE_6_5 = [[0.05, -0.08, 0.11, -0.14], [1.4, -1.7, 2.1, -2.8]]
GUIDE_AWQ_WEIGHTS = [[0.20, 1.20]]
GUIDE_AWQ_ACTIVATIONS = [20.0, 0.5]
GPTQ_DEMO_SHAPE = (32, 64)
GPTQ_DEMO_SAMPLES = 256


def walkthrough(
    *, bits: int = 4, symmetric: bool = True, group_size: int | None = None, seed: int = 0,
    damp: float = 0.01, scale: float | None = None,
) -> QuantizeDemoResult:
    """The field guide's examples in order: 3.2 one scale for four weights, 3.3 per-tensor vs
    per-channel, 6.5 the crushed row, 3.5 the AWQ channel A/B toy, 3.4 GPTQ vs round-to-nearest on a
    generated layer with outlier channels, and 2.3's number formats."""
    schemes = [Scheme.per_tensor, Scheme.per_channel]
    if group_size is not None:
        schemes.append(Scheme.group)
    examples = [
        example("guide_3_2", "Four weights, one scale", "field guide 3.2", GUIDE_3_2, bits,
                [Scheme.per_tensor], symmetric=symmetric),
        example("guide_3_3", "Two channels: per-tensor vs per-channel", "field guide 3.3", GUIDE_3_3, bits,
                schemes, symmetric=symmetric, group_size=group_size),
        example("guide_6_5", "The crushed row", "field guide 6.5 (medium exercise)", GUIDE_6_5, bits,
                schemes, symmetric=symmetric, group_size=group_size),
    ]
    awq = awq_from_magnitudes(
        GUIDE_AWQ_WEIGHTS, GUIDE_AWQ_ACTIVATIONS, bits, Scheme.per_channel, symmetric=symmetric,
        title="Channel A (w 0.20, a 20) vs channel B (w 1.20, a 0.5)", source="field guide 3.5",
    )
    rows, cols = GPTQ_DEMO_SHAPE
    gptq_scheme = Scheme.group if group_size is not None else Scheme.per_channel
    gptq = gptq_compare(
        generated_weights(rows, cols, seed=seed), outlier_calibration(cols, GPTQ_DEMO_SAMPLES, seed=seed),
        bits, gptq_scheme, symmetric=symmetric, group_size=group_size, damp=damp,
        title=f"Generated {rows}x{cols} layer, {GPTQ_DEMO_SAMPLES} calibration inputs with outlier channels",
        source="field guide 3.4", calibration_label=f"generated, outlier channels, seed {seed}",
    )
    return QuantizeDemoResult(
        mode="walkthrough", bits=bits, symmetric=symmetric, examples=examples, awq=[awq], gptq=[gptq],
        formats=formats_table(scale),
    )


def orient_calibration(x: np.ndarray, n_inputs: int) -> np.ndarray:
    """Calibration inputs as X [in, samples]: accepts [samples, in] (tokens x hidden, as activations are
    usually saved) or [in, samples]."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x.reshape(-1, 1) if x.size == n_inputs else x.reshape(1, -1)
    if x.ndim != 2:
        raise UnitError(f"calibration: need a 2-D array [samples, {n_inputs}], got shape {list(x.shape)}")
    if x.shape[1] == n_inputs:
        x = x.T
    elif x.shape[0] != n_inputs:
        raise UnitError(f"calibration: shape {list(x.shape)} has no axis of {n_inputs} (the layer's inputs)")
    if not np.all(np.isfinite(x)):
        raise UnitError("calibration: the inputs contain NaN or infinity")
    return x


def calibration_sample(w: np.ndarray) -> tuple[np.ndarray, str]:
    """The part of W that AWQ / GPTQ run on: all of it within MAX_GPTQ_ROWS x MAX_GPTQ_COLUMNS, else
    evenly spaced rows and the first columns, with a note saying so."""
    n_rows, n_cols = w.shape
    if n_rows <= limits.MAX_GPTQ_ROWS and n_cols <= limits.MAX_GPTQ_COLUMNS:
        return w, ""
    keep_cols = min(n_cols, limits.MAX_GPTQ_COLUMNS)
    rows = np.unique(np.linspace(0, n_rows - 1, min(n_rows, limits.MAX_GPTQ_ROWS)).round().astype(np.int64))
    which = f"all {n_rows:,} rows" if rows.size == n_rows else f"{rows.size:,} evenly spaced rows"
    note = f" (on a sample: {which} x the first {keep_cols:,} columns of {n_rows:,} x {n_cols:,})"
    return w[rows][:, :keep_cols], note


def default_schemes(n_rows: int, n_cols: int, group_size: int | None) -> list[Scheme]:
    """Compare per-tensor, per-channel (when there is more than one row) and group-wise (when a group is
    narrower than a row)."""
    schemes = [Scheme.per_tensor]
    if n_rows > 1:
        schemes.append(Scheme.per_channel)
    if group_size is not None and group_size < n_cols:
        schemes.append(Scheme.group)
    return schemes


def analyze(
    weights: np.ndarray, *, name: str, source: str, bits: int = 4, schemes: Sequence[Scheme] | None = None,
    symmetric: bool = True, group_size: int | None = 128, activations: Sequence[float] | None = None,
    awq: bool = False, gptq: bool = False, calibration: np.ndarray | None = None,
    calibration_label: str = "given", samples: int = 256, seed: int = 0, damp: float = 0.01,
    formats: bool = False, scale: float | None = None, mode: str = "values",
) -> QuantizeDemoResult:
    """The user's weights: each scheme's error and size; AWQ with --activations (X = diag(a)) or with
    calibration inputs; GPTQ vs round-to-nearest on calibration inputs (given, or generated with outlier
    channels from `seed`); the formats table on request."""
    check_bits(bits)
    w = as_matrix(weights)
    check_values(w, "the weights")  # the user's numbers; scaled copies inside AWQ may go beyond
    if activations is not None:
        check_values(np.asarray(activations, dtype=np.float64), "--activations")
    n_rows, n_cols = w.shape
    chosen = list(schemes) if schemes else default_schemes(n_rows, n_cols, group_size)
    if Scheme.group in chosen and (group_size is None or group_size < 1):
        raise UnitError("--scheme group needs --group-size N (N >= 1)")
    # AWQ and GPTQ run with one scheme: the finest one compared.
    main = next((s for s in (Scheme.group, Scheme.per_channel) if s in chosen), chosen[0])
    ex = example(name, "Your weights" if mode == "values" else "Weight matrix", source, w, bits, chosen,
                 symmetric=symmetric, group_size=group_size, lines=mode == "values")
    check_demo_sizes(samples, seed)
    # AWQ and GPTQ run on at most MAX_GPTQ_ROWS x MAX_GPTQ_COLUMNS: a larger layer is sampled (evenly
    # spaced rows, the first columns so groups stay whole), and the titles say so.
    wc, sample_note = calibration_sample(w)
    keep_cols = wc.shape[1]
    x: np.ndarray | None = None
    if calibration is not None:
        x = orient_calibration(calibration, n_cols if n_cols in np.shape(calibration)[-2:] else keep_cols)
        x = x[:keep_cols, : limits.MAX_SAMPLES]
    elif gptq or (awq and activations is None):
        x = outlier_calibration(keep_cols, samples, seed=seed)
        calibration_label = f"generated, outlier channels, seed {seed}"
    awq_results: list[AwqResult] = []
    if activations is not None:
        acts = list(activations)
        if len(acts) != n_cols:
            raise UnitError(f"--activations: need {n_cols} values (one per input column), got {len(acts)}")
        awq_results.append(awq_from_magnitudes(wc, acts[:keep_cols], bits, main, symmetric=symmetric,
                                               group_size=group_size, title="Activation-aware scaling" + sample_note,
                                               source="--activations"))
    elif awq and x is not None:
        awq_results.append(awq_search(wc, x, bits, main, symmetric=symmetric, group_size=group_size,
                                      title="Activation-aware scaling" + sample_note,
                                      source=f"calibration ({calibration_label})"))
    gptq_results: list[GptqResult] = []
    if gptq and x is not None:
        gptq_results.append(gptq_compare(wc, x, bits, main, symmetric=symmetric, group_size=group_size,
                                         damp=damp, title="GPTQ vs round-to-nearest" + sample_note,
                                         source="--gptq", calibration_label=calibration_label))
    return QuantizeDemoResult(
        mode=mode, bits=bits, symmetric=symmetric, examples=[ex], awq=awq_results, gptq=gptq_results,
        formats=formats_table(scale) if formats else [],
    )


def formats_only(scale: float | None = None) -> QuantizeDemoResult:
    """Just the number-formats table (--formats with no weights)."""
    return QuantizeDemoResult(mode="formats", bits=4, symmetric=True, examples=[], awq=[], gptq=[],
                              formats=formats_table(scale))
