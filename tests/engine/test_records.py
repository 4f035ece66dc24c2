"""llmfit.engine.records.record behaves as `@dataclass(frozen=True, kw_only=True)` wherever the code looks:
construction (before and after the compiled __init__ takes over), defaults, __post_init__, equality, hashing,
frozenness, replace, inheritance, and the JSON and index forms."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import pytest

from llmfit.engine import records
from llmfit.engine.records import from_data, record, replace, to_data, to_jsonable


@record
class Point:
    x: int
    y: int = 2
    tags: tuple[str, ...] = ()
    notes: list[str] = dataclasses.field(default_factory=list)
    kind: ClassVar[str] = "point"

    def __post_init__(self) -> None:
        if self.x < 0:
            raise ValueError("x must be >= 0")


@record
class Point3(Point):
    z: float = 0.0


@record(kw_only=False)
class Pair:
    a: int
    b: str = "b"


@dataclasses.dataclass(frozen=True)
class StdPair:
    a: int
    b: str = "b"


@dataclasses.dataclass(frozen=True, kw_only=True)
class StdPoint:
    x: int
    y: int = 2
    tags: tuple[str, ...] = ()
    notes: list[str] = dataclasses.field(default_factory=list)


def test_fields_are_what_a_frozen_dataclass_has() -> None:
    assert [f.name for f in dataclasses.fields(Point)] == [f.name for f in dataclasses.fields(StdPoint)]
    assert dataclasses.is_dataclass(Point) and Point.kind == "point"
    assert [f.name for f in dataclasses.fields(Point3)] == ["x", "y", "tags", "notes", "z"]


@pytest.mark.parametrize("builds", [1, records._COMPILE_AFTER + 5])
def test_construction_is_the_same_before_and_after_the_compiled_init(builds: int) -> None:
    @record
    class Local:
        x: int
        y: int = 2
        notes: list[str] = dataclasses.field(default_factory=list)

    for _ in range(builds):
        built = Local(x=1)
    assert (built.x, built.y, built.notes) == (1, 2, [])
    assert Local(x=1).notes is not Local(x=1).notes  # a fresh list per instance
    with pytest.raises(TypeError, match="positional"):
        Local(1)  # type: ignore[misc]
    with pytest.raises(TypeError, match="unexpected keyword argument 'w'"):
        Local(x=1, w=3)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="missing"):
        Local()  # type: ignore[call-arg]


def test_post_init_runs_every_time() -> None:
    for _ in range(records._COMPILE_AFTER + 3):
        with pytest.raises(ValueError, match="x must be"):
            Point(x=-1)


def test_equality_hash_and_frozenness() -> None:
    assert Point(x=1, tags=("a",)) == Point(x=1, tags=("a",)) and Point(x=1) != Point(x=2)
    assert hash(Pair(1, "c")) == hash(Pair(1, "c")) == hash(StdPair(1, "c"))  # the field tuple's hash
    with pytest.raises(TypeError, match="unhashable"):
        hash(Point(x=1))  # a list field, as with a frozen dataclass
    assert Point(x=1) != Point3(x=1)  # another class is never equal, as with dataclasses
    with pytest.raises(dataclasses.FrozenInstanceError):
        Point(x=1).x = 3  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del Point(x=1).y  # type: ignore[misc]


def test_replace_and_positional_records() -> None:
    moved = replace(Point(x=1, y=5), y=7)
    assert (moved.x, moved.y) == (1, 7)
    assert Pair(1) == Pair(a=1, b="b") and Pair(1, "c").b == "c"
    assert repr(Pair(1)) == "Pair(a=1, b='b')"


def test_a_mutable_default_is_refused_as_by_dataclasses() -> None:
    with pytest.raises(ValueError, match="default_factory"):
        @record
        class Bad:
            items: list[int] = []  # noqa: RUF012


def test_json_form_matches_dataclasses_asdict_and_the_index_form_round_trips() -> None:
    point = Point3(x=1, tags=("a", "b"), notes=["n"], z=2)
    assert to_jsonable(point) == {"x": 1, "y": 2, "tags": ["a", "b"], "notes": ["n"], "z": 2.0}
    assert isinstance(to_jsonable(point)["z"], float)  # a float field's int is written as a float
    assert to_jsonable(point) == {**dataclasses.asdict(point), "tags": ["a", "b"], "z": 2.0}
    # The index form (configs/index.json) rebuilds llmfit's own types only.
    from llmfit.presets import load_registry

    gpu = load_registry().gpu("h100-80")
    assert from_data(to_data(gpu)) == gpu
    with pytest.raises(TypeError, match="not an llmfit type"):
        from_data(to_data(point))
