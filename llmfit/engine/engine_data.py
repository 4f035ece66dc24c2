"""The engines' data, as typed objects: version profiles and the support matrix.

The figures live in configs/engines/*.yaml (each with its source); llmfit/readers/engine_data.py reads and
validates them into these dataclasses. The engine code only sees the models (the read is cached, lazy, and the
one place the engine reaches data files).
"""

from __future__ import annotations

import re
from functools import cache
from typing import Annotated, Any, Literal

from llmfit.engine.records import FORBID_EXTRA, BeforeCheck, Check, record
from llmfit.errors import SpecError
from llmfit.units import parse_bytes


def _size(value: object, info: object = None) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        return parse_bytes(value, what="memory")
    raise ValueError("expected a size with a unit, e.g. '0.25 GiB'")


Size = Annotated[int, BeforeCheck(_size)]


def version_tuple(text: str) -> tuple[int, ...]:
    """'v0.9.2' -> (0, 9, 2); refuses anything that is not a dotted release number."""
    cleaned = text.strip().lower().removeprefix("v")
    if not re.fullmatch(r"[0-9]+(\.[0-9]+){0,3}([.+-].*)?", cleaned):
        raise SpecError(f"--engine-version {text!r} is not a release number (e.g. 0.9.2, 0.21, v0.5.3)")
    head = re.match(r"[0-9]+(\.[0-9]+){0,3}", cleaned)
    assert head is not None
    return tuple(int(part) for part in head.group(0).split("."))


@record
class NonTorch:
    """Memory outside torch's allocator per GPU: CUDA context and handles; at TP > 1 the all-reduce buffers,
    which depend on the interconnect (custom all-reduce IPC buffers on NVLink, plain NCCL over PCIe)."""

    __pydantic_config__ = FORBID_EXTRA

    tp1: Size
    nvlink: Size
    pcie: Size
    pp: Size
    source: str

    def bytes_for(self, tp: int, pp: int, interconnect: str | None) -> tuple[int, str]:
        if tp > 1:
            if interconnect == "pcie":
                return self.pcie, f"TP={tp} over PCIe: CUDA context + NCCL (custom all-reduce off)"
            return self.nvlink, (f"TP={tp} over {interconnect or 'NVLink (assumed)'}: CUDA context + custom "
                                 "all-reduce / NCCL buffers")
        if pp > 1:
            return self.pp, f"PP={pp}: CUDA context, NCCL send/recv"
        return self.tp1, "one GPU: CUDA context, cuBLAS handles"


@record
class VersionRange:
    __pydantic_config__ = FORBID_EXTRA

    name: str
    label: str
    since: str
    until: str | None = None
    changes: str

    def covers(self, version: tuple[int, ...]) -> bool:
        low = version_tuple(self.since)
        high = version_tuple(self.until) if self.until is not None else None
        return version >= low and (high is None or version < high)


@record
class VllmProfileData(VersionRange):
    v1: bool
    non_torch: NonTorch
    sampler_working_bytes: int
    sampler_source: str
    triton_topk_buffer: bool
    cuda_graphs_in_budget: bool
    cuda_graphs_switch: str | None = None
    cuda_graphs_source: str
    defaults: dict[str, Any]


@record
class SglangReserveStep:
    __pydantic_config__ = FORBID_EXTRA

    below_mib: int | None
    base_gib: float
    per_parallel_gib: float
    chunked_prefill_size: int
    cuda_graph_max_bs: int


@record
class SglangCapacityClass:
    __pydantic_config__ = FORBID_EXTRA

    below_mib: int | None
    chunked_prefill_size: int
    cuda_graph_max_bs: tuple[int, int]  # tp < 4, tp >= 4


@record
class SglangReserveTerms:
    __pydantic_config__ = FORBID_EXTRA

    constant_mib: float
    per_prefill_token_mib: float
    per_graph_batch_mib: float
    per_parallel_mib: float
    floor_above_60gib_mib: float


@record
class SglangProfileData(VersionRange):
    reserved: list[SglangReserveStep] | None = None
    capacity_classes: list[SglangCapacityClass] | None = None
    reserve_terms: SglangReserveTerms | None = None
    reserved_source: str


@record
class EngineProfiles:
    __pydantic_config__ = FORBID_EXTRA

    engine: str
    source: str
    profiles: list[VllmProfileData] | list[SglangProfileData]
    init_used: NonTorch | None = None


@record
class VllmProfiles(EngineProfiles):
    profiles: list[VllmProfileData]


@record
class SglangProfiles(EngineProfiles):
    profiles: list[SglangProfileData]


Status = Literal["native", "weight-only", "unsupported"]


@record
class SupportRule:
    __pydantic_config__ = FORBID_EXTRA

    engine: list[str] | None = None
    arch: list[str] | None = None
    weight: list[str] | None = None
    kv_dtype: list[str] | None = None
    status: Status
    source: str

    def matches(self, engine: str, arch: str, weight: str, kv_dtype: str) -> bool:
        return all(values is None or "any" in values or value in values for values, value in
                   ((self.engine, engine), (self.arch, arch), (self.weight, weight), (self.kv_dtype, kv_dtype)))


@record
class SupportMatrix:
    __pydantic_config__ = FORBID_EXTRA

    schema_version: int
    architectures: dict[str, list[str]]
    rules: Annotated[list[SupportRule], Check(min_length=1)]


@cache
def vllm_profiles() -> VllmProfiles:
    from llmfit.readers.engine_data import load_engine_file

    return load_engine_file("vllm.yaml", VllmProfiles)


@cache
def sglang_profiles() -> SglangProfiles:
    from llmfit.readers.engine_data import load_engine_file

    return load_engine_file("sglang.yaml", SglangProfiles)


@cache
def support_matrix() -> SupportMatrix:
    from llmfit.readers.engine_data import load_engine_file

    return load_engine_file("support.yaml", SupportMatrix)


def pick_profile(profiles: list[Any], requested: str | None, engine: str) -> Any:
    """The profile covering a release number ('0.9.2' -> the 0.8-0.10 profile); None or 'latest' -> newest.
    A profile's own name ('0.19') is accepted as is."""
    if requested is None or requested.strip().lower() in ("", "latest", "newest"):
        return profiles[-1]
    for profile in profiles:
        if requested.strip().lower().removeprefix("v") == profile.name:
            return profile
    version = version_tuple(requested)
    for profile in profiles:
        if profile.covers(version):
            return profile
    names = ", ".join(f"{p.name} ({p.since}-{p.until or 'newest'})" for p in profiles)
    raise SpecError(f"no {engine} profile covers version {requested!r} (profiles: {names})")
