"""Turning command-line names into validated specs: model presets (and later model files), GPUs, formats."""

from __future__ import annotations

from pathlib import Path

from llmfit.engine.formats import FORMATS, WeightFormat, get_format
from llmfit.engine.records import replace
from llmfit.errors import LlmfitError, UnitError, UnknownPresetError
from llmfit.presets import Registry, load_registry, split_gpu_count
from llmfit.specs import GpuSpec, ModelSpec
from llmfit.units import parse_bytes


def registry(presets: Path | None) -> Registry:
    reg = load_registry(presets)
    if reg.warnings:
        from llmfit.cli.common import warn

        for message in reg.warnings:
            warn(message)
    return reg


def resolve_model(name: str, reg: Registry) -> ModelSpec:
    """A preset name or alias (case-insensitive). Model files and Hub ids are handled by readers.resolve."""
    # Fast path, same precedence as readers.resolve (a bare preset name stays a preset): importing the
    # file readers costs ~14 ms of start-up that a preset name never needs.
    if not name.startswith((".", "/", "~")) and "\\" not in name \
            and not name.lower().endswith((".json", ".gguf", ".safetensors")):
        try:
            return reg.model(name)
        except UnknownPresetError:
            pass
    try:
        from llmfit.readers.resolve import looks_like_file_or_repo, resolve_model_source
    except ModuleNotFoundError:
        looks_like_file_or_repo = None  # type: ignore[assignment]
    if looks_like_file_or_repo is not None and looks_like_file_or_repo(name, reg):
        return resolve_model_source(name, reg)
    return reg.model(name)


def resolve_gpu(name: str | None, reg: Registry, gpu_memory: str | None) -> tuple[GpuSpec, int]:
    """`--gpu h100-80x8` -> (the H100 preset, 8); `--gpu-memory 80GiB` alone -> an unnamed device."""
    if gpu_memory is not None:
        memory = parse_bytes(gpu_memory, what="--gpu-memory")
        if name is None:
            return GpuSpec(name=f"custom ({gpu_memory})", memory=memory, source="--gpu-memory"), 1
        base, count = split_gpu_count(name)
        gpu = reg.gpu(base)
        return replace(gpu, memory=memory, gpu_memory_share=None), count
    if name is None:
        raise UnitError("give a GPU with --gpu NAME (e.g. a100-80, h100-80x8) or --gpu-memory SIZE")
    base, count = split_gpu_count(name)
    try:
        return reg.gpu(base), count
    except UnknownPresetError:
        if base != name:
            raise
        raise


def resolve_format(name: str) -> WeightFormat:
    try:
        return get_format(name)
    except KeyError:
        import difflib

        close = difflib.get_close_matches(name.lower(), list(FORMATS), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise LlmfitError(
            f"unknown --dtype {name!r}{hint} (allowed: fp32 fp16 bf16 int8-raw int4-raw int8 int4 gptq awq "
            "nf4 nf4-nodq fp8 mxfp4 q8_0 q6_k q5_k_m q4_k_m q4_0 q3_k_m q2_k, gptq-g32 style group suffixes, or all)"
        ) from None


def model_or_params(model: str | None, params: str | None, reg: Registry) -> tuple[ModelSpec | None, int | None]:
    """MODEL, or a bare parameter count with --params (the what-if of design.md): exactly one of them."""
    from llmfit.errors import SpecError
    from llmfit.units import parse_count

    if model is None and params is None:
        raise SpecError("give a MODEL (preset, config.json, snapshot folder, .gguf, repo id) or --params N")
    if model is not None and params is not None:
        raise SpecError("give either a MODEL or --params, not both")
    if model is not None:
        return resolve_model(model, reg), None
    assert params is not None
    return None, parse_count(params, what="--params")
