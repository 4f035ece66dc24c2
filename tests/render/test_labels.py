"""Per-GPU, per-replica and whole-model figures are labelled in the table as the JSON keys say
(design.md: kv_bytes_per_token is one replica; `kv` gives the model's own figure)."""

from __future__ import annotations

from tests.conftest import run_cli


def test_deepseek_v3_kv_per_token_is_labelled_per_replica_in_fit_and_whole_model_in_kv() -> None:
    fit = run_cli("fit", "deepseek-v3", "--gpu", "h200x8", "--width", "200")
    payload = run_cli("fit", "deepseek-v3", "--gpu", "h200x8", "--format", "json").json()
    # MLA's latent (61 layers x 576 x 2 B = 70,272 B) is held whole by each of the 8 TP ranks.
    assert payload["kv_bytes_per_token_per_gpu"] == 70_272
    assert payload["kv_bytes_per_token"] == 8 * 70_272
    line = next(row for row in fit.stdout.splitlines() if "KV per token" in row)
    assert "one replica (8 GPUs)" in line and "562,176 B" in line and "70,272 B per GPU" in line
    kv = run_cli("kv", "deepseek-v3", "--width", "200")
    line = next(row for row in kv.stdout.splitlines() if "per token" in row)
    assert "70,272 B, whole model" in line


def test_replicas_are_named_where_a_figure_adds_them_up() -> None:
    fit = run_cli("fit", "llama-3.1-70b", "--dtype", "fp8", "--gpu", "h100-80x8", "--tp", "4", "--width", "200")
    assert "max concurrent requests, all replicas" in fit.stdout
    assert "vLLM max concurrency, per replica" in fit.stdout
    assert "KV pool (tokens per replica)" in fit.stdout
