"""Validation at the edges without building pydantic's schema on every run (issue 17: model files).

`records.validate` hands a dataclass to pydantic's TypeAdapter, which imports pydantic (~30 ms) and then
generates the dataclass's core schema from its annotations (ModelSpec: ~120 ms, most of a `fit FILE.gguf`).
The schema is the same on every run: it depends only on the spec classes' source and on pydantic-core.
So `make presets-index` also writes configs/validators.pickle: the core schemas of the classes model files
and user presets validate into, keyed by the SHA-256 of the modules those schemas are built from and by the
pydantic-core version. A run whose key matches builds a pydantic_core.SchemaValidator from the stored schema
(~0.2 ms; pydantic itself is not imported); any mismatch (an edited spec module, another pydantic-core) falls
back to TypeAdapter, so a stale cache is slower, never wrong. Errors are the same `pydantic_core.ValidationError`
(pydantic re-exports that class), with the same messages: the validator is built from the same schema.

The file is a pickle because a core schema holds references to Python callables (the `BeforeCheck` functions,
the dataclasses themselves). It is llmfit's own generated file inside the package, trusted as its code is; no
pickle from a user, a model file or the network is ever loaded (docs/hardening.md).

    make presets-index        # regenerates configs/index.json and configs/validators.pickle
"""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

CACHE_NAME = "validators.pickle"
# The modules a cached schema is built from: the spec classes, their markers and the bounds they read.
_SOURCES = ("specs.py", "engine/records.py", "limits.py", "units.py", "errors.py")

_VALIDATORS: dict[type, Any] = {}
_LOADED: list[dict[str, Any]] = []


def cached_classes() -> tuple[type, ...]:
    """The classes whose schemas the cache holds: what model files and user presets validate into."""
    from llmfit.specs import GpuSpec, ModelSpec

    return (ModelSpec, GpuSpec)


def source_key() -> str:
    """SHA-256 of the modules the schemas are built from."""
    root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for name in _SOURCES:
        digest.update(name.encode() + b"\0" + (root / name).read_bytes() + b"\0")
    return digest.hexdigest()


def _cache_path() -> Path:
    from llmfit.presets import builtin_dir

    return builtin_dir() / CACHE_NAME


def _load() -> dict[str, Any]:
    if not _LOADED:
        import pydantic_core

        entries: dict[str, Any] = {}
        try:
            data = pickle.loads(_cache_path().read_bytes())
            if (isinstance(data, dict) and data.get("source_key") == source_key()
                    and data.get("pydantic_core") == pydantic_core.__version__):
                entries = data.get("schemas", {})
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError, ValueError):
            entries = {}
        _LOADED.append(entries)
    return _LOADED[0]


def _validator(cls: type) -> Any | None:
    found = _VALIDATORS.get(cls)
    if found is None:
        schema = _load().get(f"{cls.__module__}:{cls.__qualname__}")
        if schema is None:
            return None
        from pydantic_core import SchemaValidator

        found = _VALIDATORS[cls] = SchemaValidator(schema)
    return found


def validate(cls: type[T], data: Any, *, context: dict[str, Any] | None = None) -> T:
    """`data` validated into `cls`: through the cached schema when it is current, else records.validate."""
    validator = _validator(cls)
    if validator is None:
        from llmfit.engine.records import validate as validate_with_pydantic

        return validate_with_pydantic(cls, data, context=context)
    result: T = validator.validate_python(data, context=context)
    return result


def build() -> dict[str, Any]:
    """The cache's content, from pydantic's own schemas of `cached_classes()`."""
    import pydantic_core
    from pydantic import TypeAdapter

    return {"source_key": source_key(), "pydantic_core": pydantic_core.__version__,
            "schemas": {f"{cls.__module__}:{cls.__qualname__}": TypeAdapter(cls).core_schema
                        for cls in cached_classes()}}


def main() -> None:
    path = _cache_path()
    path.write_bytes(pickle.dumps(build(), protocol=4))
    print(f"wrote {path} ({len(cached_classes())} schemas)")


if __name__ == "__main__":
    main()
