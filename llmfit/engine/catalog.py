"""Preset summaries for `llmfit presets list/show`: computed vs published counts, active parameters.

Pure: takes validated specs (and where each came from, as a string), returns frozen result objects.
Active parameters of a mixture of experts are what one token runs through: every non-expert tensor
(embeddings and lm_head included) plus the top-k routed experts and the shared experts, the
convention of Mixtral's "12.9B active" (count_params.active_params).
"""

from __future__ import annotations

from llmfit.engine.params import ParamCount, count_params
from llmfit.engine.records import record
from llmfit.specs import GpuSpec, ModelSpec


@record
class ModelEntry:
    name: str
    hf_id: str | None
    family: str | None
    architecture: str | None
    total_params: int
    active_params: int
    published_params: int | None
    params_match: bool | None  # computed == published (None: no exact published count)
    params_difference: int | None  # computed - published
    is_moe: bool
    max_position_embeddings: int
    source: str
    origin: str  # "built-in", a user preset file, or the model file read


@record
class GpuEntry:
    name: str
    display_name: str | None
    vendor: str
    memory_bytes: int
    usable_memory_bytes: int  # all of it, or the documented GPU share of unified memory
    unified_memory: bool
    memory_bandwidth_bytes_per_s: int | None
    price_per_hour: float | None
    source: str
    origin: str


@record
class PresetList:
    models: list[ModelEntry]
    gpus: list[GpuEntry]


@record
class ModelDetail:
    """`presets show MODEL`: the entry, the count by component, and every spec field."""

    kind: str = "model"
    entry: ModelEntry
    components: ParamCount
    spec: ModelSpec


@record
class GpuDetail:
    kind: str = "gpu"
    entry: GpuEntry
    spec: GpuSpec


def model_entry(spec: ModelSpec, origin: str) -> ModelEntry:
    counts = count_params(spec)
    published = spec.published_params
    return ModelEntry(
        name=spec.name, hf_id=spec.hf_id, family=spec.family, architecture=spec.architecture,
        total_params=counts.total_params, active_params=counts.active_params, published_params=published,
        params_match=None if published is None else published == counts.total_params,
        params_difference=None if published is None else counts.total_params - published, is_moe=spec.is_moe,
        max_position_embeddings=spec.max_position_embeddings, source=spec.source, origin=origin,
    )


def gpu_entry(gpu: GpuSpec, origin: str) -> GpuEntry:
    return GpuEntry(
        name=gpu.name, display_name=gpu.display_name, vendor=gpu.vendor, memory_bytes=gpu.memory,
        usable_memory_bytes=gpu.usable_memory_bytes, unified_memory=gpu.unified_memory,
        memory_bandwidth_bytes_per_s=gpu.memory_bandwidth_bytes_per_s, price_per_hour=gpu.price_per_hour,
        source=gpu.source, origin=origin,
    )


def model_detail(spec: ModelSpec, origin: str) -> ModelDetail:
    return ModelDetail(entry=model_entry(spec, origin), components=count_params(spec), spec=spec)


def gpu_detail(gpu: GpuSpec, origin: str) -> GpuDetail:
    return GpuDetail(entry=gpu_entry(gpu, origin), spec=gpu)


def matches(text: str, *fields: str | None) -> bool:
    """Case-insensitive substring filter over a preset's names and labels."""
    needle = text.strip().lower()
    return any(needle in field.lower() for field in fields if field)
