"""check-log: real start-up log lines (quoted in ../shared/validation/vllm_kv.yaml) written to temporary files,
read back, predicted and compared. Expected figures are the logs' own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# llmd-v019-llama31-8b-tp1 (llm-d-planner PR #205, vLLM v0.19.0, H100 79.19 GiB, util 0.95, max_model_len 8192);
# the prefixes are vLLM's v1 format (vllm-pr13596-log-format quotes 'INFO 02-20 00:01:02 kv_cache_utils.py:522]').
V019_LINES = [
    "(EngineCore_DP0 pid=125) INFO 04-01 10:00:00 [gpu_model_runner.py:2000] Model loading took 14.99 GiB memory "
    "and 14.429680 seconds",
    "(EngineCore_DP0 pid=125) INFO 04-01 10:00:18 [gpu_worker.py:300] Memory profiling takes 17.96 seconds. Total "
    "non KV cache memory: 17.12GiB; torch peak memory increase: 1.89GiB; non-torch forward increase memory: 0.25GiB;"
    " weights memory: 14.99GiB.",
    "INFO 04-01 10:00:18 [gpu_worker.py:301] Available KV cache memory: 58.11 GiB",
    "INFO 04-01 10:00:19 [kv_cache_utils.py:1000] GPU KV cache size: 476,016 tokens",
    "Maximum concurrency for 8,192 tokens per request: 58.11x",
]
# vllm-10517-llama31-8b-3090-20k (vllm issue #10517, V0 engine, RTX 3090), without prefixes.
V0_LINES = [
    "Loading model weights took 14.9888 GB",
    "Memory profiling results: total_gpu_memory=23.58GiB initial_memory_usage=15.34GiB peak_torch_memory=17.06GiB "
    "memory_usage_post_profile=15.35GiB non_torch_memory=0.35GiB kv_cache_size=3.81GiB gpu_memory_utilization=0.90",
    "# GPU blocks: 1952, # CPU blocks: 2048",
    "Maximum concurrency for 20000 tokens per request: 1.56x",
]
# llamacpp-ollama-16480-gpt-oss-120b (ollama issue #16480, llama.cpp via Ollama 0.30.2, ROCm0).
LLAMA_LINES = [
    "llama_context: n_seq_max = 2",
    "llama_context: n_ctx = 262144",
    "llama_kv_cache_iswa: creating non-SWA KV cache, size = 131072 cells",
    "llama_kv_cache: size = 9216.00 MiB (131072 cells,  18 layers,  2/2 seqs), K (f16): 4608.00 MiB, V (f16): "
    "4608.00 MiB",
]


def _log(tmp_path: Path, lines: list[str]) -> str:
    path = tmp_path / "startup.log"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_v019_log_within_tolerance(cli: Any, tmp_path: Path) -> None:
    run = cli("check-log", _log(tmp_path, V019_LINES), "--model", "llama-3.1-8b", "--gpu", "h100-80",
              "--engine-version", "0.19.0", "--format", "json")
    assert run.exit_code == 0, run.stderr
    data = run.json()
    assert data["engine"] == "vllm" and data["engine_profile"] == "0.19" and data["model"] == "llama-3.1-8b"
    names = {line["name"]: line for line in data["lines"]}
    assert set(names) == {"loaded_weights_bytes_per_gpu", "kv_budget_bytes_per_gpu", "kv_tokens",
                          "vllm_max_concurrency"}
    assert names["kv_tokens"]["measured"] == 476_016
    assert abs(names["kv_tokens"]["error"]) < 0.01 and data["worst_error"] < 0.01
    # util 0.95 is not in these lines: inferred from (17.12 + 58.11) / 79.19
    assert any("0.95 inferred" in note for note in data["notes"])


def test_v0_log_names_its_gpu_by_memory(cli: Any, tmp_path: Path) -> None:
    run = cli("check-log", _log(tmp_path, V0_LINES), "--model", "llama-3.1-8b", "--engine-version", "0.6.4",
              "--format", "json")
    assert run.exit_code == 0, run.stderr
    data = run.json()
    assert data["gpu"] == "rtx-3090"  # total_gpu_memory=23.58GiB
    names = {line["name"]: line for line in data["lines"]}
    assert names["kv_tokens"]["measured"] == 1952 * 16
    assert abs(names["kv_budget_bytes_per_gpu"]["error"]) < 0.01


def test_tolerance_decides_the_exit_code(cli: Any, tmp_path: Path) -> None:
    path = _log(tmp_path, V019_LINES)
    # Read as the newest profile (CUDA graphs inside the budget), the v0.19 pool is smaller: outside 0.01 %.
    run = cli("check-log", path, "--model", "llama-3.1-8b", "--gpu", "h100-80", "--engine-version", "0.21",
              "--tolerance", "0.01%")
    assert run.exit_code == 1
    assert "OUTSIDE" in run.stdout


def test_stdin_and_llamacpp(cli: Any, tmp_path: Path) -> None:
    run = cli("check-log", _log(tmp_path, LLAMA_LINES), "--model", "gpt-oss-120b", "--gpu", "mi300x",
              "--format", "json")
    assert run.exit_code == 0, run.stdout + run.stderr
    data = run.json()
    assert data["engine"] == "llama.cpp"
    assert data["lines"][0]["name"] == "kv_buffer_bytes" and data["lines"][0]["measured"] == 9216 * 2**20


def test_unreadable_log_exits_2_saying_what_it_looked_for(cli: Any, tmp_path: Path) -> None:
    run = cli("check-log", _log(tmp_path, ["hello", "world"]))
    assert run.exit_code == 2
    assert "looked for" in run.stderr and "GPU KV cache size" in run.stderr
    missing = cli("check-log", str(tmp_path / "nope.log"))
    assert missing.exit_code == 2 and "cannot read" in missing.stderr


def test_log_without_model_asks_for_it(cli: Any, tmp_path: Path) -> None:
    run = cli("check-log", _log(tmp_path, V019_LINES), "--gpu", "h100-80")
    assert run.exit_code == 2 and "--model" in run.stderr


def test_sglang_format(cli: Any, tmp_path: Path) -> None:
    # SGLang's own format (model_runner.py: 'Load weight end. ... mem usage=%.2f GB', 'KV Cache is allocated.
    # #tokens: %d'); the figures are llmfit's own prediction for this deployment, so this checks the reading
    # and the wiring, not the accuracy (no SGLang log is in the validation data).
    from llmfit.engine.engines import get_engine
    from llmfit.engine.formats import get_format
    from llmfit.engine.serving import Deployment, ServingOptions
    from llmfit.presets import load_registry

    reg = load_registry()
    result = get_engine("sglang").fit(reg.model("llama-3.1-8b"), reg.gpu("h100-80"), get_format("bf16"),
                                      Deployment(gpu_count=1, tp=1, pp=1), ServingOptions(context_tokens=8192))
    lines = ["[2025-09-01 10:00:00] server_args=ServerArgs(model_path='meta-llama/Llama-3.1-8B-Instruct', "
             "tp_size=1, mem_fraction_static=None, context_length=8192)",
             f"[2025-09-01 10:00:10 TP0] KV Cache is allocated. #tokens: {result.kv_tokens}, K size: 1 GB, "
             "V size: 1 GB"]
    run = cli("check-log", _log(tmp_path, lines), "--gpu", "h100-80", "--format", "json")
    assert run.exit_code == 0, run.stderr
    data = run.json()
    assert data["engine"] == "sglang" and data["model"] == "llama-3.1-8b"
    assert data["lines"][0]["error"] == 0


def _validation() -> Path | None:
    import os

    root = Path(os.environ.get("LLMFIT_VALIDATION_DIR", Path(__file__).resolve().parents[3] / "shared" / "validation"))
    return root if (root / "vllm_kv.yaml").is_file() else None


def test_every_quoted_log_of_the_validation_data_is_read(cli: Any, tmp_path: Path) -> None:
    """check-log reads each entry's quoted lines (../shared/validation/vllm_kv.yaml): a verdict (0/1) where the
    entry names a model llmfit has and a GPU, a one-line 'pass --model/--gpu' (2) otherwise, never a crash."""
    import yaml

    root = _validation()
    if root is None:
        import pytest

        pytest.skip("../shared/validation not present")
    data = yaml.safe_load((root / "vllm_kv.yaml").read_text())
    entries = [*data["entries"], *data.get("other_engines", [])]
    gpus = {"H100": "h100-80", "RTX 3090": "rtx-3090", "ROCm0": "mi300x"}
    for entry in entries:
        quotes = [q for q in entry.get("quotes", []) if isinstance(q, str)]
        if not quotes:
            continue
        args = ["check-log", _log(tmp_path, quotes), "--format", "json"]
        gpu = next((preset for key, preset in gpus.items() if key in str(entry.get("gpu", ""))), None)
        if gpu:
            args += ["--gpu", gpu]
        if entry.get("vllm_version"):
            args += ["--engine-version", str(entry["vllm_version"]).split()[0]]
        run = cli(*args)
        assert run.exit_code in (0, 1, 2), (entry["id"], run.stderr)
        if run.exit_code == 2:
            assert run.stderr.count("\n") == 1, (entry["id"], run.stderr)


def test_llamacpp_model_buffer_is_weights_and_output_layer_not_kv(cli: Any, tmp_path: Path) -> None:
    # "CUDA0 model buffer size" is the offloaded tensors only; the KV cache has its own buffer line. The old
    # prediction summed every VRAM line with "layers" in its name, which took in "KV cache of the GPU layers".
    from llmfit.engine.formats import get_format
    from llmfit.engine.llamacpp import LlamaCppOptions, llamacpp_fit
    from llmfit.presets import load_registry

    registry = load_registry()
    result = llamacpp_fit(registry.model("llama-3.1-8b"), registry.gpu("rtx-4090"), get_format("q4_k_m"),
                          LlamaCppOptions(ctx_size=8192, parallel=1, cache_type_k="f16", cache_type_v="f16"), None)
    lines = {line.name: line.bytes for line in result.vram_lines}
    expected = lines["weights of 32 layers"] + lines["output layer"]
    assert lines["KV cache of the GPU layers"] == 32 * 8192 * 8 * 128 * 2 * 2  # f16 K + V, all 32 layers
    log = ["llama_context: n_seq_max = 1", "llama_context: n_ctx = 8192",
           # measured sizes as llama.cpp prints them; only the predictions are checked here
           "load_tensors: offloaded 33/33 layers to GPU", "load_tensors:        CUDA0 model buffer size =  4403.49 MiB",
           "llama_kv_cache:      CUDA0 KV buffer size =  1024.00 MiB"]
    run = cli("check-log", _log(tmp_path, log), "--model", "llama-3.1-8b", "--gpu", "rtx-4090", "--format", "json")
    assert run.exit_code in (0, 1), run.stderr
    names = {line["name"]: line for line in run.json()["lines"]}
    assert names["model_buffer_bytes"]["predicted"] == expected
    assert names["kv_buffer_bytes"]["predicted"] == lines["KV cache of the GPU layers"]
