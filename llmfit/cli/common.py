"""Shared CLI plumbing: the common options, error handling and output (stdout for reports only)."""

from __future__ import annotations

import functools
import inspect
import os
import sys
import traceback
from collections.abc import Callable
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, TypeVar, cast

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

# Output settings of this process: --width (0 = not given); messages already printed on stderr.
OUTPUT: dict[str, int] = {"width": 0}
_WARNED: list[str] = []
PIPED_WIDTH = 120
MIN_WIDTH, MAX_WIDTH = 20, 10_000

WidthOpt = Annotated[
    int | None,
    typer.Option("--width", help="Columns to lay tables out in (default: COLUMNS, else the terminal's width, "
                 "else 120 when piped).", show_default=False),
]
PlotOpt = Annotated[
    Path | None,
    typer.Option("--plot", help="Also draw the figures as a chart: FILE.svg or FILE.png (matplotlib).",
                 show_default=False),
]

# Stand-ins for the few non-ASCII characters the reports use, when stdout cannot encode them.
_ASCII = str.maketrans({"•": "*", "×": "x", "≥": ">=", "≤": "<=", "−": "-", "–": "-", "—": "-", "…": "...",
                        "→": "->", "←": "<-", "·": "*", "²": "^2", "≈": "~", "ŵ": "w^", "µ": "u", "±": "+/-",
                        "█": "#", "▓": "=", "▒": "+", "░": "-", " ": "  ", "’": "'", "“": '"', "”": '"'})


def _encoding(stream: Any) -> str:
    return getattr(stream, "encoding", None) or "utf-8"


def ascii_only(stream: Any = None) -> bool:
    """True when the stream cannot encode the characters tables use (PYTHONIOENCODING=ascii, LC_ALL=C)."""
    try:
        "•█┃━×≥".encode(_encoding(stream if stream is not None else sys.stdout))
    except (UnicodeEncodeError, LookupError):
        return True
    return False


def write_text(stream: Any, text: str) -> None:
    """Write text in the stream's own encoding: ASCII stand-ins, then '?' for anything else it lacks."""
    if ascii_only(stream):
        encoding = _encoding(stream)
        text = text.translate(_ASCII)
        try:
            text = text.encode(encoding, "replace").decode(encoding)
        except LookupError:
            text = text.encode("ascii", "replace").decode("ascii")
    stream.write(text)

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
    _WARNED.append(message)
    write_text(sys.stderr, f"warning: {message}\n")


def printed(line: str, note: str) -> None:
    """A line on stderr whose text is also a note of the report (shown once when both share a screen)."""
    sink = SINK.get()
    if sink is not None:
        sink.warn(line)
        return
    _WARNED.append(note)
    write_text(sys.stderr, line + "\n")


def fail_usage(message: str) -> typer.Exit:
    write_text(sys.stderr, f"error: {message}\n")
    return typer.Exit(int(ExitCode.USAGE))


def _set_width(width: int | None) -> None:
    from llmfit.errors import SpecError

    if width is not None and not MIN_WIDTH <= width <= MAX_WIDTH:
        raise SpecError(f"--width must be between {MIN_WIDTH} and {MAX_WIDTH:,} columns, got {width}")
    OUTPUT["width"] = width or 0


