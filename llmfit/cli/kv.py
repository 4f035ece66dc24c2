"""`llmfit kv`: the KV cache of a model per token, per request and per batch."""

from __future__ import annotations

from typing import Annotated

import typer

from llmfit.cli.common import ExplainOpt, FormatOpt, PlotOpt, PresetsOpt, UnitsOpt, emit, handle_errors, warn
from llmfit.render import OutputFormat
from llmfit.units import DisplayUnits


@handle_errors
def kv_command(
    model: Annotated[str, typer.Argument(help="Model preset, config.json, snapshot folder, .gguf or HF repo id.")],
    context: Annotated[
        str | None,
        typer.Option(
            "--context",
            "-c",
            help="Tokens per request: 8192, 8k, 128K. Default min(8192, the model's maximum).",
            show_default=False,
        ),
    ] = None,
    batch: Annotated[int, typer.Option("--batch", "-b", help="Concurrent requests.")] = 1,
    kv_dtype: Annotated[
        str, typer.Option("--kv-dtype", help="auto (model dtype), fp16, bf16, fp8, fp32, q8_0, q4_0.")
    ] = "auto",
    block_size: Annotated[int, typer.Option("--block-size", help="Paged KV block size in tokens.")] = 16,
    typical_tokens: Annotated[
        str | None,
        typer.Option(
            "--typical-tokens",
            help="Show what a contiguous full-context reservation wastes on a request this long.",
            show_default=False,
        ),
    ] = None,
    plot: PlotOpt = None,
    fmt: FormatOpt = OutputFormat.table,
    units: UnitsOpt = DisplayUnits.gib,
    explain: ExplainOpt = False,
    presets: PresetsOpt = None,
) -> None:
    """KV cache memory of MODEL: per token, per request, per batch; and under MHA/GQA/MQA.

    Each layer kind's own bytes (full, sliding, chunked, cross-attention, MLA and its sparse indexer) and
    the fixed per-request state of recurrent layers (Gated DeltaNet, KDA, Mamba, Mamba-2, short conv),
    without any engine's grouping or padding (fit applies the engine's).

    \b
    Examples:
      llmfit kv llama-3.1-70b --context 8k --batch 16
      llmfit kv gemma-2-9b --context 32k --explain
      llmfit kv qwen3-next-80b-a3b-instruct --context 128k --format json
      llmfit kv deepseek-v3.2-exp --kv-dtype fp8
    """
    from llmfit.cli import resolve
    from llmfit.engine.kv import KV_DTYPES, kv_cache, resolve_kv_dtype
    from llmfit.errors import SpecError
    from llmfit.render.kv import kv_document
    from llmfit.units import parse_tokens

    reg = resolve.registry(presets)
    spec = resolve.resolve_model(model, reg)
    if kv_dtype.lower() not in KV_DTYPES:
        raise SpecError(f"unknown --kv-dtype {kv_dtype!r} (allowed: {', '.join(KV_DTYPES)})")
    if batch <= 0 or batch > 10**7:
        raise SpecError(f"--batch must be a positive integer, got {batch}")
    if block_size <= 0 or block_size > 1_000_000:
        raise SpecError(f"--block-size must be a positive integer, got {block_size}")
    tokens = parse_tokens(context, what="--context") if context else min(8192, spec.max_position_embeddings)
    if tokens > spec.max_position_embeddings:
        warn(f"context {tokens:,} exceeds {spec.name}'s maximum {spec.max_position_embeddings:,} tokens "
             "(needs rope scaling); computed anyway")
    typical = parse_tokens(typical_tokens, what="--typical-tokens") if typical_tokens else None
    if typical is not None and typical > tokens:
        # A typical request longer than the context it is allocated for would be a negative waste.
        raise SpecError(f"--typical-tokens {typical:,} is longer than the context ({tokens:,} tokens) each "
                        "request is allocated; give --context at least as long")
    dtype_name = "bf16" if spec.torch_dtype == "bfloat16" else "fp16" if spec.torch_dtype == "float16" else "fp32"
    resolved = resolve_kv_dtype(kv_dtype.lower(), spec, dtype_name)
    result = kv_cache(
        spec, kv_dtype=resolved, context_tokens=tokens, batch=batch, block_size=block_size, typical_tokens=typical
    )
    if plot is not None:
        from llmfit.cli.plot_data import plot_kv

        plot_kv(plot, spec, kv_dtype=resolved, block_size=block_size, batch=batch)
    emit(fmt, result, lambda: kv_document(result, units), explain=explain)


def register(app: typer.Typer) -> None:
    from llmfit.cli.examples import epilog

    app.command("kv", epilog=epilog("kv"))(kv_command)
