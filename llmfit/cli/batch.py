"""`llmfit batch FILE|-`: many answers in one process, JSON Lines in and out.

Each input line is one command and its options by their option names, dashes or underscores:
`{"command": "fit", "model": "70b", "gpu": "a100-80", "dtype": "int4", "max-num-seqs": 64}`. Each output
line is exactly the object that command prints with `--format json`, or `{"error": "...", "exit_code":
2}` for a line that is bad input (3 for an internal error). The exit code is the worst of the rows
(3 > 2 > 1 > 0). Warnings go to stderr, prefixed with the line number.

No command logic lives here: `run_command` calls the command's own function (`fit_command`,
`kv_command`, ...) with the options converted to the types its Typer signature declares, while a sink
set in llmfit.cli.common (SINK) receives the result object emit() would have printed, the warnings
warn() would have written, and the exceptions handle_errors would have turned into exit codes. The
Python API (llmfit/api.py) is the same function.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import importlib
import io
import json
import os
import stat
import sys
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer

from llmfit.errors import LlmfitError, SpecError

# command -> (module in llmfit.cli, function): the commands whose answer is one result object.
BATCH_COMMANDS: dict[str, tuple[str, str]] = {
    "fit": ("fit", "fit_command"),
    "kv": ("kv", "kv_command"),
    "finetune": ("finetune", "finetune_command"),
    "plan": ("plan", "plan_command"),
    "decide": ("decide", "decide_command"),
}
MAX_LINE_BYTES = 1 << 20


@dataclass(frozen=True)
class Answer:
    """One command's answer: the JSON object its `--format json` prints, and its exit code (0 yes, 1 no)."""

    command: str
    exit_code: int
    data: Any  # dict (a list of dicts for `fit --dtype all`), keys as docs/ and design.md define them
    result: Any = None  # the engine's result object behind `data` (its type may change between versions)
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """The answer is yes (exit code 0)."""
        return self.exit_code == 0

    def __getitem__(self, key: str) -> Any:
        return self.data[key]


@dataclass
class _Sink:
    results: list[Any] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def emit(self, result: Any) -> None:
        self.results.append(result)

    def warn(self, message: str) -> None:
        self.warnings.append(message)


@dataclass(frozen=True)
class _Param:
    name: str  # the Python parameter
    kind: Any  # str, int, float, bool, Path, an Enum class, or list (of str)
    optional: bool
    required: bool


