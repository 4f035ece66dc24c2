"""PlanResult and SpeedBounds -> Document (formatting only). `shell_lines` is re-exported from render.shell."""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = ["plan_document", "shell_lines", "speed_explain", "speed_rows", "speed_section"]

from llmfit.engine.serving import Step

if TYPE_CHECKING:  # annotations only: `fit` imports this module and must not pay ~10 ms for the planner
    from llmfit.engine.plan import PlanResult, PlanRow
from llmfit.engine.speed import SpeedBounds
from llmfit.render.document import Document, Section
from llmfit.render.shell import command_block, shell_lines
from llmfit.units import DisplayUnits, format_bytes, format_tokens


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:,.1f} ms" if value < 1 else f"{value:,.2f} s"


def speed_rows(bounds: SpeedBounds) -> list[list[str]]:
    """The bound lines shown by `fit` and `plan`."""
    return [
        ["decode step (lower bound)", _seconds(bounds.decode_step_seconds),
         f"{bounds.concurrency:,} request{'' if bounds.concurrency == 1 else 's'} at "
         f"{format_tokens(bounds.context_tokens)} tokens of KV"],
        ["tokens/s per request (upper bound)", _rate(bounds.tokens_per_second_per_request),
         "memory-bandwidth roofline"],
        ["tokens/s, all requests (upper bound)", _rate(bounds.tokens_per_second),
         f"eff. memory {bounds.memory_efficiency:g}"],
        [f"time to first token, {format_tokens(bounds.prompt_tokens)}-token prompt (lower bound)",
         _seconds(bounds.ttft_seconds), f"{bounds.compute_dtype} peak x eff. compute {bounds.compute_efficiency:g}"],
    ]


def speed_section(bounds: SpeedBounds) -> Section:
    return Section(title="Speed bounds (roofline)", columns=["", "value", "note"], rows=speed_rows(bounds),
                   numeric=(1,))


def speed_explain(steps: list[Step]) -> list[str]:
    lines = []
    for step in steps:
        value = f"{step.result:,} B" if step.unit == "bytes" else f"{step.result:,} {step.unit}"
        lines.append(f"{step.label}: {step.formula} = {step.substituted} = {value}")
    return lines


def _layout(row: PlanRow) -> str:
    parts = [f"TP{row.tp}"]
    if row.pp > 1:
        parts.append(f"PP{row.pp}")
    if row.replicas > 1:
        parts.append(f"DP{row.replicas}")
    return " ".join(parts)


def _price(row: PlanRow) -> str:
    return "-" if row.price_per_hour is None else f"${row.price_per_hour:,.2f}"


def plan_document(result: PlanResult, units: DisplayUnits) -> Document:
    title = (f"plan: {result.model} serving {result.concurrency} x {format_tokens(result.context_tokens)}-token "
             f"requests on {result.engine} (up to {result.max_gpus} GPUs, {result.gpus_per_node} per node)")
    rows = []
    for row in result.rows:
        rows.append([str(row.rank), row.gpu, str(row.gpu_count), str(row.nodes), _layout(row), row.dtype, row.kv_dtype,
                     _price(row), str(row.max_concurrency), _rate(row.tokens_per_second),
                     _seconds(row.ttft_seconds), format_bytes(row.kv_budget_bytes_per_gpu, units)])
    sections = [Section(title="Pareto front (price/hour, GPUs, tokens/s)",
                        columns=["#", "GPU", "GPUs", "nodes", "layout", "weights", "KV", "$/hour", "max conc.",
                                 "tok/s bound", "TTFT bound", "KV pool/GPU"],
                        rows=rows, numeric=(0, 2, 3, 7, 8, 9, 10, 11))]
    blocks = [command_block(f"#{row.rank} {row.gpu} x{row.gpu_count}, {_layout(row)}, {row.dtype} weights, "
                            f"{row.kv_dtype} KV", row.launch.argv, row.launch.notes) for row in result.rows]
    if result.smallest_single_gpu_row is not None:
        single = result.smallest_single_gpu_row
        blocks.append(command_block(f"smallest single GPU: {single.gpu} ({single.dtype} weights, {single.kv_dtype} "
                                    f"KV, {single.max_concurrency} requests)", single.launch.argv,
                                    single.launch.notes))
    if result.fits:
        verdict = (f"{result.configurations_serving:,} of {result.configurations_evaluated:,} configurations serve "
                   f"the target; {result.front_size} on the Pareto front")
    else:
        verdict = (f"NOTHING SERVES {result.concurrency} x {format_tokens(result.context_tokens)} tokens within "
                   f"{result.max_gpus} GPUs ({result.configurations_evaluated:,} configurations evaluated)")
    notes = [f"memory in {'binary GiB (2^30 bytes)' if units is DisplayUnits.gib else 'decimal GB (10^9 bytes)'}",
             *result.notes]
    explain = []
    if result.rows:
        first = result.rows[0]
        explain.append(f"#1 {first.gpu} x{first.gpu_count}, {_layout(first)}, {first.dtype}/{first.kv_dtype}:")
        for step in first.fit.steps:
            middle = f" = {step.substituted}" if step.substituted else ""
            explain.append(f"  {step.label}: {step.formula}{middle} = {step.result:,} {step.unit}")
        explain += ["  " + line for line in speed_explain(first.speed.steps)]
    return Document(title=title, sections=sections, blocks=blocks, verdict=verdict, verdict_ok=result.fits,
                    notes=notes, explain=explain)
