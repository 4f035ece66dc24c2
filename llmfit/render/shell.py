"""Launch commands as blocks that paste into a shell: comments on their own `#` lines above the command,
one flag and its value per continued line, every argument quoted with shlex."""

from __future__ import annotations

import shlex
import textwrap

COMMENT_WIDTH = 78


def shell_lines(argv: list[str]) -> str:
    """A command as pasteable shell lines: one flag and its value per line, joined with backslashes."""
    lines: list[list[str]] = [[]]
    for token in argv:
        if token.startswith("-") and lines[-1] and lines[-1] != ["python"]:
            lines.append([])
        lines[-1].append(shlex.quote(token))
    return " \\\n".join("  " + " ".join(line) if i == 0 else "    " + " ".join(line) for i, line in enumerate(lines))


def comment_lines(text: str, width: int = COMMENT_WIDTH) -> list[str]:
    """Text as shell comments: every line starts with '# ', so a wrapped comment never runs as a command."""
    out: list[str] = []
    for paragraph in text.splitlines() or [""]:
        out += ["# " + line for line in textwrap.wrap(paragraph, width - 2, break_long_words=False,
                                                      break_on_hyphens=False) or [""]]
    return out


def command_block(title: str, argv: list[str], notes: list[str] | tuple[str, ...] = ()) -> str:
    """A titled launch command: '# title', '# note' lines, then the command (continued lines only)."""
    lines = comment_lines(title.rstrip(":"))
    for note in notes:
        lines += comment_lines(note)
    return "\n".join([*lines, shell_lines(argv)])
