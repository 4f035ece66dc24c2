"""Document -> Rich renderables for the terminal (plain text when piped or NO_COLOR is set)."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from llmfit.render.document import Document, Section

BAR_WIDTH = 60


def _table(section: Section) -> Table:
    table = Table(title=section.title or None, title_justify="left", show_edge=True, header_style="bold")
    for index, column in enumerate(section.columns):
        table.add_column(column, justify="right" if index in section.numeric else "left", overflow="fold")
    for index, row in enumerate(section.rows):
        style = "bold" if index in section.emphasis else None
        table.add_row(*[Text(cell) for cell in row], style=style)
    return table


def _bar(segments: list[tuple[str, float, str]]) -> Text:
    """A stacked horizontal bar: segments of (label, share of the whole, colour)."""
    text = Text()
    used = 0
    for index, (_label, share, colour) in enumerate(segments):
        width = round(share * BAR_WIDTH) if index < len(segments) - 1 else BAR_WIDTH - used
        width = max(0, min(width, BAR_WIDTH - used))
        text.append("█" * width, style=colour)
        used += width
    text.append("\n")
    for label, share, colour in segments:
        text.append("■ ", style=colour)
        text.append(f"{label} {share * 100:.0f}%   ")
    return text


def to_renderable(document: Document, *, explain: bool = False, terminal: bool = True) -> Any:
    parts: list[Any] = [Text(document.title, style="bold")]
    parts += [_table(section) for section in document.sections]
    if terminal:
        parts += [_bar(segments) for segments in document.bars]
    parts += [Text(block.rstrip("\n")) for block in document.blocks]
    if document.verdict:
        style = "bold green" if document.verdict_ok else "bold red" if document.verdict_ok is False else "bold"
        parts.append(Text(document.verdict, style=style))
    parts += [Text(f"• {note}", style="dim") for note in document.notes]
    if explain and document.explain:
        parts.append(Text("How it is computed", style="bold"))
        parts += [Text(line) for line in document.explain]
    return Group(*parts)
