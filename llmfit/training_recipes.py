"""Loading the trainer recipes (configs/recipes/*.yaml) into llmfit.engine.recipes.Recipe objects.

The files ship in the wheel with the presets (pyproject maps configs/ to llmfit/_configs). A recipe that fails
validation is a PresetError naming the file and the field (exit 2).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from llmfit.engine.recipes import Recipe
from llmfit.errors import PresetError, SpecError
from llmfit.presets import builtin_dir, load_preset


def recipes_dir() -> Path:
    return builtin_dir() / "recipes"


@lru_cache(maxsize=1)
def load_recipes() -> dict[str, Recipe]:
    """Every recipe by name (hf, trl, torchtune, unsloth, axolotl, deepspeed, qlora-paper)."""
    out: dict[str, Recipe] = {}
    for path in sorted(recipes_dir().glob("*.yaml")):
        recipe = load_preset(path, Recipe, default_name=path.stem)  # safe YAML, pydantic-validated
        if recipe.name != path.stem:
            raise PresetError(f"{path}: recipe name {recipe.name!r} differs from the file name")
        out[recipe.name] = recipe
    return out


def recipe_names() -> list[str]:
    return list(load_recipes())


def get_recipe(name: str) -> Recipe:
    recipes = load_recipes()
    key = name.strip().lower()
    if key not in recipes:
        raise SpecError(f"unknown --recipe {name!r} (allowed: {', '.join(recipes)})")
    return recipes[key]
