"""`fit` beyond vLLM's one answer: other engines' budgets, --solve context, --emit, speed bounds, llama.cpp.

Kept out of cli/fit.py so that module stays a thin parser; every number comes from the engine.
"""

from __future__ import annotations

import sys
from typing import Any

from llmfit.cli.common import emit, exit_with, warn
from llmfit.engine.engines import ENGINES
from llmfit.engine.formats import WeightFormat
from llmfit.engine.serving import FitResult
from llmfit.errors import SpecError
from llmfit.render import OutputFormat
from llmfit.render.document import Document, Section
from llmfit.specs import GpuSpec, ModelSpec
from llmfit.units import DisplayUnits, format_bytes, format_tokens

EMIT_TARGETS = ("vllm", "sglang", "llama.cpp")
ENGINE_CHOICES = (*ENGINES, "llama.cpp")


def effective_engine(engine: str | None, emit_to: str | None) -> str:
    """--engine, else the engine --emit names, else vLLM."""
    chosen = (engine or emit_to or "vllm").lower()
    if chosen not in ENGINE_CHOICES:
        raise SpecError(f"unknown --engine {chosen!r} (allowed: {', '.join(ENGINE_CHOICES)})")
    if emit_to is not None and emit_to.lower() not in EMIT_TARGETS:
        raise SpecError(f"unknown --emit {emit_to!r} (allowed: {', '.join(EMIT_TARGETS)})")
    if emit_to is not None and engine is not None and emit_to.lower() != chosen:
        raise SpecError(f"--emit {emit_to} with --engine {engine}: emit the engine you plan for")
    return chosen


def _launch(engine: str, result: FitResult, spec: ModelSpec | None, memory_fraction: float | None) -> Any:
    from llmfit.engine.emit import launch_command

    model_id = (spec.hf_id or spec.name) if spec is not None else "MODEL"
    return launch_command(engine, result, model_id, memory_fraction=memory_fraction)


def show_fit(result: FitResult, *, spec: ModelSpec | None, gpu: GpuSpec, fmt: WeightFormat, engine: str,
             emit_to: str | None, efficiency: str | None, memory_fraction: float | None, solved: str | None,
             out: OutputFormat, units: DisplayUnits, explain: bool) -> None:
    """One fit result with its speed bounds, the launch command if asked, and the solve note."""
    from llmfit.engine.speed import parse_efficiency, speed_bounds
    from llmfit.render.fit import fit_document
    from llmfit.render.plan import speed_explain, speed_section
    from llmfit.render.shell import command_block

    bounds = None
    if result.loads and spec is not None:
        bounds = speed_bounds(spec, gpu, fmt, result, efficiency=parse_efficiency(efficiency))
    launch = _launch(engine, result, spec, memory_fraction) if emit_to is not None else None
    payload: dict[str, Any] = result.model_dump(mode="json")
    payload["speed_bounds"] = bounds.model_dump(mode="json") if bounds is not None else None
    if launch is not None:
        payload["launch"] = launch.model_dump(mode="json")
    if solved is not None:
        payload["solved"] = {"solve": "context", "context_tokens": result.context_tokens,
                             "min_concurrency": result.min_concurrency, "limited_by": solved}

    def document() -> Document:
        doc = fit_document(result, units)
        sections = list(doc.sections)
        if bounds is not None:
            sections.append(speed_section(bounds))
        blocks = list(doc.blocks)
        if launch is not None:
            blocks.append(command_block(f"{launch.engine} launch command", launch.argv, launch.notes))
        verdict = doc.verdict
        if solved is not None:
            verdict = (f"longest context for {result.min_concurrency} requests: "
                       f"{format_tokens(result.context_tokens)} tokens (limited by {solved}) - {verdict}")
        explain_lines = list(doc.explain) + (speed_explain(bounds.steps) if bounds is not None else [])
        notes = list(doc.notes) + (bounds.notes if bounds is not None else [])
        return Document(title=doc.title, sections=sections, verdict=verdict, verdict_ok=doc.verdict_ok,
                        blocks=blocks, bars=doc.bars, notes=notes, explain=explain_lines)

    emit(out, payload, document, explain=explain)
    exit_with(result.fits)