def _base(hint: Any) -> tuple[Any, bool]:
    """(the type inside Optional[...], whether None is allowed)."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 else Any), True
    return hint, False


@functools.cache
def _command(command: str) -> tuple[Callable[..., Any], dict[str, _Param], tuple[str, ...]]:
    """The command function, its parameters by every accepted key, and its option names for messages."""
    import inspect

    if command not in BATCH_COMMANDS:
        raise SpecError(f"unknown command {command!r} for batch (allowed: {', '.join(BATCH_COMMANDS)})")
    module_name, function_name = BATCH_COMMANDS[command]
    func = getattr(importlib.import_module(f"llmfit.cli.{module_name}"), function_name)
    # The signature Typer itself reads (a command object may add shared options to it), annotations evaluated.
    signature = inspect.signature(func, eval_str=True)
    params: dict[str, _Param] = {}
    names: list[str] = []
    for name, parameter in signature.parameters.items():
        hint = parameter.annotation if parameter.annotation is not inspect.Parameter.empty else str
        decls: list[str] = []
        if typing.get_origin(hint) is Annotated:
            inner, *extras = typing.get_args(hint)
            for extra in extras:
                # Annotated style: typer.Option("--gpu", "-g") keeps the first declaration as `default`.
                first = getattr(extra, "default", None)
                given = [first] if isinstance(first, str) and first.startswith("-") else []
                given += list(getattr(extra, "param_decls", ()) or ())
                decls += [d.strip() for decl in given for d in decl.split("/")]
            hint = inner
        kind, optional = _base(hint)
        if typing.get_origin(kind) is list:
            kind = list
        required = parameter.default is inspect.Parameter.empty
        spec = _Param(name=name, kind=kind, optional=optional or parameter.default is None, required=required)
        long_names = [d.lstrip("-") for d in decls if d.startswith("--") and not d.startswith("--no-")]
        keys = {name, name.replace("_", "-"), *long_names, *(n.replace("-", "_") for n in long_names)}
        for key in keys:
            params[key] = spec
        names.append(long_names[0] if long_names else name)
    return func, params, tuple(names)


def _convert(command: str, key: str, value: Any, param: _Param) -> Any:
    """A JSON value as the command's parameter type (what Typer would have parsed from the same text)."""
    kind = param.kind

    def bad(expected: str) -> SpecError:
        return SpecError(f"{command}: {key} must be {expected}, got {json.dumps(value)[:80]}")

    if value is None:
        if param.optional:
            return None
        raise bad("given (null is not allowed)")
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        if not isinstance(value, str):
            raise bad(f"one of {', '.join(str(m.value) for m in kind)}")
        for member in kind:
            if str(member.value).lower() == value.lower():
                return member
        raise bad(f"one of {', '.join(str(m.value) for m in kind)}")
    if kind is bool:
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise bad("an integer")
        try:
            return int(value) if isinstance(value, int) or len(value) <= 30 else int("x")
        except ValueError:
            raise bad("an integer") from None
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise bad("a number")
        try:
            number = float(value)
        except ValueError:
            raise bad("a number") from None
        if number != number or number in (float("inf"), float("-inf")):
            raise bad("a finite number")
        return number
    if kind is list:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
            raise bad("a string or a list of strings")
        return items
    if kind is Path:
        if not isinstance(value, str):
            raise bad("a path")
        return Path(value)
    # str (and anything else Typer reads as text): numbers are given as their text ("context": 8192).
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise bad("a string")
    return value if isinstance(value, str) else str(value)


def run_command(command: str, options: Mapping[str, Any]) -> Answer:
    """Run one command with `options` (by option name) and return its answer.

    Bad input raises llmfit.errors.LlmfitError (what the CLI reports as exit 2); an answer of "no"
    is an Answer with exit_code 1."""
    if not isinstance(command, str):
        raise SpecError(f"command must be a string, got {json.dumps(command)[:80]}")
    func, params, names = _command(command.strip().lower())
    kwargs: dict[str, Any] = {}
    for key, value in options.items():
        param = params.get(key) if isinstance(key, str) else None
        if param is None:
            raise SpecError(f"{command}: unknown option {key!r} (allowed: {', '.join(names)})")
        if param.name in kwargs:
            raise SpecError(f"{command}: option {key!r} given twice")
        if param.name == "fmt":
            if not (isinstance(value, str) and value.lower() == "json"):
                raise SpecError(f"{command}: batch answers are always JSON; leave out format")
            continue
        kwargs[param.name] = _convert(command, key, value, param)
    missing = [p.name for p in {id(p): p for p in params.values()}.values() if p.required and p.name not in kwargs]
    if missing:
        raise SpecError(f"{command}: missing {', '.join(m.upper() for m in missing)}")
    if "fmt" in {p.name for p in params.values()}:
        from llmfit.render import OutputFormat

        kwargs["fmt"] = OutputFormat.json
    from llmfit.cli.common import SINK

    sink = _Sink()
    token = SINK.set(sink)
    exit_code = 0
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            func(**kwargs)
    except typer.Exit as done:
        exit_code = int(done.exit_code or 0)
    finally:
        SINK.reset(token)
    if len(sink.results) != 1:
        raise RuntimeError(f"{command} emitted {len(sink.results)} results")
    from llmfit.render.jsonout import to_json

    result = sink.results[0]
    return Answer(command=command, exit_code=exit_code, data=json.loads(to_json(result)), result=result,
                  warnings=tuple(sink.warnings))


