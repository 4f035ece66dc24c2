"""`fit` carries state_bytes_per_request (the fixed per-sequence state of recurrent layers, one replica) and
kv_bytes_per_request = KV of the context + that state, for every engine including llama.cpp (issue 13)."""

from __future__ import annotations

import pytest

from llmfit.engine.engines import get_engine
from llmfit.engine.formats import get_format
from llmfit.engine.kv import kv_cache
from llmfit.engine.llamacpp import LlamaCppOptions, llamacpp_fit
from llmfit.engine.serving import Deployment, FitResult, ServingOptions
from llmfit.presets import Registry
from tests.conftest import run_cli

QWEN3_NEXT = "qwen3-next-80b-a3b-instruct"
# 36 Gated DeltaNet layers x (conv 8192 x 3 + state 32 x 128 x 128) x 2 B (tests/engine/test_layers.py).
QWEN3_NEXT_STATE_BF16 = 36 * 1_097_728


def _fit(registry: Registry, model: str, engine: str, context: int, *, gpu_count: int = 1, tp: int = 1,
         pp: int = 1, dtype: str = "int4") -> FitResult:
    spec, gpu = registry.model(model), registry.gpu("h100-80")
    return get_engine(engine).fit(spec, gpu, get_format(dtype), Deployment(gpu_count=gpu_count, tp=tp, pp=pp),
                                  ServingOptions(context_tokens=context))


@pytest.mark.parametrize("engine", ["vllm", "sglang", "trt-llm"])
def test_qwen3_next_state_is_the_kv_commands_and_constant(registry: Registry, engine: str) -> None:
    short = _fit(registry, QWEN3_NEXT, engine, 4096)
    long = _fit(registry, QWEN3_NEXT, engine, 131072)
    kv = kv_cache(registry.model(QWEN3_NEXT), kv_dtype=short.kv_dtype, context_tokens=4096)
    # vLLM / SGLang / TRT-LLM hold the state in the model dtype: the same bytes as `kv` under TP 1.
    assert short.state_bytes_per_request == kv.state_bytes_per_request == QWEN3_NEXT_STATE_BF16
    assert long.state_bytes_per_request == short.state_bytes_per_request
    assert short.kv_bytes_per_request is not None and long.kv_bytes_per_request is not None
    assert long.kv_bytes_per_request > short.kv_bytes_per_request
    # kv_bytes_per_request includes the state (and the engine's block rounding / page padding).
    assert short.kv_bytes_per_request >= kv.kv_bytes_per_request > short.state_bytes_per_request
    assert short.fits and long.loads


def test_vllm_hybrid_padding_is_in_the_request_not_in_the_state(registry: Registry) -> None:
    # vLLM raises the attention block to 544 tokens so one page (544 x 2,048 B) holds one state; each of the 36
    # state pages is padded from 1,097,728 B to 1,114,112 B (kv_cache_utils / mamba_page_size_padded). The
    # padding is in kv_bytes_per_request; state_bytes_per_request stays the state itself.
    result = _fit(registry, QWEN3_NEXT, "vllm", 4096)
    page = 544 * 2048
    assert result.block_size == 544
    assert result.kv_bytes_per_request == (8 + 3) * page * 12  # 8 full-attention pages + one per GDN group
    assert result.state_bytes_per_request == QWEN3_NEXT_STATE_BF16


def test_state_is_one_replica_under_tp_and_pp(registry: Registry) -> None:
    one = _fit(registry, QWEN3_NEXT, "vllm", 8192)
    tp2 = _fit(registry, QWEN3_NEXT, "vllm", 8192, gpu_count=2, tp=2)
    pp2 = _fit(registry, QWEN3_NEXT, "vllm", 8192, gpu_count=4, tp=2, pp=2)
    assert one.state_bytes_per_request == tp2.state_bytes_per_request == pp2.state_bytes_per_request
    # Two KV heads split over TP 2 (no replication): the replica's request is the one-GPU request.
    assert one.kv_bytes_per_request == tp2.kv_bytes_per_request == pp2.kv_bytes_per_request


def test_dense_model_has_no_state(registry: Registry) -> None:
    for engine in ("vllm", "sglang", "trt-llm"):
        result = _fit(registry, "llama-3.1-8b", engine, 8192, dtype="bf16")
        assert result.state_bytes_per_request == 0
        assert result.kv_bytes_per_request == 32 * 2 * 8 * 128 * 2 * 8192


