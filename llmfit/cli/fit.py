"""`llmfit fit`: does MODEL load on GPU, and how many full-context requests does it serve?"""

from __future__ import annotations

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


@handle_errors
def fit_command(
    model: Annotated[str | None, typer.Argument(help="Model preset (e.g. 70b, llama-3.1-8b), config.json, snapshot "
                                                "folder, .gguf file or HF repo id. Omit with --params.",
                                                show_default=False)] = None,
    gpu: Annotated[str | None, typer.Option("--gpu", "-g", help="GPU preset, e.g. a100-80; h100-80x8 = eight; "
                                            "a100-80,h100-80,l40s compares them.",
                                            show_default=False)] = None,
    dtype: Annotated[str | None, typer.Option("--dtype", "-d", help="Weight format: fp32 fp16 bf16 int8-raw int4-raw "
                                              "int8 int4 gptq awq nf4 fp8 mxfp4 q8_0 q4_k_m q4_0 ... or 'all'. "
                                              "Default: a model file's own stored format, else the model's "
                                              "torch_dtype.", show_default=False)] = None,
    context: Annotated[str | None, typer.Option("--context", "-c", help="Tokens per request: 8192, 8k, 128K. "
                                                "Default min(8192, the model's maximum).", show_default=False)] = None,
    kv_dtype: Annotated[str, typer.Option("--kv-dtype", help="KV cache: auto (model dtype), fp16, bf16, fp8, fp32, "
                                          "q8_0, q4_0.")] = "auto",
    gpu_util: Annotated[str | None, typer.Option("--gpu-util", help="Share of device memory the engine may use "
                                                 "(vLLM gpu_memory_utilization 0.9; SGLang and TRT-LLM: their own "
                                                 "defaults).", show_default=False)] = None,
    tp: Annotated[int | None, typer.Option("--tp", help="Tensor-parallel size (default: all GPUs / pp).",
                                           show_default=False)] = None,
    pp: Annotated[int, typer.Option("--pp", help="Pipeline-parallel size.")] = 1,
    block_size: Annotated[int, typer.Option("--block-size", help="Paged KV block size in tokens.")] = 16,
    max_num_seqs: Annotated[int | None, typer.Option("--max-num-seqs", help="Engine cap on concurrent sequences "
                                                     "(default: vLLM's, 1024 on >= 70 GiB GPUs, else 256).",
                                                     show_default=False)] = None,
    min_concurrency: Annotated[int, typer.Option("--min-concurrency", "-k", help="Exit 1 unless at least this many "
                                                 "full-context requests fit.")] = 1,
    engine_version: Annotated[str | None, typer.Option("--engine-version", help="The engine's release, any number "
                                                       "(0.9.2, 0.28.0): the version profile covering it is used. "
                                                       "Default: the newest. 'list' shows what each profile "
                                                       "changes.", show_default=False)] = None,
    max_num_batched_tokens: Annotated[int | None, typer.Option("--max-num-batched-tokens", help="Tokens per "
                                                               "engine step (sizes the profile run's activation "
                                                               "peak; default: the engine version's, by GPU).",
                                                               show_default=False)] = None,
    kv_cache_memory: Annotated[str | None, typer.Option("--kv-cache-memory", help="vLLM --kv-cache-memory-bytes: "
                                                        "the KV pool per GPU, as given (profiling skipped).",
                                                        show_default=False)] = None,
    pin_kv_pool: Annotated[bool, typer.Option("--pin-kv-pool", help="With --emit vllm: add --kv-cache-memory-bytes "
                                              "with the planned pool, so every vLLM version gets the same pool.")
                           ] = False,
    cuda_graphs: Annotated[str, typer.Option("--cuda-graphs", help="vLLM v0.21+: CUDA-graph memory inside the "
                                             "budget: auto (the version's default), on, off "
                                             "(VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS=0).")] = "auto",
    params: Annotated[str | None, typer.Option("--params", help="What-if: a dense model of N parameters (7e9, 70B); "
                                               "weights only.", show_default=False)] = None,
    weights: Annotated[str | None, typer.Option("--weights", help="What-if: weight memory, e.g. 42GiB.",
                                                show_default=False)] = None,
    overhead: Annotated[str | None, typer.Option("--overhead", help="What-if: runtime overhead per GPU, e.g. 5GiB.",
                                                 show_default=False)] = None,
    gpu_memory: Annotated[str | None, typer.Option("--gpu-memory", help="What-if: device memory, e.g. 80GiB "
                                                   "(an unnamed GPU, or overrides --gpu's).",
                                                   show_default=False)] = None,
    engine: Annotated[str | None, typer.Option("--engine", help="vllm (default), sglang, trt-llm (each its own KV "
                                               "budget rule), llama.cpp (GPU/RAM offload, -ngl), or all (one "
                                               "table: the same model and hardware under every engine).",
                                               show_default=False)] = None,
    solve: Annotated[str, typer.Option("--solve", help="concurrency: requests at --context; context: the longest "
                                       "context at which --min-concurrency requests fit.")] = "concurrency",
    emit_to: Annotated[str | None, typer.Option("--emit", help="Print the launch command: vllm, sglang or "
                                                "llama.cpp.", show_default=False)] = None,
    ram: Annotated[str | None, typer.Option("--ram", help="System RAM for llama.cpp offload, e.g. 64GB.",
                                            show_default=False)] = None,
    efficiency: Annotated[str | None, typer.Option("--efficiency", help="Speed-bound efficiency MEMORY[,COMPUTE] "
                                                   "(default 0.75,0.5).", show_default=False)] = None,
    plot: PlotOpt = None,
    fmt: FormatOpt = OutputFormat.table,
    units: UnitsOpt = DisplayUnits.gib,
    explain: ExplainOpt = False,
    presets: PresetsOpt = None,
) -> None:
    """Does MODEL fit on GPU, and at what concurrency? Exit 0 yes, 1 no, 2 bad input.

    Examples:
      llmfit fit llama-3.1-8b --gpu h100-80 --engine-version 0.9.2
      llmfit fit qwen3-32b --gpu h100-80x2 --engine all
      llmfit fit llama-3.1-70b --gpu h100-80x4 --pp 2 --tp 2 --emit vllm --pin-kv-pool
      llmfit fit --engine-version list
      llmfit fit llama-3.1-8b --gpu l4,l40s,a100-80 --dtype fp8
    """
    from llmfit.cli import fit_extras, resolve
    from llmfit.engine.engines import engine_fit, engine_runs_on, get_engine, solve_context
    from llmfit.engine.formats import ALL_TABLE_FORMATS
    from llmfit.engine.kv import KV_DTYPES
    from llmfit.engine.serving import Deployment, ServingOptions
    from llmfit.errors import SpecError
    from llmfit.units import parse_bytes, parse_fraction, parse_tokens

    if engine_version is not None and engine_version.strip().lower() == "list":
        fit_extras.show_profiles(engine, fmt)

    reg = resolve.registry(presets)
    spec, n_params = resolve.model_or_params(model, params, reg)
    # No --dtype: the checkpoint's own format and measured bytes (model files), else the model's torch_dtype.
    native = dtype is None
    measured = None
    if native:
        from llmfit.readers.native import label_measured, measured_weights_bytes, native_format

        native_fmt = native_format(spec)
        dtype = native_fmt.name
        measured = measured_weights_bytes(spec, native_fmt) if weights is None else None
    assert dtype is not None  # given, or the native format's name
    # `--gpu a100-80,h100-80x2`: one fit object per GPU (design.md: a GPU list gives a list of fit objects).
    gpu_names: list[str | None] = [part.strip() for part in gpu.split(",")] if gpu and "," in gpu else [gpu]
    from llmfit.limits import MAX_GPU_LIST

    if len(gpu_names) > 1 and (len(gpu_names) > MAX_GPU_LIST or not all(gpu_names)):
        raise SpecError(f"--gpu takes one GPU or a comma-separated list of at most {MAX_GPU_LIST} names")
    targets = [resolve.resolve_gpu(name, reg, gpu_memory) for name in gpu_names]
    gpu_spec, gpu_count = targets[0]
    if kv_dtype.lower() not in KV_DTYPES:
        raise SpecError(f"unknown --kv-dtype {kv_dtype!r} (allowed: {', '.join(KV_DTYPES)})")
    if cuda_graphs not in ("auto", "on", "off"):
        raise SpecError(f"unknown --cuda-graphs {cuda_graphs!r} (allowed: auto, on, off)")
    if max_num_batched_tokens is not None and not 0 < max_num_batched_tokens <= 10**7:
        raise SpecError(f"--max-num-batched-tokens must be a positive integer, got {max_num_batched_tokens}")
    seqs_given = 1 if max_num_seqs is None else max_num_seqs
    for flag, value in (("--pp", pp), ("--block-size", block_size), ("--max-num-seqs", seqs_given)):
        if value <= 0 or value > 1_000_000:
            raise SpecError(f"{flag} must be a positive integer, got {value}")
    if tp is not None and (tp <= 0 or tp > 4096):
        raise SpecError(f"--tp must be a positive integer, got {tp}")
    if min_concurrency < 0 or min_concurrency > 10**9:
        raise SpecError(f"--min-concurrency must be >= 0, got {min_concurrency}")
    if context is None:
        context_tokens = min(8192, spec.max_position_embeddings) if spec is not None else 8192
    else:
        context_tokens = parse_tokens(context, what="--context")
    tp_size = tp if tp is not None else max(1, gpu_count // pp)
    engine_name = fit_extras.effective_engine(engine, emit_to)
    if len(targets) > 1 and (engine_name in ("all", "llama.cpp") or solve == "context" or emit_to or plot
                             or (dtype.lower() == "all")):
        raise SpecError("a GPU list compares one fit per GPU; --engine all/llama.cpp, --dtype all, --solve "
                        "context, --emit and --plot take one --gpu")
    if engine_name == "all":
        fit_extras.run_all_engines(spec, model, gpu_spec, gpu_count, tp, pp, dtype, native, kv_dtype.lower(),
                                   context_tokens, engine_version, max_num_seqs, max_num_batched_tokens,
                                   min_concurrency, block_size, fmt, units, explain, ram)
    # The release names a vLLM profile (runtime terms); other engines keep their own release (engine_release).
    version = get_engine("vllm").resolve_version(engine_version if engine_name == "vllm" else None)
    if engine_name in ("sglang",) and engine_version is not None:
        get_engine(engine_name).resolve_version(engine_version)  # bad input: exit 2 here
    for target, _ in targets:
        if engine_name != "llama.cpp" and not engine_runs_on(engine_name, target):
            warn(f"{engine_name} does not run on {target.display_name or target.name}; the figures assume it did "
                 "(on Apple silicon, try --engine llama.cpp)")
    if solve not in ("concurrency", "context"):
        raise SpecError(f"unknown --solve {solve!r} (allowed: concurrency, context)")
    if plot is not None and engine_name == "llama.cpp":
        raise SpecError("--plot draws vLLM/SGLang/TRT-LLM fits; --engine llama.cpp has no chart yet")
    if engine_name == "llama.cpp":
        fit_extras.run_llamacpp(spec, model, gpu_spec, resolve.resolve_format(dtype), context_tokens=context_tokens,
                                parallel=max(1, min_concurrency), kv_dtype=kv_dtype.lower(), ram=ram,
                                emit_to=emit_to, out=fmt, units=units, explain=explain)
    memory_fraction = parse_fraction(gpu_util, what="--gpu-util") if gpu_util and engine_name != "vllm" else None
    options = ServingOptions(
        context_tokens=context_tokens,
        kv_dtype=kv_dtype.lower(),
        gpu_util=parse_fraction(gpu_util or "0.9", what="--gpu-util"),
        block_size=block_size,
        max_num_seqs=max_num_seqs,
        max_num_batched_tokens=max_num_batched_tokens,
        engine_version=version,
        engine_release=engine_version if engine_name != "vllm" else None,
        cuda_graph_profiling={"auto": None, "on": True, "off": False}[cuda_graphs],
        kv_cache_memory_bytes=parse_bytes(kv_cache_memory, what="--kv-cache-memory") if kv_cache_memory else None,
        min_concurrency=min_concurrency,
        weights_override_bytes=parse_bytes(weights, what="--weights") if weights else measured,
        overhead_override_bytes=parse_bytes(overhead, what="--overhead") if overhead else None,
    )
    deployment = Deployment(gpu_count=gpu_count, tp=tp_size, pp=pp)
    names: tuple[str, ...] = ALL_TABLE_FORMATS if dtype.lower() == "all" else (dtype,)
    if dtype.lower() == "all" and spec is None:
        names = ("fp32", "fp16", "bf16", "int8-raw", "int4-raw", "int8", "int4")
    formats = [native_fmt] if native else [resolve.resolve_format(name) for name in names]
    if solve == "context" and (spec is None or len(formats) > 1):
        raise SpecError("--solve context needs a model architecture and one --dtype")
    if solve == "context":
        assert spec is not None
        solved, limit = solve_context(spec, gpu_spec, formats[0], deployment, options, engine_name,
                                                 memory_fraction)
        results = [solved]
    else:
        limit = None
        results = [engine_fit(spec, target, f, Deployment(gpu_count=count, tp=tp or max(1, count // pp), pp=pp),
                              options, engine_name, memory_fraction=memory_fraction, params=n_params)
                   for target, count in targets for f in formats]
    if native:
        results = [label_measured(r, spec, native_fmt, measured) for r in results]
    first_per_gpu = results[::len(formats)]  # results run GPU by GPU, each over the formats
    for message in dict.fromkeys(m for r in first_per_gpu for m in r.warnings):
        warn(message)
    for (target, _), result in zip(targets, first_per_gpu, strict=True):
        if engine_name != "llama.cpp" and len(formats) == 1 and engine_runs_on(engine_name, target):
            from llmfit.engine.support import support_status

            status, source = support_status(engine_name, target, formats[0], result.kv_dtype)
            if status == "unsupported":
                warn(f"{engine_name} does not run {formats[0].name} weights / {result.kv_dtype} KV on "
                     f"{target.display_name or target.name} ({source}); the figures assume it did")
    if plot is not None:
        from llmfit.cli.plot_data import plot_fit

        plot_fit(plot, results, spec=spec, gpu=gpu_spec, formats=formats, deployment=deployment, options=options,
                 engine=engine_name, memory_fraction=memory_fraction)
    from llmfit.render.fit import fit_table_document
    from llmfit.render.fit_json import fit_object

    if len(results) == 1:
        fit_extras.show_fit(results[0], spec=spec, gpu=gpu_spec, fmt=formats[0], engine=engine_name,
                            emit_to=emit_to, efficiency=efficiency, memory_fraction=memory_fraction, solved=limit,
                            out=fmt, units=units, explain=explain, pin_kv_pool=pin_kv_pool)
    emit(fmt, [fit_object(r) for r in results], lambda: fit_table_document(results, units), explain=explain)
    exit_with(any(r.fits for r in results))


def register(app: typer.Typer) -> None:
    from llmfit.cli.examples import epilog

    app.command("fit", epilog=epilog("fit"))(fit_command)
