"""`check-log`: read a serving engine's start-up log (text), find the deployment and the measured figures.

Pure: text in, facts out; the CLI resolves the model and GPU, predicts with the engine and compares
(`compare`). Lines are found by `search`, so process prefixes ("(EngineCore_DP0 pid=1) INFO 05-03 ...
[gpu_worker.py:599]", "[2025-01-01 12:00:00 TP0]", "llama_kv_cache:") do not matter. Formats read:
- vLLM V0 (vllm/worker/worker.py): "Loading model weights took X GB", "Memory profiling results:
  total_gpu_memory=..GiB ... kv_cache_size=..GiB gpu_memory_utilization=..", "# GPU blocks: N".
- vLLM v1 (vllm/v1/worker/gpu_worker.py, vllm/v1/core/kv_cache_utils.py): "Model loading took X GiB memory",
  "Memory profiling takes .. Total non KV cache memory: ..GiB; torch peak memory increase: ..GiB; non-torch
  forward increase memory: ..GiB; weights memory: ..GiB", "Available KV cache memory: X GiB", "GPU KV cache
  size: N tokens", "Maximum concurrency for N tokens per request: Xx", "num_gpu_blocks is: N",
  "Free memory on device (F/T GiB) on startup. Desired GPU memory utilization is (U, X GiB)".
- SGLang (python/sglang/srt/model_executor/model_runner.py): "server_args=ServerArgs(model_path='..', ...)",
  "Load weight end. ... mem usage=X GB", "KV Cache is allocated. #tokens: N".
- llama.cpp (src/llama-model.cpp, llama-kv-cache.cpp, llama-context.cpp): "general.name str = ..",
  "CUDA0 model buffer size = X MiB", "CUDA0 KV buffer size = X MiB", "CUDA0 compute buffer size = X MiB",
  "n_ctx = N", "n_seq_max = N".
"""

from __future__ import annotations

import re
from dataclasses import field
from typing import Any

from llmfit.engine.records import record
from llmfit.errors import LlmfitError
from llmfit.units import GIB, MIB

SCHEMA_VERSION = 1
NUM = r"([0-9][0-9,]*(?:\.[0-9]+)?)"


class LogFormatError(LlmfitError):
    """The text is not a start-up log llmfit can read (exit 2)."""


@record
class LogFacts:
    engine: str  # vllm, sglang, llama.cpp
    version: str | None = None
    model_id: str | None = None
    gpu_total_bytes: int | None = None  # total device memory as the engine saw it
    flags: dict[str, Any] = field(default_factory=dict)
    measured: dict[str, float] = field(default_factory=dict)  # fit key -> measured value (bytes, tokens, ratio)
    log_lines: dict[str, str] = field(default_factory=dict)  # fit key -> the log line it was read from
    # figures that explain a difference (non-KV memory, activation peak, ...)
    extras: dict[str, float] = field(default_factory=dict)


def _num(text: str) -> float:
    return float(text.replace(",", ""))


def _first(pattern: str, text: str, flags: int = 0) -> re.Match[str] | None:
    return re.search(pattern, text, flags)


def _line_of(match: re.Match[str], text: str) -> str:
    start = text.rfind("\n", 0, match.start()) + 1
    end = text.find("\n", match.end())
    return text[start:end if end >= 0 else len(text)].strip()[:300]


def detect_engine(text: str) -> str | None:
    if re.search(r"llama_(model_loader|kv_cache|context|model_load)|ggml_cuda_init|load_tensors:", text):
        return "llama.cpp"
    if re.search(r"ServerArgs\(|KV Cache is allocated|sglang", text):
        return "sglang"
    if re.search(r"vllm|vLLM|GPU KV cache size|Available KV cache memory|GPU blocks: |Model loading took|"
                 r"Loading model weights took|Maximum concurrency for|available KV cache memory|"
                 r"tokens that can be stored in KV cache", text):
        return "vllm"
    return None


LOOKED_FOR = ("vLLM: 'Model loading took', 'Available KV cache memory', 'GPU KV cache size', '# GPU blocks', "
              "'Maximum concurrency for N tokens per request'; SGLang: 'KV Cache is allocated. #tokens'; "
              "llama.cpp: 'CUDA0 KV buffer size' / 'llama_kv_cache: size ='")


