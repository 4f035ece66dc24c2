"""The Typer application: registers one module per command; `main()` is the console script."""

from __future__ import annotations

import sys

import typer

try:  # typer >= 0.26 vendors click as typer._click; its exceptions are the ones the app raises
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover - older typer on top of click
    from click import exceptions as click_exceptions  # type: ignore[no-redef]

from llmfit import __version__
from llmfit.cli.common import DEBUG
from llmfit.errors import ExitCode

app = typer.Typer(
    name="llmfit",
    help="Capacity planner for LLMs: does it fit, at what concurrency, what does fine-tuning cost - "
    "with the arithmetic shown. Exit codes: 0 yes, 1 no, 2 bad input, 3 internal error.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"llmfit {__version__}\n")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
    debug: bool = typer.Option(False, "--debug", help="Show the traceback of an internal error."),
) -> None:
    if debug:
        DEBUG["on"] = True


def _register() -> None:
    # Each command lives in its own module; heavy imports happen inside the command bodies.
    from llmfit.cli import fit, kv

    for module in (fit, kv):
        module.register(app)
    for name in ("finetune", "quantize_demo", "decide", "presets_cmd", "plan"):
        try:
            module = __import__(f"llmfit.cli.{name}", fromlist=["register"])
        except ModuleNotFoundError as error:
            if error.name != f"llmfit.cli.{name}":
                raise
            continue
        module.register(app)


_register()


def _first_line(message: str) -> str:
    # An empty message has no first line: "".splitlines()[0] raised inside the handler (a traceback).
    return (message.strip().splitlines() or ["invalid input"])[0]


def main(argv: list[str] | None = None) -> None:
    """Console entry point: usage errors become one line on stderr and exit 2, never a traceback."""
    args = sys.argv[1:] if argv is None else argv
    if "--debug" in args:
        DEBUG["on"] = True
    try:
        rc = app(args=args, prog_name="llmfit", standalone_mode=False)
    except click_exceptions.NoArgsIsHelpError as error:
        sys.stdout.write((error.ctx.get_help() if error.ctx else str(error)) + "\n")
        # Exit 2 is bad input, and bad input always gets its one line on stderr (design.md).
        command = error.ctx.command_path if error.ctx else "llmfit"
        sys.stderr.write(f"error: missing command (see `{command} --help`)\n")
        sys.exit(int(ExitCode.USAGE))
    except click_exceptions.UsageError as error:
        message = _first_line(error.format_message())
        command = error.ctx.command_path if error.ctx else "llmfit"
        sys.stderr.write(f"error: {message} (see `{command} --help`)\n")
        sys.exit(int(ExitCode.USAGE))
    except typer.Abort:  # typer 0.29's vendored click has no exceptions.Abort: evaluating it raised AttributeError
        sys.stderr.write("aborted\n")
        sys.exit(int(ExitCode.NO))
    except click_exceptions.ClickException as error:
        sys.stderr.write(f"error: {_first_line(error.format_message())}\n")
        sys.exit(int(ExitCode.USAGE))
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    except Exception as error:  # pragma: no cover - last resort
        if DEBUG["on"]:
            raise
        sys.stderr.write(f"internal error: {type(error).__name__}: {_first_line(str(error))} (rerun with --debug)\n")
        sys.exit(int(ExitCode.INTERNAL))
    sys.exit(rc if isinstance(rc, int) else 0)
