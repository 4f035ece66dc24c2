"""`--plot`: the figures a chart needs, computed by calling the engine (over a set of contexts, or every
fine-tuning method), then drawn by render/plots.py. CLI layer: the engine stays pure, the renderer
never computes."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from llmfit.engine.records import replace
from llmfit.errors import LlmfitError
from llmfit.render.plots import Chart, Curve, Panel, Point, Stack, check_path, save_chart

GIB = 2**30


def _with(obj: Any, **changes: Any) -> Any:
    """A copy of a frozen options object (a dataclass) with some fields changed."""
    return replace(obj, **changes)


def contexts_up_to(maximum: int, smallest: int = 512) -> list[int]:
    """Powers of two from 512 tokens to the model's maximum context, and the maximum itself."""
    out = []
    tokens = smallest
    while tokens < maximum:
        out.append(tokens)
        tokens *= 2
    return [*out, maximum]


def _written(path: Path) -> None:
    sys.stderr.write(f"chart written to {path}\n")


def plot_fit(path: Path, results: list[Any], *, spec: Any, gpu: Any, formats: list[Any], deployment: Any,
             options: Any, engine: str, memory_fraction: float | None) -> None:
    """Memory by term per GPU (one bar per weight format) and, for each format, concurrency and the KV
    pool against context up to the model's maximum (the engine's fit at each context)."""
    from llmfit.engine.engines import engine_fit

    check_path(path)
    stacks = []
    for r in results:
        free = max(0, r.gpu_memory_bytes_per_gpu - r.usable_bytes_per_gpu)
        stacks.append(Stack(label=r.dtype, limit_bytes=r.gpu_memory_bytes_per_gpu, segments=[
            ("weights", r.weights_bytes_per_gpu), ("runtime overhead", r.overhead_bytes_per_gpu),
            ("KV cache budget", max(0, r.kv_budget_bytes_per_gpu)), ("free (outside gpu_util)", free)]))
    first = results[0]
    where = f"{first.model} on {first.gpu}" + (f" x{first.gpu_count}" if first.gpu_count > 1 else "")
    panels = [Panel(title=f"Memory per GPU ({first.engine})", y_label="GiB per GPU", stacks=stacks)]
    if spec is not None:
        contexts = contexts_up_to(spec.max_position_embeddings)
        curves = []
        loading = [fmt for fmt, r in zip(formats, results, strict=True) if r.loads] or formats[:1]
        for fmt in loading[:4]:  # four formats at most (those that load): a readable chart
            concurrency, pool = [], []
            for tokens in contexts:
                try:
                    r = engine_fit(spec, gpu, fmt, deployment, _with(options, context_tokens=tokens), engine,
                                   memory_fraction=memory_fraction)
                except LlmfitError:
                    r = None
                concurrency.append(float(r.max_concurrency or 0) if r is not None and r.loads else 0.0)
                pool.append(float(r.kv_tokens or 0) if r is not None and r.loads else 0.0)
            suffix = f" ({fmt.name})" if len(loading) > 1 else ""
            curves.append(Curve(label=f"max concurrent requests{suffix}", x=[float(c) for c in contexts],
                                y=concurrency))
            curves.append(Curve(label=f"KV pool, tokens per replica{suffix}", x=[float(c) for c in contexts],
                                y=pool, axis=1, style="--"))
        panels.append(Panel(title="Concurrency and KV pool against context", x_label="context (tokens per request)",
                            y_label="full-context requests", y2_label="KV pool (tokens per replica)", curves=curves,
                            log_x=True))
    kv = f"{first.kv_dtype} KV" if len(results) == 1 else "every weight format"
    save_chart(Chart(title=f"{where}: {kv}, context up to {spec.max_position_embeddings:,}" if spec is not None
                     else f"{where}: {kv}", panels=panels,
                     caption="memory in binary GiB; computed by llmfit fit"), path)
    _written(path)