def parse_log(text: str) -> LogFacts:
    engine = detect_engine(text)
    if engine is None:
        raise LogFormatError(f"not a vLLM, SGLang or llama.cpp start-up log: looked for {LOOKED_FOR}")
    facts = {"vllm": _parse_vllm, "sglang": _parse_sglang, "llama.cpp": _parse_llamacpp}[engine](text)
    if not facts.measured:
        raise LogFormatError(f"{engine} log without a measured memory line: looked for {LOOKED_FOR}")
    return facts


def _parse_vllm(text: str) -> LogFacts:
    measured: dict[str, float] = {}
    lines: dict[str, str] = {}
    extras: dict[str, float] = {}
    flags: dict[str, Any] = {}

    def put(key: str, value: float, match: re.Match[str]) -> None:
        if key not in measured:
            measured[key] = value
            lines[key] = _line_of(match, text)

    version = None
    if m := (_first(r"vLLM API server version ([0-9][0-9.a-z+]*)", text)
             or _first(r"LLM engine \(v([0-9][0-9.a-z+]*)\)", text)
             or _first(r"vllm[ =_-]+v?([0-9]+\.[0-9]+\.[0-9]+)", text)):
        version = m.group(1).rstrip(".")
    model = None
    if m := _first(r"model='([^']+)'", text) or _first(r"'model': '([^']+)'", text) or \
            _first(r"vllm serve ([^\s]+)", text):
        model = m.group(1)
    for key, pattern, cast in (
        ("tp", r"tensor_parallel_size=([0-9]+)", int), ("pp", r"pipeline_parallel_size=([0-9]+)", int),
        ("max_model_len", r"max_seq_len=([0-9]+)", int), ("dtype", r"dtype=(?:torch\.)?([a-z0-9_]+)", str),
        ("kv_cache_dtype", r"kv_cache_dtype=([a-z0-9_]+)", str), ("quantization", r"quantization=([a-z0-9_]+)", str),
        ("block_size", r"block_size=([0-9]+)", int), ("max_num_seqs", r"max_num_seqs=([0-9]+)", int),
        ("max_num_batched_tokens", r"max_num_batched_tokens=([0-9]+)", int),
        ("gpu_memory_utilization", r"gpu_memory_utilization=([0-9.]+)", float),
        ("tp", r"'tensor_parallel_size': ([0-9]+)", int), ("max_model_len", r"'max_model_len': ([0-9]+)", int),
        ("gpu_memory_utilization", r"'gpu_memory_utilization': ([0-9.]+)", float),
        ("kv_cache_dtype", r"'kv_cache_dtype': '([a-z0-9_]+)'", str),
        ("quantization", r"'quantization': '([a-z0-9_]+)'", str),
        ("enforce_eager", r"enforce_eager=(True|False)", str),
    ):
        if key not in flags and (m := _first(pattern, text)):
            flags[key] = cast(m.group(1).rstrip(".,"))
    total = None
    # V0 (vllm/worker/worker.py determine_num_available_blocks)
    if m := _first(r"total_gpu_memory=" + NUM + r"GiB", text):
        total = round(_num(m.group(1)) * GIB)
    if m := _first(r"Memory profiling results:.*?kv_cache_size=" + NUM + r"GiB.*?gpu_memory_utilization=([0-9.]+)",
                   text):
        put("kv_budget_bytes_per_gpu", _num(m.group(1)) * GIB, m)
        flags.setdefault("gpu_memory_utilization", float(m.group(2)))
    if m := _first(r"peak_torch_memory=" + NUM + r"GiB", text):
        extras["peak_torch_bytes"] = _num(m.group(1)) * GIB
    if m := _first(r"non_torch_memory=" + NUM + r"GiB", text):
        extras["non_torch_bytes"] = _num(m.group(1)) * GIB
    # v1 start-up check (gpu_worker): "Free memory on device (F/T GiB) on startup. Desired ... (U, X GiB)"
    if m := _first(r"Free memory on device \(" + NUM + "/" + NUM + r" GiB\) on startup\. Desired GPU memory "
                   r"utilization is \(([0-9.]+)", text):
        total = total or round(_num(m.group(2)) * GIB)
        flags.setdefault("gpu_memory_utilization", float(m.group(3)))
    if m := _first(r"(?:Model loading took|Loading model weights took) " + NUM + r" ?Gi?B", text):
        put("loaded_weights_bytes_per_gpu", _num(m.group(1)) * GIB, m)
    if m := _first(r"Total non KV cache memory: " + NUM + r" ?GiB; torch peak memory increase: " + NUM +
                   r" ?GiB; non-torch forward increase memory: " + NUM + r" ?GiB", text):
        extras["non_kv_bytes"] = _num(m.group(1)) * GIB
        extras["activation_bytes"] = _num(m.group(2)) * GIB
        extras["non_torch_bytes"] = _num(m.group(3)) * GIB
    if m := _first(r"Available KV cache memory: " + NUM + r" ?GiB", text):
        put("kv_budget_bytes_per_gpu", _num(m.group(1)) * GIB, m)
    # The start-up errors of a pool too small for one request (vllm/v1/core/kv_cache_utils.py
    # check_enough_kv_cache_memory; V0 _verify_args / raise_if_cache_size_invalid).
    if m := _first(r"larger than the available KV cache memory \(" + NUM + r" GiB\)", text):
        put("kv_budget_bytes_per_gpu", _num(m.group(1)) * GIB, m)
    if m := _first(r"max seq len \(" + NUM + r"\)", text):
        flags.setdefault("max_model_len", int(_num(m.group(1))))
    if m := _first(r"maximum number of tokens that can be stored in KV cache \(" + NUM + r"\)", text):
        put("kv_tokens", _num(m.group(1)), m)
    if m := _first(r"GPU KV cache size: " + NUM + r" tokens", text):
        put("kv_tokens", _num(m.group(1)), m)
    if m := _first(r"Maximum concurrency for " + NUM + r" tokens per request: " + NUM + "x", text):
        put("vllm_max_concurrency", _num(m.group(2)), m)
        flags.setdefault("max_model_len", int(_num(m.group(1))))
    blocks = None
    if m := _first(r"(?<![A-Za-z])GPU blocks: " + NUM, text) or _first(r"num_gpu_blocks is: " + NUM, text):
        blocks = int(_num(m.group(1)))
        put("kv_tokens", blocks * int(flags.get("block_size", 16)), m)
    if blocks and "kv_tokens" in measured and "block_size" not in flags and measured["kv_tokens"] % blocks == 0:
        flags["block_size"] = int(measured["kv_tokens"] // blocks)
    if m := _first(r"CUDA graph pool memory: " + NUM + r" GiB \(actual\)", text):
        extras["cuda_graph_bytes"] = _num(m.group(1)) * GIB
    if _first(r"Memory profiling results: total_gpu_memory=|GPU blocks: [0-9,]+, # CPU blocks|Loading model weights "
              r"took", text):
        flags["log_format"] = "V0"  # vllm/worker/worker.py: the V0 engine's lines
    if _first(r"CUDA graph memory profiling is enabled", text):
        flags["cuda_graph_profiling"] = True
    elif _first(r"CUDA graph memory profiling is disabled", text):
        flags["cuda_graph_profiling"] = False
    return LogFacts(engine="vllm", version=version, model_id=model, gpu_total_bytes=total, flags=flags,
                    measured=measured, log_lines=lines, extras=extras)


def _parse_sglang(text: str) -> LogFacts:
    measured: dict[str, float] = {}
    lines: dict[str, str] = {}
    flags: dict[str, Any] = {}
    model = None
    if m := _first(r"model_path='([^']+)'", text):
        model = m.group(1)
    for key, pattern, cast in (
        ("tp", r"tp_size=([0-9]+)", int), ("pp", r"pp_size=([0-9]+)", int),
        ("mem_fraction_static", r"mem_fraction_static=([0-9.]+)", float),
        ("max_model_len", r"context_length=([0-9]+)", int), ("kv_cache_dtype", r"kv_cache_dtype='([a-z0-9_]+)'", str),
        ("dtype", r"dtype='([a-z0-9_]+)'", str), ("quantization", r"quantization='([a-z0-9_]+)'", str),
        ("chunked_prefill_size", r"chunked_prefill_size=([0-9]+)", int),
        ("max_running_requests", r"max_running_requests=([0-9]+)", int),
    ):
        if key not in flags and (m := _first(pattern, text)):
            flags[key] = cast(m.group(1))
    version = None
    if m := _first(r"sglang(?:==| version:? ?| v)([0-9]+\.[0-9]+\.[0-9.a-z]+)", text):
        version = m.group(1).rstrip(".")
    if m := _first(r"Load weight end\..*?mem usage=" + NUM + " ?GB", text):
        measured["loaded_weights_bytes_per_gpu"] = _num(m.group(1)) * GIB
        lines["loaded_weights_bytes_per_gpu"] = _line_of(m, text)
    if m := _first(r"KV Cache is allocated\. #tokens: " + NUM, text) or _first(r"max_total_num_tokens=" + NUM, text):
        measured["kv_tokens"] = _num(m.group(1))
        lines["kv_tokens"] = _line_of(m, text)
    return LogFacts(engine="sglang", version=version, model_id=model, flags=flags, measured=measured,
                    log_lines=lines)


def _parse_llamacpp(text: str) -> LogFacts:
    measured: dict[str, float] = {}
    lines: dict[str, str] = {}
    flags: dict[str, Any] = {}
    model = None
    if m := _first(r"general\.name\s+str\s+=\s+(.+)", text):
        model = m.group(1).strip()
    for key, pattern in (("n_ctx", r"\bn_ctx\s+=\s+([0-9]+)"), ("n_seq_max", r"n_seq_max\s+=\s+([0-9]+)"),
                         ("n_ubatch", r"n_ubatch\s+=\s+([0-9]+)"),
                         ("n_gpu_layers", r"offloaded ([0-9]+)/[0-9]+ layers")):
        if m := _first(pattern, text):
            flags[key] = int(m.group(1))
    if m := _first(r"type_k = '([a-z0-9_]+)'", text) or _first(r"K \(([a-z0-9_]+)\)", text):
        flags["cache_type_k"] = m.group(1)
    devices = r"(?:CUDA[0-9]+|ROCm[0-9]+|Metal|MTL[0-9]+|Vulkan[0-9]+)"
    # The KV cache's own size lines (one per cache: non-SWA and SWA) cover every device; else the device buffers.
    found = list(re.finditer(r"llama_kv_cache[a-z_]*: +size = +" + NUM + " MiB", text))
    if found:
        measured["kv_buffer_bytes"] = sum(_num(m.group(1)) for m in found) * MIB
        lines["kv_buffer_bytes"] = "; ".join(_line_of(m, text) for m in found)[:300]
    for key, what in (("model_buffer_bytes", "model buffer size"), ("kv_buffer_bytes", "KV buffer size"),
                      ("compute_buffer_bytes", "compute buffer size")):
        if key in measured:
            continue
        found = list(re.finditer(devices + r"\s+" + what + r"\s+=\s+" + NUM + " MiB", text))
        if found:
            measured[key] = sum(_num(m.group(1)) for m in found) * MIB
            lines[key] = "; ".join(_line_of(m, text) for m in found)[:300]
    return LogFacts(engine="llama.cpp", model_id=model, flags=flags, measured=measured, log_lines=lines)


@record
class CheckLine:
    name: str  # the fit key it checks
    log_line: str
    measured: int | float  # bytes and tokens as integers, ratios as floats
    predicted: int | float | None
    error: float | None  # signed fraction: predicted / measured - 1
    explain: str = ""


@record
class CheckLogResult:
    schema_version: int = SCHEMA_VERSION
    engine: str
    engine_version: str | None
    engine_profile: str | None
    model: str
    gpu: str
    tolerance: float
    lines: list[CheckLine]
    worst_error: float | None
    ok: bool
    flags: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def compare(facts: LogFacts, predicted: dict[str, float | None], explain: dict[str, str], *, model: str, gpu: str,
            profile: str | None, tolerance: float, notes: list[str]) -> CheckLogResult:
    """Each measured line beside its prediction; worst_error is the largest absolute error."""
    out: list[CheckLine] = []
    for key, value in facts.measured.items():
        guess = predicted.get(key)
        error = (guess / value - 1) if guess is not None and value else None
        whole = "bytes" in key or key.endswith("tokens")
        value = round(value) if whole else value
        guess = round(guess) if whole and guess is not None else guess
        out.append(CheckLine(name=key, log_line=facts.log_lines.get(key, ""), measured=value, predicted=guess,
                             error=error, explain=explain.get(key, "")))
    errors = [abs(line.error) for line in out if line.error is not None]
    worst = max(errors) if errors else None
    return CheckLogResult(engine=facts.engine, engine_version=facts.version, engine_profile=profile, model=model,
                          gpu=gpu, tolerance=tolerance, lines=out, worst_error=worst,
                          ok=worst is not None and worst <= tolerance, flags=facts.flags, notes=notes)
