"""Result object -> JSON: the object dumped as is, with schema_version first (the CI contract)."""

from __future__ import annotations

import json
from typing import Any

from llmfit.engine.records import to_jsonable

SCHEMA_VERSION = 1


def to_json(result: Any) -> str:
    """A result dataclass, a list of them, or a dict already in JSON form."""
    if isinstance(result, list):
        # design.md: `--dtype all` prints a list of such objects, each with its schema_version.
        payload: Any = [{"schema_version": SCHEMA_VERSION, **_dump(item)} for item in result]
    elif not isinstance(result, dict):
        payload = {"schema_version": SCHEMA_VERSION, **_dump(result)}
    else:
        payload = {"schema_version": SCHEMA_VERSION, **result}
    return json.dumps(payload, indent=2, allow_nan=False)


def _dump(model: Any) -> dict[str, Any]:
    data: dict[str, Any] = to_jsonable(model)
    data.pop("schema_version", None)
    return data
