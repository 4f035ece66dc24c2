"""Read the engines' data files (configs/engines/*.yaml: version profiles, support matrix) into their dataclasses."""

from __future__ import annotations

from typing import TypeVar

from llmfit.errors import PresetError

T = TypeVar("T")


def load_engine_file(name: str, model: type[T]) -> T:
    from pydantic import ValidationError

    from llmfit.engine.records import validate
    from llmfit.presets import builtin_dir, read_yaml, validation_message

    path = builtin_dir() / "engines" / name
    data = read_yaml(path)
    try:
        return validate(model, data)
    except ValidationError as error:
        raise PresetError(validation_message(path, error)) from None
