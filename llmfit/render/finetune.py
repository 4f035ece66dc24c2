"""FinetuneResult -> Document: the memory lines, the verdict with its margin, limits, time (formatting only)."""

from __future__ import annotations

from llmfit.engine.finetune import FinetuneResult
from llmfit.render.document import Document, Section
from llmfit.units import DisplayUnits, format_bytes, format_count, format_tokens


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:,.2f} s"
    if seconds < 7200:
        return f"{seconds / 60:,.1f} min"
    return f"{seconds / 3600:,.1f} h"


def _title(r: FinetuneResult) -> str:
    where = "" if r.gpu is None else f" on {r.gpu}" + (f" x{r.gpu_count}" if r.gpu_count > 1 else "")
    if r.gpu is None and r.gpu_count > 1:
        where = f" on {r.gpu_count} GPUs"
    shape = f"{r.method}"
    if r.lora_rank is not None:
        shape += f" r={r.lora_rank} on {','.join(r.lora_target_modules or [])}"
    return (f"{r.model}{where} - {shape}, {r.recipe} recipe, {r.optimizer}, {r.precision}, ZeRO-{r.zero}, "
            f"batch {r.micro_batch} x {format_tokens(r.seq_tokens)} tokens"
            + (", gradient checkpointing" if r.grad_checkpointing else ""))


