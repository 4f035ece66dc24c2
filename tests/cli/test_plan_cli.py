"""plan, fit --emit / --solve context / --engine llama.cpp through the CLI; emitted flags parsed and checked."""

from __future__ import annotations

import argparse
import shlex
from typing import Any

GPUS = "h100-80,a100-80,l40s,mi300x"


def vllm_flags(argv: list[str]) -> argparse.Namespace:
    """Parse `vllm serve` flags the way vLLM's argparse would (the subset llmfit emits)."""
    parser = argparse.ArgumentParser(prog="vllm serve", exit_on_error=False)
    parser.add_argument("model")
    for flag in ("--tensor-parallel-size", "--pipeline-parallel-size", "--data-parallel-size", "--max-model-len",
                 "--max-num-seqs", "--block-size"):
        parser.add_argument(flag, type=int)
    parser.add_argument("--gpu-memory-utilization", type=float)
    for flag in ("--dtype", "--quantization", "--kv-cache-dtype"):
        parser.add_argument(flag)
    assert argv[:2] == ["vllm", "serve"]
    return parser.parse_args(argv[2:])


def test_fit_emit_vllm_flags_match_the_fit(cli: Any) -> None:
    run = cli("fit", "llama-3.1-70b", "--gpu", "h100-80x4", "--context", "16k", "--kv-dtype", "fp8", "--dtype", "fp8",
              "--emit", "vllm", "--format", "json")
    assert run.exit_code == 0, run.stderr
    data = run.json()
    launch = data["launch"]
    assert shlex.split(launch["command"]) == launch["argv"]
    flags = vllm_flags(launch["argv"])
    assert flags.model == "meta-llama/Llama-3.1-70B"
    assert flags.tensor_parallel_size == data["tp"] == 4
    assert flags.pipeline_parallel_size == data["pp"] == 1
    assert flags.max_model_len == data["context_tokens"] == 16384
    assert flags.max_num_seqs == min(data["max_concurrency"], data["max_num_seqs"])
    assert flags.gpu_memory_utilization == data["gpu_util"]
    assert flags.block_size == data["block_size"]
    assert flags.quantization == "fp8" and flags.kv_cache_dtype == "fp8"
    assert data["speed_bounds"]["tokens_per_second"] > 0


def test_fit_emit_vllm_table_prints_the_command(cli: Any) -> None:
    run = cli("fit", "llama-3.1-8b", "--gpu", "h100-80", "--emit", "vllm")
    assert run.exit_code == 0
    assert "vllm serve meta-llama/Llama-3.1-8B" in run.stdout and "--max-model-len 8192" in run.stdout
    assert "Speed bounds (roofline)" in run.stdout


def test_solve_context_is_the_boundary(cli: Any) -> None:
    run = cli("fit", "llama-3.1-8b", "--gpu", "a100-40", "-k", "20", "--solve", "context", "--format", "json")
    assert run.exit_code == 0, run.stderr
    data = run.json()
    solved = data["solved"]["context_tokens"]
    assert data["context_tokens"] == solved and data["max_concurrency"] >= 20
    # One token more and 20 requests no longer fit; at the solved context they do.
    at = cli("fit", "llama-3.1-8b", "--gpu", "a100-40", "-k", "20", "--context", str(solved), "--format", "json")
    beyond = cli("fit", "llama-3.1-8b", "--gpu", "a100-40", "-k", "20", "--context", str(solved + 1),
                 "--format", "json")
    assert at.exit_code == 0 and at.json()["max_concurrency"] >= 20
    assert beyond.exit_code == 1 and beyond.json()["max_concurrency"] < 20


def test_solve_context_caps_at_the_model_maximum(cli: Any) -> None:
    run = cli("fit", "llama-3.1-8b", "--gpu", "h200", "--solve", "context", "--format", "json")
    assert run.exit_code == 0
    assert run.json()["context_tokens"] == 131072 and "maximum" in run.json()["solved"]["limited_by"]


