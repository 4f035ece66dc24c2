"""Shared CLI plumbing: the common options, error handling and output (stdout for reports only)."""

from __future__ import annotations

import functools
import os
import sys
import traceback
from collections.abc import Callable
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from llmfit.errors import ExitCode, LlmfitError
from llmfit.render import OutputFormat
from llmfit.units import DisplayUnits

F = TypeVar("F", bound=Callable[..., Any])

FormatOpt = Annotated[
    OutputFormat,
    typer.Option("--format", "-f", help="Output: table (plain text when piped), json (stable keys), markdown.",
                 case_sensitive=False),
]
UnitsOpt = Annotated[
    DisplayUnits,
    typer.Option("--units", help="Display memory in binary GiB (default, as nvidia-smi) or decimal GB.",
                 case_sensitive=False),
]
ExplainOpt = Annotated[bool, typer.Option("--explain", help="Print each formula with the numbers substituted.")]
PresetsOpt = Annotated[
    Path | None,
    typer.Option("--presets", help="Folder of your own model/GPU presets (models/*.yaml, gpus/*.yaml); "
                 "overrides built-ins. Also LLMFIT_PRESETS.", show_default=False),
]

DEBUG = {"on": bool(os.environ.get("LLMFIT_DEBUG"))}

# `llmfit batch` and the Python API (llmfit/cli/batch.py) run a command function with a sink set here:
# emit() and warn() hand the result object and the warnings to it instead of printing, and errors
# propagate as exceptions instead of becoming a line on stderr and an exit code.
SINK: ContextVar[Any] = ContextVar("llmfit_sink", default=None)


def warn(message: str) -> None:
    """A warning on stderr (never stdout: `--format json | jq` must keep working)."""
    sink = SINK.get()
    if sink is not None:
        sink.warn(message)
        return
    sys.stderr.write(f"warning: {message}\n")


def fail_usage(message: str) -> typer.Exit:
    sys.stderr.write(f"error: {message}\n")
    return typer.Exit(int(ExitCode.USAGE))


def handle_errors(func: F) -> F:
    """Map LlmfitError to one line on stderr + exit 2, anything unexpected to one line + exit 3."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except LlmfitError as error:
            if SINK.get() is not None:
                raise  # batch / API: the caller reports it
            raise fail_usage(str(error).splitlines()[0] if str(error) else type(error).__name__) from None
        except KeyboardInterrupt:
            sys.stderr.write("interrupted\n")
            raise typer.Exit(130) from None
        except Exception as error:  # an internal error: exit 3, traceback only with --debug
            if SINK.get() is not None:
                raise
            if DEBUG["on"]:
                traceback.print_exc()
            first = str(error).splitlines()[0] if str(error) else ""
            sys.stderr.write(
                f"internal error: {type(error).__name__}: {first} (rerun with --debug for the traceback)\n"
            )
            raise typer.Exit(int(ExitCode.INTERNAL)) from None

    return wrapper  # type: ignore[return-value]


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def emit(
    fmt: OutputFormat,
    result: Any,
    document: Callable[[], Any],
    *,
    explain: bool = False,
) -> None:
    """Print a result: JSON straight from the result object; table/Markdown through its Document."""
    sink = SINK.get()
    if sink is not None:
        sink.emit(result)
        return
    if fmt is OutputFormat.json:
        from llmfit.render.jsonout import to_json

        sys.stdout.write(to_json(result) + "\n")
        return
    doc = document()
    if fmt is OutputFormat.markdown:
        from llmfit.render.markdown import to_markdown

        sys.stdout.write(to_markdown(doc, explain=explain))
        return
    from rich.console import Console

    from llmfit.render.table import to_renderable

    terminal = stdout_is_terminal()
    console = Console(
        file=sys.stdout,
        no_color=not terminal,
        color_system="auto" if terminal else None,
        width=None if sys.stdout.isatty() else 120,
        highlight=False,
        soft_wrap=False,
    )
    console.print(to_renderable(doc, explain=explain, terminal=terminal))


def exit_with(ok: bool) -> None:
    """The verdict as the exit code: 0 yes, 1 no."""
    raise typer.Exit(int(ExitCode.OK if ok else ExitCode.NO))