def finetune_document(r: FinetuneResult, units: DisplayUnits) -> Document:
    multi = r.gpu_count > 1
    columns = ["line", "per GPU"] + (["all GPUs"] if multi else []) + ["how"]
    rows: list[list[str]] = []
    for line in r.lines:
        off_gpu = line.category == "offloaded" or (line.category == "optimizer" and "paged" in line.name)
        how = line.formula + ("" if line.at_peak else "  (not on the GPU)" if off_gpu else
                              "  (not resident at the peak)")
        row = [line.name, format_bytes(line.bytes_per_gpu, units)]
        if multi:
            row.append(format_bytes(line.bytes, units))
        rows.append([*row, how])
    total_row = [f"total at the peak ({r.peak_phase})", format_bytes(r.total_bytes_per_gpu, units)]
    if multi:
        total_row.append(format_bytes(r.total_bytes, units))
    rows.append([*total_row, "reserved + CUDA context: what must fit"])
    emphasis = [len(rows) - 1]
    for label, value, whole, how_text in (
            ("peak allocated", r.peak_allocated_bytes_per_gpu, r.peak_allocated_bytes,
             "torch.cuda.max_memory_allocated()" + (" <- what this trainer prints"
                                                    if r.trainer_peak_figure in ("allocated", "active") else "")),
            ("peak reserved", r.peak_reserved_bytes_per_gpu, r.peak_reserved_bytes,
             "torch.cuda.max_memory_reserved(): + fragmentation, load-time peak"
             + (" <- what this trainer prints" if r.trainer_peak_figure == "reserved" else ""))):
        rows.append([label, format_bytes(value, units)] + ([format_bytes(whole, units)] if multi else [])
                    + [how_text])
    if r.gpu_memory_bytes_per_gpu is not None and r.margin_bytes_per_gpu is not None:
        device_row = ["device memory", format_bytes(r.gpu_memory_bytes_per_gpu, units)] + (["-"] if multi else [])
        rows.append([*device_row, "as the device reports it"])
        margin = ["margin", format_bytes(r.margin_bytes_per_gpu, units)] + (["-"] if multi else [])
        rows.append([*margin, "device - total" + ("" if r.margin_bytes_per_gpu >= 0 else "  (SHORT)")])
        emphasis.append(len(rows) - 1)
    numeric = (1, 2) if multi else (1,)
    sections = [Section(title="Memory", columns=columns, rows=rows, numeric=numeric, emphasis=tuple(emphasis))]

    prow = [
        ["total parameters", f"{r.total_params:,}", format_count(r.total_params)],
        ["trainable parameters", f"{r.trainable_params:,}", f"{r.trainable_percent:.4g} % of {r.all_params:,} "
         "(PEFT's all params)"],
        ["model states", format_bytes(r.model_states_bytes_per_gpu, units),
         "weights + gradients + master weights + optimizer states, per GPU"],
    ]
    if r.limits is not None:
        prow.append(["largest micro-batch that fits", str(r.limits.max_micro_batch),
                     f"at {format_tokens(r.seq_tokens)} tokens"])
        prow.append(["longest sequence that fits", format_tokens(r.limits.max_seq_tokens or 0),
                     f"at micro-batch {r.micro_batch}"])
    sections.append(Section(title="Parameters and limits", columns=["", "value", "note"], rows=prow, numeric=(1,)))

    if r.training is not None:
        t = r.training
        trows = [
            ["tokens per step", format_tokens(t.tokens_per_step), "micro-batch x seq x accumulation x GPUs"],
            ["FLOPs per token", f"{t.flops_per_token:.3e}", t.flops_formula],
            ["time per step", _duration(t.step_seconds),
             f"{t.peak_tflops_per_gpu:g} TFLOPS {t.peak_tflops_dtype} peak x MFU {t.mfu:g}"],
            ["throughput", f"{t.tokens_per_second:,.0f} tokens/s", "all GPUs"],
        ]
        if t.epoch_seconds is not None and t.dataset_tokens is not None:
            trows.append(["one epoch", _duration(t.epoch_seconds),
                          f"{format_tokens(t.dataset_tokens)} tokens, {t.steps_per_epoch:,} steps"])
            cost = "-" if t.cost_usd is None else f"${t.cost_usd:,.2f}"
            price = "no price in the GPU preset" if t.price_per_gpu_hour is None else \
                f"{t.gpu_hours:,.1f} GPU-hours x ${t.price_per_gpu_hour:g}"
            trows.append(["cost per epoch", cost, price])
        sections.append(Section(title="Training time", columns=["", "value", "how"], rows=trows, numeric=(1,)))

    if r.fits is None:
        verdict = f"no GPU given: needs {format_bytes(r.total_bytes_per_gpu, units)} per GPU"
    elif r.fits:
        verdict = (f"FITS - {format_bytes(r.total_bytes_per_gpu, units)} of "
                   f"{format_bytes(r.gpu_memory_bytes_per_gpu or 0, units)} per GPU, margin "
                   f"{format_bytes(r.margin_bytes_per_gpu or 0, units)}")
    else:
        verdict = (f"DOES NOT FIT - {format_bytes(r.total_bytes_per_gpu, units)} per GPU, "
                   f"{format_bytes(-(r.margin_bytes_per_gpu or 0), units)} more than the "
                   f"{format_bytes(r.gpu_memory_bytes_per_gpu or 0, units)} available")
    notes = [f"memory in {'binary GiB (2^30 bytes)' if units is DisplayUnits.gib else 'decimal GB (10^9 bytes)'}",
             f"recipe {r.recipe}: {r.recipe_title}; its trainer prints {r.trainer_peak_label} "
             f"({format_bytes(r.trainer_peak_bytes_per_gpu, units)} here)"]
    notes += r.warnings + r.notes
    bars = []
    if r.gpu_memory_bytes_per_gpu and r.fits:
        device = r.gpu_memory_bytes_per_gpu
        at_peak = {c: sum(x.bytes_per_gpu for x in r.lines if x.category == c and x.at_peak)
                   for c in ("weights", "gradients", "master_weights", "optimizer", "activations", "logits",
                             "overhead")}
        bars.append([
            ("weights", at_peak["weights"] / device, "blue"),
            ("grads+optimizer", (at_peak["gradients"] + at_peak["master_weights"] + at_peak["optimizer"]) / device,
             "yellow"),
            ("activations+logits", (at_peak["activations"] + at_peak["logits"]) / device, "green"),
            ("overhead", at_peak["overhead"] / device, "magenta"),
            ("free", max(0, r.margin_bytes_per_gpu or 0) / device, "bright_black"),
        ])
    return Document(title=_title(r), sections=sections, verdict=verdict, verdict_ok=r.fits, bars=bars, notes=notes,
                     explain=r.explain)
