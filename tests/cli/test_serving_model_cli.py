"""Issue 3 through the CLI with the built-in presets: MoE, MLA, sliding windows, TP replication, formats."""

from __future__ import annotations


def test_mixtral_total_and_active_params(cli):
    data = cli("fit", "mixtral-8x7b", "--gpu", "h100-80x2", "--format", "json").json()
    assert data["total_params"] == 46_702_792_704
    assert round(data["active_params"] / 1e9, 1) == 12.9


def test_gemma2_9b_kv_at_8k_is_21_global_plus_21_windowed_layers(cli):
    data = cli("kv", "gemma-2-9b", "--context", "8k", "--format", "json").json()
    per_layer_token = 2 * 8 * 256 * 2  # 2 (K, V) x 8 KV heads x head_dim 256 x bf16
    assert data["kv_bytes_per_request"] == 21 * 8192 * per_layer_token + 21 * 4096 * per_layer_token


def test_deepseek_v3_mla_latent_per_token_and_replicated_under_tp(cli):
    kv = cli("kv", "deepseek-v3", "--format", "json").json()
    assert kv["attention"] == "MLA"
    assert kv["kv_bytes_per_token"] == 61 * (512 + 64) * 2
    fit = cli("fit", "deepseek-v3", "--gpu", "h200x8", "--format", "json").json()
    assert fit["dtype"] == "fp8-block128"  # the published checkpoint's own format
    assert fit["kv_bytes_per_token_per_gpu"] == kv["kv_bytes_per_token"]  # every GPU holds the whole latent
    assert fit["kv_bytes_per_token"] == 8 * kv["kv_bytes_per_token"]


def test_gpt_oss_plans_in_its_mxfp4_checkpoint(cli):
    data = cli("fit", "gpt-oss-20b", "--gpu", "h100-80", "--format", "json").json()
    assert data["dtype"] == "mxfp4"
    # model card: the MXFP4 checkpoint is 12.8 GiB (experts in MXFP4, the rest bf16)
    assert 12.7 < data["weights_bytes"] / 2**30 < 12.9


def test_llama31_70b_tp16_replicates_kv_heads(cli):
    data = cli("fit", "llama-3.1-70b", "--gpu", "h100-80x16", "--tp", "16", "--format", "json").json()
    assert data["kv_bytes_per_token_per_gpu"] == 80 * 2 * 1 * 128 * 2  # one KV head per GPU
    assert data["kv_bytes_per_token"] == 16 * data["kv_bytes_per_token_per_gpu"]


def test_dtype_support_warning_names_the_fallback(cli):
    run = cli("fit", "llama-3.1-8b", "--gpu", "t4", "--dtype", "bf16")
    assert "no bf16" in run.stderr and "fp16" in run.stderr
    run = cli("fit", "llama-3.1-8b", "--gpu", "a100-80", "--dtype", "fp8")
    assert "Marlin" in run.stderr


def test_typical_tokens_shows_contiguous_waste(cli):
    data = cli("kv", "llama-3.1-8b", "--context", "8k", "--typical-tokens", "1000", "--format", "json").json()
    assert data["contiguous_waste_bytes"] == (8192 - 1000) * 131072
    assert data["paged_waste_bytes"] == 8 * 131072  # 1000 -> 63 blocks of 16 = 1008 tokens
