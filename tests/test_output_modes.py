"""Output modes a script or a terminal relies on: colour only on a real terminal without NO_COLOR, the
memory bar everywhere (one character per segment, so it reads without colour); `--format json` stdout
that is pure JSON even when warnings are printed; Typer's shell completion.

These run llmfit as a separate process (the console entry point via `python -m llmfit`), because what
is tested is what a shell sees: whether stdout is a pipe or a terminal (a pseudo-terminal from `pty`),
the environment, and the bytes on each stream.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
BAR = "█"
FIT = ["fit", "7b", "--gpu", "a100-80"]


def env_with(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "LLMFIT_PRESETS", "TERM")}
    env.update(TERM="xterm-256color", COLUMNS="120", HF_HUB_OFFLINE="1", **extra)
    return env


def run_piped(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "llmfit", *args], capture_output=True, text=True, timeout=60,
                          env=env or env_with(), stdin=subprocess.DEVNULL, check=False)


def run_on_terminal(*args: str, env: dict[str, str]) -> tuple[int, str]:
    """Run with stdout and stderr on a pseudo-terminal; return (exit code, what the terminal received)."""
    pty = pytest.importorskip("pty")
    master, slave = pty.openpty()
    try:
        process = subprocess.Popen([sys.executable, "-m", "llmfit", *args], stdout=slave, stderr=slave,
                                   stdin=subprocess.DEVNULL, env=env, close_fds=True)
        os.close(slave)
        chunks: list[bytes] = []
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        code = process.wait(timeout=60)
    finally:
        os.close(master)
    return code, b"".join(chunks).decode("utf-8", errors="replace")


@pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")
def test_a_terminal_gets_colour_and_the_bar() -> None:
    """The control case: without it the two tests below could pass because nothing is ever drawn."""
    code, screen = run_on_terminal(*FIT, env=env_with())
    assert code in (0, 1), screen
    assert ANSI.search(screen), "no colour on a terminal"
    assert BAR in screen


@pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")
def test_no_color_on_a_terminal_means_no_escape_codes_but_the_bar_stays() -> None:
    code, screen = run_on_terminal(*FIT, env=env_with(NO_COLOR="1"))
    assert code in (0, 1), screen
    assert not ANSI.search(screen), repr(ANSI.search(screen))
    assert BAR in screen and "▒ KV cache" in screen  # segments told apart by character, not colour
    assert "Memory per GPU" in screen  # the report itself is still there


@pytest.mark.parametrize("args", [FIT, [*FIT, "--explain"], ["fit", "70b", "--gpu", "a100-80", "--dtype", "all"],
                                  ["kv", "7b", "--batch", "8"], ["fit", "70b", "--gpu", "rtx-4090"]],
                         ids=["fit", "fit-explain", "fit-dtype-all", "kv", "fit-no"])
def test_piped_output_is_plain_text(args: list[str]) -> None:
    done = run_piped(*args)
    assert done.returncode in (0, 1), done.stderr
    assert done.stdout.strip()
    assert not ANSI.search(done.stdout + done.stderr)


def test_json_stdout_stays_pure_when_warnings_are_printed() -> None:
    """`llmfit fit ... --format json | jq .max_concurrency` must work even with a warning (here: a context
    beyond the model's maximum, computed anyway): the warning goes to stderr, stdout is one JSON document."""
    done = run_piped("fit", "7b", "--gpu", "a100-80", "--context", "128k", "--format", "json",
                     env=env_with(FORCE_COLOR="1"))
    assert done.returncode in (0, 1), done.stderr
    assert "warning:" in done.stderr  # the case really prints a warning
    payload = json.loads(done.stdout)  # nothing but JSON on stdout
    assert payload["schema_version"] >= 1
    assert isinstance(payload["max_concurrency"], int)
    assert not ANSI.search(done.stdout)


def test_json_stdout_stays_pure_for_a_list_of_results() -> None:
    done = run_piped("fit", "70b", "--gpu", "a100-80", "--dtype", "all", "--context", "1M", "--format", "json")
    assert done.returncode in (0, 1), done.stderr
    assert "warning:" in done.stderr
    assert len(json.loads(done.stdout)) > 1


def test_errors_leave_stdout_empty() -> None:
    done = run_piped("fit", "7b", "--gpu", "a100-80", "--context", "lots", "--format", "json")
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: ")


def test_completion_options_exist() -> None:
    done = run_piped("--help")
    assert done.returncode == 0
    assert "--install-completion" in done.stdout and "--show-completion" in done.stdout


def test_show_completion_prints_a_script_for_llmfit() -> None:
    # Typer finds the shell by walking the process tree (shellingham), as it would under a user's shell: run it
    # under bash (not exec'd away: the `; exit` keeps bash as the parent), so the test does not depend on how
    # pytest itself was started (a detached run has no shell among its ancestors).
    done = subprocess.run(["bash", "-c", '"$0" -m llmfit --show-completion; exit $?', sys.executable],
                          capture_output=True, text=True, timeout=60, env=env_with(SHELL="/bin/bash"), check=False)
    assert done.returncode == 0, done.stderr
    assert "_LLMFIT_COMPLETE" in done.stdout


def test_bash_completion_completes_commands_and_options() -> None:
    commands = run_piped(env=env_with(_LLMFIT_COMPLETE="complete_bash", COMP_WORDS="llmfit fi", COMP_CWORD="1"))
    assert commands.returncode == 0
    assert "fit" in commands.stdout.split() and "kv" not in commands.stdout.split()
    options = run_piped(env=env_with(_LLMFIT_COMPLETE="complete_bash", COMP_WORDS="llmfit fit 7b --gp",
                                     COMP_CWORD="3"))
    assert options.returncode == 0
    assert "--gpu" in options.stdout.split()


def test_install_completion_writes_only_under_home(tmp_path: Path) -> None:
    done = run_piped("--install-completion", env=env_with(HOME=str(tmp_path), SHELL="/bin/bash"))
    if done.returncode != 0:  # no shell could be detected (no shell among the parents): one clear line
        assert done.returncode in (1, 2) and "Traceback" not in done.stderr
        return
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written, done.stdout
    assert any("llmfit" in p.read_text(errors="replace").lower() for p in written)


@pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")
def test_a_warning_is_shown_once_on_a_terminal() -> None:
    """The rope warning goes to stderr; on the same screen it is not repeated as a note of the report."""
    code, screen = run_on_terminal("fit", "70b", "--gpu", "a100-80", "--context", "8k", env=env_with(NO_COLOR="1"))
    assert code in (0, 1), screen
    assert screen.count("exceeds 70b's maximum 4,096 tokens") == 1, screen


def test_a_warning_stays_in_a_report_saved_to_a_file() -> None:
    done = run_piped("fit", "70b", "--gpu", "a100-80", "--context", "8k")
    assert "exceeds 70b's maximum" in done.stderr and "exceeds 70b's maximum" in done.stdout


def test_columns_is_honoured_when_piped() -> None:
    env = env_with()
    env["COLUMNS"] = "80"
    done = run_piped("plan", "llama-3.1-70b", "--context", "32k", "-k", "64", "--top", "3", env=env)
    assert done.returncode in (0, 1), done.stderr
    table_lines = [line for line in done.stdout.splitlines() if line.startswith(("┃", "│", "┏", "└"))]
    assert table_lines and max(len(line) for line in table_lines) <= 80
    assert all(line == line.rstrip() for line in done.stdout.splitlines())  # no trailing spaces
