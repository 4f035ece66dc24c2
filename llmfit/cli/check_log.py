"""`llmfit check-log FILE|-`: a start-up log beside llmfit's prediction of the same deployment."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from llmfit.cli.common import FormatOpt, PresetsOpt, UnitsOpt, emit, exit_with, handle_errors, warn
from llmfit.render import OutputFormat
from llmfit.units import DisplayUnits

MAX_LOG_BYTES = 64 * 2**20


def _read(source: str) -> str:
    from llmfit.errors import SpecError

    if source == "-":
        return sys.stdin.read(MAX_LOG_BYTES)
    path = Path(source)
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_LOG_BYTES)
    except OSError as error:
        raise SpecError(f"{source}: cannot read the log ({error.strerror or error})") from None
    return data.decode("utf-8", errors="replace")


@handle_errors
def check_log_command(
    log: Annotated[str, typer.Argument(help="A vLLM, SGLang or llama.cpp start-up log, or - for stdin.")],
    model: Annotated[str | None, typer.Option("--model", "-m", help="Model preset when the log does not name one "
                                              "llmfit knows.", show_default=False)] = None,
    gpu: Annotated[str | None, typer.Option("--gpu", "-g", help="GPU preset when the log does not name the "
                                            "device (its logged total memory is used when present).",
                                            show_default=False)] = None,
    tolerance: Annotated[str, typer.Option("--tolerance", help="Largest |error| for exit 0, e.g. 5%, 0.05.")] = "5%",
    engine_version: Annotated[str | None, typer.Option("--engine-version", help="The engine's release when the "
                                                       "log does not print it (default: the newest profile).",
                                                       show_default=False)] = None,
    gpu_util: Annotated[str | None, typer.Option("--gpu-util", help="gpu_memory_utilization when the log does "
                                                 "not print it (else inferred from its own figures).",
                                                 show_default=False)] = None,
    tp: Annotated[int | None, typer.Option("--tp", help="Tensor-parallel size when the log does not print it.",
                                           show_default=False)] = None,
    context: Annotated[str | None, typer.Option("--context", "-c", help="max_model_len when the log does not "
                                                "print it.", show_default=False)] = None,
    block_size: Annotated[int | None, typer.Option("--block-size", help="KV block size when the log does not "
                                                   "print it (default 16).", show_default=False)] = None,
    fmt: FormatOpt = OutputFormat.table,
    units: UnitsOpt = DisplayUnits.gib,
    presets: PresetsOpt = None,
) -> None:
    """Hold a start-up log against llmfit's prediction: each measured line, the predicted one, the error.
    Exit 0 when every line is within --tolerance, 1 otherwise, 2 for a log it cannot read.

    Examples:
      llmfit check-log vllm.log --model llama-3.1-8b --gpu h100-80
      docker logs vllm 2>&1 | llmfit check-log - --model qwen3-32b --gpu h100-80 --format json
    """
    from llmfit.cli import resolve
    from llmfit.engine.checklog import compare, parse_log
    from llmfit.render.check_log import check_log_document
    from llmfit.units import parse_fraction

    facts = parse_log(_read(log))
    reg = resolve.registry(presets)
    overrides = {"engine_version": engine_version, "gpu_util": gpu_util, "tp": tp, "context": context,
                 "block_size": block_size}
    predicted, explain, spec_name, gpu_name, profile, notes = _predict(facts, model, gpu, reg, overrides)
    text = tolerance.strip()
    if text.endswith("%"):
        percent = parse_fraction(text[:-1], what="--tolerance", high=100.0)
        limit = percent / 100
    else:
        limit = parse_fraction(text, what="--tolerance")
    if facts.version is None and engine_version is not None:
        facts = facts.model_copy(update={"version": engine_version})
    result = compare(facts, predicted, explain, model=spec_name, gpu=gpu_name, profile=profile, tolerance=limit,
                     notes=notes)
    for message in notes:
        if message.startswith("assumed"):
            warn(message)
    emit(fmt, result, lambda: check_log_document(result, units))
    exit_with(result.ok)


def _spec_for(facts: Any, model: str | None, reg: Any) -> Any:
    from llmfit.cli import resolve
    from llmfit.errors import LlmfitError, SpecError

    if model is not None:
        return resolve.resolve_model(model, reg)
    named = facts.model_id
    if not named:
        raise SpecError("the log does not name the model: pass --model PRESET")
    base = named.rstrip("/").split("/")[-1]
    candidates = [named, base]
    for suffix in ("-instruct", "-chat", "-it", "-base"):
        if base.lower().endswith(suffix):
            candidates.append(base[: -len(suffix)])
    candidates += [base.lower().replace("meta-llama-3.1", "llama-3.1")]
    for spec in reg.all_models():
        if spec.hf_id and spec.hf_id.lower() == named.lower():
            return spec
    for name in candidates:
        try:
            return resolve.resolve_model(name, reg)
        except LlmfitError:
            continue
    raise SpecError(f"the log's model {named!r} has no llmfit preset: pass --model PRESET (or a config.json)")


def _gpu_for(facts: Any, gpu: str | None, reg: Any) -> tuple[Any, list[str]]:
    from llmfit.cli import resolve
    from llmfit.errors import SpecError
    from llmfit.units import GIB

    notes: list[str] = []
    total = facts.gpu_total_bytes
    if gpu is not None:
        spec, _ = resolve.resolve_gpu(gpu, reg, None)
        if total is not None and abs(total - spec.memory) > 0.002 * spec.memory:
            notes.append(f"the log's total device memory {total / GIB:.2f} GiB is used instead of the preset's "
                         f"{spec.memory / GIB:.2f} GiB")
            spec = spec.model_copy(update={"memory": total})
        return spec, notes
    if total is None:
        raise SpecError("the log does not name the GPU or its total memory: pass --gpu PRESET")
    best = min(reg.all_gpus(), key=lambda g: abs(g.memory - total))
    if abs(best.memory - total) > 0.01 * total:
        raise SpecError(f"no GPU preset has the log's {total / GIB:.2f} GiB: pass --gpu PRESET")
    notes.append(f"GPU taken from the log's total memory {total / GIB:.2f} GiB: {best.name}")
    return best.model_copy(update={"memory": total}), notes


def _predict(facts: Any, model: str | None, gpu: str | None, reg: Any, overrides: dict[str, Any]
             ) -> tuple[dict[str, float | None], dict[str, str], str, str, str | None, list[str]]:
    from llmfit.engine.engines import get_engine
    from llmfit.engine.formats import get_format
    from llmfit.engine.serving import Deployment, ServingOptions
    from llmfit.units import GIB, parse_fraction, parse_tokens

    spec = _spec_for(facts, model, reg)
    gpu_spec, notes = _gpu_for(facts, gpu, reg)
    flags = dict(facts.flags)
    if facts.engine == "llama.cpp":
        return _predict_llamacpp(facts, spec, gpu_spec, notes)
    engine = get_engine(facts.engine)
    version = overrides["engine_version"] or facts.version
    if version is None and flags.get("log_format") == "V0":
        version = "0.6"
        notes.append("vLLM V0 log format (worker.py lines): read as the V0 profile (0.6); pass --engine-version")
    profile = engine.resolve_version(version)
    if version is None:
        notes.append(f"assumed {engine.display} {profile} (newest profile): the log does not print its version; "
                     "pass --engine-version")
    dtype = {"float32": "fp32", "float16": "fp16", "half": "fp16", "bfloat16": "bf16"}.get(str(flags.get("dtype", "")))
    quant = str(flags.get("quantization", "None"))
    native = {"float32": "fp32", "float16": "fp16"}.get(spec.torch_dtype, "bf16")
    name = "fp8" if quant == "fp8" else (dtype or native)
    stored = spec.checkpoint_format
    if stored and (quant not in ("None", "fp8") or (quant == "None" and dtype is None)):
        name = stored
    fmt = get_format(name)
    kv = str(flags.get("kv_cache_dtype", "auto"))
    kv = "fp8" if kv.startswith("fp8") else ("auto" if kv in ("auto", "None") else kv)
    tp = int(overrides["tp"] or flags.get("tp", 1))
    pp = int(flags.get("pp", 1))
    context = overrides["context"]
    context_tokens = parse_tokens(context, what="--context") if context else int(
        flags.get("max_model_len", min(8192, spec.max_position_embeddings)))
    util = flags.get("gpu_memory_utilization")
    if overrides["gpu_util"]:
        util = parse_fraction(overrides["gpu_util"], what="--gpu-util")
    if util is None and facts.engine == "vllm":
        non_kv, kv_mem = facts.extras.get("non_kv_bytes"), facts.measured.get("kv_budget_bytes_per_gpu")
        if non_kv is not None and kv_mem is not None:
            util = round((non_kv + kv_mem) / gpu_spec.memory, 2)
            notes.append(f"gpu_memory_utilization {util} inferred from the log: (non-KV {non_kv / GIB:.2f} + KV "
                         f"{kv_mem / GIB:.2f} GiB) / {gpu_spec.memory / GIB:.2f} GiB")
        else:
            util = 0.9
            notes.append("assumed gpu_memory_utilization 0.9 (vLLM's default): the log does not print it")
    block = int(overrides["block_size"] or flags.get("block_size", 16))
    options = ServingOptions(context_tokens=context_tokens, kv_dtype=kv, gpu_util=float(util or 0.9),
                             block_size=block, max_num_seqs=flags.get("max_num_seqs"),
                             max_num_batched_tokens=flags.get("max_num_batched_tokens"),
                             engine_version=profile if facts.engine == "vllm" else "latest",
                             cuda_graph_profiling=flags.get("cuda_graph_profiling"), min_concurrency=0)
    fraction = flags.get("mem_fraction_static") if facts.engine == "sglang" else None
    result = engine.fit(spec, gpu_spec, fmt, Deployment(gpu_count=tp * pp, tp=tp, pp=pp), options,
                        memory_fraction=fraction)
    predicted: dict[str, float | None] = {
        "loaded_weights_bytes_per_gpu": result.loaded_weights_bytes_per_gpu,
        "kv_budget_bytes_per_gpu": result.kv_budget_bytes_per_gpu,
        "kv_tokens": result.kv_tokens, "vllm_max_concurrency": result.vllm_max_concurrency}
    non_kv_pred = result.usable_bytes_per_gpu - result.kv_budget_bytes_per_gpu
    activation = sum(line.bytes_per_gpu for line in result.overhead_lines if line.name.startswith("activation"))
    non_torch = sum(line.bytes_per_gpu for line in result.overhead_lines if line.name.startswith("non-torch"))
    why = f"predicted non-KV memory {non_kv_pred / GIB:.2f} GiB"
    if "non_kv_bytes" in facts.extras:
        why += (f" vs logged {facts.extras['non_kv_bytes'] / GIB:.2f} (activation {activation / GIB:.2f} vs "
                f"{facts.extras.get('activation_bytes', 0) / GIB:.2f}, non-torch {non_torch / GIB:.2f} vs "
                f"{facts.extras.get('non_torch_bytes', 0) / GIB:.2f} GiB)")
    explain = {
        "loaded_weights_bytes_per_gpu": f"weights {result.weights_bytes_per_gpu / GIB:.2f} GiB + buffers loaded with "
                                        f"them ({fmt.name})",
        "kv_budget_bytes_per_gpu": why,
        "kv_tokens": f"pool / {result.kv_bytes_per_token_per_gpu or 0:,} B per token, blocks of {result.block_size}",
        "vllm_max_concurrency": f"kv_tokens / {result.context_tokens:,}",
    }
    notes.append(f"predicted with {result.engine}, {fmt.name} weights, KV {result.kv_dtype}, TP={tp} PP={pp}, "
                 f"context {context_tokens:,}, utilization {options.gpu_util}")
    return predicted, explain, spec.name, gpu_spec.name, profile, notes


def _predict_llamacpp(facts: Any, spec: Any, gpu: Any, notes: list[str]
                      ) -> tuple[dict[str, float | None], dict[str, str], str, str, str | None, list[str]]:
    from llmfit.cli.resolve import resolve_format
    from llmfit.engine.llamacpp import LlamaCppOptions, llamacpp_fit
    from llmfit.readers.native import native_format

    flags = facts.flags
    cache = str(flags.get("cache_type_k", "f16"))
    parallel = int(flags.get("n_seq_max", 1))
    options = LlamaCppOptions(ctx_size=int(flags.get("n_ctx", 4096)), parallel=parallel, cache_type_k=cache,
                              cache_type_v=cache)
    fmt = native_format(spec) if spec.checkpoint is not None else resolve_format(
        spec.checkpoint_format or "q4_k_m")
    result = llamacpp_fit(spec, gpu, fmt, options, None)
    # "CUDA0 model buffer size" is the GPU's share of the file's tensors: the offloaded layers' weights and the
    # output layer when it is on the GPU (llama-model.cpp load_tensors), never the KV or compute buffers.
    weights_gpu = sum(line.bytes for line in result.vram_lines
                      if line.name.startswith("weights of ") or line.name == "output layer")
    predicted: dict[str, float | None] = {"kv_buffer_bytes": result.kv_bytes_gpu + 0.0,
                                          "compute_buffer_bytes": result.compute_buffer_bytes_gpu + 0.0,
                                          "model_buffer_bytes": weights_gpu + 0.0 if weights_gpu else None}
    notes.append(f"predicted with llama.cpp, {fmt.name}, n_ctx {options.ctx_size}, {parallel} sequence(s), "
                 f"cache {cache}")
    return predicted, {"kv_buffer_bytes": "cells x layers x (K + V) per cell"}, spec.name, gpu.name, None, notes


def register(app: typer.Typer) -> None:
    app.command("check-log")(check_log_command)
