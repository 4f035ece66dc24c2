"""llama.cpp: no memory fraction; -ngl layers on the GPU, the rest in RAM (llmfit/engine/llamacpp.py)."""

from __future__ import annotations

from typing import Any, ClassVar

from llmfit.engine.engines.base import Engine, EngineRule
from llmfit.engine.formats import WeightFormat
from llmfit.engine.serving import Deployment, FitResult, ServingOptions
from llmfit.errors import SpecError
from llmfit.specs import GpuSpec, ModelSpec


class LlamaCppEngine(Engine):
    name: ClassVar[str] = "llama.cpp"
    display: ClassVar[str] = "llama.cpp"
    vendors: ClassVar[tuple[str, ...]] = ("nvidia", "amd", "apple", "intel", "other")

    def default_memory_fraction(self, gpu: GpuSpec, tp: int, pp: int = 1, version: str | None = None) -> float:
        return 1.0

    def rule(self, spec: ModelSpec | None, gpu: GpuSpec, fmt: WeightFormat, tp: int, pp: int,
             options: ServingOptions, memory_fraction: float | None) -> EngineRule:
        raise SpecError("llama.cpp has no paged-pool budget rule: use `fit --engine llama.cpp`")

    def fit(self, spec: ModelSpec | None, gpu: GpuSpec, fmt: WeightFormat, deployment: Deployment,
            options: ServingOptions, *, memory_fraction: float | None = None,
            params: int | None = None) -> FitResult:
        raise SpecError("llama.cpp plans layers and buffers, not a paged pool: use `fit --engine llama.cpp`")

    def cache_policy(self, version: str | None = None) -> Any:
        from llmfit.engine.cache_policy import LlamaCppPolicy

        return LlamaCppPolicy()
