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
import inspect
import operator
from enum import Enum
from typing import TYPE_CHECKING, Any, TypeVar, dataclass_transform, overload

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["FORBID_EXTRA", "BeforeCheck", "Check", "from_data", "non_defaults", "record", "replace", "to_data",
           "to_jsonable", "validate"]

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
        # The constraints go into the type's own core schema, as pydantic puts a Field's there (and with the same
        # messages); through a Field for any other schema. (Direct: a ModelSpec adapter builds ~15 % faster.)
        schema = handler(source)
        if set(self.constraints) <= _SCHEMA_KEYS.get(schema.get("type"), frozenset()):
            return {**schema, **self.constraints}
        from typing import Annotated

        from pydantic import Field

        return handler.generate_schema(Annotated[source, Field(**self.constraints)])


_NUMBER_KEYS = frozenset({"gt", "ge", "lt", "le", "strict", "multiple_of"})
_SCHEMA_KEYS: dict[object, frozenset[str]] = {
    "int": _NUMBER_KEYS, "float": _NUMBER_KEYS | {"allow_inf_nan"},
    "str": frozenset({"pattern", "min_length", "max_length", "strict"}),
    "list": frozenset({"min_length", "max_length", "strict"}),
    "tuple": frozenset({"min_length", "max_length", "strict"}),
}


class BeforeCheck:
    """A plain function run on the raw value before the type's own validation, with pydantic's
    ValidationInfo (its `context`), as pydantic's BeforeValidator; built only when pydantic asks."""

    __slots__ = ("function",)

    def __init__(self, function: Callable[[Any, Any], Any]) -> None:
        self.function = function

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        return core_schema.with_info_before_validator_function(self.function, handler(source))


# --- record: a frozen, keyword-only dataclass, cheap to define ------------------------------------------------
# `@record` makes what `@dataclass(frozen=True, kw_only=True)` makes, as far as anything here looks: real
# `dataclasses.Field`s in `__dataclass_fields__` (dataclasses.fields / replace / asdict / is_dataclass and
# pydantic see a frozen stdlib dataclass), a keyword-only `__init__` that calls `__post_init__`, field-wise
# `__eq__` and `__hash__`, a `__repr__`, and FrozenInstanceError on assignment. The stdlib compiles six methods
# per class at import (~0.4 ms a class; with ~70 classes on the path of `fit`, a third of llmfit's start-up);
# a record compiles nothing at import: __eq__/__hash__ use operator.attrgetter, __init__ is generic until the
# class has been built 64 times (then it is compiled once, for a sweep's millions of rows). ClassVar
# annotations are class attributes, as in a dataclass. Not supported (use @dataclass): slots, InitVar, order,
# init=False fields.


@overload
def record(cls: type[T], /) -> type[T]: ...


@overload
def record(*, kw_only: bool = True) -> Callable[[type[T]], type[T]]: ...


@dataclass_transform(kw_only_default=True, frozen_default=True, field_specifiers=(dataclasses.field,))
def record(cls: type[T] | None = None, /, *, kw_only: bool = True) -> Any:
    """Class decorator: a frozen, keyword-only dataclass (see above); `@record(kw_only=False)` takes its fields
    positionally too, as `@dataclass(frozen=True)`."""
    if cls is None:
        return lambda target: _record(target, kw_only)
    return _record(cls, kw_only)


def _record(cls: type[T], kw_only: bool) -> type[T]:
    own = inspect.get_annotations(cls)  # this class's own, as strings (from __future__ import annotations)
    fields: dict[str, dataclasses.Field[Any]] = {}
    for base in reversed(cls.__mro__[1:]):
        fields.update({name: item for name, item in getattr(base, "__dataclass_fields__", {}).items()
                       if item._field_type is dataclasses._FIELD})  # type: ignore[attr-defined]
    for name, annotation in own.items():
        text = str(annotation)
        if text.startswith(("ClassVar", "typing.ClassVar")):
            continue  # a class attribute, not a field (dataclasses.fields leaves it out too)
        if text.startswith(("InitVar", "dataclasses.InitVar")):
            raise TypeError(f"{cls.__name__}.{name}: @record has no InitVar fields; use @dataclass")
        value = cls.__dict__.get(name, dataclasses.MISSING)
        if isinstance(value, dataclasses.Field):
            item = value
            if item.default is dataclasses.MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, item.default)
        else:
            if isinstance(value, (list, dict, set)):
                raise ValueError(f"mutable default {type(value)} for field {name} is not allowed: use default_factory")
            item = dataclasses.field(default=value)
        item.name, item.type, item.kw_only = name, annotation, kw_only
        item._field_type = dataclasses._FIELD  # type: ignore[attr-defined]
        fields[name] = item
    if "self" in fields or any(name.startswith("__") for name in fields):
        raise TypeError(f"{cls.__name__}: a @record field is not named self or __anything")
    names = tuple(fields)
    for attribute, value in (("__dataclass_fields__", fields), ("__dataclass_params__", _PARAMS),
                             ("__match_args__", () if kw_only else names), ("__record_names__", names)):
        setattr(cls, attribute, value)
    # __eq__ and __hash__ over the field tuple, as the stdlib's (attrgetter: C, nothing to compile); __init__ is
    # a generic one until the class has been built _COMPILE_AFTER times, then the compiled one (most classes a
    # run imports are built a few times, if at all; a sweep's rows are built a million times).
    getter: Callable[[Any], Any] = (operator.attrgetter(*names) if len(names) > 1
                                    else lambda obj: tuple(getattr(obj, name) for name in names))

    def __eq__(self: Any, other: Any) -> Any:
        if other.__class__ is self.__class__:
            return getter(self) == getter(other)
        return NotImplemented

    def __hash__(self: Any) -> int:
        return hash(getter(self))

    for method, function in (("__init__", _generic_init(cls, kw_only)), ("__eq__", __eq__), ("__hash__", __hash__)):
        function.__qualname__ = f"{cls.__qualname__}.{method}"
        setattr(cls, method, function)
    for method in ("__repr__", "__setattr__", "__delattr__"):
        if method not in cls.__dict__:
            setattr(cls, method, _METHODS[method])
    return cls


