"""`fit` and `kv` through the CLI: the JSON contract, formats, exit codes and bad input."""

from __future__ import annotations

import subprocess
import sys

import pytest

FIT_KEYS = {
    "schema_version",
    "model",
    "gpu",
    "gpu_count",
    "tp",
    "pp",
    "replicas",
    "dtype",
    "context_tokens",
    "total_params",
    "weights_bytes",
    "weights_bytes_per_gpu",
    "overhead_bytes",
    "overhead_bytes_per_gpu",
    "kv_bytes_per_token",
    "kv_bytes_per_request",
    "kv_budget_bytes",
    "kv_budget_bytes_per_gpu",
    "kv_tokens",
    "max_concurrency",
    "recommended_concurrency",
    "fits",
}


def test_headline_json_has_design_keys(cli):
    run = cli("fit", "70b", "--dtype", "int4", "--gpu", "a100-80", "--context", "8k", "--format", "json")
    assert run.exit_code == 0, run.stderr
    data = run.json()
    assert set(data) >= FIT_KEYS
    assert data["schema_version"] == 2  # docs/output.md: 2 = one key set for every engine
    assert isinstance(data["max_concurrency"], int) and data["fits"] is True
    assert data["kv_tokens"] % 16 == 0


def test_kv_llama31_8b_done_when(cli):
    data = cli("kv", "llama-3.1-8b", "--context", "8k", "--format", "json").json()
    assert data["kv_bytes_per_request"] == 1_073_741_824
    assert {"kv_bytes_per_token", "kv_bytes_per_request", "total_bytes", "batch", "context_tokens"} <= set(data)


def test_h100x8_tp4_reports_two_replicas(cli):
    data = cli("fit", "llama-3.1-70b", "--dtype", "fp16", "--gpu", "h100-80x8", "--tp", "4", "--format", "json").json()
    assert (data["gpu_count"], data["tp"], data["pp"], data["replicas"]) == (8, 4, 1, 2)
    assert data["kv_budget_bytes"] == 8 * data["kv_budget_bytes_per_gpu"]


def test_falcon_tp4_is_refused_as_bad_input(cli):
    run = cli("fit", "falcon-7b", "--gpu", "a100-80x4", "--tp", "4")
    assert run.exit_code == 2
    assert "71 attention heads" in run.stderr and "Traceback" not in run.stderr


def test_dtype_all_lists_rows_and_exits_0_if_any_fits(cli):
    run = cli("fit", "70b", "--dtype", "all", "--gpu", "a100-80", "--format", "json")
    rows = run.json()
    assert all(row["schema_version"] == 2 for row in rows)
    assert run.exit_code == 0
    assert {r["dtype"] for r in rows} >= {"fp32", "bf16", "int4", "int4-raw", "q4_k_m"}
    assert not next(r for r in rows if r["dtype"] == "fp32")["fits"]


def test_markdown_and_table_show_units(cli):
    md = cli("fit", "llama-3.1-8b", "--gpu", "l4", "--format", "markdown").stdout
    assert md.startswith("## ") and "| line |" in md and "GiB" in md
    table = cli("fit", "llama-3.1-8b", "--gpu", "l4", "--units", "gb").stdout
    # The "what vLLM will print" section quotes vLLM's own lines, which are in GiB whatever --units says.
    ours = table.split("will print at start-up")[0] + table.split("will print at start-up")[-1].split("FITS")[-1]
    assert " GB" in table and "GiB" not in ours.replace("binary GiB", "")
    assert "\x1b[" not in table  # not a terminal: no colour codes


def test_explain_prints_formulas_with_numbers(cli):
    out = cli("fit", "70b", "--dtype", "int4", "--gpu", "a100-80", "--explain").stdout
    assert "KV per token: layers x 2 x kv_heads x head_dim x bytes = 80 x 2 x 8 x 128 x 2 B" in out
    out = cli("kv", "70b", "--explain").stdout
    assert "80 layers x 4,096 B/token" in out


def test_context_beyond_model_max_warns_on_stderr_only(cli):
    run = cli("fit", "70b", "--gpu", "h200", "--context", "16k", "--format", "json")
    assert "exceeds" in run.stderr
    assert run.json()["context_tokens"] == 16384  # stdout is still pure JSON


