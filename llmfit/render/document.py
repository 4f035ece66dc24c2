"""A neutral report document: what every command shows, before it becomes a Rich table or Markdown.

Each command's renderer turns its result object into a Document (labels, already-formatted cells,
notes); the table and Markdown back-ends draw any Document the same way. JSON does not go through
here: it is the result object dumped as is (see render/jsonout.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Section:
    """A titled table: column headers (units in them) and rows of already-formatted cells."""

    title: str
    columns: list[str]
    rows: list[list[str]]
    # Columns whose cells are numbers, right-aligned (indexes into columns).
    numeric: tuple[int, ...] = ()
    # Rows drawn emphasised (e.g. a total line), by index.
    emphasis: tuple[int, ...] = ()


@dataclass(frozen=True)
class Document:
    """Everything a command prints as a report: title, sections, verdict, free-text blocks and notes."""

    title: str
    sections: list[Section] = field(default_factory=list)
    verdict: str | None = None
    verdict_ok: bool | None = None
    # Preformatted blocks drawn as-is (a number line, a memory bar); only on a terminal for bars.
    blocks: list[str] = field(default_factory=list)
    # Terminal-only pictures (a coloured memory bar): skipped when stdout is not a terminal.
    bars: list[list[tuple[str, float, str]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Formulas with numbers substituted, shown with --explain.
    explain: list[str] = field(default_factory=list)
