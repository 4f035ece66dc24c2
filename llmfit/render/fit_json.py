"""The one JSON shape of a `fit` answer, whatever the engine (issue 16, docs/output.md).

vLLM, SGLang and TRT-LLM answer with a `FitResult`, llama.cpp with a `LlamaCppResult` (its offload plan);
both become one object with the same keys in the same order: the union of the two results' fields and the
extras `fit` adds (`engine_report`, `speed_bounds`, `launch`, `solved`), null where a figure does not apply.
The key list is derived from the result types, so a field added to either result joins every engine's
object at once, and a key that belongs to neither is a programming error, not a silent extra.
"""

from __future__ import annotations

import dataclasses
from functools import cache
from typing import Any

from llmfit.render.jsonout import dump

# 2: every engine's fit object carries the same keys (docs/output.md, schema_version history).
FIT_SCHEMA_VERSION = 2
# What `fit` adds beside the result object (cli/fit_extras.py).
FIT_EXTRA_KEYS = ("engine_report", "speed_bounds", "launch", "solved")


def _field_names(cls: Any) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


@cache
def fit_keys() -> tuple[str, ...]:
    """schema_version, the serving result's fields, the extras, then llama.cpp's own fields."""
    from llmfit.engine.llamacpp import LlamaCppResult
    from llmfit.engine.serving import FitResult

    keys = ["schema_version", *_field_names(FitResult), *FIT_EXTRA_KEYS]
    keys += [name for name in _field_names(LlamaCppResult) if name not in keys]
    return tuple(keys)


def fit_object(result: Any, defaults: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """A fit result (either type) and its extras as the fit object: every key of `fit_keys()`, in order.

    `defaults` fill keys the result does not carry (llama.cpp's figures for the common keys); the result's own
    fields win over them, `extra` over both."""
    own = dict(result) if isinstance(result, dict) else dump(result)
    values = {**(defaults or {}), **own, **extra}
    keys = fit_keys()
    unknown = sorted(set(values) - set(keys))
    if unknown:
        raise ValueError(f"fit JSON keys outside the fit schema: {', '.join(unknown)}")
    values["schema_version"] = FIT_SCHEMA_VERSION
    return {key: values.get(key) for key in keys}
