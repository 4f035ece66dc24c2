"""Golden output of every renderer at 80 and 120 columns and in Markdown, and the layout rule at 80 columns:
no number or name is split across lines, for every command's default example.

The golden files are the exact text a user sees. When a figure changes on purpose (an engine rule, a
preset), regenerate them and review the diff:

    LLMFIT_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/render -q
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.render.examples import EXAMPLES

GOLDEN = Path(__file__).parent / "golden"
UPDATE = bool(os.environ.get("LLMFIT_UPDATE_GOLDEN"))
# Box-drawing characters (Rich's borders) and whitespace separate the words of a rendered table.
SEPARATORS = re.compile(r"[\s\u2500-\u257f]+")


def _render(args: list[str], *extra: str) -> str:
    done = run_cli(*args, *extra, env={"COLUMNS": "120", "NO_COLOR": "1"})
    assert done.exit_code in (0, 1), done.stderr
    return done.stdout


@pytest.mark.parametrize("mode", ["80", "120", "md"])
@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_golden_output(name: str, mode: str) -> None:
    extra = ("--format", "markdown") if mode == "md" else ("--width", mode)
    text = _render(EXAMPLES[name], *extra)
    path = GOLDEN / f"{name}.{mode}.txt"
    if UPDATE or not path.exists():
        path.write_text(text, encoding="utf-8")
        if not UPDATE:
            pytest.fail(f"{path.name} did not exist: written; review and commit it")
    expected = path.read_text(encoding="utf-8")
    assert text == expected, (f"{name} at {mode} differs from {path}; if the change is intended, regenerate "
                              "with LLMFIT_UPDATE_GOLDEN=1 (see this module's docstring)")


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_no_word_is_split_at_80_columns(name: str) -> None:
    """Every word of the unconstrained rendering (numbers, names, prices) appears whole at 80 columns."""
    wide = _render(EXAMPLES[name], "--width", "1000")
    narrow = _render(EXAMPLES[name], "--width", "80")
    lines = narrow.splitlines()
    blocks = [line for line in lines if line.startswith(("#", "  ", "    "))]
    too_wide = [line for line in lines if len(line) > 80 and line not in blocks]
    assert not too_wide, too_wide[:3]
    missing = set(SEPARATORS.split(wide)) - set(SEPARATORS.split(narrow))
    assert not missing, f"split at 80 columns: {sorted(missing)[:10]}"
    assert "…" not in narrow  # nothing cropped either


@pytest.mark.parametrize("width", ["5", "100000"])
def test_a_width_out_of_range_is_bad_input(width: str) -> None:
    done = run_cli("kv", "7b", "--width", width)
    assert done.exit_code == 2
    assert done.stderr.startswith("error: --width must be between 20 and 10,000 columns")


def test_every_command_takes_width() -> None:
    for args in (["fit"], ["kv"], ["finetune"], ["plan"], ["decide"], ["quantize-demo"], ["presets", "list"],
                 ["presets", "show"], ["presets", "check"]):
        assert "--width" in run_cli(*args, "--help").stdout, args
