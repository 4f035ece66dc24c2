"""Read the engines' data files (configs/engines/*.yaml: version profiles, support matrix) into their models."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError

from llmfit.errors import PresetError

T = TypeVar("T", bound=BaseModel)


def load_engine_file(name: str, model: type[T]) -> T:
    from llmfit.presets import builtin_dir, read_yaml, validation_message

    path = builtin_dir() / "engines" / name
    data = read_yaml(path)
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise PresetError(validation_message(path, error)) from None
