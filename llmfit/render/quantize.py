"""quantize-demo result -> Document (tables, number-line pictures, formulas). Formatting only, no math."""

from __future__ import annotations

from llmfit.engine.quantization import (
    AwqResult,
    FormatInfo,
    GptqResult,
    NumberLine,
    QuantExample,
    QuantizeDemoResult,
    SchemeResult,
)
from llmfit.render.document import Document, Section
from llmfit.units import DisplayUnits, format_bytes

LINE_WIDTH = 56


def _num(value: float, digits: int = 4) -> str:
    return f"{value:.{digits}f}"


def _signed(value: float, digits: int = 4) -> str:
    return f"{value:+.{digits}f}" if value != 0 else f"{0:.{digits}f}"


def _sci(value: float) -> str:
    """Compact general format for values spanning many decades (1.2e-38 .. 3.4e38)."""
    if value == 0:
        return "0"
    if 1e-3 <= abs(value) < 1e6:
        return f"{value:,.6g}"
    return f"{value:.4g}"


def _sqnr(value: float | None) -> str:
    return "inf" if value is None else f"{value:.1f}"


def _pct(share: float) -> str:
    return f"{share * 100:.0f}%"


def _int_name(bits: int) -> str:
    return f"int{bits}"


def _scheme_label(s: SchemeResult, *, bits: bool = True) -> str:
    label = s.scheme.value if s.group_size is None else f"group {s.group_size}"
    width = f" {_int_name(s.bits)}" if bits else ""
    return f"{label}{width}{'' if s.symmetric else ' asym'}"


def _scales_label(s: SchemeResult, row: int | None = None) -> str:
    if row is not None:
        scales = next(r.scales for r in s.rows if r.row == row)
        if len(scales) > 2:
            return f"{len(scales)} scales"
        return ", ".join(_num(v) for v in scales[:3]) + (" ..." if len(scales) > 3 else "")
    return f"{s.n_scales} scale{'s' if s.n_scales != 1 else ''}"


# --------------------------------------------------------------------------------------------- sections


def _detail_section(example: QuantExample, s: SchemeResult) -> Section | None:
    """The guide's table: each weight, w / s, the code q, the dequantized value and the error."""
    if example.weights is None or s.codes is None or s.scaled is None or s.dequantized is None:
        return None
    if s.errors is None or s.scales is None:
        return None
    rows: list[list[str]] = []
    many = len(example.weights) > 1
    for r, weights in enumerate(example.weights):
        for c, w in enumerate(weights):
            scale = s.scales[0][0] if len(s.scales) == 1 and len(s.scales[0]) == 1 else None
            if scale is None:
                group = c // (s.group_size or len(weights))
                scale = s.scales[r][group]
            crushed = w != 0 and s.dequantized[r][c] == 0
            rows.append([
                f"{r + 1}" if many else "",
                _num(w, 2),
                _num(scale),
                f"{s.scaled[r][c]:.2f}",
                str(s.codes[r][c]),
                _num(s.dequantized[r][c], 2 if s.scheme.value == "per-tensor" else 4),
                _signed(s.errors[r][c], 2 if s.scheme.value == "per-tensor" else 4),
                "rounded to 0" if crushed else "",
            ])
    columns = ["Row", "w", "s", "w / s", "q", "ŵ = s·(q−z)" if not s.symmetric else "ŵ = s·q", "ŵ − w", ""]
    if not many:
        columns, rows = columns[1:], [row[1:] for row in rows]
        numeric: tuple[int, ...] = (0, 1, 2, 3, 4, 5)
    else:
        numeric = (0, 1, 2, 3, 4, 5, 6)
    return Section(
        title=f"{example.source}: {example.title} — {_scheme_label(s)}, q in [{s.qmin}, {s.qmax}]",
        columns=columns,
        rows=rows,
        numeric=numeric,
    )


