"""`fit` beyond vLLM's one answer: other engines' budgets, --solve context, --emit, speed bounds, llama.cpp.

Kept out of cli/fit.py so that module stays a thin parser; every number comes from the engine.
"""

from __future__ import annotations

import sys
from typing import Any

from llmfit.cli.common import emit, exit_with, warn
from llmfit.engine.engines import ENGINES
from llmfit.engine.formats import WeightFormat
from llmfit.engine.records import replace, to_jsonable
from llmfit.engine.serving import FitResult
from llmfit.errors import SpecError
from llmfit.render import OutputFormat
from llmfit.render.document import Document, Section
from llmfit.render.fit_json import fit_object
from llmfit.specs import GpuSpec, ModelSpec
from llmfit.units import DisplayUnits, format_bytes, format_tokens

EMIT_TARGETS = ("vllm", "sglang", "llama.cpp")
ENGINE_CHOICES = (*ENGINES, "llama.cpp", "all")


def effective_engine(engine: str | None, emit_to: str | None) -> str:
    """--engine, else the engine --emit names, else vLLM."""
    chosen = (engine or emit_to or "vllm").lower()
    if chosen not in ENGINE_CHOICES:
        raise SpecError(f"unknown --engine {chosen!r} (allowed: {', '.join(ENGINE_CHOICES)})")
    if emit_to is not None and emit_to.lower() not in EMIT_TARGETS:
        raise SpecError(f"unknown --emit {emit_to!r} (allowed: {', '.join(EMIT_TARGETS)})")
    if chosen == "all" and emit_to is not None:
        raise SpecError("--engine all prints one table; --emit needs one engine")
    if emit_to is not None and engine is not None and emit_to.lower() != chosen:
        raise SpecError(f"--emit {emit_to} with --engine {engine}: emit the engine you plan for")
    return chosen


def _launch(engine: str, result: FitResult, spec: ModelSpec | None, memory_fraction: float | None,
            pin_kv_pool: bool = False) -> Any:
    from llmfit.engine.engines import get_engine

    model_id = (spec.hf_id or spec.name) if spec is not None else "MODEL"
    return get_engine(engine).launch_command(result, model_id, memory_fraction=memory_fraction,
                                             pin_kv_pool=pin_kv_pool)


def show_fit(result: FitResult, *, spec: ModelSpec | None, gpu: GpuSpec, fmt: WeightFormat, engine: str,
             emit_to: str | None, efficiency: str | None, memory_fraction: float | None, solved: str | None,
             out: OutputFormat, units: DisplayUnits, explain: bool, pin_kv_pool: bool = False) -> None:
    """One fit result with its speed bounds, the launch command if asked, the solve note and what the engine
    will print at start-up."""
    from llmfit.engine.engines import get_engine
    from llmfit.engine.speed import parse_efficiency, speed_bounds
    from llmfit.render.engine_report import engine_report_section
    from llmfit.render.fit import fit_document
    from llmfit.render.plan import speed_explain, speed_section
    from llmfit.render.shell import command_block

    bounds = None
    if result.loads and spec is not None:
        bounds = speed_bounds(spec, gpu, fmt, result, efficiency=parse_efficiency(efficiency))
    launch = _launch(engine, result, spec, memory_fraction, pin_kv_pool) if emit_to is not None else None
    report = get_engine(engine).engine_report(result) if result.loads else []
    payload = fit_object(
        result,
        engine_report=[{"key": key, "line": line, "value": value} for key, line, value in report],
        speed_bounds=to_jsonable(bounds) if bounds is not None else None,
        launch=to_jsonable(launch) if launch is not None else None,
        solved={"solve": "context", "context_tokens": result.context_tokens,
                "min_concurrency": result.min_concurrency, "limited_by": solved} if solved is not None else None,
    )

    def document() -> Document:
        doc = fit_document(result, units)
        sections = list(doc.sections)
        if bounds is not None:
            sections.append(speed_section(bounds))
        if report:
            sections.append(engine_report_section(result.engine, report))
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
    from llmfit.engine.llamacpp import LlamaCppOptions, llamacpp_common_figures, llamacpp_fit
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
    buffers = {line.name: line.bytes for line in result.vram_lines}
    payload = fit_object(
        result, llamacpp_common_figures(result, spec, context_tokens, parallel, cache),
        engine_report=[{"key": name, "line": f"CUDA0 {name} size = {size / 2**20:.2f} MiB", "value": size}
                       for name, size in buffers.items()],
        launch=to_jsonable(launch) if emit_to is not None else None,
    )
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


