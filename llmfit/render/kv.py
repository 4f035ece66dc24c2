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
    rows = [
        ["per token", format_bytes(result.kv_bytes_per_token, units),
         f"{result.kv_bytes_per_token:,} B, whole model (all layers, one copy)"],
        [
            f"per request ({format_tokens(result.context_tokens)} tokens)",
            format_bytes(result.kv_bytes_per_request, units),
            f"{result.kv_bytes_per_request:,} B, paged in blocks of {result.block_size}",
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
    group_rows = []
    for group in result.layer_groups:
        cap = "whole context" if group.window_tokens is None else f"window {format_tokens(group.window_tokens)}"
        group_rows.append([group.kind, str(group.layers), f"{group.bytes_per_token_per_layer:,}", cap])
    sections.append(
        Section(
            title="Layers",
            columns=["kind", "layers", "bytes/token/layer", "tokens cached"],
            rows=group_rows,
            numeric=(1, 2),
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
    for group in result.layer_groups:
        explain.append(
            f"{group.kind}: {group.layers} layers x {group.bytes_per_token_per_layer:,} B/token "
            f"({'2 x kv_heads x head_dim' if group.kind != 'mla' else 'kv_lora_rank + qk_rope_head_dim'}"
            f" x {result.kv_dtype}) x "
            + (
                f"{result.context_tokens:,} tokens"
                if group.window_tokens is None
                else f"min({result.context_tokens:,}, {group.window_tokens:,}) tokens"
            )
        )
    explain.append(
        f"total = {result.batch} x {result.kv_bytes_per_request:,} B = {result.total_bytes:,} B "
        f"= {format_bytes(result.total_bytes, units)}"
    )
    notes = [f"memory in {'binary GiB (2^30 bytes)' if units is DisplayUnits.gib else 'decimal GB (10^9 bytes)'}"]
    return Document(title=title, sections=sections, notes=notes, explain=explain)
