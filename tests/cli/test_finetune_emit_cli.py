"""`llmfit finetune --emit deepspeed|peft|bnb` through the CLI: what is printed (the report's block and the
JSON's `emitted`) parses back and matches the plan in the same output; exit codes stay finetune's."""

from __future__ import annotations

import ast
import json
from typing import Any

import pytest


def block_after(stdout: str, title: str) -> str:
    """The emitted block in the table report: the lines after `title:` up to the first line that does not
    belong to it (JSON ends with '}', a Python call with ')')."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title + ":")) + 1
    end = next(i for i in range(start, len(lines)) if lines[i] in ("}", ")"))
    return "\n".join(lines[start:end + 1])


def call_kwargs(text: str) -> tuple[str, dict[str, Any]]:
    call = next(node.value for node in ast.parse(text).body if isinstance(node, ast.Assign))
    assert isinstance(call, ast.Call) and isinstance(call.func, ast.Name)
    return call.func.id, {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords if kw.arg is not None}


def test_deepspeed_json_matches_the_plan(cli: Any) -> None:
    args = ("finetune", "llama-3.1-8b", "--method", "full", "--gpu", "h100-80x8", "--zero", "3", "--batch", "2",
            "--grad-accum", "4", "--seq", "1024", "--emit", "deepspeed")
    run = cli(*args, "--format", "json")
    data = run.json()
    assert run.exit_code == (0 if data["fits"] else 1), run.stderr
    config = data["emitted"]["config"]
    assert data["emitted"]["emit"] == "deepspeed" and json.loads(data["emitted"]["text"]) == config
    assert config["zero_optimization"]["stage"] == data["zero"] == 3
    assert config["train_micro_batch_size_per_gpu"] == data["micro_batch"] == 2
    assert config["gradient_accumulation_steps"] == data["grad_accum"] == 4
    assert config["train_batch_size"] == 2 * 4 * data["gpu_count"] == 64
    assert config["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True
    table = cli(*args)
    assert table.exit_code == run.exit_code
    assert json.loads(block_after(table.stdout, "DeepSpeed config (ds_config.json)")) == config


def test_lora_config_in_table_and_json(cli: Any) -> None:
    args = ("finetune", "llama-3.1-8b", "--method", "lora", "--lora-rank", "32", "--lora-targets", "q,k,v,o",
            "--gpu", "a100-80", "--emit", "peft")
    data = cli(*args, "--format", "json").json()
    assert data["emitted"]["config_class"] == "LoraConfig" and data["emitted"]["import_from"] == "peft"
    table = cli(*args)
    class_name, kwargs = call_kwargs(block_after(table.stdout, "PEFT LoraConfig"))
    assert class_name == "LoraConfig" and kwargs == data["emitted"]["config"]
    assert kwargs["r"] == data["lora_rank"] == 32 and kwargs["lora_alpha"] == 64
    assert kwargs["target_modules"] == data["lora_target_modules"]
    assert set(kwargs["target_modules"]) == {"q_proj", "k_proj", "v_proj", "o_proj"}
    assert "from peft import LoraConfig" in table.stdout


@pytest.mark.parametrize(("quant", "double"), [("nf4", True), ("nf4-nodq", False)])
def test_bnb_double_quant_flag_follows_the_base(cli: Any, quant: str, double: bool) -> None:
    run = cli("finetune", "7b", "--method", "qlora", "--qlora-quant", quant, "--gpu", "rtx-4090", "--emit", "bnb",
              "--format", "json")
    assert run.exit_code == 0, run.stderr  # field guide 6.4 scenario C: QLoRA of 7B fits a 24 GB card
    data = run.json()
    class_name, kwargs = call_kwargs(data["emitted"]["text"])
    assert class_name == "BitsAndBytesConfig" and kwargs == data["emitted"]["config"]
    assert kwargs["bnb_4bit_use_double_quant"] is double and data["base_format"] == quant
    assert kwargs["bnb_4bit_compute_dtype"] == "bfloat16" and data["precision"] == "bf16-mixed"


def test_exit_one_still_emits(cli: Any) -> None:
    run = cli("finetune", "7b", "--method", "full", "--gpu", "rtx-4090", "--emit", "deepspeed")
    assert run.exit_code == 1
    assert "DOES NOT FIT" in run.stdout
    assert json.loads(block_after(run.stdout, "DeepSpeed config (ds_config.json)"))["train_batch_size"] == 1


def test_markdown_carries_the_block(cli: Any) -> None:
    run = cli("finetune", "7b", "--method", "prefix-tuning", "--virtual-tokens", "30", "--emit", "peft",
              "--format", "markdown")
    assert run.exit_code == 0, run.stderr
    assert "PrefixTuningConfig(\n    num_virtual_tokens=30," in run.stdout


@pytest.mark.parametrize(("args", "message"), [
    (("--method", "lora", "--emit", "bnb"), "needs a quantized base"),
    (("--method", "full", "--emit", "peft"), "needs a PEFT method"),
    (("--method", "lora", "--emit", "fsdp"), "unknown --emit"),
    (("--method", "lora", "--qlora-quant", "nf4"), "--qlora-quant is for --method qlora"),
    (("--method", "qlora", "--qlora-quant", "fp4"), "unknown --qlora-quant"),
])
def test_bad_emit_requests_are_one_line_exit_2(cli: Any, args: tuple[str, ...], message: str) -> None:
    run = cli("finetune", "7b", *args)
    assert run.exit_code == 2
    assert message in run.stderr and len(run.stderr.strip().splitlines()) == 1
    assert run.stdout == ""
