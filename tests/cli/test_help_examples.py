"""Every command's --help ends with an `Examples:` section of two or three commands, one per line, and the
examples run (exit 0 or 1: a verdict, never bad input)."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from llmfit.cli.examples import EXAMPLES
from tests.conftest import run_cli


@pytest.mark.parametrize("command", sorted(EXAMPLES))
def test_help_ends_with_examples(command: str) -> None:
    args = [] if command == "llmfit" else command.split()
    done = run_cli(*args, "--help")
    assert done.exit_code == 0
    tail = done.stdout.rstrip().split("Examples:")[-1]
    assert "Examples:" in done.stdout
    commands = [line.strip() for line in tail.splitlines() if line.strip().startswith("llmfit")]
    assert 2 <= len(commands) <= 3
    assert commands == [line for _, line in EXAMPLES[command]]  # one per line, as written (not rewrapped)


RUNNABLE = sorted({line for examples in EXAMPLES.values() for _, line in examples
                   if "~" not in line and line != "llmfit decide"})


@pytest.mark.parametrize("line", RUNNABLE)
def test_every_example_runs(line: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # --plot files land here
    if "presets check" in line:
        (tmp_path / "presets" / "gpus").mkdir(parents=True)
    args = shlex.split(line.split(" | ")[0])[1:]
    done = run_cli(*args)
    assert done.exit_code in (0, 1), (line, done.stderr)
