"""The serving engine as a type: each engine owns its version profiles, defaults, budget rule, cache policy,
hardware/format support, launch command and start-up log format. Code that needs an engine's figure asks
the engine (`get_engine(name)`), never branches on its name."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

from llmfit.engine.formats import WeightFormat
from llmfit.engine.records import record
from llmfit.engine.runtime import OverheadLine
from llmfit.engine.serving import Deployment, FitResult, ServingOptions
from llmfit.specs import GpuSpec, ModelSpec

if TYPE_CHECKING:
    from llmfit.engine.emit import LaunchCommand


@record
class EngineRule:
    """What one engine subtracts before the KV pool, per GPU, for one deployment shape."""

    engine: str
    memory_fraction: float  # vLLM: of total memory; SGLang: of memory free after start-up; TRT-LLM: of free memory
    block_size: int
    max_num_seqs: int  # as serving.fit resolves it for this GPU
    overhead_lines: list[OverheadLine]


@record
class ProfileSummary:
    """One version profile as `fit --engine-version list` shows it."""

    engine: str
    profile: str
    label: str
    since: str
    until: str | None
    changes: str


class Engine(ABC):
    """A serving engine. Subclasses: VllmEngine, SglangEngine, TrtLlmEngine, LlamaCppEngine."""

    name: ClassVar[str]  # the --engine value
    display: ClassVar[str]
    vendors: ClassVar[tuple[str, ...]]  # accelerators it drives (installation docs)

    def profiles(self) -> list[ProfileSummary]:
        return []

    def resolve_version(self, version: str | None) -> str:
        """The profile name covering a release number (any '0.9.2'); None = the newest."""
        return version or "latest"

    def default_memory_fraction(self, gpu: GpuSpec, tp: int, pp: int = 1, version: str | None = None) -> float:
        return 0.9

    @abstractmethod
    def rule(self, spec: ModelSpec | None, gpu: GpuSpec, fmt: WeightFormat, tp: int, pp: int,
             options: ServingOptions, memory_fraction: float | None) -> EngineRule:
        """The budget rule for one GPU and shape (the plan sweep calls it once per (GPU, format, shape))."""

    @abstractmethod
    def fit(self, spec: ModelSpec | None, gpu: GpuSpec, fmt: WeightFormat, deployment: Deployment,
            options: ServingOptions, *, memory_fraction: float | None = None,
            params: int | None = None) -> FitResult: ...

    def cache_policy(self, version: str | None = None) -> Any:
        """The engine's cache policy (llmfit/engine/cache_policy.py), or None until it is wired in."""
        return None

    def runs_on(self, gpu: GpuSpec) -> bool:
        return gpu.vendor in self.vendors

    def launch_command(self, result: FitResult, model_id: str, *, memory_fraction: float | None = None,
                       pin_kv_pool: bool = False) -> LaunchCommand:
        raise ValueError(f"no launch command for engine {self.name!r}")

    def engine_report(self, result: FitResult) -> list[tuple[str, str, Any]]:
        """What the engine will print at start-up for this deployment: (fit key, log line, value)."""
        return []
