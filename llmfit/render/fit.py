"""FitResult -> Document: the memory lines, the verdict, the concurrency (formatting only)."""

from __future__ import annotations

from llmfit.engine.serving import FitResult, Step
from llmfit.render.document import Document, Section
from llmfit.units import DisplayUnits, format_bytes, format_count, format_tokens


def _b(n: int | None, units: DisplayUnits) -> str:
    return "-" if n is None else format_bytes(n, units)


def explain_lines(steps: list[Step], units: DisplayUnits) -> list[str]:
    lines = []
    for step in steps:
        if step.unit == "bytes":
            value = f"{format_bytes(int(step.result), units)} ({int(step.result):,} B)"
        elif step.unit == "tokens":
            value = f"{format_tokens(int(step.result))} tokens"
        elif step.unit == "requests":
            value = f"{step.result:,} request{'' if step.result == 1 else 's'}"
        else:
            value = str(step.result)
        middle = f" = {step.substituted}" if step.substituted else ""
        lines.append(f"{step.label}: {step.formula}{middle} = {value}")
    return lines


def fit_document(result: FitResult, units: DisplayUnits) -> Document:
    multi = result.gpu_count > 1
    per_gpu_col = "per GPU"
    title = (
        f"{result.model} on {result.gpu}"
        + (f" x{result.gpu_count}" if multi else "")
        + f" - {result.dtype} weights, {result.kv_dtype} KV, context {format_tokens(result.context_tokens)}"
    )
    rows: list[list[str]] = []
    rows.append(["device memory", format_bytes(result.gpu_memory_bytes_per_gpu, units), "as the device reports it"])
    rows.append(
        [f"usable at gpu_util {result.gpu_util}", format_bytes(result.usable_bytes_per_gpu, units), "memory x gpu_util"]
    )
    for line in result.weights_lines:
        if line.bytes_per_gpu is not None:
            rows.append([f"  {line.name}", format_bytes(line.bytes_per_gpu, units), line.note])
        else:  # a stored-bytes line of a checkpoint: known for the whole model only
            rows.append([f"  {line.name}", "-", f"{format_bytes(line.bytes, units)} in one copy; {line.note}"])
    rows.append(
        [
            "weights",
            format_bytes(result.weights_bytes_per_gpu, units),
            f"{result.bits_per_weight:.2f} bits/weight effective"
            + (f"; one copy {format_bytes(result.weights_bytes, units)}" if multi else ""),
        ]
    )
    for oline in result.overhead_lines:
        rows.append([f"  {oline.name}", format_bytes(oline.bytes_per_gpu, units), ""])
    rows.append(["runtime overhead", format_bytes(result.overhead_bytes_per_gpu, units), result.engine])
    rows.append(
        [
            "KV cache budget",
            format_bytes(result.kv_budget_bytes_per_gpu, units),
            "usable - weights - overhead" + ("  (NEGATIVE: does not load)" if not result.loads else ""),
        ]
    )
    emphasis = (len(rows) - 1,)
    sections = [
        Section(
            title="Memory per GPU", columns=["line", per_gpu_col, "note"], rows=rows, numeric=(1,), emphasis=emphasis
        )
    ]

    krows: list[list[str]] = []
    replica_gpus = result.tp * result.pp
    # design.md: kv_bytes_per_token and kv_bytes_per_request are for one replica (all its GPUs, replicated
    # KV heads counted once per GPU that holds them); the label says so, as the JSON key does.
    replica = f"one replica ({replica_gpus} GPUs)" if replica_gpus > 1 else "one GPU"
    if result.kv_bytes_per_token is not None:
        krows.append(
            [
                f"KV per token, {replica}",
                format_bytes(result.kv_bytes_per_token, units),
                f"{result.kv_bytes_per_token:,} B"
                + (f"; {result.kv_bytes_per_token_per_gpu:,} B per GPU" if replica_gpus > 1 else "")
                + ("; `llmfit kv` gives the whole model's, one copy" if replica_gpus > 1 else ""),
            ]
        )
        krows.append(
            [
                f"KV per {format_tokens(result.context_tokens)}-token request, {replica}",
                _b(result.kv_bytes_per_request, units),
                f"blocks of {result.block_size} tokens"
                + ("; KV of the context + fixed state" if result.state_bytes_per_request else ""),
            ]
        )
        if result.state_bytes_per_request and result.kv_bytes_per_request is not None:
            # design.md: state_bytes_per_request is the fixed per-sequence part; kv_bytes_per_request includes it.
            krows.append(
                [
                    f"  KV of the context, {replica}",
                    format_bytes(result.kv_bytes_per_request - result.state_bytes_per_request, units),
                    f"grows with the context ({format_tokens(result.context_tokens)} tokens, blocks of "
                    f"{result.block_size}; engine padding included)",
                ]
            )
            krows.append(
                [
                    f"  fixed state per request, {replica}",
                    format_bytes(result.state_bytes_per_request, units),
                    f"{result.state_bytes_per_request:,} B: recurrent layers' conv + recurrent state, "
                    "the same at any context",
                ]
            )
    if result.kv_tokens is not None:
        krows.append(
            [
                "KV pool (tokens per replica)",
                format_tokens(result.kv_tokens),
                f"{result.kv_blocks:,} blocks; vLLM: 'GPU KV cache size: {result.kv_tokens:,} tokens'",
            ]
        )
        krows.append(
            [
                "vLLM max concurrency" + (", per replica" if result.replicas > 1 else ""),
                f"{result.vllm_max_concurrency:.2f}x",
                f"'Maximum concurrency for {result.context_tokens:,} tokens per request'",
            ]
        )
        krows.append(
            [
                "max concurrent requests" + (", all replicas" if result.replicas > 1 else ""),
                str(result.max_concurrency),
                "whole full-context requests"
                + (f", {result.replicas} replicas" if result.replicas > 1 else "")
                + (" (capped by max_num_seqs)" if result.capped_by_max_num_seqs else ""),
            ]
        )
        krows.append(
            ["recommended concurrency" + (", all replicas" if result.replicas > 1 else ""),
             str(result.recommended_concurrency), "keeps 30% of the pool as headroom"]
        )
    if krows:
        sections.append(Section(title="Serving", columns=["", "value", "note"], rows=krows, numeric=(1,)))

    shape = f"{format_count(result.total_params)} params"
    if result.active_params != result.total_params:
        shape += f" ({format_count(result.active_params)} active per token)"
    layout = f"TP={result.tp} PP={result.pp} replicas={result.replicas}" if multi else "one GPU"
    if result.fits:
        verdict = f"FITS - {shape}, {layout}"
        if result.max_concurrency is not None:
            verdict += (
                f": {result.max_concurrency:,} concurrent {format_tokens(result.context_tokens)}-token "
                f"request{'' if result.max_concurrency == 1 else 's'}"
                f" (recommend {result.recommended_concurrency})"
            )
    elif not result.loads:
        verdict = (
            f"DOES NOT FIT - {shape}: weights + overhead exceed the usable memory by "
            f"{format_bytes(-result.kv_budget_bytes_per_gpu, units)} per GPU"
        )
    else:
        verdict = (
            f"DOES NOT FIT - loads, but serves {result.max_concurrency} concurrent "
            f"request{'' if result.max_concurrency == 1 else 's'}, "
            f"fewer than the {result.min_concurrency} required"
        )
    bars = []
    total = result.gpu_memory_bytes_per_gpu
    if total > 0 and result.loads:
        kv_used = result.kv_budget_bytes_per_gpu
        bars.append(
            [
                ("weights", result.weights_bytes_per_gpu / total, "blue"),
                ("overhead", result.overhead_bytes_per_gpu / total, "magenta"),
                ("KV cache", kv_used / total, "green"),
                ("free (outside gpu_util)", max(0, total - result.usable_bytes_per_gpu) / total, "bright_black"),
            ]
        )
    notes = [f"memory in {'binary GiB (2^30 bytes)' if units is DisplayUnits.gib else 'decimal GB (10^9 bytes)'}"]
    notes += result.warnings + result.notes
    return Document(
        title=title,
        sections=sections,
        verdict=verdict,
        verdict_ok=result.fits,
        bars=bars,
        notes=notes,
        explain=explain_lines(result.steps, units),
    )