def _summary_section(example: QuantExample, units: DisplayUnits) -> Section:
    rows: list[list[str]] = []
    emphasis: list[int] = []
    for s in example.schemes:
        if len(s.rows) > 1 or s.rows_selection != "all":
            # A big matrix: its three rows with the lowest SQNR (JSON has the engine's full selection).
            for r in s.rows if s.rows_selection == "all" else s.rows[:3]:
                rows.append([
                    _scheme_label(s, bits=False), f"row {r.row + 1}", _scales_label(s, r.row), f"{r.mse:.3g}",
                    _num(r.max_abs_error), _sqnr(r.sqnr_db), _pct(r.zero_fraction), "", "", "",
                ])
        st = s.storage
        emphasis.append(len(rows))
        rows.append([
            _scheme_label(s, bits=False),
            "all",
            _scales_label(s),
            f"{s.metrics.mse:.3g}",
            _num(s.metrics.max_abs_error),
            _sqnr(s.metrics.sqnr_db),
            _pct(s.metrics.zero_fraction),
            format_bytes(st.total_bytes, units),
            format_bytes(st.scales_bytes + st.zero_points_bytes, units),
            f"{st.bits_per_weight:.3g}",
        ])
    shape = "x".join(str(d) for d in example.shape)
    worst = "" if all(s.rows_selection == "all" for s in example.schemes) else "; rows: the 3 with the lowest SQNR"
    return Section(
        title=f"{example.source}: error and size, {_int_name(example.schemes[0].bits)} ({shape} weights; "
        f"fp16 would be {format_bytes(example.schemes[0].storage.fp16_bytes, units)}{worst})",
        columns=["Scheme", "Rows", "Scale", "MSE", "Max |err|", "SQNR dB", "Zeroed", "Stored", "Scales",
                 "Bits/w"],
        rows=rows,
        numeric=(3, 4, 5, 6, 7, 8, 9),
        emphasis=tuple(emphasis),
    )


def _awq_sections(awq: AwqResult) -> list[Section]:
    sections: list[Section] = []
    if awq.weights is not None and awq.rtn_dequantized is not None and awq.awq_dequantized is not None:
        rows = []
        for j, w in enumerate(awq.weights[0] if len(awq.weights) == 1 else []):
            act = awq.activation_magnitudes[j] if awq.activation_magnitudes else None
            contrib = awq.contributions[0][j] if awq.contributions else None
            rows.append([
                chr(ord("A") + j) if len(awq.weights[0]) <= 26 else str(j + 1),
                _num(w, 2),
                "" if act is None else _sci(act),
                "" if contrib is None else _num(contrib, 2),
                _num(awq.rtn_dequantized[0][j]),
                "" if awq.channel_scales is None else _num(awq.channel_scales[j], 3),
                _num(awq.awq_dequantized[0][j]),
            ])
        if rows:
            sections.append(Section(
                title=f"{awq.source}: {awq.title} — {_int_name(awq.bits)} {awq.scheme.value}",
                columns=["Channel", "w", "Activation a", "w·a", "Plain rounding ŵ", "AWQ scale s",
                         "AWQ ŵ = Q(w·s)/s"],
                rows=rows,
                numeric=(1, 2, 3, 4, 5, 6),
            ))
    shape = "x".join(str(d) for d in awq.shape)
    sections.append(Section(
        title=f"{awq.source}: output error ||W X − Ŵ X|| ({shape} weights)" if not sections
        else f"{awq.source}: output error",
        columns=["Method", "Output error", "Relative to ||W X||"],
        rows=[
            ["round-to-nearest", _sci(awq.rtn_output_error),
             _pct_fine(awq.rtn_output_error, awq.reference_output_norm)],
            [f"AWQ (alpha = {awq.best_alpha:.2f})", _sci(awq.awq_output_error),
             _pct_fine(awq.awq_output_error, awq.reference_output_norm)],
        ],
        numeric=(1, 2),
        emphasis=(1,),
    ))
    return sections


def _pct_fine(part: float, whole: float) -> str:
    return f"{part / whole * 100:.2f}%" if whole else "n/a"


def _gptq_section(g: GptqResult) -> Section:
    shape = "x".join(str(d) for d in g.shape)
    scheme = g.scheme.value if g.group_size is None else f"group of {g.group_size}"
    return Section(
        title=f"{g.source}: GPTQ vs round-to-nearest, {_int_name(g.bits)} {scheme} — W {shape}, "
        f"{g.n_samples} calibration inputs ({g.calibration})",
        columns=["Method", "||W X − Ŵ X||", "Relative", "Weight MSE"],
        rows=[
            ["round-to-nearest", _sci(g.rtn_output_error), f"{g.rtn_relative_error * 100:.2f}%",
             f"{g.rtn_weight_mse:.3g}"],
            ["GPTQ", _sci(g.gptq_output_error), f"{g.gptq_relative_error * 100:.2f}%",
             f"{g.gptq_weight_mse:.3g}"],
        ],
        numeric=(1, 2, 3),
        emphasis=(1,),
    )