class _Command:
    """A command callable that maps errors to exit codes and takes the shared `--width` option.

    Typer reads a command's parameters from `inspect.signature`, which returns `__signature__` when there
    is one: here it is the command's own signature plus `width`, built on first use (evaluating the
    annotations costs a few ms a command, which `llmfit --version` should not pay)."""

    def __init__(self, func: Callable[..., Any]) -> None:
        functools.update_wrapper(self, func)
        self.__annotations__ = {**func.__annotations__, "width": WidthOpt}
        self._func = func
        self._signature: inspect.Signature | None = None

    @property
    def __signature__(self) -> inspect.Signature:
        if self._signature is None:
            signature = inspect.signature(self._func, eval_str=True)
            if "width" not in signature.parameters:
                width = inspect.Parameter("width", inspect.Parameter.KEYWORD_ONLY, default=None,
                                          annotation=WidthOpt)
                signature = signature.replace(parameters=[*signature.parameters.values(), width])
            self._signature = signature
            # Typer also calls get_type_hints on the command, several times: hand it the evaluated annotations
            # rather than the strings (each evaluation builds every typer.Option again).
            self.__annotations__ = {name: p.annotation for name, p in signature.parameters.items()}
        return self._signature

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            _set_width(kwargs.pop("width", None))
            return self._func(*args, **kwargs)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except LlmfitError as error:
            if SINK.get() is not None:
                raise  # batch / API: the caller reports it
            raise fail_usage(str(error).splitlines()[0] if str(error) else type(error).__name__) from None
        except (KeyboardInterrupt, EOFError):
            write_text(sys.stderr, "interrupted\n")
            raise typer.Exit(130) from None
        except Exception as error:  # an internal error: exit 3, traceback only with --debug
            if SINK.get() is not None:
                raise
            if DEBUG["on"]:
                traceback.print_exc()
            first = str(error).splitlines()[0] if str(error) else ""
            write_text(sys.stderr,
                       f"internal error: {type(error).__name__}: {first} (rerun with --debug for the traceback)\n")
            raise typer.Exit(int(ExitCode.INTERNAL)) from None


def handle_errors(func: F) -> F:
    """Map LlmfitError to one line on stderr + exit 2, anything unexpected to one line + exit 3.

    Every command goes through here, so this is also where the shared `--width` option is added."""
    return cast(F, _Command(func))


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def output_width() -> int:
    """--width, else COLUMNS, else the terminal's width, else 120 (piped output)."""
    if OUTPUT["width"]:
        return OUTPUT["width"]
    columns = os.environ.get("COLUMNS", "").strip()
    if columns.isdigit() and MIN_WIDTH <= int(columns) <= MAX_WIDTH:
        return int(columns)
    if sys.stdout.isatty():
        try:
            return max(MIN_WIDTH, os.get_terminal_size(sys.stdout.fileno()).columns)
        except (OSError, ValueError, AttributeError):
            pass
    return PIPED_WIDTH


def _same_screen() -> bool:
    """stdout and stderr end up in the same place (one terminal, or `> file 2>&1`)."""
    try:
        return os.path.samestat(os.fstat(sys.stdout.fileno()), os.fstat(sys.stderr.fileno()))
    except (OSError, ValueError, AttributeError):
        return False


def _once(document: Any) -> Any:
    """Drop the notes that already went to stderr as warnings when both streams share a screen."""
    if not _WARNED or not _same_screen():
        return document
    from dataclasses import replace

    return replace(document, notes=[note for note in document.notes if note not in _WARNED])


def render_table(document: Any, *, explain: bool = False) -> str:
    """A Document as the text a terminal (or a pipe) gets: laid out at output_width(), no trailing spaces."""
    import io

    from rich.console import Console

    from llmfit.render.table import Style, to_renderable

    terminal = stdout_is_terminal()
    width = output_width()
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=terminal, no_color=not terminal,
                      color_system="auto" if terminal else None, width=width, highlight=False, soft_wrap=False,
                      legacy_windows=False)
    style = Style(width=width, color=terminal, ascii=ascii_only())
    console.print(to_renderable(document, explain=explain, style=style), crop=False)
    return "\n".join(line.rstrip(" ") for line in buffer.getvalue().split("\n"))


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

        sys.stdout.write(to_json(result) + "\n")  # ASCII: json.dumps escapes everything else
        return
    doc = _once(document())
    if fmt is OutputFormat.markdown:
        from llmfit.render.markdown import to_markdown

        write_text(sys.stdout, to_markdown(doc, explain=explain))
        return
    write_text(sys.stdout, render_table(doc, explain=explain))


def exit_with(ok: bool) -> None:
    """The verdict as the exit code: 0 yes, 1 no."""
    raise typer.Exit(int(ExitCode.OK if ok else ExitCode.NO))
