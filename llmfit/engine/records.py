"""Specs and results as frozen stdlib dataclasses, and the few helpers they need (issue 17: start-up).

Inside the engine a spec or a result is a plain `@dataclass(frozen=True, kw_only=True)`: building one costs
what a Python object costs, and importing the engine imports no validation library. Validation happens at
the edges (preset files, model files, engine data, recipes, CLI input), where `validate` hands the data and
the dataclass to pydantic, which validates stdlib dataclasses directly from their annotations. The bounds
ride in the annotations as `Check(...)` markers (pydantic `Field` constraints, built only when pydantic
asks for the schema), so pydantic is imported when something is validated, never before.

- `replace(obj, **changes)`: a copy with some fields changed (dataclasses.replace).
- `to_jsonable(obj)`: what pydantic's `model_dump(mode="json")` gave: every field in definition order,
  nested dataclasses as dicts, tuples and lists as lists, enums as their values, a float field's int as a
  float (pydantic converted an int given to a float field).
- `validate(cls, data, context=...)`: pydantic validation of `data` into `cls`; raises pydantic's
  ValidationError (format it with llmfit.presets.validation_message).
"""

from __future__ import annotations

import dataclasses
from enum import Enum
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["FORBID_EXTRA", "BeforeCheck", "Check", "from_data", "non_defaults", "replace", "to_data", "to_jsonable",
           "validate"]

T = TypeVar("T")

# A dataclass's `__pydantic_config__`: an unknown key is an error naming the field (a typo in a preset is
# not silently ignored). pydantic reads this attribute when it validates a stdlib dataclass.
FORBID_EXTRA: dict[str, Any] = {"extra": "forbid"}

replace = dataclasses.replace


class Check:
    """Field constraints in an annotation (`Annotated[int, Check(gt=0, strict=True)]`): pydantic `Field`
    keyword arguments, turned into a pydantic schema only when pydantic builds a validator."""

    __slots__ = ("constraints",)

    def __init__(self, **constraints: Any) -> None:
        self.constraints = constraints

    def __repr__(self) -> str:
        return f"Check({', '.join(f'{k}={v!r}' for k, v in self.constraints.items())})"

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        from typing import Annotated

        from pydantic import Field

        return handler.generate_schema(Annotated[source, Field(**self.constraints)])


class BeforeCheck:
    """A plain function run on the raw value before the type's own validation, with pydantic's
    ValidationInfo (its `context`), as pydantic's BeforeValidator; built only when pydantic asks."""

    __slots__ = ("function",)

    def __init__(self, function: Callable[[Any, Any], Any]) -> None:
        self.function = function

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        return core_schema.with_info_before_validator_function(self.function, handler(source))


_ADAPTERS: dict[Any, Any] = {}


def validate(cls: type[T], data: Any, *, context: dict[str, Any] | None = None) -> T:
    """`data` validated into `cls` by pydantic (imported here, at the edge, and only here)."""
    adapter = _ADAPTERS.get(cls)
    if adapter is None:
        from pydantic import TypeAdapter

        adapter = _ADAPTERS[cls] = TypeAdapter(cls)
    result: T = adapter.validate_python(data, context=context)
    return result


# class -> ((field name, is a float field), ...): read once per class from the annotations (strings, as every
# module here uses `from __future__ import annotations`).
_FIELDS: dict[type, tuple[tuple[str, bool], ...]] = {}
_FLOAT_ANNOTATIONS = frozenset({"float", "float | None", "None | float"})


def _fields(cls: type) -> tuple[tuple[str, bool], ...]:
    found = _FIELDS.get(cls)
    if found is None:
        found = _FIELDS[cls] = tuple((f.name, str(f.type).replace("Optional[float]", "float | None")
                                      in _FLOAT_ANNOTATIONS) for f in dataclasses.fields(cls))
    return found


def to_jsonable(obj: Any) -> Any:
    """A dataclass (or a list, tuple, dict of them) as JSON-ready plain data, as model_dump(mode="json")."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out: dict[str, Any] = {}
        for name, is_float in _fields(type(obj)):
            value = getattr(obj, name)
            if is_float and type(value) is int:
                out[name] = float(value)
            elif value is None or type(value) in (int, str, float, bool):
                out[name] = value
            else:
                out[name] = to_jsonable(value)
        return out
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(item) for item in obj]
    if isinstance(obj, dict):
        return {(key.value if isinstance(key, Enum) else key): to_jsonable(value) for key, value in obj.items()}
    if isinstance(obj, Enum):
        return obj.value
    return obj


def non_defaults(obj: Any) -> dict[str, Any]:
    """The fields of a dataclass whose value differs from the field's default, in definition order."""
    out: dict[str, Any] = {}
    for item in dataclasses.fields(obj):
        value = getattr(obj, item.name)
        if item.default is not dataclasses.MISSING:
            default: Any = item.default
        elif item.default_factory is not dataclasses.MISSING:
            default = item.default_factory()
        else:
            out[item.name] = value
            continue
        if value != default:
            out[item.name] = value
    return out


# --- a lossless JSON form (the built-in preset index, llmfit/presets_index.py) -------------------------------
# Each dataclass carries its type ("$": "module:Class"), tuples and enums are tagged, so `from_data(to_data(x))
# == x` for the types specs and engine data use (None, bool, int, float, str, lists, tuples, str-keyed dicts).


def to_data(obj: Any) -> Any:
    """`obj` as JSON-ready data that `from_data` turns back into an equal object (a dataclass field that
    holds its default is left out: the constructor gives it back)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out: dict[str, Any] = {"$": f"{type(obj).__module__}:{type(obj).__qualname__}"}
        for name, value in non_defaults(obj).items():
            out[name] = to_data(value)
        return out
    if isinstance(obj, Enum):
        return {"$enum": f"{type(obj).__module__}:{type(obj).__qualname__}", "value": obj.value}
    if isinstance(obj, tuple):
        return {"$tuple": [to_data(item) for item in obj]}
    if isinstance(obj, list):
        return [to_data(item) for item in obj]
    if isinstance(obj, dict):
        if not all(isinstance(key, str) and not key.startswith("$") for key in obj):
            raise TypeError(f"cannot encode a dict with keys {list(obj)[:3]!r}")
        return {key: to_data(value) for key, value in obj.items()}
    if obj is None or type(obj) in (bool, int, float, str):
        return obj
    raise TypeError(f"cannot encode {type(obj).__name__}")


def _resolve(tag: str) -> Any:
    import importlib

    module, _, name = tag.partition(":")
    if module != "llmfit" and not module.startswith("llmfit."):
        raise TypeError(f"not an llmfit type: {tag!r}")
    target: Any = importlib.import_module(module)
    for part in name.split("."):
        target = getattr(target, part)
    return target


def from_data(data: Any) -> Any:
    """The object `to_data` encoded (dataclasses rebuilt through their constructors)."""
    if isinstance(data, list):
        return [from_data(item) for item in data]
    if not isinstance(data, dict):
        return data
    tag = data.get("$")
    if tag is not None:
        return _resolve(tag)(**{key: from_data(value) for key, value in data.items() if key != "$"})
    if "$tuple" in data:
        return tuple(from_data(item) for item in data["$tuple"])
    if "$enum" in data:
        return _resolve(data["$enum"])(data["value"])
    return {key: from_data(value) for key, value in data.items()}
