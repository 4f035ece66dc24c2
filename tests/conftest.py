"""Shared fixtures: the built-in preset registry and a CLI runner that separates stdout from stderr."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from llmfit.cli.app import app
from llmfit.presets import Registry, load_registry


@pytest.fixture(scope="session")
def registry() -> Registry:
    return load_registry()


class Run:
    """The outcome of one CLI invocation."""

    def __init__(self, exit_code: int, stdout: str, stderr: str) -> None:
        self.exit_code = exit_code
        self.stdout = stdout
        self.stderr = stderr

    def json(self) -> Any:
        return json.loads(self.stdout)


def run_cli(*args: str, env: dict[str, str] | None = None, input: str | None = None) -> Run:
    """Invoke `llmfit ARGS` in-process; stdout and stderr apart, as a CI script sees them."""
    try:
        runner = CliRunner(mix_stderr=False)  # type: ignore[call-arg]
    except TypeError:  # click >= 8.2 always keeps them apart
        runner = CliRunner()
    result = runner.invoke(app, list(args), env=env, input=input)
    return Run(result.exit_code, result.stdout, result.stderr if result.stderr_bytes is not None else "")


@pytest.fixture
def cli() -> Any:
    return run_cli
