"""Document -> GitHub-flavoured Markdown (for design docs and PR comments)."""

from __future__ import annotations

from llmfit.render.document import Document, Section
from llmfit.render.table import bar_text

# GitHub collapses leading spaces in a table cell; an em space per level keeps sub-lines indented.
INDENT = "\u2003"


def _escape(cell: str) -> str:
    stripped = cell.lstrip(" ")
    indent = (len(cell) - len(stripped)) // 2
    return INDENT * indent + stripped.replace("|", "\\|").replace("\n", " ")


def _table(section: Section) -> list[str]:
    lines = []
    if section.title:
        lines += [f"### {section.title}", ""]
    lines.append("| " + " | ".join(_escape(c) for c in section.columns) + " |")
    aligns = ["---:" if i in section.numeric else "---" for i in range(len(section.columns))]
    lines.append("| " + " | ".join(aligns) + " |")
    for index, row in enumerate(section.rows):
        cells = [_escape(c) for c in row]
        if index in section.emphasis:
            cells = [f"**{c}**" if c else c for c in cells]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    return lines


def to_markdown(document: Document, *, explain: bool = False) -> str:
    lines = [f"## {document.title}", ""]
    for section in document.sections:
        lines += _table(section)
    for segments in document.bars:
        bar, legend = bar_text(segments)
        lines += ["```text", bar, legend, "```", ""]
    for block in document.blocks:
        lines += ["```", block.rstrip("\n"), "```", ""]
    if document.verdict:
        lines += [f"**Verdict:** {document.verdict}", ""]
    for note in document.notes:
        lines.append(f"- {note}")
    if document.notes:
        lines.append("")
    if explain and document.explain:
        lines += ["### How it is computed", "", "```"]
        lines += document.explain
        lines += ["```", ""]
    return "\n".join(lines).rstrip("\n") + "\n"
