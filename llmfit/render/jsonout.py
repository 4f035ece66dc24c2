"""Result object -> JSON: the object dumped as is, with schema_version first (the CI contract)."""

from __future__ import annotations

import json
from typing import Any

from llmfit.engine.records import to_jsonable

SCHEMA_VERSION = 1


def to_json(result: Any) -> str:
    """A result, or a list of results (design.md: `--dtype all` prints a list of such objects, each with its
    schema_version); a dict is an object already shaped for JSON and keeps its own schema_version if it has one."""
    if isinstance(result, list):
        payload: Any = [_with_version(item) for item in result]
    else:
        payload = _with_version(result)
    return json.dumps(payload, indent=2, allow_nan=False)


def _with_version(item: Any) -> dict[str, Any]:
    if isinstance(item, dict):
        return {"schema_version": SCHEMA_VERSION, **item}
    return {"schema_version": SCHEMA_VERSION, **dump(item)}


def dump(model: Any) -> dict[str, Any]:
    """A result object (a dataclass) as JSON-ready data, without its own schema_version (the caller puts one
    first)."""
    data: dict[str, Any] = to_jsonable(model)
    data.pop("schema_version", None)
    return data
