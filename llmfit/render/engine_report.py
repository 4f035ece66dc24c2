"""The "what the engine will print" section of fit, and the `fit --engine all` table."""

from __future__ import annotations

from typing import Any

from llmfit.engine.serving import FitResult
from llmfit.render.document import Document, Section
from llmfit.units import DisplayUnits, format_bytes, format_tokens


def engine_report_section(engine: str, rows: list[tuple[str, str, Any]]) -> Section:
    """The start-up lines the engine will log for this plan (llmfit check-log compares them with the real log)."""
    return Section(title=f"what {engine} will print at start-up", columns=["log line (the engine's units)", "fit key"],
                   rows=[[line, key] for key, line, _ in rows])


def all_engines_document(results: list[tuple[str, FitResult | None, str]], units: DisplayUnits) -> Document:
    """One row per engine for the same model and hardware: (engine display name, result or None, note)."""
    rows: list[list[str]] = []
    for name, result, note in results:
        if result is None:
            rows.append([name, "-", "-", "-", "-", "-", note])
            continue
        rows.append([name, f"{result.gpu_util:.3g}", format_bytes(result.loaded_weights_bytes_per_gpu, units),
                     format_bytes(result.kv_budget_bytes_per_gpu, units),
                     format_tokens(result.kv_tokens) if result.kv_tokens is not None else "-",
                     str(result.max_concurrency if result.max_concurrency is not None else "-"),
                     ("fits" if result.fits else "does not fit") + (f"; {note}" if note else "")])
    first = next((r for _, r, _ in results if r is not None), None)
    title = (f"{first.model} ({first.dtype}) on {first.gpu_count} x {first.gpu}, context "
             f"{format_tokens(first.context_tokens)}: every engine" if first is not None else "every engine")
    return Document(title=title, sections=[Section(
        title="same model and hardware under each engine",
        columns=["engine", "memory fraction", "weights as loaded / GPU", "KV pool / GPU", "KV tokens / replica",
                 "max concurrency", "verdict"], rows=rows, numeric=(1, 2, 3, 4, 5))],
        verdict=None, notes=["memory fraction: vLLM of total memory, SGLang of memory free after start-up, "
                             "TensorRT-LLM of memory free after loading",
                             f"memory in {'binary GiB' if units is DisplayUnits.gib else 'decimal GB'}"])
