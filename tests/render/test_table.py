"""The table back-end on hand-made documents: sized to content, prose wrapped between words, column groups
when too wide, ASCII, Markdown escaping and indentation, the text bar."""

from __future__ import annotations

import io
import re

from rich.console import Console

from llmfit.render.document import Document, Section
from llmfit.render.markdown import to_markdown
from llmfit.render.table import Style, bar_text, column_groups, to_renderable

WIDE = Section(title="plan", columns=["#", "GPU", "GPUs", "layout", "$/hour", "max conc.", "tok/s bound",
                                      "TTFT bound", "KV pool/GPU", "note"],
               rows=[["1", "mi300x", "3", "TP1 DP3", "$7.77", "78", "1,662", "9.23 s", "133.35 GiB",
                      "awq weights need an AWQ checkpoint of the model"]],
               numeric=(0, 2, 4, 5, 6, 7, 8))


def render(document: Document, width: int, *, ascii: bool = False) -> str:
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, color_system=None, no_color=True, legacy_windows=False)
    console.print(to_renderable(document, style=Style(width=width, ascii=ascii)), crop=False)
    return buffer.getvalue()


def test_content_sized_columns_at_a_wide_width() -> None:
    groups = column_groups(WIDE, 200)
    assert len(groups) == 1
    indexes, widths, folding = groups[0]
    assert widths[indexes.index(1)] == len("mi300x") and widths[indexes.index(9)] == len(WIDE.rows[0][9])
    assert folding == {9}  # only the note is prose


def test_narrow_widths_cut_column_groups_that_repeat_the_first_column() -> None:
    groups = column_groups(WIDE, 50)
    assert len(groups) > 1
    assert all(indexes[0] == 0 for indexes, _, _ in groups)
    assert sorted({i for indexes, _, _ in groups for i in indexes}) == list(range(10))
    text = render(Document(title="t", sections=[WIDE]), 50)
    assert max(len(line) for line in text.splitlines()) <= 50
    for word in ("$7.77", "1,662", "133.35", "mi300x", "checkpoint"):
        assert re.search(rf"(^|\s){re.escape(word)}(\s|$)", text), word
    assert "(continued)" in text


def test_prose_wraps_between_words_only() -> None:
    section = Section(title="", columns=["", "value", "note"],
                      rows=[["KV pool (tokens per replica)", "121,600",
                             "7,600 blocks; vLLM: 'GPU KV cache size: 121,600 tokens'"]], numeric=(1,))
    text = render(Document(title="t", sections=[section]), 60)
    assert "121,600" in text and "tokens'" in text and "7,600" in text
    assert max(len(line) for line in text.splitlines()) <= 60


def test_ascii_style_uses_ascii_borders_and_bar() -> None:
    document = Document(title="t", sections=[WIDE], bars=[[("weights", 0.5, "blue"), ("free", 0.5, "grey")]],
                        notes=["a note"])
    text = render(document, 200, ascii=True)
    assert text.isascii()
    assert "+--" in text and "[####" in text and "* a note" in text


def test_the_bar_has_one_character_per_segment() -> None:
    bar, legend = bar_text([("weights", 0.46, "blue"), ("overhead", 0.01, "m"), ("KV cache", 0.43, "g"),
                            ("free", 0.10, "b")], width=100)
    assert bar == "[" + "█" * 46 + "▓" + "▒" * 43 + "░" * 10 + "]"
    assert legend == "█ weights 46%  ▓ overhead 1%  ▒ KV cache 43%  ░ free 10%  (of one GPU's memory)"


def test_markdown_escapes_pipes_keeps_indentation_and_fences_blocks_and_bars() -> None:
    section = Section(title="Memory", columns=["line", "bytes"], rows=[["  packed", "1 GiB"], ["a | b", "2"]],
                      numeric=(1,), emphasis=(1,))
    text = to_markdown(Document(title="T", sections=[section], blocks=["# c\n  vllm serve x"],
                                bars=[[("weights", 1.0, "blue")]]))
    assert "| \u2003packed | 1 GiB |" in text
    assert "| **a \\| b** | **2** |" in text
    assert "```\n# c\n  vllm serve x\n```" in text
    assert "```text\n[" in text