def _points(f: FormatInfo) -> str:
    out = []
    pairs = list(zip(f.points_near_one, f.points_in_range, strict=True))
    if f.kind == "float":  # the neighbours of 1.0, with enough significant digits to tell them apart
        middle = len(pairs) // 2
        pairs = pairs[middle - 1 : middle + 2]
        digits = int((f.decimal_digits or 2) + 0.999) + 1
    for value, ok in pairs:
        text = f"{value:.2f}" if f.kind == "int" else f"{value:.{digits}g}"
        out.append(text if ok else f"({text})")
    return " ".join(out)


def _formats_section(formats: list[FormatInfo]) -> Section:
    rows = []
    for f in formats:
        if f.kind == "float":
            layout = f"1/{f.exponent_bits}/{f.mantissa_bits}"
            rows.append([
                f.name, str(f.bits), layout, _sci(f.largest), _sci(f.smallest_normal or 0),
                _sci(f.spacing_near_one), _sci(f.spacing_near_largest), _points(f),
            ])
        else:
            scale = f.scale or 0.0
            rows.append([
                f"{f.name}, s = {scale:.4g}", str(f.bits), f"[{f.qmin}, {f.qmax}]·s",
                f"{_sci(f.largest)} ({f.qmax}·s)", "—", _sci(f.spacing_near_one),
                _sci(f.spacing_near_largest), _points(f),
            ])
    return Section(
        title="2.2-2.3: number formats, from their definitions (precision vs range)",
        columns=["Format", "Bits", "Sign/exp/mant", "Largest", "Smallest normal", "Step at 1.0",
                 "Step at largest", "Points near 1.0"],
        rows=rows,
        numeric=(1, 3, 4, 5, 6),
    )


# --------------------------------------------------------------------------------------------- picture


def number_line_block(line: NumberLine, *, title: str = "", width: int = LINE_WIDTH) -> str:
    """A text number line: the grid ('|'), each value ('o') and where it lands ('*'; '@' when both fall in
    one column), joined by '-'. The window spans the values and their landings, plus one grid step."""
    points = [*line.values, *line.dequantized]
    lo, hi = min(points) - line.scale, max(points) + line.scale
    if hi <= lo:
        lo, hi = lo - 1.0, hi + 1.0
    span = hi - lo

    def col(value: float) -> int:
        return max(0, min(width - 1, round((value - lo) / span * (width - 1))))

    grid_cols = sorted({col(g) for g in line.grid if lo <= g <= hi})
    axis = ["-"] * width
    for c in grid_cols:
        axis[c] = "|"
    zero_col = col(0.0) if lo <= 0.0 <= hi else None
    if zero_col is not None:
        axis[zero_col] = "0"
    low_label, high_label = _num(lo, 2), _num(hi, 2)
    labels = list(low_label.ljust(width))
    for i, ch in enumerate(high_label):
        labels[width - len(high_label) + i] = ch
    label_w = max(8, *(len(_signed(v, 2)) for v in line.values))
    out = []
    if title:
        out.append(title)
    out.append(f"{'':>{label_w}}  {''.join(labels)}")
    out.append(f"{'grid':>{label_w}}  {''.join(axis)}  step s = {_num(line.scale)}, {len(line.grid)} levels")
    for value, landed, code in zip(line.values, line.dequantized, line.codes, strict=True):
        canvas = [" "] * width
        for c in grid_cols:
            canvas[c] = "."
        a, b = col(value), col(landed)
        for c in range(min(a, b) + 1, max(a, b)):
            canvas[c] = "-"
        canvas[a] = "o"
        canvas[b] = "@" if a == b else "*"
        note = "  rounded to 0" if value != 0 and landed == 0 else ""
        landing = f"q = {code:>3} -> {_signed(landed, 4)}{note}"
        out.append(f"{_signed(value, 2):>{label_w}}  {''.join(canvas)}  {landing}")
    out.append(f"{'':>{label_w}}  o original value, * where it lands, @ both, | grid level")
    return "\n".join(out)