def test_default_context_is_min_8192_and_model_max(cli):
    assert cli("fit", "70b", "--gpu", "h200", "--format", "json").json()["context_tokens"] == 4096
    assert cli("fit", "llama-3.1-8b", "--gpu", "h200", "--format", "json").json()["context_tokens"] == 8192


def test_min_concurrency_gates_the_exit_code(cli):
    data = cli("fit", "llama-3.1-8b", "--gpu", "l4", "--format", "json").json()
    enough = str(data["max_concurrency"])
    assert cli("fit", "llama-3.1-8b", "--gpu", "l4", "-k", enough).exit_code == 0
    assert cli("fit", "llama-3.1-8b", "--gpu", "l4", "-k", str(data["max_concurrency"] + 1)).exit_code == 1


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("fit", "no-such-model", "--gpu", "a100-80"), "unknown model 'no-such-model'"),
        (("fit", "llama-3.1-8", "--gpu", "a100-80"), "did you mean"),
        (("fit", "70b", "--gpu", "a100-8O"), "unknown gpu"),
        (("fit", "70b", "--gpu", "a100-80", "--context", "8q"), "--context"),
        (("fit", "70b", "--gpu", "a100-80", "--context", "-5"), "--context"),
        (("fit", "70b", "--gpu", "a100-80", "--context", "0"), "positive"),
        (("fit", "70b", "--gpu", "a100-80", "--gpu-util", "nan"), "--gpu-util"),
        (("fit", "70b", "--gpu", "a100-80", "--gpu-util", "1.5"), "--gpu-util"),
        (("fit", "70b", "--gpu-memory", "80"), "no unit"),
        (("fit", "70b", "--gpu-memory", "80 parsecs"), "unknown unit"),
        (("fit", "70b", "--gpu", "a100-80", "--dtype", "int3"), "unknown --dtype"),
        (("fit", "70b", "--gpu", "a100-80", "--kv-dtype", "int2"), "--kv-dtype"),
        (("fit", "70b", "--gpu", "a100-80", "--tp", "0"), "--tp"),
        (("fit", "--gpu", "a100-80"), "MODEL"),
        (("fit", "70b"), "--gpu"),
        (("fit", "--params", "-7e9", "--gpu", "a100-80"), "--params"),
        (("kv", "70b", "--batch", "0"), "--batch"),
        (("kv", "70b", "--context", "1e999"), "--context"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(cli, args, needle):
    run = cli(*args)
    assert run.exit_code == 2, (run.stdout, run.stderr)
    assert needle in run.stderr
    assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr
    assert run.stdout == ""


def test_invalid_user_preset_names_file_and_field(cli, tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    (models / "broken.yaml").write_text("source: me\nhidden_size: lots\nnum_hidden_layers: 2\n")
    run = cli("fit", "broken", "--gpu", "a100-80", "--presets", str(tmp_path))
    assert run.exit_code == 2
    assert "broken.yaml" in run.stderr and "hidden_size" in run.stderr


def test_user_preset_overrides_builtin(cli, tmp_path):
    gpus = tmp_path / "gpus"
    gpus.mkdir()
    (gpus / "a100-80.yaml").write_text("memory: 40 GiB\nsource: my lab\n")
    data = cli("fit", "llama-3.1-8b", "--gpu", "a100-80", "--presets", str(tmp_path), "--format", "json").json()
    assert data["gpu_memory_bytes_per_gpu"] == 40 * 2**30


def test_real_process_usage_error_is_one_line():
    proc = subprocess.run(
        [sys.executable, "-m", "llmfit", "fit", "70b", "--gpu", "a100-80", "--no-such-flag"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "No such option" in proc.stderr


def test_internal_error_is_exit_3_without_traceback(monkeypatch, cli):
    import llmfit.engine.serving as serving

    def boom(*args, **kwargs):
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(serving, "fit", boom)
    run = cli("fit", "70b", "--gpu", "a100-80")
    assert run.exit_code == 3
    assert "internal error: RuntimeError: simulated bug" in run.stderr and "Traceback" not in run.stderr
