"""Document -> GitHub-flavoured Markdown (for design docs and PR comments)."""

from __future__ import annotations

from llmfit.render.document import Document, Section


def _escape(cell: str) -> str:
    return cell.replace("|", "\\|").replace("\n", " ")


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
