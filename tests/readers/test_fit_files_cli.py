"""The issue's done-when: `fit` on a snapshot folder, a .gguf and a cached HF repo id, agreeing with the
preset math for the same architecture (a user preset written from the same config.json fields)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from model_files import (
    TINY_LLAMA,
    TINY_LLAMA_PARAMS,
    make_gptq_snapshot,
    make_snapshot,
    write_gguf,
    write_hf_cache,
)


@pytest.fixture
def tiny_preset_dir(tmp_path: Path) -> Path:
    """The tiny Llama as a user preset (same fields as its config.json)."""
    folder = tmp_path / "presets"
    (folder / "models").mkdir(parents=True)
    fields = {k: v for k, v in TINY_LLAMA.items() if k not in ("architectures", "model_type", "rms_norm_eps")}
    (folder / "models" / "tiny-preset.yaml").write_text(yaml.safe_dump(
        {**fields, "architecture": "LlamaForCausalLM", "source": "test: tiny Llama",
         "published_params": TINY_LLAMA_PARAMS}))
    return folder


def _fit(cli: Any, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    run = cli("fit", *args, "--format", "json", env=env)
    assert run.exit_code == 0, run.stderr
    return run.json()


def test_fit_snapshot_folder_matches_preset(cli: Any, tmp_path: Path, tiny_preset_dir: Path) -> None:
    snapshot = make_snapshot(tmp_path)
    from_file = _fit(cli, str(snapshot), "--gpu", "l4")
    from_preset = _fit(cli, "tiny-preset", "--gpu", "l4", "--presets", str(tiny_preset_dir))
    assert from_file["dtype"] == from_preset["dtype"] == "bf16"
    for key in ("total_params", "weights_bytes", "kv_bytes_per_token", "kv_bytes_per_request", "max_concurrency"):
        assert from_file[key] == from_preset[key], key
    assert from_file["total_params"] == TINY_LLAMA_PARAMS and from_file["weights_bytes"] == 2 * TINY_LLAMA_PARAMS


def test_fit_gguf_matches_preset_in_fp32(cli: Any, tmp_path: Path, tiny_preset_dir: Path) -> None:
    path = tmp_path / "model.gguf"
    write_gguf(path)  # every tensor F32
    from_file = _fit(cli, str(path), "--gpu", "rtx-4090")
    from_preset = _fit(cli, "tiny-preset", "--gpu", "rtx-4090", "--dtype", "fp32", "--presets", str(tiny_preset_dir))
    assert from_file["dtype"] == "fp32"
    for key in ("total_params", "weights_bytes", "kv_bytes_per_token"):
        assert from_file[key] == from_preset[key], key


def test_fit_quantized_gguf_uses_stored_bytes(cli: Any, tmp_path: Path) -> None:
    path = tmp_path / "model-q8.gguf"
    write_gguf(path, quantized="Q8_0")
    result = _fit(cli, str(path), "--gpu", "rtx-4090")
    lines = {line["name"]: line["bytes"] for line in result["weights_lines"]}
    assert set(lines) == {"stored Q8_0 tensors", "stored F32 tensors"}
    assert result["weights_bytes"] == sum(lines.values())
    assert any("stored bytes" in note for note in result["notes"])
    # An explicit --dtype plans that format instead of the file's.
    explicit = _fit(cli, str(path), "--gpu", "rtx-4090", "--dtype", "bf16")
    assert explicit["dtype"] == "bf16" and explicit["weights_bytes"] == 2 * TINY_LLAMA_PARAMS


def test_fit_gptq_snapshot(cli: Any, tmp_path: Path) -> None:
    gptq_snapshot = make_gptq_snapshot(tmp_path)
    result = _fit(cli, str(gptq_snapshot), "--gpu", "l4")
    assert result["dtype"] == "gptq-g32" and result["total_params"] == TINY_LLAMA_PARAMS
    assert result["kv_dtype"] == "fp16"  # the checkpoint's torch_dtype float16


def test_fit_hf_repo_from_cache(cli: Any, tmp_path: Path, tiny_preset_dir: Path) -> None:
    write_hf_cache(tmp_path / "hub", "tiny-org/Tiny-Llama", with_weights=True)
    env = {"HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    from_repo = _fit(cli, "tiny-org/Tiny-Llama", "--gpu", "h100-80", env=env)
    from_preset = _fit(cli, "tiny-preset", "--gpu", "h100-80", "--presets", str(tiny_preset_dir))
    assert from_repo["model"] == "tiny-llama"
    for key in ("total_params", "weights_bytes", "kv_bytes_per_token"):
        assert from_repo[key] == from_preset[key], key
    missing = cli("fit", "tiny-org/absent", "--gpu", "h100-80", env=env)
    assert missing.exit_code == 2 and "HF_HUB_OFFLINE" in missing.stderr and "Traceback" not in missing.stderr


def test_bad_model_files_exit_2(cli: Any, tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({**TINY_LLAMA, "model_type": "bert"}))
    run = cli("fit", str(tmp_path), "--gpu", "l4")
    assert run.exit_code == 2 and "model_type 'bert' is not supported" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"not a gguf at all")
    run = cli("fit", str(broken), "--gpu", "l4")
    assert run.exit_code == 2 and "not a readable GGUF" in run.stderr