def test_bare_params_have_no_state_figure(registry: Registry) -> None:
    from llmfit.engine import serving

    result = serving.fit(None, registry.gpu("h100-80"), get_format("bf16"), Deployment(gpu_count=1, tp=1, pp=1),
                         ServingOptions(context_tokens=8192), params=7_000_000_000)
    assert result.state_bytes_per_request is None and result.kv_bytes_per_request is None


def test_llamacpp_state_is_f32_cells_per_sequence(registry: Registry) -> None:
    spec, gpu, fmt = registry.model(QWEN3_NEXT), registry.gpu("h100-80"), get_format("q4_k_m")
    short = llamacpp_fit(spec, gpu, fmt, LlamaCppOptions(ctx_size=4096 * 2, parallel=2))
    long = llamacpp_fit(spec, gpu, fmt, LlamaCppOptions(ctx_size=131072 * 2, parallel=2))
    # src/llama-memory-recurrent.cpp: one cell per sequence, conv + SSM state in f32 (twice vLLM's bf16 state).
    assert short.state_bytes_per_request == long.state_bytes_per_request == 2 * QWEN3_NEXT_STATE_BF16
    assert short.kv_bytes_per_request == short.kv_bytes // 2
    assert long.kv_bytes_per_request > short.kv_bytes_per_request > short.state_bytes_per_request
    dense = llamacpp_fit(registry.model("llama-3.1-8b"), gpu, fmt, LlamaCppOptions(ctx_size=8192))
    assert dense.state_bytes_per_request == 0 and dense.kv_bytes_per_request == dense.kv_bytes


# Through the CLI.

def test_cli_fit_json_state_constant_and_kv_grows() -> None:
    runs = {ctx: run_cli("fit", QWEN3_NEXT, "--gpu", "h100-80", "--dtype", "int4", "--context", ctx,
                         "--format", "json") for ctx in ("4k", "128k")}
    for run in runs.values():
        assert run.exit_code == 0, run.stderr
    short, long = runs["4k"].json(), runs["128k"].json()
    kv = run_cli("kv", QWEN3_NEXT, "--context", "4k", "--kv-dtype", short["kv_dtype"], "--format", "json")
    assert kv.exit_code == 0, kv.stderr
    assert short["state_bytes_per_request"] == kv.json()["state_bytes_per_request"] > 0
    assert long["state_bytes_per_request"] == short["state_bytes_per_request"]
    assert long["kv_bytes_per_request"] > short["kv_bytes_per_request"]


def test_cli_fit_bf16_does_not_load_but_still_reports_state() -> None:
    run = run_cli("fit", QWEN3_NEXT, "--gpu", "h100-80", "--context", "4k", "--format", "json")
    assert run.exit_code == 1
    assert run.json()["state_bytes_per_request"] == QWEN3_NEXT_STATE_BF16


def test_cli_fit_dense_model_state_is_zero() -> None:
    run = run_cli("fit", "llama-3.1-8b", "--gpu", "h100-80", "--format", "json")
    assert run.exit_code == 0, run.stderr
    assert run.json()["state_bytes_per_request"] == 0


def test_cli_table_shows_context_kv_and_state_apart() -> None:
    run = run_cli("fit", QWEN3_NEXT, "--gpu", "h100-80", "--dtype", "int4", "--context", "4k")
    assert run.exit_code == 0, run.stderr
    assert "KV of the context, one GPU" in run.stdout
    assert "fixed state per request, one GPU" in run.stdout
    assert f"{QWEN3_NEXT_STATE_BF16:,} B" in run.stdout
    tp = run_cli("fit", QWEN3_NEXT, "--gpu", "h100-80x2", "--tp", "2", "--dtype", "int4", "--context", "4k")
    assert "fixed state per request, one replica (2 GPUs)" in tp.stdout
    dense = run_cli("fit", "llama-3.1-8b", "--gpu", "h100-80")
    assert "fixed state" not in dense.stdout


@pytest.mark.parametrize(("model", "state"), [(QWEN3_NEXT, 2 * QWEN3_NEXT_STATE_BF16), ("llama-3.1-8b", 0)])
def test_cli_llamacpp_json_carries_the_keys(model: str, state: int) -> None:
    run = run_cli("fit", model, "--gpu", "h100-80", "--dtype", "q4_k_m", "--engine", "llama.cpp", "--context", "4k",
                  "--format", "json")
    assert run.exit_code == 0, run.stderr
    data = run.json()
    assert data["state_bytes_per_request"] == state
    assert data["kv_bytes_per_request"] >= state
    assert "kv_bytes_per_token" in data