# --------------------------------------------------------------------------------------------- explain


def _explain_scheme(example: QuantExample, s: SchemeResult) -> list[str]:
    lines = []
    if s.scales is not None and s.group_max is not None and s.group_min is not None:
        for r, (scales, lows, highs) in enumerate(zip(s.scales, s.group_min, s.group_max, strict=True)):
            where = "whole tensor" if len(s.scales) == 1 and len(scales) == 1 else f"row {r + 1}"
            for g, (scale, low, high) in enumerate(zip(scales, lows, highs, strict=True)):
                tag = where if len(scales) == 1 else f"{where} group {g + 1}"
                if s.symmetric:
                    lines.append(f"  {tag}: s = max|w| / {s.qmax} = {max(abs(low), abs(high)):.4g} / {s.qmax}"
                                 f" = {scale:.4g}")
                else:
                    zero = s.zero_points[r][g] if s.zero_points else 0
                    lines.append(f"  {tag}: s = (max − min) / {s.qmax} = ({max(high, 0):.4g} − "
                                 f"{min(low, 0):.4g}) / {s.qmax} = {scale:.4g}, z = round(−min / s) = {zero}")
                if len(lines) > 12:
                    lines.append("  ...")
                    break
    formula = "q = clip(round(w / s), {}, {}), ŵ = s·q" if s.symmetric else \
        "q = clip(round(w / s) + z, {}, {}), ŵ = s·(q − z)"
    lines.append("  " + formula.format(s.qmin, s.qmax))
    st = s.storage
    zeros = f" + ceil({s.n_scales} zero points × {s.bits} bits / 8)" if not s.symmetric else ""
    lines.append(f"  stored = ceil({s.metrics.n_weights} weights × {s.bits} bits / 8)"
                 f" + {s.n_scales} fp16 scale(s) × 2 B{zeros} = {st.weights_bytes} + {st.scales_bytes}"
                 f"{f' + {st.zero_points_bytes}' if zeros else ''} = {st.total_bytes} B")
    return [f"{example.source}, {_scheme_label(s)}:", *lines]


def _explain(result: QuantizeDemoResult) -> list[str]:
    lines = [
        "SQNR = 10·log10(Σ w² / Σ (w − ŵ)²) dB; MSE = mean (w − ŵ)²;"
        " rounded to 0 = share of nonzero w with ŵ = 0.",
        "round() is round-half-to-even (numpy, torch).",
    ]
    for example in result.examples:
        for s in example.schemes:
            lines += _explain_scheme(example, s)
    for awq in result.awq:
        lines.append(f"{awq.source} AWQ (Lin et al. 2023): a_j = mean |x_j|;"
                     " s_j = a_j^α / sqrt(max s · min s); Ŵ = Q(W·diag(s))·diag(s)⁻¹;"
                     " error(α) = ||W X − Ŵ X||_F")
        if awq.activation_magnitudes is not None:
            lines.append("  X = diag(a): one input per channel at its magnitude")
        lines.append("  α search: " + ", ".join(f"{a.alpha:.2f}→{a.output_error:.4g}" for a in awq.search))
        lines.append(f"  best α = {awq.best_alpha:.2f} (α = 0 is plain round-to-nearest)")
    for g in result.gptq:
        n = g.shape[1]
        lines.append(f"{g.source} GPTQ (Frantar et al. 2022): H = 2·X·Xᵀ ({n}x{n}) + {g.damp}·mean(diag H)·I;"
                     " U = chol(H⁻¹) upper")
        lines.append("  for each column j in order: q_j = Q(w_j); e = (w_j − q_j) / U_jj; "
                     f"w_k −= e·U_jk for k > j (lazy batches of {g.block_size} columns)")
        lines.append(f"  ||W X||_F = {g.reference_output_norm:.4g}; RTN error {g.rtn_output_error:.4g}, "
                     f"GPTQ error {g.gptq_output_error:.4g}")
    if result.formats:
        lines.append("formats: bias = 2^(e−1) − 1; largest = (2 − 2^−m)·2^emax, emax = 2^e − 2 − bias (IEEE);"
                     " E4M3FN: emax = 2^e − 1 − bias, largest = (2 − 2^(1−m))·2^emax = 448")
        lines.append("  smallest normal 2^(1−bias); spacing near 1.0 = 2^−m; near the largest 2^(emax−m);"
                     " intN: levels k·s, k in [−(2^(N−1) − 1), 2^(N−1) − 1]")
    return lines


