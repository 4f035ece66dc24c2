"""Start-up paths: `--version` answered before Typer is imported; the app module imports no command."""

from __future__ import annotations

import subprocess
import sys

from llmfit import __version__

PROBE = ("import atexit, sys\n"
         "atexit.register(lambda: sys.stderr.write(' '.join(m for m in ('typer', 'pydantic', 'rich', 'yaml') "
         "if m in sys.modules)))\n"
         "from llmfit.cli.app import main\n"
         "main({argv!r})\n")


def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", PROBE.format(argv=argv)], capture_output=True, text=True,
                          timeout=120, check=False)


def test_version_is_answered_before_typer_loads() -> None:
    for argv in (["--version"], ["--debug", "--version"]):
        done = run(argv)
        assert done.returncode == 0
        assert done.stdout == f"llmfit {__version__}\n"
        assert done.stderr == ""  # none of typer, pydantic, rich, yaml was imported


def test_version_after_a_command_is_the_commands_business() -> None:
    done = run(["kv", "--version"])
    assert done.returncode == 2
    assert "no such option" in done.stderr.lower()


def test_the_app_module_imports_no_command() -> None:
    code = "import sys, llmfit.cli.app; assert 'typer' not in sys.modules and 'llmfit.cli.fit' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_version_through_typer_still_works(cli: object) -> None:
    run_cli = cli  # the in-process runner drives the full Typer app
    result = run_cli("--version")  # type: ignore[operator]
    assert result.exit_code == 0 and result.stdout == f"llmfit {__version__}\n"
