"""One fit answer is one JSON object with the same keys whatever the engine (issue 16, docs/output.md)."""

from __future__ import annotations

from typing import Any

import pytest

from llmfit.render.fit_json import FIT_SCHEMA_VERSION, fit_keys, fit_object

FIT = ("fit", "llama-3.1-8b", "--gpu", "a100-80", "--context", "8k", "--format", "json")


def _objects(data: Any) -> list[dict[str, Any]]:
    return data if isinstance(data, list) else [data]


@pytest.mark.parametrize("extra", [
    ("--engine", "vllm"),
    ("--engine", "sglang"),
    ("--engine", "trt-llm"),
    ("--engine", "llama.cpp"),
    ("--engine", "vllm", "--emit", "vllm"),
    ("--engine", "llama.cpp", "--emit", "llama.cpp"),
    ("--solve", "context"),
    ("--engine", "all"),
    ("--dtype", "all"),
])
def test_every_fit_json_has_the_same_keys_in_the_same_order(cli, extra):
    run = cli(*FIT, *extra)
    assert run.exit_code in (0, 1), run.stderr
    for obj in _objects(run.json()):
        assert list(obj) == list(fit_keys())
        assert obj["schema_version"] == FIT_SCHEMA_VERSION


def test_a_gpu_list_gives_one_fit_object_per_gpu(cli):
    run = cli("fit", "llama-3.1-8b", "--gpu", "l4,a100-80x2", "--dtype", "fp8", "--format", "json")
    assert run.exit_code == 0, run.stderr
    rows = run.json()
    assert [(r["gpu"], r["gpu_count"]) for r in rows] == [("l4", 1), ("a100-80", 2)]
    assert all(list(r) == list(fit_keys()) for r in rows)
    # The same answer as asking for each GPU alone.
    alone = cli("fit", "llama-3.1-8b", "--gpu", "a100-80x2", "--dtype", "fp8", "--format", "json").json()
    assert rows[1]["kv_tokens"] == alone["kv_tokens"] and rows[1]["max_concurrency"] == alone["max_concurrency"]
    table = cli("fit", "llama-3.1-8b", "--gpu", "l4,a100-80x2", "--dtype", "fp8", "--width", "100").stdout
    assert "a100-80 x2" in table and "2 of 2 GPUs fit" in table


@pytest.mark.parametrize("extra", [("--engine", "all"), ("--dtype", "all"), ("--engine", "llama.cpp"),
                                   ("--solve", "context"), ("--emit", "vllm")])
def test_a_gpu_list_with_a_single_gpu_option_is_refused(cli, extra):
    run = cli("fit", "llama-3.1-8b", "--gpu", "l4,a100-80", *extra)
    assert run.exit_code == 2 and "take one --gpu" in run.stderr


def test_llamacpp_fills_the_common_keys_it_has_and_nulls_the_rest(cli):
    data = cli(*FIT, "--engine", "llama.cpp", "--kv-dtype", "q8_0").json()
    # llama-3.1-8b: 32 layers x 8 KV heads x 128 x (K + V) in q8_0 (34 bytes per 32 values) = 69,632 B/token.
    assert data["kv_dtype"] == "q8_0" and data["kv_bytes_per_token"] == 32 * 8 * 128 * 2 * 34 // 32
    assert data["kv_tokens"] == 8192 and data["max_concurrency"] == 1 and data["context_tokens"] == 8192
    assert data["total_params"] == 8_030_261_248  # meta-llama/Llama-3.1-8B safetensors total
    assert data["kv_blocks"] is None and data["gpu_util"] is None and data["speed_bounds"] is None
    assert data["vram_lines"] and data["layers_in_ram"] == 0
    vllm = cli(*FIT).json()
    assert vllm["vram_lines"] is None and vllm["layers_in_ram"] is None and vllm["kv_dtype"] == "bf16"


def test_a_key_outside_the_schema_is_a_programming_error():
    with pytest.raises(ValueError, match="outside the fit schema: not_a_key"):
        fit_object({"model": "x"}, not_a_key=1)


@pytest.mark.parametrize("gpus", ["l4,", ",".join(["l4"] * 65), "l4,,a100-80"])
def test_a_gpu_list_with_an_empty_name_or_too_long_is_refused(cli, gpus):
    run = cli("fit", "llama-3.1-8b", "--gpu", gpus)
    assert run.exit_code == 2 and "at most 64 names" in run.stderr