# --------------------------------------------------------------------------------------------- document


def _notes(result: QuantizeDemoResult) -> list[str]:
    notes = []
    for example in result.examples:
        by = {s.scheme.value: s for s in example.schemes}
        if "per-tensor" in by and "per-channel" in by and len(by["per-tensor"].rows) > 1:
            t, c = by["per-tensor"], by["per-channel"]
            worst = max(t.rows, key=lambda r: r.zero_fraction)
            other = next((r for r in c.rows if r.row == worst.row), None)
            if other is None and t.metrics.zero_fraction > 0:
                notes.append(
                    f"{example.source}: one shared scale rounds {_pct(t.metrics.zero_fraction)} of the weights"
                    f" to zero; a scale per row rounds {_pct(c.metrics.zero_fraction)} (MSE {t.metrics.mse:.3g}"
                    f" -> {c.metrics.mse:.3g})."
                )
            elif other is not None and worst.zero_fraction > 0:
                notes.append(
                    f"{example.source}: one shared scale rounds {_pct(worst.zero_fraction)} of row"
                    f" {worst.row + 1} to zero; its own scale rounds {_pct(other.zero_fraction)}"
                    f" (MSE {t.metrics.mse:.3g} ->"
                    f" {c.metrics.mse:.3g}, for {c.storage.scales_bytes - t.storage.scales_bytes} more bytes"
                    " of scales)."
                )
    for g in result.gptq:
        if g.gptq_output_error < 0.999 * g.rtn_output_error:
            why = (", although its weight MSE is higher: it moves weights to cancel error on the calibration"
                   " inputs" if g.gptq_weight_mse > g.rtn_weight_mse else "")
            share = g.gptq_output_error / g.rtn_output_error * 100
            notes.append(f"{g.source}: GPTQ's output error is {share:.0f}% of round-to-nearest's{why}.")
        else:
            notes.append(f"{g.source}: GPTQ finds nothing better than round-to-nearest on these inputs.")
    for a in result.awq:
        if a.rtn_output_error:
            notes.append(
                f"{a.source}: activation-aware scaling cuts the output error to "
                f"{a.awq_output_error / a.rtn_output_error * 100:.0f}% of plain rounding's"
                f" (alpha = {a.best_alpha:.2f})."
            )
    if any(f.kind == "int" and not all(f.points_in_range) for f in result.formats):
        notes.append("Points in parentheses lie beyond the integer range at that scale (clipped).")
    return notes


def build_document(result: QuantizeDemoResult, units: DisplayUnits = DisplayUnits.gib) -> Document:
    """Sections: per example the guide's weight table per scheme and the error/size summary; AWQ; GPTQ;
    formats. Blocks: the number lines. Explain: the formulas with the numbers substituted."""
    sections: list[Section] = []
    blocks: list[str] = []
    for example in result.examples:
        for s in example.schemes:
            detail = _detail_section(example, s)
            if detail is not None:
                sections.append(detail)
        sections.append(_summary_section(example, units))
        for line in example.number_lines:
            blocks.append(number_line_block(line, title=f"{example.source}: {line.label}"))
    for awq in result.awq:
        sections += _awq_sections(awq)
    sections += [_gptq_section(g) for g in result.gptq]
    if result.formats:
        sections.append(_formats_section(result.formats))
    titles = {
        "walkthrough": "quantize-demo: the field guide's examples, computed",
        "values": "quantize-demo: your weights",
        "matrix": "quantize-demo: weight matrix",
        "formats": "quantize-demo: number formats",
    }
    return Document(
        title=titles.get(result.mode, "quantize-demo"),
        sections=sections,
        blocks=blocks,
        notes=_notes(result),
        explain=_explain(result),
    )