def plot_kv(path: Path, spec: Any, *, kv_dtype: str, block_size: int, batch: int) -> None:
    """KV cache of one request against context, per attention kind (the engine's layer groups) and in total."""
    from llmfit.engine.kv import kv_cache

    check_path(path)
    contexts = contexts_up_to(spec.max_position_embeddings)
    per_kind: dict[str, list[float]] = {}
    total = []
    for tokens in contexts:
        result = kv_cache(spec, kv_dtype=kv_dtype, context_tokens=tokens, batch=batch, block_size=block_size)
        total.append(result.total_bytes / GIB)
        for group in result.layer_groups:
            held = tokens if group.window_tokens is None else min(tokens, group.window_tokens)
            per_kind.setdefault(group.kind, []).append(group.layers * group.bytes_per_token_per_layer * held
                                                        * batch / GIB)
    x = [float(c) for c in contexts]
    curves = [Curve(label=f"{kind}", x=x, y=y) for kind, y in per_kind.items()]
    curves.append(Curve(label=f"total (paged, blocks of {block_size})", x=x, y=total, style="-"))
    panel = Panel(title=f"KV cache of {batch} request(s) against context, by attention kind",
                  x_label="context (tokens per request)", y_label="GiB", curves=curves, log_x=True)
    save_chart(Chart(title=f"{spec.name}: {kv_dtype} KV cache", panels=[panel],
                     caption="memory in binary GiB; computed by llmfit kv"), path)
    _written(path)


def plot_plan(path: Path, result: Any) -> None:
    """Price per hour against the tokens/s bound, the Pareto front marked and labelled."""
    check_path(path)
    points = []
    rows = list(result.rows)
    single = result.smallest_single_gpu_row
    for row in rows:
        if row.price_per_hour is None or row.tokens_per_second is None:
            continue
        points.append(Point(label=f"#{row.rank} {row.gpu} x{row.gpu_count} {row.dtype}", x=row.tokens_per_second,
                            y=row.price_per_hour, marked=True))
    if single is not None and single not in rows and single.price_per_hour is not None \
            and single.tokens_per_second is not None:
        points.append(Point(label=f"{single.gpu} x1", x=single.tokens_per_second, y=single.price_per_hour))
    panel = Panel(title=f"{result.concurrency} x {result.context_tokens:,}-token requests on {result.engine}",
                  x_label="tokens/s, all requests (roofline upper bound)", y_label="USD per hour", points=points)
    save_chart(Chart(title=f"plan: {result.model}", panels=[panel],
                     caption="prices from the GPU presets; computed by llmfit plan"), path)
    _written(path)


def plot_finetune(path: Path, spec: Any, gpu: Any, options: Any, *, params: int | None,
                  methods: tuple[str, ...] | list[str]) -> None:
    """Memory per GPU at the peak, by term, for every fine-tuning method with the same settings."""
    from llmfit.engine.finetune import finetune

    check_path(path)
    stacks = []
    device = None
    for method in methods:
        try:
            r = finetune(spec, gpu, _with(options, method=method), params=params)
        except LlmfitError:
            continue
        device = r.gpu_memory_bytes_per_gpu or device
        totals: dict[str, int] = {}
        for line in r.lines:
            if line.at_peak:
                totals[line.category] = totals.get(line.category, 0) + line.bytes_per_gpu
        stacks.append(Stack(label=method, limit_bytes=r.gpu_memory_bytes_per_gpu,
                            segments=[(name.replace("_", " "), value) for name, value in totals.items()]))
    where = f" on {gpu.name}" if gpu is not None else ""
    panel = Panel(title=f"Memory per GPU at the peak, by term{where}", y_label="GiB per GPU", stacks=stacks)
    caption = "memory in binary GiB; computed by llmfit finetune" + (
        f"; device {device / GIB:,.1f} GiB" if device else "")
    save_chart(Chart(title=f"fine-tuning {getattr(spec, 'name', 'the model')}: every method", panels=[panel],
                     caption=caption), path)
    _written(path)
