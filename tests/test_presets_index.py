"""configs/index.json (llmfit/presets_index.py) is the built-in presets, validated: it must be current.

The index is regenerated here in memory from the YAML files, through yaml and pydantic, and compared with the
committed file, so an edit to a preset (or to a spec type's fields) without `make presets-index` fails here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from llmfit import presets_index
from llmfit.engine.records import from_data
from llmfit.presets import builtin_dir, load_preset, load_registry
from llmfit.specs import GpuSpec, ModelSpec

STALE = "configs/index.json is stale: run `make presets-index` (python -m llmfit.presets_index) and commit it"


@pytest.fixture(scope="module")
def built() -> dict[str, list]:
    return presets_index.build()["entries"]


def test_the_committed_index_is_current(built: dict[str, list]) -> None:
    committed = json.loads((builtin_dir() / presets_index.INDEX_NAME).read_text(encoding="utf-8"))["entries"]
    assert sorted(committed) == sorted(built), STALE
    stale = [key for key in built if committed[key] != built[key]]
    assert not stale, f"{STALE} (changed: {', '.join(stale[:5])})"


def test_every_entry_decodes_to_the_validated_object(built: dict[str, list]) -> None:
    root = builtin_dir()
    for key, (_, _, value) in built.items():
        decoded = from_data(json.loads(value))
        if key.startswith(("models/", "gpus/")):
            model = ModelSpec if key.startswith("models/") else GpuSpec
            path = root / key
            assert decoded == load_preset(path, model, default_name=path.stem.lower(), use_index=False), key
        assert presets_index.lookup(root / key, type(decoded)) == decoded, key


def test_a_changed_file_is_validated_not_read_from_the_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = builtin_dir()
    copy = tmp_path / "configs"
    (copy / "gpus").mkdir(parents=True)
    (copy / presets_index.INDEX_NAME).write_bytes((root / presets_index.INDEX_NAME).read_bytes())
    text = (root / "gpus" / "a100-80.yaml").read_text(encoding="utf-8")
    (copy / "gpus" / "a100-80.yaml").write_text(text, encoding="utf-8")
    monkeypatch.setattr("llmfit.presets.builtin_dir", lambda: copy)
    monkeypatch.setattr(presets_index, "_INDEX", [])
    assert presets_index.lookup(copy / "gpus" / "a100-80.yaml", GpuSpec) is not None
    (copy / "gpus" / "a100-80.yaml").write_text(text.replace("notes:", "# edited\nnotes:", 1) + "\n",
                                                encoding="utf-8")
    assert presets_index.lookup(copy / "gpus" / "a100-80.yaml", GpuSpec) is None  # CRC differs: validate
    assert presets_index.lookup(copy / "gpus" / "a100-80.yaml", ModelSpec) is None  # wrong type


def test_a_built_in_preset_imports_neither_yaml_nor_pydantic() -> None:
    # A fresh interpreter: the registry look-up of built-ins and the engine data go through the index.
    code = ("import sys; from llmfit.presets import load_registry; r = load_registry(); r.model('70b'); "
            "r.gpu('a100-80'); from llmfit.engine.engine_data import vllm_profiles, support_matrix; "
            "vllm_profiles(); support_matrix(); from llmfit.training_recipes import load_recipes; load_recipes(); "
            "print(sorted(m for m in ('yaml', 'pydantic', 'pydantic_core', 'numpy', 'rich') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


def test_registry_answers_match_the_validated_files() -> None:
    registry = load_registry()
    spec = registry.model("llama-3.1-70b")
    path = builtin_dir() / "models" / "llama-3.1-70b.yaml"
    assert spec == load_preset(path, ModelSpec, default_name="llama-3.1-70b", use_index=False)