def run_llamacpp(spec: ModelSpec | None, model_arg: str | None, gpu: GpuSpec, fmt: WeightFormat, *,
                 context_tokens: int, parallel: int, kv_dtype: str, ram: str | None, emit_to: str | None,
                 out: OutputFormat, units: DisplayUnits, explain: bool) -> None:
    """`fit --engine llama.cpp`: layers on the GPU (-ngl), what stays in RAM, the buffers, KV placement."""
    from llmfit.engine.emit import llama_server_command
    from llmfit.engine.llamacpp import LlamaCppOptions, llamacpp_fit
    from llmfit.render.shell import command_block
    from llmfit.units import parse_bytes

    if spec is None:
        raise SpecError("--engine llama.cpp needs a model architecture (a preset, config.json or .gguf)")
    cache = {"auto": "f16", "fp16": "f16", "bf16": "bf16", "fp32": "f32"}.get(kv_dtype, kv_dtype)
    if cache == "fp8":
        raise SpecError("llama.cpp has no fp8 KV cache; use --kv-dtype q8_0 or q4_0")
    options = LlamaCppOptions(ctx_size=context_tokens * parallel, parallel=parallel, cache_type_k=cache,
                              cache_type_v=cache)
    ram_bytes = parse_bytes(ram, what="--ram") if ram else None
    result = llamacpp_fit(spec, gpu, fmt, options, ram_bytes)
    path = model_arg if model_arg and model_arg.lower().endswith(".gguf") else f"{spec.name}-{fmt.name}.gguf"
    launch = llama_server_command(path, gpu_layers=result.gpu_layers, ctx_size=options.ctx_size,
                                  parallel=parallel, kv_type_k=cache, kv_type_v=cache,
                                  flash_attn=options.flash_attn, ubatch=options.ubatch)
    payload: dict[str, Any] = result.model_dump(mode="json")
    if emit_to is not None:
        payload["launch"] = launch.model_dump(mode="json")
    if ram_bytes is None:
        warn("no --ram given: system RAM is not checked")

    def document() -> Document:
        def rows(lines: list[Any]) -> list[list[str]]:
            return [[line.name, format_bytes(line.bytes, units), line.note] for line in lines]

        vram_rows = [*rows(result.vram_lines), ["total", format_bytes(result.vram_needed_bytes, units),
                                                  f"of {format_bytes(result.vram_bytes, units)}"]]
        ram_rows = [*rows(result.ram_lines), ["total", format_bytes(result.ram_needed_bytes, units),
                                                "" if ram_bytes is None else f"of {format_bytes(ram_bytes, units)}"]]
        sections = [Section(title=f"GPU ({result.gpu})", columns=["line", "bytes", "note"], rows=vram_rows,
                            numeric=(1,), emphasis=(len(vram_rows) - 1,)),
                    Section(title="System RAM", columns=["line", "bytes", "note"], rows=ram_rows, numeric=(1,),
                            emphasis=(len(ram_rows) - 1,))]
        where = "everything on the GPU" if result.output_on_gpu else \
            f"{result.layers_on_gpu} of {result.n_layer} layers on the GPU, {result.layers_in_ram} in RAM"
        verdict = (f"{'FITS' if result.fits else 'DOES NOT FIT'} - -ngl {result.gpu_layers}: {where}"
                   + ("" if result.fits_ram else "; system RAM too small"))
        blocks = [command_block("llama-server command", launch.argv, getattr(launch, "notes", ()))] \
            if emit_to is not None else []
        explain_lines = [
            "KV per layer = cells x kv_heads x head_dim x (K type + V type bytes); full layers "
            f"{result.kv_full_cells:,} cells" + (f", sliding layers {result.kv_swa_cells:,} cells per stream"
                                                 if result.kv_swa_cells else ""),
            "-ngl N puts the last N layers on the GPU; N > n_layer also moves the output layer",
            "compute buffer = max(KQ scores, FFN, logits) of one ubatch in f32 + 2 hidden rows",
        ]
        notes = [f"memory in {'binary GiB' if units is DisplayUnits.gib else 'decimal GB'}", *result.notes]
        return Document(title=f"{result.model} ({result.dtype}) with llama.cpp on {result.gpu}: context "
                        f"{format_tokens(context_tokens)} x {parallel} slot(s)", sections=sections, verdict=verdict,
                        verdict_ok=result.fits, blocks=blocks, notes=notes, explain=explain_lines)

    emit(out, payload, document, explain=explain)
    sys.stdout.flush()
    exit_with(result.fits)
