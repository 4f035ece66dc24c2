"""`llmfit plan`: every deployment that serves a target, the Pareto front, and launch commands."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

from llmfit.cli.common import (
    ExplainOpt,
    FormatOpt,
    PlotOpt,
    PresetsOpt,
    UnitsOpt,
    emit,
    exit_with,
    handle_errors,
    warn,
)
from llmfit.render import OutputFormat
from llmfit.units import DisplayUnits


@contextmanager
def progress_bar(label: str, *, after_seconds: float = 1.0) -> Iterator[Callable[[int, int], None] | None]:
    """A Rich progress bar on stderr (stdout stays clean for JSON), only when stderr is a terminal and
    only once the sweep has run for `after_seconds`: a quick plan prints no bar at all."""
    if not sys.stderr.isatty():
        yield None
        return
    import time

    from rich.progress import Progress, TaskID

    start = time.monotonic()
    shown: list[tuple[Progress, TaskID]] = []  # the bar, once it is drawn

    def update(done: int, total: int) -> None:
        if not shown:
            if time.monotonic() - start < after_seconds or done >= total:
                return
            from rich.console import Console

            bar = Progress(console=Console(stderr=True), transient=True)
            bar.start()
            shown.append((bar, bar.add_task(label, total=total)))
        bar, task = shown[0]
        bar.update(task, completed=done, total=total)

    try:
        yield update
    finally:
        if shown:
            shown[0][0].stop()


def _split(text: str) -> list[str]:
    return [part.strip().lower() for part in text.split(",") if part.strip()]


@handle_errors
def plan_command(
    model: Annotated[str, typer.Argument(help="Model preset (e.g. llama-3.1-70b), config.json or HF repo id.")],
    context: Annotated[str, typer.Option("--context", "-c", help="Tokens per request: 32k, 8192.")] = "8k",
    concurrency: Annotated[int, typer.Option("--concurrency", "-k", help="Concurrent full-context requests to "
                                             "serve.")] = 1,
    gpu_types: Annotated[str | None, typer.Option("--gpu-types", help="Comma-separated GPU presets (default: every "
                                                  "preset).", show_default=False)] = None,
    max_gpus: Annotated[int, typer.Option("--max-gpus", help="Most GPUs in one deployment.")] = 16,
    gpus_per_node: Annotated[int, typer.Option("--gpus-per-node", help="GPUs per node: tensor parallelism stays "
                                               "inside a node, pipeline stages may span nodes.")] = 8,
    dtypes: Annotated[str, typer.Option("--dtypes", help="Weight formats to try, comma-separated.")] = "bf16,fp8,awq",
    kv_dtypes: Annotated[str, typer.Option("--kv-dtypes", help="KV cache dtypes to try.")] = "auto,fp8",
    engine: Annotated[str, typer.Option("--engine", help="vllm, sglang or trt-llm: each has its own KV budget "
                                        "rule.")] = "vllm",
    gpu_util: Annotated[str | None, typer.Option("--gpu-util", help="Memory fraction (default: the engine's: vLLM "
                                                 "0.9 of total, SGLang 0.79-0.88 of total by TP, TRT-LLM 0.9 of "
                                                 "free).", show_default=False)] = None,
    max_num_seqs: Annotated[int | None, typer.Option("--max-num-seqs", help="Engine cap on concurrent sequences "
                                                     "per replica (default: the engine's for each GPU).",
                                                     show_default=False)] = None,
    efficiency: Annotated[str | None, typer.Option("--efficiency", help="Roofline efficiency MEMORY[,COMPUTE] "
                                                   "(default 0.75,0.5; see docs/plan.md).",
                                                   show_default=False)] = None,
    top: Annotated[int, typer.Option("--top", help="Rows of the Pareto front to print.")] = 10,
    engine_version: Annotated[str, typer.Option("--engine-version", help="vLLM accounting: 0.19 or 0.11.")] = "0.19",
    plot: PlotOpt = None,
    fmt: FormatOpt = OutputFormat.table,
    units: UnitsOpt = DisplayUnits.gib,
    explain: ExplainOpt = False,
    presets: PresetsOpt = None,
) -> None:
    """Find the deployments of MODEL that serve --concurrency requests of --context tokens. Exit 1 if none."""
    from llmfit.cli import resolve
    from llmfit.engine.engines import ENGINES
    from llmfit.engine.kv import KV_DTYPES
    from llmfit.engine.plan import PlanTarget, plan
    from llmfit.engine.runtime import ENGINE_PROFILES
    from llmfit.engine.serving import ServingOptions
    from llmfit.engine.speed import parse_efficiency
    from llmfit.errors import LlmfitError, SpecError
    from llmfit.render.plan import plan_document
    from llmfit.units import parse_fraction, parse_tokens

    try:
        import numpy  # noqa: F401
    except ModuleNotFoundError:
        raise SpecError("plan needs numpy for its sweep: pip install numpy") from None
    reg = resolve.registry(presets)
    spec = resolve.resolve_model(model, reg)
    if engine.lower() not in ENGINES:
        raise SpecError(f"unknown --engine {engine!r} for plan (allowed: {', '.join(ENGINES)})")
    if engine_version not in ENGINE_PROFILES:
        raise SpecError(f"unknown --engine-version {engine_version!r} (allowed: {', '.join(ENGINE_PROFILES)})")
    for flag, value in (("--concurrency", concurrency), ("--max-gpus", max_gpus), ("--gpus-per-node", gpus_per_node),
                        ("--max-num-seqs", 1 if max_num_seqs is None else max_num_seqs), ("--top", top)):
        if value <= 0 or value > 1_000_000:
            raise SpecError(f"{flag} must be a positive integer, got {value}")
    if max_gpus > 128:
        # The sweep grows with count x TP x PP splits: 128 GPUs (16 nodes of 8) is ~14 s on 2 cores; beyond
        # that a CI gate could hang, so larger fleets are planned per 128-GPU slice.
        raise SpecError("--max-gpus is limited to 128 (16 nodes of 8)")
    kv_list = _split(kv_dtypes)
    for kv in kv_list:
        if kv not in KV_DTYPES:
            raise SpecError(f"unknown KV dtype {kv!r} in --kv-dtypes (allowed: {', '.join(KV_DTYPES)})")
    formats = [resolve.resolve_format(name) for name in _split(dtypes)]
    if not formats or not kv_list:
        raise SpecError("--dtypes and --kv-dtypes need at least one entry each")
    if gpu_types is None:
        gpus = []
        for name in reg.gpu_names():
            try:
                gpus.append(reg.gpu(name))
            except LlmfitError as error:  # one broken preset must not stop a sweep over all of them
                warn(f"skipping GPU preset {name}: {error}")
    else:
        gpus = [reg.gpu(name) for name in _split(gpu_types)]
    from llmfit.engine.engines import engine_runs_on

    unsupported = [g.name for g in gpus if not engine_runs_on(engine.lower(), g)]
    if unsupported:
        warn(f"{engine} does not run on {', '.join(unsupported)}: left out of the plan")
        gpus = [g for g in gpus if engine_runs_on(engine.lower(), g)]
    if not gpus:
        raise SpecError("no GPU presets to plan over")
    context_tokens = parse_tokens(context, what="--context")
    if context_tokens > spec.max_position_embeddings:
        warn(f"context {context_tokens:,} exceeds {spec.name}'s maximum {spec.max_position_embeddings:,} tokens "
             "(needs rope scaling); computed anyway")
    target = PlanTarget(context_tokens=context_tokens, concurrency=concurrency, max_gpus=max_gpus,
                        gpus_per_node=gpus_per_node, engine=engine.lower(),
                        memory_fraction=parse_fraction(gpu_util, what="--gpu-util") if gpu_util else None,
                        efficiency=parse_efficiency(efficiency), top=top)
    base = ServingOptions(context_tokens=context_tokens, max_num_seqs=max_num_seqs, engine_version=engine_version)
    with progress_bar(f"planning {spec.name}") as update:
        result = plan(spec, gpus, formats, kv_list, target, base, progress=update)
    if plot is not None:
        from llmfit.cli.plot_data import plot_plan

        plot_plan(plot, result)
    emit(fmt, result, lambda: plan_document(result, units), explain=explain)
    exit_with(result.fits)


def register(app: typer.Typer) -> None:
    from llmfit.cli.examples import epilog

    app.command("plan", epilog=epilog("plan"))(plan_command)