def show_profiles(engine: str | None, out: OutputFormat) -> None:
    """`fit --engine-version list`: every version profile of the engine(s) and what it changes."""
    from llmfit.engine.engines import all_engines, get_engine

    engines = [get_engine(engine)] if engine and engine.lower() != "all" else all_engines()
    profiles = [p for e in engines for p in e.profiles()]

    def document() -> Document:
        rows = [[p.engine, p.profile, f"{p.since} - {p.until or 'newest'}", p.label, p.changes] for p in profiles]
        return Document(title="engine version profiles (configs/engines/*.yaml)", sections=[Section(
            title="--engine-version takes any release number; the profile covering it is used",
            columns=["engine", "profile", "releases", "label", "what it changes"], rows=rows)],
            notes=["default: each engine's newest profile"])

    emit(out, {"profiles": [to_jsonable(p) for p in profiles]}, document)
    exit_with(True)


def run_all_engines(spec: ModelSpec | None, model_arg: str | None, gpu: GpuSpec, gpu_count: int, tp: int | None,
                    pp: int, dtype: str | None, native: bool, kv_dtype: str, context_tokens: int,
                    engine_version: str | None, max_num_seqs: int | None, max_num_batched_tokens: int | None,
                    min_concurrency: int, block_size: int, out: OutputFormat, units: DisplayUnits, explain: bool,
                    ram: str | None) -> None:
    """`fit --engine all`: the same model and hardware under every paged-pool engine, one table; JSON a list of
    fit objects (llama.cpp's offload plan is `--engine llama.cpp`)."""
    from llmfit.cli.resolve import resolve_format
    from llmfit.engine.engines import ENGINES, get_engine
    from llmfit.engine.serving import Deployment, ServingOptions
    from llmfit.readers.native import native_format
    from llmfit.render.engine_report import all_engines_document

    if spec is None:
        raise SpecError("--engine all needs a model architecture")
    fmt = native_format(spec) if native or dtype is None else resolve_format(dtype)
    tp_size = tp if tp is not None else max(1, gpu_count // pp)
    deployment = Deployment(gpu_count=gpu_count, tp=tp_size, pp=pp)
    rows: list[tuple[str, FitResult | None, str]] = []
    results: list[FitResult] = []
    for name in ENGINES:
        engine = get_engine(name)
        if not engine.runs_on(gpu):
            rows.append((engine.display, None, f"does not run on {gpu.display_name or gpu.name}"))
            continue
        options = ServingOptions(context_tokens=context_tokens, kv_dtype=kv_dtype, block_size=block_size,
                                 max_num_seqs=max_num_seqs, max_num_batched_tokens=max_num_batched_tokens,
                                 engine_version=get_engine("vllm").resolve_version(
                                     engine_version if name == "vllm" else None),
                                 engine_release=engine_version if name != "vllm" else None,
                                 min_concurrency=min_concurrency)
        result = engine.fit(spec, gpu, fmt, deployment, options)
        if name == "trt-llm":  # its pool is a share of FREE memory; fit runs it at gpu_util 1.0
            result = replace(result, gpu_util=engine.default_memory_fraction(gpu, tp_size))
        rows.append((engine.display, result, ""))
        results.append(result)
    emit(out, [fit_object(r) for r in results], lambda: all_engines_document(rows, units), explain=explain)
    exit_with(any(r.fits for r in results))
