"""`llmfit presets list/show`, and user preset folders overriding built-ins."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from llmfit.engine.params import count_params
from llmfit.presets import Registry


def test_list_models_and_gpus(cli: Any, registry: Registry) -> None:
    run = cli("presets", "list", "--format", "json")
    assert run.exit_code == 0, run.stderr
    data = run.json()
    assert {m["name"] for m in data["models"]} == set(registry.model_names())
    assert {g["name"] for g in data["gpus"]} == {registry.gpu(n).name for n in registry.gpu_names()}
    for entry in data["models"]:
        if entry["published_params"] is not None:
            assert entry["params_match"], entry["name"]


def test_list_kind_and_filter(cli: Any) -> None:
    data = cli("presets", "list", "--kind", "gpus", "--filter", "H100", "--format", "json").json()
    assert data["models"] == [] and data["gpus"] and all("h100" in g["name"] for g in data["gpus"])
    table = cli("presets", "list", "--kind", "models", "--filter", "no-such-thing")
    assert table.exit_code == 0 and "no preset matches" in table.stdout


def test_show_moe_model_has_active_params_and_sources(cli: Any, registry: Registry) -> None:
    spec = registry.model("mixtral-8x7b-v0.1")
    counts = count_params(spec)
    data = cli("presets", "show", "mixtral-8x7b-v0.1", "--format", "json").json()
    assert data["kind"] == "model" and data["entry"]["active_params"] == counts.active_params
    assert data["entry"]["total_params"] == counts.total_params == spec.published_params
    assert data["spec"]["source"] == spec.source and data["entry"]["origin"] == "built-in"
    text = cli("presets", "show", "mixtral-8x7b-v0.1").stdout
    assert "active per token" in text and "source:" in text


def test_show_gpu_and_unknown(cli: Any) -> None:
    data = cli("presets", "show", "l4", "--format", "json").json()
    # the CUDA total (nvidia-smi: 23034 MiB)
    assert data["kind"] == "gpu" and data["entry"]["memory_bytes"] == round(22.04 * 2**30)
    run = cli("presets", "show", "llama-3.1-8", "--kind", "models")
    assert run.exit_code == 2 and "did you mean" in run.stderr


def test_user_folder_overrides_builtin(cli: Any, tmp_path: Path, registry: Registry) -> None:
    builtin = registry.model("llama-3.1-8b")
    folder = tmp_path / "mine"
    (folder / "models").mkdir(parents=True)
    (folder / "gpus").mkdir()
    mine = {key: value for key, value in dataclasses.asdict(builtin).items()
            if key not in ("name", "checkpoint") and value is not None}
    mine |= {"source": "my own copy", "max_position_embeddings": 4096}
    (folder / "models" / "llama-3.1-8b.yaml").write_text(yaml.safe_dump(mine))
    (folder / "gpus" / "l4.yaml").write_text(yaml.safe_dump({"memory": "20000 MiB", "source": "my L4"}))
    runs: list[tuple[list[str], dict[str, str] | None]] = [(["--presets", str(folder)], None),
                                                          ([], {"LLMFIT_PRESETS": str(folder)})]
    for flags, env in runs:
        model = cli("presets", "show", "llama-3.1-8b", "--format", "json", *flags, env=env).json()
        assert model["spec"]["source"] == "my own copy" and model["entry"]["origin"].endswith("llama-3.1-8b.yaml")
        gpu = cli("presets", "show", "l4", "--kind", "gpus", "--format", "json", *flags, env=env).json()
        assert gpu["entry"]["memory_bytes"] == 20000 * 2**20
        fit = cli("fit", "llama-3.1-8b", "--gpu", "l4", "--format", "json", *flags, env=env).json()
        assert fit["gpu_memory_bytes_per_gpu"] == 20000 * 2**20 and fit["context_tokens"] == 4096
