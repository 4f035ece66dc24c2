"""Document -> Rich renderables for the terminal (plain text when piped or NO_COLOR is set).

Layout rule: numbers and names are never split across lines. Each column is sized to its content; a
column narrower than its content is allowed only for prose (wrapped between words, never inside one).
When even that does not fit the width, the table is cut into column groups, each repeating the first
(label) column, printed one under the other.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from itertools import combinations
from typing import Any

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from llmfit.render.document import BarSegments, Document, Section

BAR_WIDTH = 60
# One character per bar segment, so the bar reads without colour (plain text, Markdown, NO_COLOR).
BAR_CHARS = "█▓▒░·"
BAR_CHARS_ASCII = "#=+-."
BAR_CAPTION = "  (of one GPU's memory)"


@dataclass(frozen=True)
class Style:
    """How a document is drawn: the width in columns, colour, and ASCII-only output (a non-UTF-8 stdout)."""

    width: int = 120
    color: bool = False
    ascii: bool = False


def _words(cell: str) -> int:
    return max((len(word) for word in cell.split()), default=0)


def _lines(cell: str) -> int:
    return max((len(line) for line in cell.splitlines()), default=0)


def _overhead(columns: int) -> int:
    """Border and padding characters of a table with `columns` columns (edges shown, padding 1)."""
    return 3 * columns + 1


def column_groups(section: Section, width: int) -> list[tuple[list[int], list[int], set[int]]]:
    """(column indexes, their widths, columns allowed to fold) for each table the section is drawn as."""
    count = len(section.columns)
    prose = set(section.prose_columns())
    smallest: list[int] = []
    widest: list[int] = []
    for index, header in enumerate(section.columns):
        cells = [row[index] for row in section.rows if index < len(row)]
        content = max((_lines(cell) for cell in cells), default=0)
        unbreakable = max((_words(cell) for cell in cells), default=0) if index in prose else content
        smallest.append(max(unbreakable, _words(header), 1))
        widest.append(max(content, len(header), 1))

    def fits(indexes: list[int], sizes: list[int]) -> bool:
        return sum(sizes[i] for i in indexes) + _overhead(len(indexes)) <= width

    groups: list[list[int]] = []
    current = [0]
    for index in range(1, count):
        if fits([*current, index], smallest) or current == [0]:
            current.append(index)
        else:
            groups.append(current)
            current = [0, index]
    groups.append(current)
    if len(groups) > 1:
        groups = _balanced(groups, count, lambda g: fits(g, smallest), widest)
    out = []
    for indexes in groups:
        sizes = {i: smallest[i] for i in indexes}
        folding: set[int] = set()
        room = width - _overhead(len(indexes)) - sum(sizes.values())
        if room < 0:  # one column wider than the screen on its own: the only case where a word may fold
            wide = max((i for i in indexes if i != 0 or len(indexes) == 1), key=lambda i: sizes[i])
            sizes[wide] = max(1, sizes[wide] + room)
            folding.add(wide)
            room = 0
        # Grow every column to its content while there is room; prose columns take what is left.
        growable = [i for i in indexes if widest[i] > sizes[i]]
        non_prose_first = sorted(growable, key=lambda i: (i in prose, widest[i] - sizes[i]))
        for i in non_prose_first:
            if i in prose:
                break
            grow = min(room, widest[i] - sizes[i])
            sizes[i] += grow
            room -= grow
        wanting = [i for i in indexes if i in prose and widest[i] > sizes[i]]
        while room > 0 and wanting:
            share = max(1, room // len(wanting))
            for i in list(wanting):
                grow = min(share, widest[i] - sizes[i], room)
                sizes[i] += grow
                room -= grow
                if sizes[i] >= widest[i]:
                    wanting.remove(i)
                if room <= 0:
                    break
        out.append((indexes, [sizes[i] for i in indexes], folding | (prose & set(indexes))))
    return out


def _balanced(greedy: list[list[int]], count: int, fits: Callable[[list[int]], bool],
              widest: list[int]) -> list[list[int]]:
    """As many groups as the greedy cut, but with the columns spread evenly (a last group of one lonely
    column reads badly): the cut whose widest group (by content width) is narrowest, among those that fit."""
    parts = len(greedy)
    rest = list(range(1, count))
    if len(rest) > 16 or parts > 4:  # a search of at most C(15, 3) = 455 cuts; beyond, keep the greedy one
        return greedy
    best, best_cost = greedy, None
    for cuts in combinations(range(1, len(rest)), parts - 1):
        bounds = [0, *cuts, len(rest)]
        groups = [[0, *rest[a:b]] for a, b in itertools.pairwise(bounds)]
        if not all(fits(g) for g in groups):
            continue
        cost = max(sum(widest[i] for i in g) for g in groups)
        if best_cost is None or cost < best_cost:
            best, best_cost = groups, cost
    return best


def _table(section: Section, style: Style) -> list[Any]:
    """The section's tables, each after its title (a line of its own, wrapped at the screen's width rather
    than the table's)."""
    tables: list[Any] = []
    groups = column_groups(section, style.width)
    for number, (indexes, widths, folding) in enumerate(groups):
        title = section.title
        if number:
            title = f"{title} (continued)" if title else "(continued)"
        if title:
            tables.append(Text(title, style="italic"))
        table = Table(show_edge=True, header_style="bold", box=box.ASCII if style.ascii else box.HEAVY_HEAD,
                      safe_box=style.ascii)
        for index, width in zip(indexes, widths, strict=True):
            # Headers wrap between words (an explicit no_wrap on the Text wins over the column's).
            table.add_column(Text(section.columns[index], no_wrap=False, overflow="fold"),
                             justify="right" if index in section.numeric else "left",
                             width=width, no_wrap=index not in folding, overflow="fold")
        for row_index, row in enumerate(section.rows):
            row_style = "bold" if row_index in section.emphasis else None
            table.add_row(*[Text(row[i] if i < len(row) else "", no_wrap=i not in folding, overflow="fold")
                            for i in indexes], style=row_style)
        tables.append(table)
    return tables


