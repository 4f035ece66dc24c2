"""check-log as a Document: each measured log line beside llmfit's prediction."""

from __future__ import annotations

from llmfit.engine.checklog import CheckLogResult
from llmfit.render.document import Document, Section
from llmfit.units import DisplayUnits, format_bytes


def _value(name: str, value: float | None, units: DisplayUnits) -> str:
    if value is None:
        return "-"
    if name.endswith("_bytes") or name.endswith("_bytes_per_gpu"):
        return format_bytes(int(value), units)
    if name == "vllm_max_concurrency":
        return f"{value:.2f}x"
    return f"{int(value):,}"


def check_log_document(result: CheckLogResult, units: DisplayUnits) -> Document:
    rows = [[line.name, _value(line.name, line.measured, units), _value(line.name, line.predicted, units),
             "-" if line.error is None else f"{line.error:+.2%}", line.explain] for line in result.lines]
    worst = "-" if result.worst_error is None else f"{result.worst_error:.2%}"
    verdict = (f"{'WITHIN' if result.ok else 'OUTSIDE'} {result.tolerance:.0%}: worst error {worst}")
    version = result.engine_version or "version not in the log"
    return Document(
        title=f"{result.engine} start-up log ({version}; profile {result.engine_profile or '-'}): {result.model} "
              f"on {result.gpu}",
        sections=[Section(title="measured vs predicted", columns=["fit key", "log", "llmfit", "error", "why"],
                          rows=rows, numeric=(1, 2, 3))],
        verdict=verdict, verdict_ok=result.ok,
        blocks=["the log lines read:\n" + "\n".join(f"  {line.log_line}" for line in result.lines if line.log_line)],
        notes=[f"memory in {'binary GiB' if units is DisplayUnits.gib else 'decimal GB'}", *result.notes])
