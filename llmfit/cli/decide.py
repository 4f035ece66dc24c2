"""`llmfit decide`: which lever - prompt, RAG, LoRA, QLoRA or full fine-tune - and does it fit the hardware?"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from llmfit.cli.common import ExplainOpt, FormatOpt, PresetsOpt, UnitsOpt, emit, exit_with, handle_errors
from llmfit.render import OutputFormat
from llmfit.units import DisplayUnits

if TYPE_CHECKING:
    from llmfit.engine.decide import Hardware, Situation

T = TypeVar("T")

SITUATION_FLAGS = "--problem knowledge|format|behavior|capability (repeatable), --freshness, --private/--public, " \
    "--examples N, --prompt-tried"

PROBLEM_QUESTIONS = (
    ("knowledge", "Does the model lack facts it needs (missing, private or out-of-date knowledge)?"),
    ("format", "Is the output's shape or style wrong (a JSON schema, a template, a tone)?"),
    ("behavior", "Must a domain behaviour repeat the same way across many requests?"),
    ("capability", "Do you need a deep capability shift (a new domain, language or skill)?"),
)


@handle_errors
def decide_command(
    problem: Annotated[list[str] | None, typer.Option("--problem", "-p", help="What is wrong: knowledge, format, "
                                                      "behavior or capability; repeat for several.",
                                                      show_default=False)] = None,
    freshness: Annotated[str | None, typer.Option("--freshness", help="How often the knowledge changes: static, "
                                                  "monthly, weekly, daily (anything but static is a freshness "
                                                  "problem).", show_default=False)] = None,
    private: Annotated[bool | None, typer.Option("--private/--public", help="The knowledge is private (the model "
                                                 "cannot have seen it) or public.", show_default=False)] = None,
    examples: Annotated[str | None, typer.Option("--examples", "-n", help="Labelled examples you have: 5000, 5k "
                                                 "(PEFT needs >= 1,000, a full fine-tune >= 100,000).",
                                                 show_default=False)] = None,
    prompt_tried: Annotated[bool, typer.Option("--prompt-tried", help="A better prompt was already tried and "
                                               "is not enough.")] = False,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Model to fine-tune (preset, config.json, ...): "
                                              "checks which method fits.", show_default=False)] = None,
    gpu: Annotated[str | None, typer.Option("--gpu", "-g", help="GPU preset to train on, e.g. rtx-4090; "
                                            "a100-80x8 = eight.", show_default=False)] = None,
    gpus: Annotated[int | None, typer.Option("--gpus", help="Number of GPUs (default 1, or the xN of --gpu).",
                                             show_default=False)] = None,
    budget_per_hour: Annotated[float | None, typer.Option("--budget-per-hour", help="USD per hour for training "
                                                          "hardware; 0 rules out training (checked against the "
                                                          "GPU preset's price_per_hour).",
                                                          show_default=False)] = None,
    latency_ms: Annotated[float | None, typer.Option("--latency-ms", help="End-to-end latency target: RAG's "
                                                     "retrieved context must prefill within it.",
                                                     show_default=False)] = None,
    fmt: FormatOpt = OutputFormat.table,
    units: UnitsOpt = DisplayUnits.gib,
    explain: ExplainOpt = False,
    presets: PresetsOpt = None,
) -> None:
    """Which lever fixes the problem - prompt, RAG, LoRA, QLoRA, full fine-tune - and does it fit?

    Exit 0: the plan is feasible; 1: it needs a fine-tune no method fits (or misses --budget-per-hour /
    --latency-ms); 2: bad input. On a terminal with no flags, asks the questions interactively.
    """
    from llmfit.engine.decide import decide
    from llmfit.errors import SpecError
    from llmfit.render.decide import decide_document

    answers: dict[str, Any] = {"problem": problem, "freshness": freshness, "private": private,
                               "examples": None if examples is None else _examples(examples),
                               "prompt_tried": prompt_tried, "model": model, "gpu": gpu,
                               "gpus": gpus}
    if not problem and freshness is None and private is None and examples is None and not prompt_tried:
        if not interactive():
            raise SpecError(f"describe the situation with flags: {SITUATION_FLAGS} (or run on a terminal "
                            "for the questionnaire)")
        answers.update(_questionnaire(model, gpu, presets))
    situation = build_situation(answers["problem"], answers["freshness"], answers["private"], answers["examples"],
                                answers["prompt_tried"], budget_per_hour, latency_ms)
    hardware = build_hardware(answers["model"], answers["gpu"], answers["gpus"], presets)
    result = decide(situation, hardware)
    emit(fmt, result, lambda: decide_document(result, units), explain=explain)
    exit_with(result.feasible)


def build_situation(
    problem: list[str] | None,
    freshness: str | None,
    private: bool | None,
    examples: int | None,
    prompt_tried: bool,
    budget_per_hour: float | None,
    latency_ms: float | None,
) -> Situation:
    from pydantic_core import ValidationError  # pydantic's, re-exported

    from llmfit.engine.decide import Freshness, Problem, Situation
    from llmfit.errors import SpecError
    from llmfit.validators import validate

    problems = []
    for name in problem or []:
        for part in name.split(","):
            try:
                problems.append(Problem(part.strip().lower()))
            except ValueError:
                raise SpecError(f"unknown --problem {part.strip()!r} (allowed: "
                                f"{', '.join(p.value for p in Problem)})") from None
    if not problems:
        if freshness is None and not private:
            raise SpecError("give --problem knowledge|format|behavior|capability (repeatable)")
        # --freshness / --private describe knowledge: they are the guide's knowledge row (5.6 row 2).
        problems = [Problem.knowledge]
    try:
        fresh = Freshness(freshness.lower()) if freshness is not None else Freshness.static
    except ValueError:
        raise SpecError(f"unknown --freshness {freshness!r} (allowed: "
                        f"{', '.join(f.value for f in Freshness)})") from None
    if examples is not None and examples < 0:
        raise SpecError(f"--examples must be >= 0, got {examples}")
    if budget_per_hour is not None and not 0 <= budget_per_hour <= 10**7:
        raise SpecError(f"--budget-per-hour must be between 0 and 1e7 USD, got {budget_per_hour}")
    if latency_ms is not None and not 0 < latency_ms <= 10**7:
        raise SpecError(f"--latency-ms must be a positive number of milliseconds, got {latency_ms}")
    try:
        return validate(Situation, {"problems": tuple(problems), "freshness": fresh, "private": bool(private),
                                    "examples": examples, "prompt_tried": prompt_tried,
                                    "budget_per_hour": budget_per_hour, "latency_ms": latency_ms})
    except ValidationError as error:
        first = error.errors()[0]
        field = "--" + "-".join(str(part) for part in first["loc"][:1]).replace("_", "-")
        raise SpecError(f"{field}: {first['msg']}") from None


def build_hardware(model: str | None, gpu: str | None, gpus: int | None, presets: Any) -> Hardware | None:
    from llmfit.cli import resolve
    from llmfit.engine.decide import Hardware
    from llmfit.errors import SpecError

    if model is None and gpu is None:
        if gpus is not None:
            raise SpecError("--gpus needs --model and --gpu")
        return None
    if model is None or gpu is None:
        raise SpecError("--model and --gpu go together: the fine-tune is checked for that model on that GPU")
    if gpus is not None and not 0 < gpus <= 65536:
        raise SpecError(f"--gpus must be a positive integer, got {gpus}")
    reg = resolve.registry(presets)
    spec = resolve.resolve_model(model, reg)
    gpu_spec, count = resolve.resolve_gpu(gpu, reg, None)
    if gpus is not None and count != 1 and gpus != count:
        raise SpecError(f"--gpu {gpu} already says {count} GPUs; --gpus {gpus} contradicts it")
    return Hardware(model=spec, gpu=gpu_spec, gpu_count=gpus or count)


def interactive() -> bool:
    """The questionnaire runs only on a terminal (stdin and stdout), never in CI or a pipe."""
    return sys.stdin.isatty() and sys.stdout.isatty()


class _Asker:
    """Questions on stderr (stdout stays the report), answers from stdin, each checked as it is given:
    a bad answer is said at once and asked again; the end of input or Ctrl-C stops with one line."""

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console(stderr=True, highlight=False)

    def ask(self, question: str, parse: Callable[[str], T], default: str | None = None) -> T:
        from llmfit.errors import LlmfitError

        hint = f" [{default}]" if default not in (None, "") else ""
        while True:
            self.console.print(f"{question}{hint}: ", end="", markup=False)
            line = sys.stdin.readline()
            if line == "":
                raise EOFError
            text = line.strip() or (default or "")
            try:
                return parse(text)
            except (LlmfitError, ValueError) as error:
                self.console.print(f"  {str(error).splitlines()[0]} - try again", markup=False)

    def yes_no(self, question: str, default: bool = False) -> bool:
        def parse(text: str) -> bool:
            value = text.strip().lower()
            if value in ("y", "yes"):
                return True
            if value in ("n", "no"):
                return False
            raise ValueError("answer y or n")

        return self.ask(f"{question} (y/n)", parse, "y" if default else "n")


def _choice(allowed: list[str]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip().lower()
        if value not in allowed:
            raise ValueError(f"one of {', '.join(allowed)}")
        return value

    return parse


def _examples(text: str) -> int:
    """A count of examples: 5000, 5k, 1.2M; 0 is allowed (none yet)."""
    from llmfit.units import parse_count

    return 0 if text.strip() in ("0", "-0") else parse_count(text, what="--examples")


def _questionnaire(model: str | None, gpu: str | None, presets: Any = None) -> dict[str, Any]:
    """The same questions as the flags. EOF (Ctrl-D) and Ctrl-C end it with one line and exit 2."""
    from llmfit.errors import SpecError

    asker = _Asker()
    try:
        return _ask_all(asker, model, gpu, presets)
    except EOFError:
        asker.console.print()  # end the prompt's line: the error is a line of its own
        raise SpecError("decide: the input ended before every question was answered (the flags are in "
                        "`llmfit decide --help`)") from None
    except KeyboardInterrupt:
        asker.console.print()
        raise SpecError("decide: interrupted before every question was answered") from None


def _ask_all(asker: _Asker, model: str | None, gpu: str | None, presets: Any) -> dict[str, Any]:
    from llmfit.cli import resolve

    asker.console.print("llmfit decide - a few questions (the flags are listed in `llmfit decide --help`)",
                        markup=False)
    problems = [name for name, question in PROBLEM_QUESTIONS if asker.yes_no(f"{question} ({name})")]
    if not problems:
        asker.console.print("No problem chosen: asking about the output format.", markup=False)
        problems = ["format"]
    answers: dict[str, Any] = {"problem": problems, "freshness": None, "private": None, "examples": None,
                               "prompt_tried": False}
    if "knowledge" in problems:
        answers["freshness"] = asker.ask("How often does that knowledge change? (static, monthly, weekly, daily)",
                                         _choice(["static", "monthly", "weekly", "daily"]), "static")
        answers["private"] = asker.yes_no("Is it private (internal documents the model cannot have seen)?")
    if set(problems) - {"knowledge"}:
        answers["prompt_tried"] = asker.yes_no("Have you already tried a better prompt (instructions, schema, "
                                               "few-shot examples)?")
        answers["examples"] = asker.ask("How many labelled examples do you have? (5000, 5k)", _examples, "0")
    reg = resolve.registry(presets)

    def model_name(text: str) -> str | None:
        if not text:
            return None
        resolve.resolve_model(text, reg)  # checked now: a typo is said before the next question
        return text

    def gpu_name(text: str) -> str | None:
        if not text:
            raise ValueError("a GPU preset is needed to check the fine-tune (e.g. rtx-4090, a100-80x8)")
        resolve.resolve_gpu(text, reg, None)
        return text

    if model is None:
        answers["model"] = asker.ask("Model to fine-tune, if any (preset name; empty to skip)", model_name, "")
    if gpu is None and answers.get("model", model):
        answers["gpu"] = asker.ask("GPU to train on (e.g. rtx-4090, a100-80x8)", gpu_name)
    return answers


def register(app: typer.Typer) -> None:
    from llmfit.cli.examples import epilog

    app.command("decide", epilog=epilog("decide"))(decide_command)