def test_plan_70b_32k_64_ranks_multi_gpu_deployments_with_commands(cli: Any) -> None:
    run = cli("plan", "llama-3.1-70b", "--context", "32k", "--concurrency", "64", "--gpu-types", GPUS,
              "--format", "json")
    assert run.exit_code == 0, run.stderr
    data = run.json()
    assert data["fits"] and data["rows"] and data["configurations_evaluated"] > data["configurations_serving"] > 0
    for row in data["rows"]:
        assert row["gpu_count"] > 1 and row["max_concurrency"] >= 64
        flags = vllm_flags(row["launch"]["argv"])
        assert flags.tensor_parallel_size == row["tp"] and flags.pipeline_parallel_size == row["pp"]
        assert (flags.data_parallel_size or 1) == row["replicas"]
        assert flags.max_model_len == 32768
        # The emitted per-replica cap still serves this replica's share of the 64 requests.
        assert flags.max_num_seqs * row["replicas"] >= 64
        if row["kv_dtype"] == "fp8":
            assert flags.kv_cache_dtype == "fp8"
    # Priced-less presets are said to rank after priced ones.
    assert any("price_per_hour" in note for note in data["notes"])


def test_plan_table_and_explain(cli: Any) -> None:
    run = cli("plan", "llama-3.1-70b", "--context", "32k", "--concurrency", "64", "--gpu-types", GPUS, "--top", "3",
              "--explain")
    assert run.exit_code == 0
    assert "Pareto front" in run.stdout and "vllm serve meta-llama/Llama-3.1-70B" in run.stdout
    assert "decode step (lower bound)" in run.stdout and "time to first token (lower bound)" in run.stdout


def test_plan_sglang_emits_sglang_flags(cli: Any) -> None:
    run = cli("plan", "llama-3.1-8b", "--context", "8k", "--concurrency", "8", "--gpu-types", "l40s",
              "--engine", "sglang", "--format", "json")
    assert run.exit_code == 0
    row = run.json()["rows"][0]
    argv = row["launch"]["argv"]
    assert argv[:3] == ["python", "-m", "sglang.launch_server"]
    assert argv[argv.index("--tp-size") + 1] == str(row["tp"])
    assert float(argv[argv.index("--mem-fraction-static") + 1]) == row["fit"]["gpu_util"]


def test_plan_exits_1_when_nothing_serves(cli: Any) -> None:
    run = cli("plan", "llama-3.1-70b", "--context", "128k", "--concurrency", "256", "--gpu-types", "a10g",
              "--max-gpus", "2")
    assert run.exit_code == 1
    assert "NOTHING SERVES" in run.stdout


def test_plan_bad_input_is_exit_2(cli: Any) -> None:
    for args in (["--engine", "tgi"], ["--kv-dtypes", "fp7"], ["--gpu-types", "h100-81"], ["--concurrency", "0"]):
        run = cli("plan", "llama-3.1-8b", *args)
        assert run.exit_code == 2, args
        assert run.stderr.startswith("error:") and "Traceback" not in run.stderr


def test_llama_cpp_offload_through_fit(cli: Any) -> None:
    run = cli("fit", "llama-3.1-70b", "--dtype", "q4_k_m", "--engine", "llama.cpp", "--gpu-memory", "24GiB",
              "--ram", "64GB", "--emit", "llama.cpp", "--format", "json")
    assert run.exit_code == 0, run.stderr
    data = run.json()
    argv = data["launch"]["argv"]
    assert argv[0] == "llama-server"
    assert int(argv[argv.index("-ngl") + 1]) == data["gpu_layers"] == data["layers_on_gpu"]
    assert 0 < data["gpu_layers"] < 80 and data["vram_needed_bytes"] <= data["vram_bytes"]
    assert int(argv[argv.index("-c") + 1]) == 8192


def test_llama_cpp_ram_too_small_is_exit_1(cli: Any) -> None:
    run = cli("fit", "llama-3.1-70b", "--dtype", "q4_k_m", "--engine", "llama.cpp", "--gpu-memory", "24GiB",
              "--ram", "16GB")
    assert run.exit_code == 1 and "system RAM too small" in run.stdout
