"""Preset list and detail results -> Document (formatting only)."""

from __future__ import annotations

from llmfit.engine.catalog import GpuDetail, ModelDetail, ModelEntry, PresetList
from llmfit.engine.records import non_defaults
from llmfit.presets import CheckedFile
from llmfit.render.document import Document, Section
from llmfit.units import DisplayUnits, format_bytes, format_count


def _count_check(entry: ModelEntry) -> str:
    if entry.params_match is None:
        return "no exact published count"
    return "= published" if entry.params_match else f"published {entry.published_params:,}"


def _unit_note(units: DisplayUnits) -> str:
    return f"memory in {'binary GiB (2^30 bytes)' if units is DisplayUnits.gib else 'decimal GB (10^9 bytes)'}"


def list_document(result: PresetList, units: DisplayUnits) -> Document:
    sections = []
    if result.models:
        # The Hugging Face id goes on a line of its own under the name: the two side by side are wider than an
        # 80-column screen for the longer names (llama-4-maverick-17b-128e-instruct), and neither may be split.
        rows = [[f"{m.name}\n{m.hf_id}" if m.hf_id else m.name, format_count(m.total_params),
                 format_count(m.active_params) if m.is_moe else "", f"{m.max_position_embeddings:,}",
                 _count_check(m), m.origin] for m in result.models]
        sections.append(Section(title=f"Models ({len(rows)})", columns=["name / hf_id", "params", "active (MoE)",
                                                                        "max context", "count check", "from"],
                                rows=rows, numeric=(1, 2, 3)))
    if result.gpus:
        rows = [[g.name, g.display_name or "", g.vendor, format_bytes(g.memory_bytes, units),
                 format_bytes(g.usable_memory_bytes, units) if g.usable_memory_bytes != g.memory_bytes else "",
                 f"{g.memory_bandwidth_bytes_per_s / 1e9:,.0f} GB/s" if g.memory_bandwidth_bytes_per_s else "",
                 f"${g.price_per_hour:.2f}" if g.price_per_hour is not None else "", g.origin] for g in result.gpus]
        sections.append(Section(title=f"GPUs ({len(rows)})", columns=["name", "device", "vendor", "memory",
                                                                      "GPU share", "bandwidth", "per hour", "from"],
                                rows=rows, numeric=(3, 4, 5, 6)))
    notes = [_unit_note(units), "`llmfit presets show NAME` prints a preset with its sources"]
    if not sections:
        notes.insert(0, "no preset matches")
    return Document(title="Presets", sections=sections, notes=notes)


