"""Interactive `decide`: every answer checked as it is given (a typo'd model is said at once and asked
again), suffixes accepted for counts, and the end of input or Ctrl-C stops with one line and exit 2."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from llmfit.cli import decide
from llmfit.cli.app import app


@pytest.fixture(autouse=True)
def on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(decide, "interactive", lambda: True)


def _run(answers: list[str]) -> object:
    return CliRunner().invoke(app, ["decide", "--format", "json"], input="".join(a + "\n" for a in answers))


# knowledge? format? behavior? capability? -> format only; prompt tried; examples; model; gpu
FORMAT_ONLY = ["n", "y", "n", "n", "y", "5k"]


def test_a_typo_in_the_model_name_is_caught_before_the_next_question() -> None:
    done = _run([*FORMAT_ONLY, "llama-9b", "llama-3.1-8b", "rtx-4090"])
    assert done.exit_code in (0, 1), done.output
    assert "unknown model 'llama-9b'" in done.stderr and "try again" in done.stderr
    assert done.stderr.index("try again") < done.stderr.index("GPU to train on")
    payload = json.loads(done.stdout)
    assert payload["feasibility"]["model"] == "llama-3.1-8b"


def test_a_bad_count_or_gpu_is_asked_again() -> None:
    done = _run(["n", "y", "n", "n", "y", "lots", "5k", "llama-3.1-8b", "rtx-40900", "rtx-4090"])
    assert done.exit_code in (0, 1), done.output
    assert done.stderr.count("try again") == 2
    assert "unknown gpu 'rtx-40900'" in done.stderr


def test_the_end_of_input_is_one_line_and_exit_2() -> None:
    done = _run(["n", "y"])  # Ctrl-D after two answers
    assert done.exit_code == 2
    assert done.stdout == ""
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: decide: the input ended before every question was answered (the flags are in "
                      "`llmfit decide --help`)"]
    assert "Traceback" not in done.output


def test_ctrl_c_is_one_line_and_exit_2(monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*args: object, **kwargs: object) -> object:
        raise KeyboardInterrupt

    monkeypatch.setattr(decide._Asker, "ask", interrupted)
    done = _run([])
    assert done.exit_code == 2
    assert done.stderr.strip().splitlines()[-1] == "error: decide: interrupted before every question was answered"


def test_the_examples_flag_takes_suffixes_too() -> None:
    done = CliRunner().invoke(app, ["decide", "-p", "format", "--prompt-tried", "-n", "5k", "--format", "json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["situation"]["examples"] == 5000