_COMPILE_AFTER = 64


def _generic_init(cls: type, kw_only: bool) -> Any:
    """An __init__ for `cls` that needs no compiling: the fields' defaults, then the arguments, checked as a
    generated one checks them; after _COMPILE_AFTER calls it compiles the generated one and hands over."""
    fields: dict[str, dataclasses.Field[Any]] = cls.__dataclass_fields__  # type: ignore[attr-defined]
    names = tuple(fields)
    allowed = frozenset(names)
    defaults = {name: item.default for name, item in fields.items() if item.default is not dataclasses.MISSING}
    factories = tuple((name, item.default_factory) for name, item in fields.items()
                      if item.default_factory is not dataclasses.MISSING)
    required = frozenset(allowed - defaults.keys() - {name for name, _ in factories})
    post_init = hasattr(cls, "__post_init__")
    calls = [0]

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        calls[0] += 1
        if calls[0] > _COMPILE_AFTER and cls.__dict__["__init__"] is __init__:
            _compile_init(cls, kw_only)
            cls.__dict__["__init__"](self, *args, **kwargs)
            return
        if args:
            if kw_only or len(args) > len(names):
                raise TypeError(f"{cls.__qualname__}.__init__() takes {0 if kw_only else len(names)} positional "
                                f"arguments but {len(args)} were given")
            for name, value in zip(names, args, strict=False):
                if name in kwargs:
                    raise TypeError(f"{cls.__qualname__}.__init__() got multiple values for argument {name!r}")
                kwargs[name] = value
        if not allowed.issuperset(kwargs):
            unknown = next(key for key in kwargs if key not in allowed)
            raise TypeError(f"{cls.__qualname__}.__init__() got an unexpected keyword argument {unknown!r}")
        if not required.issubset(kwargs):
            missing = ", ".join(repr(name) for name in names if name in required and name not in kwargs)
            raise TypeError(f"{cls.__qualname__}.__init__() missing required argument(s): {missing}")
        values = self.__dict__
        values.update(defaults)
        for name, factory in factories:
            if name not in kwargs:
                values[name] = factory()
        values.update(kwargs)
        if post_init:
            self.__post_init__()

    return __init__


def _compile_init(cls: type, kw_only: bool) -> None:
    """The generated __init__ of a record class, as the stdlib's: keyword-only (or positional) arguments with
    the fields' defaults, filling the instance's __dict__, then __post_init__."""
    fields: dict[str, dataclasses.Field[Any]] = cls.__dataclass_fields__  # type: ignore[attr-defined]
    namespace: dict[str, Any] = {"__MISSING": dataclasses.MISSING}
    params, lines = [], []
    for index, item in enumerate(fields.values()):
        if item.default is not dataclasses.MISSING:
            namespace[f"__d{index}"] = item.default
            params.append(f"{item.name}=__d{index}")
            lines.append(f" __d[{item.name!r}] = {item.name}")
        elif item.default_factory is not dataclasses.MISSING:
            namespace[f"__f{index}"] = item.default_factory
            params.append(f"{item.name}=__MISSING")
            lines.append(f" __d[{item.name!r}] = __f{index}() if {item.name} is __MISSING else {item.name}")
        else:
            params.append(item.name)
            lines.append(f" __d[{item.name!r}] = {item.name}")
    post = " self.__post_init__()\n" if hasattr(cls, "__post_init__") else ""
    star = ", *, " if kw_only else ", "
    source = (f"def __init__(self{star if params else ''}{', '.join(params)}):\n __d = self.__dict__\n"
              + "".join(line + "\n" for line in lines) + post)
    exec(source, namespace)
    namespace["__init__"].__qualname__ = f"{cls.__qualname__}.__init__"
    setattr(cls, "__init__", namespace["__init__"])  # noqa: B010 - a method assigned by name, as the stdlib does


def _repr(self: Any) -> str:
    shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__record_names__)
    return f"{type(self).__qualname__}({shown})"


def _frozen(self: Any, name: str, *value: Any) -> None:
    raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")


_METHODS: dict[str, Any] = {"__repr__": _repr, "__setattr__": _frozen, "__delattr__": _frozen}


@dataclasses.dataclass(frozen=True, kw_only=True)
class _Probe:
    """The stdlib's parameters of a frozen dataclass, which @record classes carry."""


_PARAMS = _Probe.__dataclass_params__  # type: ignore[attr-defined]


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
