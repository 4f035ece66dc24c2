"""A neutral report document: what every command shows, before it becomes a Rich table or Markdown.

Each command's renderer turns its result object into a Document (labels, already-formatted cells,
notes); the table and Markdown back-ends draw any Document the same way. JSON does not go through
here: it is the result object dumped as is (see render/jsonout.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Section:
    """A titled table: column headers (units in them) and rows of already-formatted cells.

    Layout rule (render/table.py): a number or a name is never split across lines. Only prose columns
    wrap, and only between words; `wrap` names them, else a text column whose cells hold several words
    counts as prose.
    """

    title: str
    columns: list[str]
    rows: list[list[str]]
    # Columns whose cells are numbers, right-aligned (indexes into columns).
    numeric: tuple[int, ...] = ()
    # Rows drawn emphasised (e.g. a total line), by index.
    emphasis: tuple[int, ...] = ()
    # Prose columns that may wrap between words (None: decided from the cells, see prose_columns).
    wrap: tuple[int, ...] | None = None

    def prose_columns(self) -> tuple[int, ...]:
        if self.wrap is not None:
            return self.wrap
        prose = []
        for index in range(len(self.columns)):
            if index in self.numeric:
                continue
            cells = [row[index] for row in self.rows if index < len(row)]
            if any(len(cell.split()) >= 4 for cell in cells):
                prose.append(index)
        return tuple(prose)


# A memory bar: segments of (label, share of the whole, colour); the last one is usually "free".
BarSegments = list[tuple[str, float, str]]


@dataclass(frozen=True)
class Document:
    """Everything a command prints as a report: title, sections, verdict, free-text blocks and notes."""

    title: str
    sections: list[Section] = field(default_factory=list)
    verdict: str | None = None
    verdict_ok: bool | None = None
    # Preformatted blocks drawn as-is, never wrapped (a number line, a launch command, a config file):
    # set off by blank lines in a table, fenced in Markdown.
    blocks: list[str] = field(default_factory=list)
    # Memory bars, drawn with a distinct character per segment (colour on a terminal as well).
    bars: list[BarSegments] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Formulas with numbers substituted, shown with --explain.
    explain: list[str] = field(default_factory=list)
