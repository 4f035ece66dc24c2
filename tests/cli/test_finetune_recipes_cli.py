"""finetune --recipe, the PEFT target names, reserved vs allocated, through the CLI."""

from __future__ import annotations

import ast
from typing import Any

import pytest

from llmfit.presets import builtin_dir
from llmfit.training_recipes import recipes_dir


def test_help_has_examples_and_recipes(cli: Any) -> None:
    run = cli("finetune", "--help")
    assert run.exit_code == 0 and "Examples:" in run.stdout
    for name in ("torchtune", "unsloth", "axolotl", "deepspeed", "trl"):
        assert name in run.stdout


def test_json_keys_for_reserved_and_allocated(cli: Any) -> None:
    run = cli("finetune", "llama-3.1-8b", "--method", "lora", "--recipe", "torchtune", "--gpu", "rtx-4090",
              "--format", "json")
    assert run.exit_code in (0, 1), run.stderr
    data = run.json()
    for key in ("peak_allocated_bytes_per_gpu", "peak_reserved_bytes_per_gpu", "peak_allocated_bytes",
                "peak_reserved_bytes", "trainer_peak_figure", "trainer_peak_bytes_per_gpu", "recipe"):
        assert key in data, key
    assert data["recipe"] == "torchtune" and data["trainer_peak_figure"] == "active"
    assert data["peak_reserved_bytes_per_gpu"] >= data["peak_allocated_bytes_per_gpu"]
    assert data["micro_batch"] == 2 and data["grad_accum"] == 8 and data["adapter_dtype"] == "bf16"
    table = cli("finetune", "llama-3.1-8b", "--method", "lora", "--recipe", "torchtune", "--gpu", "rtx-4090")
    flat = " ".join(table.stdout.split())
    assert "peak reserved" in flat and "peak allocated" in flat and "torchtune recipe defaults" in flat


def test_7b_24gb_2048_x4_qlora_fits_and_says_why(cli: Any) -> None:
    run = cli("finetune", "7b", "--method", "qlora", "--gpu", "rtx-4090", "--seq", "2048", "--batch", "4")
    assert run.exit_code == 0, run.stdout
    assert "gradient checkpointing on" in " ".join(run.stdout.split())


@pytest.mark.parametrize(("args", "fragment"), [
    (("phi-3-mini-4k-instruct", "--method", "lora", "--lora-targets", "q,v"), "qkv_proj"),
    (("mixtral-8x7b-v0.1", "--method", "lora", "--lora-targets", "gate_proj", "--transformers", "4"), "w1"),
    (("llama-3.1-8b", "--recipe", "megatron"), "allowed"),
    (("llama-3.1-8b", "--transformers", "3"), "4 or 5"),
    (("llama-3.1-8b", "--method", "full", "--optimizer-in-backward", "--grad-accum", "4"), "grad-accum 1"),
    (("llama-3.1-8b", "--cpu-offload", "disk"), "allowed"),
])
def test_bad_targets_and_settings_exit_2(cli: Any, args: tuple[str, ...], fragment: str) -> None:
    run = cli("finetune", *args)
    assert run.exit_code == 2, run.stdout
    assert fragment in run.stderr and len(run.stderr.strip().splitlines()) == 1


def test_emit_peft_names_modules_the_model_has(cli: Any) -> None:
    run = cli("finetune", "mixtral-8x7b-v0.1", "--method", "lora", "--lora-targets", "q,k,v,o,gate,up,down",
              "--emit", "peft", "--format", "json")
    emitted = run.json()["emitted"]
    assert emitted["config"]["target_modules"] == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert emitted["config"]["target_parameters"] == ["experts.down_proj", "experts.gate_up_proj"]
    kwargs = ast.parse(emitted["text"])
    assert kwargs is not None
    phi = cli("finetune", "phi-3-mini-4k-instruct", "--method", "lora", "--emit", "peft", "--format", "json").json()
    assert phi["emitted"]["config"]["target_modules"] == ["qkv_proj"]


def test_emit_deepspeed_offload(cli: Any) -> None:
    run = cli("finetune", "llama-3.1-8b", "--method", "full", "--recipe", "deepspeed", "--gpu", "a100-80x8",
              "--cpu-offload", "optimizer", "--emit", "deepspeed", "--format", "json")
    zero = run.json()["emitted"]["config"]["zero_optimization"]
    assert zero["stage"] == 2 and zero["offload_optimizer"] == {"device": "cpu", "pin_memory": True}


def test_recipes_ship_with_the_presets() -> None:
    assert recipes_dir().parent == builtin_dir() and len(list(recipes_dir().glob("*.yaml"))) == 7
