"""Result object -> JSON: the object dumped as is, with schema_version first (the CI contract)."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

SCHEMA_VERSION = 1


def to_json(result: BaseModel | list[BaseModel] | dict[str, Any]) -> str:
    if isinstance(result, list):
        # design.md: `--dtype all` prints a list of such objects, each with its schema_version.
        payload: Any = [{"schema_version": SCHEMA_VERSION, **_dump(item)} for item in result]
    elif isinstance(result, BaseModel):
        payload = {"schema_version": SCHEMA_VERSION, **_dump(result)}
    else:
        payload = {"schema_version": SCHEMA_VERSION, **result}
    return json.dumps(payload, indent=2, allow_nan=False)


def _dump(model: BaseModel) -> dict[str, Any]:
    data = model.model_dump(mode="json")
    data.pop("schema_version", None)
    return data
