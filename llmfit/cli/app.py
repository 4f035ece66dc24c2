"""The Typer application: registers one module per command; `main()` is the console script.

Start-up: importing this module imports neither Typer nor any command. `main()` answers `--version`
before Typer is imported, then builds an app holding only the command named on the command line
(Typer builds every option of every registered command when the app is called). `app` (the full
application, for typer.testing and `python -m`) is built on first access.
"""

from __future__ import annotations

import importlib
import os
import sys

from llmfit import __version__

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing on the --version path
if TYPE_CHECKING:
    from typing import Any

    import typer

# The CLI process uses no pydantic plugins; without this pydantic scans every installed distribution's
# entry points when the first model class is built (20-40 ms of start-up for nothing). Set before any
# module that may import pydantic.
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
    "batch": "batch",
    "check-log": "check_log",
}
ROOT_FLAGS = ("--debug", "--version", "--help", "-h", "--install-completion", "--show-completion")


def _version(value: bool) -> None:
    import typer

    if value:
        sys.stdout.write(f"llmfit {__version__}\n")
        raise typer.Exit(0)


def _root_callback() -> Any:
    import typer

    from llmfit.cli.common import DEBUG

    def _root(
        version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
        debug: bool = typer.Option(False, "--debug", help="Show the traceback of an internal error."),
    ) -> None:
        if debug:
            DEBUG["on"] = True

    return _root


def build_app(only: str | None = None) -> typer.Typer:
    """The Typer app with every command, or with just `only` (what `main` runs: Typer builds each
    command's options when the app is called, so leaving the others out keeps start-up lean)."""
    import typer

    from llmfit.cli.examples import epilog

    application = typer.Typer(
        name="llmfit",
        help="Capacity planner for LLMs: does it fit, at what concurrency, what does fine-tuning cost - "
        "with the arithmetic shown. Exit codes: 0 yes, 1 no, 2 bad input, 3 internal error.",
        no_args_is_help=True,
        add_completion=True,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"]},
        epilog=epilog("llmfit"),
    )
    application.callback()(_root_callback())
    for command, module_name in COMMANDS.items():
        if only is not None and command != only:
            continue
        module = importlib.import_module(f"llmfit.cli.{module_name}")
        module.register(application)
    return application


_APP: dict[str, Any] = {}


def __getattr__(name: str) -> Any:
    """`app`: the full application, built on first use (importing this module stays free of Typer)."""
    if name == "app":
        if "app" not in _APP:
            _APP["app"] = build_app()
        return _APP["app"]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _invoked_command(args: list[str]) -> str | None:
    """The command named on the command line, when it is the first word after the root options."""
    for arg in args:
        if arg in ("--debug",):
            continue
        return arg if arg in COMMANDS else None
    return None


def _asks_version(args: list[str]) -> bool:
    """`--version` among the root options (before any command), as Typer's eager option reads it."""
    for arg in args:
        if arg == "--version":
            return True
        if arg not in ROOT_FLAGS or arg in ("--help", "-h"):
            return False
    return False


def _first_line(message: str) -> str:
    # An empty message has no first line: "".splitlines()[0] raised inside the handler (a traceback).
    return (message.strip().splitlines() or ["invalid input"])[0]


def main(argv: list[str] | None = None) -> None:
    """Console entry point: usage errors become one line on stderr and exit 2, never a traceback."""
    if argv is not None:  # called in-process (tests, scripts): a plain SystemExit
        _main(argv)
        return
    try:
        _main(sys.argv[1:])
    except SystemExit as done:
        _exit_now(done.code)


def _exit_now(code: object) -> None:
    """End the process as SystemExit(code) would, without the interpreter's teardown (freeing every module
    and object it loaded: 10-15 ms of a 100 ms command, issue 17). Output is flushed and atexit handlers
    run first, so nothing written is lost; if stdout cannot be flushed (a closed pipe), the normal exit."""
    import atexit
    import os

    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:
        sys.stderr.write(f"{code}\n")
        status = 1
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        sys.exit(status)
    atexit._run_exitfuncs()
    os._exit(status)


def _main(args: list[str]) -> None:
    if _asks_version(args):  # answered before Typer (and everything else) is imported
        sys.stdout.write(f"llmfit {__version__}\n")
        sys.exit(0)
    import typer

    try:  # typer >= 0.26 vendors click as typer._click; its exceptions are the ones the app raises
        from typer._click import exceptions as click_exceptions
    except ImportError:  # pragma: no cover - older typer on top of click
        from click import exceptions as click_exceptions  # type: ignore[no-redef]

    from llmfit.cli.common import DEBUG
    from llmfit.errors import ExitCode

    if "--debug" in args:
        DEBUG["on"] = True
    try:
        command = _invoked_command(args)
        runner = build_app(command) if command is not None else build_app()
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
