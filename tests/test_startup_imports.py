"""What the headline commands import (issue 17, start-up): with --format json, neither pydantic, yaml, numpy nor
Rich (validation lives at the edges; built-in presets come from configs/index.json; Rich only draws tables);
`--version` answers before Typer loads. Checked on a fresh interpreter per command; no timing here (the
figures are benchmarks/startup.py's)."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("pydantic", "pydantic_core", "yaml", "numpy", "rich", "typer")
CODE = """
import sys
from llmfit.cli.app import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
sys.stdout.flush()
print(" ".join(sorted(m for m in {heavy!r} if m in sys.modules)), file=sys.stderr)
"""


def loaded(*args: str) -> set[str]:
    done = subprocess.run([sys.executable, "-c", CODE.format(heavy=HEAVY), *args], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return set(done.stderr.strip().splitlines()[-1].split()) if done.stderr.strip() else set()


@pytest.mark.parametrize("args", [
    ("fit", "70b", "--dtype", "int4", "--gpu", "a100-80", "--format", "json"),
    ("kv", "70b", "--format", "json"),
    ("finetune", "7b", "--method", "qlora", "--gpu", "rtx-4090", "--format", "json"),
])
def test_json_commands_import_no_validation_yaml_numpy_or_rich(args: tuple[str, ...]) -> None:
    assert loaded(*args) == {"typer"}


def test_version_answers_before_typer_loads() -> None:
    assert loaded("--version") == set()