def _cells(share: float, width: int) -> int:
    """Bar cells of a segment: rounded, but at least one for a visible share (0.5 % and up)."""
    return max(round(share * width), 1 if share >= 0.005 else 0)


def bar_text(segments: BarSegments, *, width: int = BAR_WIDTH, ascii: bool = False) -> tuple[str, str]:
    """A stacked bar and its legend as plain text: one distinct character per segment."""
    chars = BAR_CHARS_ASCII if ascii else BAR_CHARS
    cells: list[str] = []
    for index, (_label, share, _colour) in enumerate(segments):
        left = width - len(cells)
        size = left if index == len(segments) - 1 else max(0, min(_cells(share, width), left))
        cells += [chars[min(index, len(chars) - 1)]] * size
    bar = "[" + "".join(cells) + "]"
    legend = "  ".join(f"{chars[min(i, len(chars) - 1)]} {label} {share * 100:.0f}%"
                       for i, (label, share, _colour) in enumerate(segments))
    return bar, legend + BAR_CAPTION


def _bar(segments: BarSegments, style: Style) -> Text:
    width = max(10, min(BAR_WIDTH, style.width - 2))
    chars = BAR_CHARS_ASCII if style.ascii else BAR_CHARS
    text = Text("[")
    used = 0
    for index, (_label, share, colour) in enumerate(segments):
        left = width - used
        size = left if index == len(segments) - 1 else max(0, min(_cells(share, width), left))
        text.append(chars[min(index, len(chars) - 1)] * size, style=colour if style.color else None)
        used += size
    text.append("]\n")
    for index, (label, share, colour) in enumerate(segments):
        text.append(chars[min(index, len(chars) - 1)], style=colour if style.color else None)
        text.append(f" {label} {share * 100:.0f}%" + ("  " if index < len(segments) - 1 else ""))
    text.append(BAR_CAPTION)
    return text


def to_renderable(document: Document, *, explain: bool = False, style: Style | None = None,
                  terminal: bool | None = None) -> Any:
    style = style or Style(color=bool(terminal))
    parts: list[Any] = [Text(document.title, style="bold")]
    for section in document.sections:
        parts += _table(section, style)
    parts += [_bar(segments, style) for segments in document.bars]
    for block in document.blocks:
        # Never wrapped: a launch command or a config is pasted as printed (a long line runs past the
        # edge of the screen rather than breaking into a line the shell would run on its own). Blank
        # lines set each block off from the table above and from the next block.
        parts.append(Text(""))
        parts.append(Text(block.rstrip("\n"), no_wrap=True, overflow="ignore"))
    if document.blocks:
        parts.append(Text(""))
    if document.verdict:
        verdict_style = "bold green" if document.verdict_ok else "bold red" if document.verdict_ok is False \
            else "bold"
        parts.append(Text(document.verdict, style=verdict_style))
    bullet = "*" if style.ascii else "•"
    parts += [Text(f"{bullet} {note}", style="dim") for note in document.notes]
    if explain and document.explain:
        parts.append(Text("How it is computed", style="bold"))
        parts += [Text(line) for line in document.explain]
    return Group(*parts)
