"""configs/validators.pickle: pydantic's own core schemas of ModelSpec and GpuSpec, so a model file or a user
preset is validated without building them on every run (llmfit/validators.py). It must be current, behave as
TypeAdapter does on valid and invalid input, and never be trusted when it does not match."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pydantic_core
import pytest

from llmfit import validators
from llmfit.engine.records import to_data
from llmfit.engine.records import validate as validate_with_pydantic
from llmfit.presets import builtin_dir, load_registry
from llmfit.specs import GpuSpec, ModelSpec


@pytest.fixture
def fresh_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A cache file built now, in a temporary folder, and no validator loaded yet."""
    path = tmp_path / validators.CACHE_NAME
    path.write_bytes(pickle.dumps(validators.build()))
    monkeypatch.setattr(validators, "_cache_path", lambda: path)
    monkeypatch.setattr(validators, "_LOADED", [])
    monkeypatch.setattr(validators, "_VALIDATORS", {})
    return path


def test_the_committed_cache_is_current() -> None:
    data = pickle.loads((builtin_dir() / validators.CACHE_NAME).read_bytes())
    assert data["source_key"] == validators.source_key(), (
        "configs/validators.pickle is stale (a spec module changed): run `make presets-index`")
    assert set(data["schemas"]) == {f"{c.__module__}:{c.__qualname__}" for c in validators.cached_classes()}


def _model_fields() -> dict[str, Any]:
    spec = load_registry().model("llama-3.1-8b")
    fields = to_data(spec)
    fields.pop("$")
    return {key: value for key, value in fields.items() if not isinstance(value, dict)}


BAD_MODELS = [
    {"num_hidden_layers": True},         # bool is not a count
    {"num_hidden_layers": "32"},         # nor is a string
    {"num_hidden_layers": 10**9},        # beyond limits.MAX_LAYERS
    {"hidden_size": -1},
    {"hiden_size": 4096},                # a typo: extra fields are refused
    {"torch_dtype": "float8"},
]


@pytest.mark.parametrize("change", [{}, *BAD_MODELS])
def test_cached_validator_answers_as_pydantic_does(fresh_cache: Path, change: dict[str, Any]) -> None:
    data = {**_model_fields(), **change}

    def outcome(validate: Any) -> Any:
        try:
            return validate(ModelSpec, dict(data))
        except pydantic_core.ValidationError as error:
            return [(e["loc"], e["type"], e["msg"]) for e in error.errors()]

    cached = outcome(validators.validate)
    assert validators._validator(ModelSpec) is not None  # the cached path ran
    assert cached == outcome(validate_with_pydantic)
    assert isinstance(cached, ModelSpec) == (change == {})


@pytest.mark.parametrize("memory", ["80 GiB", 96, True, "96 parsecs"])
def test_gpu_sizes_from_a_file_need_their_unit_through_the_cache(fresh_cache: Path, memory: Any) -> None:
    data = {"name": "mine", "memory": memory, "source": "test"}

    def outcome(validate: Any) -> Any:
        try:
            return validate(GpuSpec, dict(data), context={"source": "file"}).memory
        except pydantic_core.ValidationError as error:
            return [(e["loc"], e["msg"]) for e in error.errors()]

    assert outcome(validators.validate) == outcome(validate_with_pydantic)
    assert (outcome(validators.validate) == 80 * 2**30) == (memory == "80 GiB")


@pytest.mark.parametrize("content", [b"not a pickle", b""])
def test_a_broken_cache_falls_back_to_pydantic(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                               content: bytes) -> None:
    path = tmp_path / validators.CACHE_NAME
    path.write_bytes(content)
    monkeypatch.setattr(validators, "_cache_path", lambda: path)
    monkeypatch.setattr(validators, "_LOADED", [])
    monkeypatch.setattr(validators, "_VALIDATORS", {})
    assert validators._validator(ModelSpec) is None
    assert validators.validate(ModelSpec, _model_fields()).num_hidden_layers == 32


def test_a_cache_of_other_sources_or_another_pydantic_core_is_not_used(fresh_cache: Path) -> None:
    for stale in ({"source_key": "0" * 64}, {"pydantic_core": "0.0.0"}):
        data = {**pickle.loads(fresh_cache.read_bytes()), **stale}
        fresh_cache.write_bytes(pickle.dumps(data))
        validators._LOADED.clear()
        validators._VALIDATORS.clear()
        assert validators._validator(ModelSpec) is None
