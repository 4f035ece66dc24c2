"""`llmfit finetune` through the CLI: exit codes, JSON keys, the ZeRO paper and the field guide's scenario C."""

from __future__ import annotations

from typing import Any

import pytest

from llmfit.presets import Registry

KEYS = ("method", "total_params", "trainable_params", "weights_bytes", "gradients_bytes", "optimizer_bytes",
        "activations_bytes", "total_bytes", "fits")


@pytest.mark.parametrize(("stage", "paper_gb"), [(0, 120), (1, 31.4), (2, 16.6), (3, 1.9)])
def test_zero_paper_figure1(cli: Any, stage: int, paper_gb: float) -> None:
    # Rajbhandari et al. 2019, figure 1: Psi = 7.5B, Nd = 64, Adam K = 12; decimal GB, one decimal.
    run = cli("finetune", "--params", "7.5e9", "--gpus", "64", "--zero", str(stage), "--method", "full",
              "--format", "json")
    assert run.exit_code == 0, run.stderr
    data = run.json()
    value = data["model_states_bytes_per_gpu"] / 1e9
    assert (round(value) if stage == 0 else round(value, 1)) == paper_gb
    assert data["activations_bytes_per_gpu"] == 0


def test_params_mode_says_activations_need_an_architecture(cli: Any) -> None:
    run = cli("finetune", "--params", "7e9", "--method", "full")
    assert run.exit_code == 0
    assert "activations" in run.stdout and "need an architecture" in run.stdout
    bad = cli("finetune", "--params", "7e9", "--method", "lora")
    assert bad.exit_code == 2 and "needs an architecture" in bad.stderr


def test_scenario_c_full_does_not_fit_on_rtx_4090(cli: Any) -> None:
    run = cli("finetune", "7b", "--method", "full", "--gpu", "rtx-4090")
    assert run.exit_code == 1
    assert "DOES NOT FIT" in run.stdout


def test_scenario_c_qlora_fits_on_rtx_4090(cli: Any) -> None:
    run = cli("finetune", "7b", "--method", "qlora", "--gpu", "rtx-4090", "--format", "json")
    assert run.exit_code == 0
    data = run.json()
    assert data["fits"] is True and data["margin_bytes_per_gpu"] > 0


def test_scenario_c_lora_shows_its_margin(cli: Any) -> None:
    run = cli("finetune", "7b", "--method", "lora", "--gpu", "rtx-4090", "--format", "json")
    data = run.json()
    assert run.exit_code == (0 if data["fits"] else 1)
    assert data["margin_bytes_per_gpu"] == data["gpu_memory_bytes_per_gpu"] - data["total_bytes_per_gpu"]
    table = cli("finetune", "7b", "--method", "lora", "--gpu", "rtx-4090")
    assert "margin" in table.stdout and ("FITS" in table.stdout or "DOES NOT FIT" in table.stdout)


def test_json_has_design_keys_with_per_gpu_twins(cli: Any) -> None:
    run = cli("finetune", "llama-3.1-8b", "--method", "lora", "--gpu", "h100-80x8", "--zero", "2", "--format",
              "json")
    assert run.exit_code == 0, run.stderr
    data = run.json()
    assert data["schema_version"] == 1 and data["gpu_count"] == 8
    for key in KEYS:
        assert key in data
        if key.endswith("_bytes"):
            assert f"{key}_per_gpu" in data
    assert data["total_bytes"] == 8 * data["total_bytes_per_gpu"]
    assert data["trainable_params"] == 32 * 16 * (2 * 4096 + 4096 + 1024)


def test_gpus_flag_and_count_suffix_must_agree(cli: Any) -> None:
    assert cli("finetune", "7b", "--gpu", "h100-80x8", "--gpus", "8").exit_code == 0
    run = cli("finetune", "7b", "--gpu", "h100-80x8", "--gpus", "4")
    assert run.exit_code == 2 and "8 GPUs" in run.stderr


@pytest.mark.parametrize("args", [
    ("7b", "--method", "dora"),
    ("7b", "--optimizer", "lion"),
    ("7b", "--zero", "4"),
    ("7b", "--seq", "two"),
    ("7b", "--lora-targets", "nonexistent"),
    ("nosuchmodel",),
    ("7b", "--gpu", "nosuchgpu"),
    ("7b", "--batch", "0"),
])
def test_bad_input_exits_2_with_one_line(cli: Any, args: tuple[str, ...]) -> None:
    run = cli("finetune", *args)
    assert run.exit_code == 2
    assert run.stderr.strip() and len(run.stderr.strip().splitlines()) == 1 and "Traceback" not in run.stderr


def test_explain_and_markdown(cli: Any) -> None:
    run = cli("finetune", "7b", "--gpu", "a100-80", "--explain", "--dataset-tokens", "10M")
    assert run.exit_code == 0
    assert "How it is computed" in run.stdout and "norm inputs" in run.stdout and "one epoch" in run.stdout
    md = cli("finetune", "7b", "--gpu", "a100-80", "--format", "markdown")
    assert md.exit_code == 0 and md.stdout.startswith("## ")


def test_every_method_every_preset_single_and_multi_gpu(cli: Any, registry: Registry) -> None:
    methods = ("full", "lora", "qlora", "ia3", "prompt-tuning", "prefix-tuning", "adapter")
    for index, name in enumerate(registry.model_names()):
        method = methods[index % len(methods)]
        for gpu_args in (("--gpu", "h100-80"), ("--gpu", "h100-80x8", "--zero", "3")):
            run = cli("finetune", name, "--method", method, *gpu_args, "--seq", "512", "--format", "json")
            assert run.exit_code in (0, 1), (name, method, run.stderr)
            data = run.json()
            assert data["method"] == method and data["trainable_params"] > 0
            assert (run.exit_code == 0) == data["fits"]
