"""The Typer application: registers one module per command; `main()` is the console script."""

from __future__ import annotations

import importlib
import os
import sys

import typer

try:  # typer >= 0.26 vendors click as typer._click; its exceptions are the ones the app raises
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover - older typer on top of click
    from click import exceptions as click_exceptions  # type: ignore[no-redef]

from llmfit import __version__
from llmfit.cli.common import DEBUG
from llmfit.errors import ExitCode

# The CLI process uses no pydantic plugins; without this pydantic scans every installed distribution's
# entry points when the first model class is built (20-40 ms of start-up for nothing).
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

# command name -> module in llmfit.cli (each defines register(app)); heavy imports live in command bodies.
COMMANDS: dict[str, str] = {
    "fit": "fit",
    "kv": "kv",
    "finetune": "finetune",
    "plan": "plan",
    "quantize-demo": "quantize_demo",
    "decide": "decide",
    "presets": "presets_cmd",
    "check-log": "check_log",
}


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"llmfit {__version__}\n")
        raise typer.Exit(0)


def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
    debug: bool = typer.Option(False, "--debug", help="Show the traceback of an internal error."),
) -> None:
    if debug:
        DEBUG["on"] = True


def build_app(only: str | None = None) -> typer.Typer:
    """The Typer app with every command, or with just `only` (what `main` runs: Typer builds each
    command's options when the app is called, so leaving the others out keeps start-up lean)."""
    application = typer.Typer(
        name="llmfit",
        help="Capacity planner for LLMs: does it fit, at what concurrency, what does fine-tuning cost - "
        "with the arithmetic shown. Exit codes: 0 yes, 1 no, 2 bad input, 3 internal error.",
        no_args_is_help=True,
        add_completion=True,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    application.callback()(_root)
    for command, module_name in COMMANDS.items():
        if only is not None and command != only:
            continue
        module = importlib.import_module(f"llmfit.cli.{module_name}")
        module.register(application)
    return application


app = build_app()


def _invoked_command(args: list[str]) -> str | None:
    """The command named on the command line, when it is the first word after the root options."""
    for arg in args:
        if arg in ("--debug",):
            continue
        return arg if arg in COMMANDS else None
    return None


def _first_line(message: str) -> str:
    # An empty message has no first line: "".splitlines()[0] raised inside the handler (a traceback).
    return (message.strip().splitlines() or ["invalid input"])[0]


def main(argv: list[str] | None = None) -> None:
    """Console entry point: usage errors become one line on stderr and exit 2, never a traceback."""
    args = sys.argv[1:] if argv is None else argv
    if "--debug" in args:
        DEBUG["on"] = True
    try:
        command = _invoked_command(args)
        runner = build_app(command) if command is not None else app
        rc = runner(args=args, prog_name="llmfit", standalone_mode=False)
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