def run_line(line: str) -> tuple[Any, int, tuple[str, ...]]:
    """One JSON Lines request -> (the output object, its exit code, warnings). Never raises."""
    try:
        if len(line) > MAX_LINE_BYTES:
            raise SpecError(f"line of {len(line):,} characters is over the limit of {MAX_LINE_BYTES:,}")
        try:
            request = json.loads(line)
        except (json.JSONDecodeError, RecursionError) as error:
            raise SpecError(f"not valid JSON ({error})") from None
        if not isinstance(request, dict):
            raise SpecError('each line must be a JSON object such as {"command": "fit", "model": "70b", ...}')
        options = dict(request)
        if "command" not in options:
            raise SpecError(f'missing "command" (one of {", ".join(BATCH_COMMANDS)})')
        answer = run_command(options.pop("command"), options)
        return answer.data, answer.exit_code, answer.warnings
    except LlmfitError as error:
        return {"error": _first_line(str(error)), "exit_code": 2}, 2, ()
    except Exception as error:  # an internal error: that row says so, the others go on
        message = f"internal error: {type(error).__name__}: {_first_line(str(error))}"
        return {"error": message, "exit_code": 3}, 3, ()


def _first_line(message: str) -> str:
    return (message.strip().splitlines() or ["invalid input"])[0]


def run_lines(lines: Iterable[str], out: Any, err: Any) -> int:
    """Answer every non-blank line, one JSON line each on `out`; return the worst exit code."""
    worst = 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        data, code, warnings = run_line(line)
        for message in warnings:
            err.write(f"line {number}: warning: {message}\n")
        if code == 2 and isinstance(data, dict):
            err.write(f"line {number}: error: {data['error']}\n")
        out.write(json.dumps(data, allow_nan=False, separators=(",", ":")) + "\n")
        out.flush()
        worst = max(worst, code)
    return worst


def _bounded_lines(handle: Any) -> Iterator[str]:
    """Lines of at most MAX_LINE_BYTES + 1 characters: a longer one is cut there (and refused as too long)."""
    while True:
        line = handle.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        if len(line) > MAX_LINE_BYTES and not line.endswith("\n"):
            while True:  # skip the rest of the over-long line
                rest = handle.readline(MAX_LINE_BYTES)
                if not rest or rest.endswith("\n"):
                    break
        yield line


def _open_lines(source: str) -> Iterator[str]:
    if source == "-":
        yield from _bounded_lines(sys.stdin)
        return
    try:
        regular = stat.S_ISREG(os.stat(source).st_mode)
        handle = open(source, encoding="utf-8") if regular else None  # noqa: SIM115 - closed below
    except (OSError, ValueError) as error:  # ValueError: a NUL in the path
        raise SpecError(f"{source!r}: cannot read ({getattr(error, 'strerror', None) or error})") from None
    if handle is None:
        raise SpecError(f"{source!r}: not a regular file (give a JSON Lines file, or - for standard input)")
    with handle:
        try:
            yield from _bounded_lines(handle)
        except UnicodeDecodeError as error:
            raise SpecError(f"{source!r}: not UTF-8 text ({error})") from None


def batch_command(
    source: Annotated[str, typer.Argument(help="JSON Lines file of requests, or - for standard input.",
                                          metavar="FILE|-")],
) -> None:
    """Answer many questions in one process: one JSON request a line in, one JSON answer a line out.

    Each line names a command (fit, kv, finetune, plan, decide) and its options by their option names,
    dashes or underscores. Each answer is what the command prints with --format json; a bad line gets
    {"error": ..., "exit_code": 2}. The exit code is the worst of the rows (2 > 1 > 0).

    Examples:

      echo '{"command": "fit", "model": "70b", "gpu": "a100-80", "dtype": "int4"}' | llmfit batch -

      llmfit batch questions.jsonl > answers.jsonl
    """
    from llmfit.errors import ExitCode

    try:
        worst = run_lines(_open_lines(source), sys.stdout, sys.stderr)
    except LlmfitError as error:
        sys.stderr.write(f"error: {_first_line(str(error))}\n")
        raise typer.Exit(int(ExitCode.USAGE)) from None
    raise typer.Exit(worst)


def register(app: typer.Typer) -> None:
    app.command("batch")(batch_command)


__all__ = ["BATCH_COMMANDS", "Answer", "batch_command", "run_command", "run_line", "run_lines"]