def model_document(detail: ModelDetail, units: DisplayUnits) -> Document:
    entry, spec, parts = detail.entry, detail.spec, detail.components
    rows = [["computed from the architecture", f"{entry.total_params:,}", format_count(entry.total_params)]]
    if entry.published_params is not None:
        rows.append(["published", f"{entry.published_params:,}",
                     "matches" if entry.params_match else f"differs by {entry.params_difference:+,}"])
    if spec.published_params_rounded:
        rows.append(["published (rounded)", spec.published_params_rounded, ""])
    if entry.is_moe:
        rows.append(["active per token", f"{entry.active_params:,}", "non-expert + top-k and shared experts"])
        if spec.published_active_params_rounded:
            rows.append(["published active (rounded)", spec.published_active_params_rounded, ""])
        if spec.published_active_params is not None:
            rows.append(["published active", f"{spec.published_active_params:,}",
                         "matches" if spec.published_active_params == entry.active_params else "differs"])
    counts = Section(title="Parameters", columns=["", "params", "note"], rows=rows, numeric=(1,))
    component_rows = [[label, f"{value:,}"] for label, value in (
        ("embeddings", parts.embedding_params), ("lm_head", parts.lm_head_params),
        ("attention", parts.attention_params), ("dense MLP", parts.mlp_params), ("experts", parts.expert_params),
        ("routers", parts.router_params), ("norms, biases, vectors", parts.vector_params),
        ("other (vision tower ...)", parts.extra_params)) if value]
    components = Section(title="By component", columns=["component", "params"], rows=component_rows, numeric=(1,))
    arch_rows = [[key, str(value)] for key, value in non_defaults(spec).items()
                 if key not in ("name", "source", "params_source", "params_convention", "checkpoint", "aliases",
                                "published_params", "hf_id", "published_params_rounded",
                                "published_active_params", "published_active_params_rounded")]
    architecture = Section(title="Architecture (config.json fields)", columns=["field", "value"], rows=arch_rows)
    sections = [counts, components, architecture]
    if spec.checkpoint is not None:
        info = spec.checkpoint
        ck_rows = [["format", info.format, info.format_note or info.reader]]
        if info.stored_bytes is not None:
            ck_rows.append(["stored bytes (loaded)", format_bytes(info.stored_bytes, units),
                            f"{info.stored_bytes:,} B"])
        if info.file_bytes is not None and info.file_bytes != info.stored_bytes:
            ck_rows.append(["bytes in the files", format_bytes(info.file_bytes, units), f"{info.file_bytes:,} B"])
        if info.stored_params is not None:
            ck_rows.append(["stored parameters", f"{info.stored_params:,}", "logical, unpacked"])
        ck_rows += [[f"  {dtype}", format_bytes(size, units), f"{size:,} B"]
                    for dtype, size in sorted(info.bytes_by_dtype.items(), key=lambda item: -item[1])]
        sections.append(Section(title="Checkpoint (file headers)", columns=["", "value", "note"], rows=ck_rows))
    notes = [f"source: {spec.source}"]
    if spec.params_source:
        notes.append(f"count source: {spec.params_source}")
    if spec.params_convention:
        notes.append(f"convention: {spec.params_convention}")
    if spec.aliases:
        notes.append(f"aliases: {', '.join(spec.aliases)}")
    notes.append(f"from: {entry.origin}")
    if spec.checkpoint is not None:
        notes += spec.checkpoint.notes
    title = f"{spec.name}" + (f" ({spec.hf_id})" if spec.hf_id else "")
    return Document(title=title, sections=sections, notes=notes)


def gpu_document(detail: GpuDetail, units: DisplayUnits) -> Document:
    entry, gpu = detail.entry, detail.spec
    rows = [["memory", format_bytes(gpu.memory, units), gpu.memory_source or f"{gpu.memory:,} B"]]
    if gpu.gpu_memory_share is not None:
        rows.append(["usable by the GPU", format_bytes(entry.usable_memory_bytes, units),
                     f"{gpu.gpu_memory_share:.0%} of unified memory"])
    if gpu.memory_bandwidth_bytes_per_s:
        rows.append(["memory bandwidth", f"{gpu.memory_bandwidth_bytes_per_s / 1e9:,.0f} GB/s", ""])
    rows += [[f"{dtype} dense", f"{tflops:g} TFLOPS", ""] for dtype, tflops in gpu.tflops.items()]
    if gpu.native_dtypes:
        rows.append(["native formats", ", ".join(gpu.native_dtypes), ""])
    if gpu.compute_capability:
        rows.append(["compute capability", gpu.compute_capability, ""])
    if gpu.price_per_hour is not None:
        rows.append(["price per GPU-hour", f"${gpu.price_per_hour:.2f}", gpu.price_source or ""])
    notes = [f"source: {gpu.source}", _unit_note(units), f"from: {entry.origin}"]
    if gpu.notes:
        notes.insert(1, gpu.notes)
    if gpu.aliases:
        notes.append(f"aliases: {', '.join(gpu.aliases)}")
    return Document(title=f"{gpu.name}" + (f" ({gpu.display_name})" if gpu.display_name else ""),
                    sections=[Section(title="", columns=["", "value", "source / note"], rows=rows)], notes=notes)


def check_document(folder: object, checked: list[CheckedFile]) -> Document:
    """`presets check DIR`: every file and whether it is valid (the errors themselves go to stderr too)."""
    rows = [[c.kind, str(c.path), "ok" if c.error is None else "INVALID"] for c in checked]
    bad = sum(1 for c in checked if c.error is not None)
    verdict = (f"{len(checked) - bad} of {len(checked)} preset files valid" if checked
               else "no presets found (expected models/*.yaml and gpus/*.yaml)")
    return Document(title=f"Presets in {folder}", sections=[Section(title="", columns=["kind", "file", "result"],
                                                                     rows=rows)] if rows else [],
                    verdict=verdict, verdict_ok=bad == 0 and bool(checked),
                    notes=[c.error for c in checked if c.error is not None])