def fit_table_document(results: list[FitResult], units: DisplayUnits) -> Document:
    """`fit --dtype all`: one row per weight format, the shape of the guide's 1.2 table; `fit --gpu a,b`: one
    row per GPU (a GPU column first)."""
    first = results[0]
    label = units.label
    by_gpu = len({(r.gpu, r.gpu_count) for r in results}) > 1
    rows = []
    for r in results:
        rows.append(
            ([f"{r.gpu}" + (f" x{r.gpu_count}" if r.gpu_count > 1 else "")] if by_gpu else [])
            + [
                r.dtype,
                f"{r.raw_weights_bytes / units.divisor:,.2f}",
                f"{r.weights_bytes / units.divisor:,.2f}",
                f"{r.bits_per_weight:.2f}",
                "yes" if r.fits else "no",
                "-" if r.max_concurrency is None else str(r.max_concurrency),
                "-" if r.recommended_concurrency is None else str(r.recommended_concurrency),
            ]
        )
    if by_gpu:
        title = f"{first.model} ({first.dtype}) on each GPU, context {format_tokens(first.context_tokens)}"
    else:
        title = (
            f"{first.model} on {first.gpu}"
            + (f" x{first.gpu_count}" if first.gpu_count > 1 else "")
            + f" - every weight format, context {format_tokens(first.context_tokens)}"
        )
    offset = 1 if by_gpu else 0
    section = Section(
        title="",
        columns=(["gpu"] if by_gpu else [])
        + ["dtype", f"raw ({label})", f"effective ({label})", "bits/weight", "fits",
           "max conc." + (" (all replicas)" if any(r.replicas > 1 for r in results) else ""), "recommended"],
        rows=rows,
        numeric=tuple(i + offset for i in (1, 2, 3, 5, 6)),
    )
    fitting = sum(1 for r in results if r.fits)
    verdict = f"{fitting} of {len(results)} {'GPUs' if by_gpu else 'formats'} fit"
    notes = [
        "raw = params x nominal bits / 8; effective adds scales, zero points and the tensors kept in 16 bits",
        f"memory in {'binary GiB' if units is DisplayUnits.gib else 'decimal GB'}",
    ]
    return Document(title=title, sections=[section], verdict=verdict, verdict_ok=fitting > 0, notes=notes)
