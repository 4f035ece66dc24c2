"""Read the engines' data files (configs/engines/*.yaml: version profiles, support matrix) into their dataclasses."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from llmfit.errors import PresetError

T = TypeVar("T")


def load_engine_file(name: str, model: type[T]) -> T:
    """A built-in engine data file: from the validated index when it is current, else read and validated."""
    from llmfit.presets import builtin_dir
    from llmfit.presets_index import lookup

    path = builtin_dir() / "engines" / name
    found = lookup(path, model)
    return found if found is not None else validate_engine_file(path, model)


def validate_engine_file(path: Path, model: type[T]) -> T:
    from pydantic_core import ValidationError  # pydantic's, re-exported

    from llmfit.presets import read_yaml, validation_message
    from llmfit.validators import validate

    data = read_yaml(path)
    try:
        return validate(model, data)
    except ValidationError as error:
        raise PresetError(validation_message(path, error)) from None
