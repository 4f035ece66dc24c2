"""KvResult -> Document (formatting only)."""

from __future__ import annotations

from llmfit.engine.kv import KvResult
from llmfit.render.document import Document, Section
from llmfit.units import DisplayUnits, format_bytes, format_tokens


def kv_document(result: KvResult, units: DisplayUnits) -> Document:
    title = (
        f"KV cache of {result.model}: {result.attention}, {result.kv_dtype}, "
        f"context {format_tokens(result.context_tokens)}, batch {result.batch}"
    )
    state = result.state_bytes_per_request
    rows = [
        ["per token", format_bytes(result.kv_bytes_per_token, units),
         f"{result.kv_bytes_per_token:,} B, whole model (all layers, one copy)"],
    ]
    if state:
        rows += [
            [
                f"KV of the context ({format_tokens(result.context_tokens)} tokens)",
                format_bytes(result.kv_bytes_per_request - state, units),
                f"{result.kv_bytes_per_request - state:,} B, grows with the context",
            ],
            ["fixed state per request", format_bytes(state, units), f"{state:,} B, whatever the context"],
        ]
    rows += [
        [
            f"per request ({format_tokens(result.context_tokens)} tokens)",
            format_bytes(result.kv_bytes_per_request, units),
            f"{result.kv_bytes_per_request:,} B, paged in blocks of {result.block_size}"
            + (" (KV + state)" if state else ""),
        ],
        [
            "per request, contiguous reservation",
            format_bytes(result.kv_bytes_per_request_contiguous, units),
            "one block of the full context",
        ],
        [f"total (batch {result.batch})", format_bytes(result.total_bytes, units), f"{result.total_bytes:,} B"],
    ]
    sections = [
        Section(
            title="",
            columns=["", "size", "note"],
            rows=rows,
            numeric=(1,),
            emphasis=(3,),
        )
    ]
    kind_rows = []
    for line in result.kinds:
        held = f"{line.tokens_held_per_request:,}" if line.kv_bytes_per_token else "-"
        kind_rows.append([line.kind, str(line.layers), f"{line.kv_bytes_per_token:,}", held,
                          format_bytes(line.kv_bytes_per_request, units),
                          format_bytes(line.state_bytes_per_request, units)])
    sections.append(
        Section(
            title="Layers, by kind (each kind's own bytes, no engine grouping or padding)",
            columns=["kind", "layers", "KV bytes/token", "tokens held", "KV per request", "state per request"],
            rows=kind_rows,
            numeric=(1, 2, 3, 4, 5),
        )
    )
    if result.typical_tokens is not None:
        sections.append(
            Section(
                title=f"A typical {format_tokens(result.typical_tokens)}-token request",
                columns=["allocation", "holds", "wasted"],
                rows=[
                    [
                        "contiguous (full context)",
                        format_bytes(result.kv_bytes_per_request_contiguous, units),
                        format_bytes(result.contiguous_waste_bytes or 0, units),
                    ],
                    [
                        f"paged (blocks of {result.block_size})",
                        format_bytes(result.typical_bytes_per_request or 0, units),
                        format_bytes(result.paged_waste_bytes or 0, units),
                    ],
                ],
                numeric=(1, 2),
            )
        )
    if result.variants:
        sections.append(
            Section(
                title="Same model, other attention layouts (guide 4.3)",
                columns=["layout", "KV heads", "per request", "vs MHA"],
                rows=[
                    [
                        v.name,
                        str(v.kv_heads),
                        format_bytes(v.kv_bytes_per_request, units),
                        "1" if v.ratio_to_mha == 1 else f"1/{round(1 / v.ratio_to_mha):g}" if v.ratio_to_mha < 1
                        else f"{v.ratio_to_mha:.3g}x",
                    ]
                    for v in result.variants
                ],
                numeric=(1, 2),
            )
        )
    explain = []
    for line in result.kinds:
        parts = []
        if line.kv_bytes_per_token:
            per_layer = line.kv_bytes_per_token // line.layers
            parts.append(f"{line.layers} layers x {per_layer:,} B/token x {line.tokens_held_per_request:,} tokens")
        if line.state_bytes_per_request:
            parts.append(f"state {line.state_bytes_per_request:,} B")
        explain.append(f"{line.kind}: {' + '.join(parts) or '0'} = {line.bytes_per_request:,} B ({line.formula})")
    explain.append(
        f"total = {result.batch} x {result.kv_bytes_per_request:,} B = {result.total_bytes:,} B "
        f"= {format_bytes(result.total_bytes, units)}"
    )
    notes = [f"memory in {'binary GiB (2^30 bytes)' if units is DisplayUnits.gib else 'decimal GB (10^9 bytes)'}"]
    return Document(title=title, sections=sections, notes=notes, explain=explain)
