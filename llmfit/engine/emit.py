"""Launch commands and configs for the planned deployment, in each engine's own flags.

Flag names from each engine's documented CLI:
- vLLM `vllm serve` (vllm/engine/arg_utils.py EngineArgs): --tensor-parallel-size, --pipeline-parallel-size,
  --data-parallel-size, --max-model-len, --max-num-seqs, --gpu-memory-utilization, --kv-cache-dtype,
  --quantization, --dtype, --block-size.
- SGLang `python -m sglang.launch_server` (python/sglang/srt/server_args.py): --model-path, --tp-size,
  --pp-size, --dp-size, --context-length, --max-running-requests, --mem-fraction-static, --kv-cache-dtype,
  --quantization, --dtype.
- TensorRT-LLM `trtllm-serve` (tensorrt_llm/commands/serve.py): --tp_size, --pp_size, --max_seq_len,
  --max_batch_size, --kv_cache_free_gpu_memory_fraction.
- llama.cpp `llama-server` (tools/server README, common/arg.cpp): -m, -ngl/--n-gpu-layers, -c/--ctx-size,
  -np/--parallel, -ctk/-ctv (--cache-type-k/v), -fa, -ub/--ubatch-size.
Every value comes from the plan's result object; nothing is recomputed here. Training configs (DeepSpeed
JSON, PEFT and bitsandbytes arguments) for `finetune --emit` live in emit_training.py, re-exported here.
"""

from __future__ import annotations

import shlex
from dataclasses import field

from llmfit.engine.records import record
from llmfit.engine.serving import FitResult

# llmfit weight format -> the engine's --quantization value (None: no flag; the checkpoint says it).
VLLM_QUANTIZATION = {"fp8": "fp8", "awq": "awq", "gptq": "gptq", "nf4": "bitsandbytes", "nf4-nodq": "bitsandbytes",
                     "mxfp4": "mxfp4"}
SGLANG_QUANTIZATION = {"fp8": "fp8", "awq": "awq", "gptq": "gptq", "nf4": "bitsandbytes",
                       "nf4-nodq": "bitsandbytes", "mxfp4": "mxfp4"}
VLLM_KV = {"fp8": "fp8", "fp8_e4m3": "fp8_e4m3", "fp8_e5m2": "fp8_e5m2"}
SGLANG_KV = {"fp8": "fp8_e4m3", "fp8_e4m3": "fp8_e4m3", "fp8_e5m2": "fp8_e5m2"}
LLAMACPP_KV = {"fp16": "f16", "bf16": "bf16", "fp32": "f32", "q8_0": "q8_0", "q4_0": "q4_0"}
DTYPE_NAMES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


@record
class LaunchCommand:
    """One engine invocation: argv (for scripts) and the same as one shell-quoted line."""

    engine: str
    argv: list[str]
    command: str
    notes: list[str] = field(default_factory=list)


def _command(engine: str, argv: list[str], notes: list[str]) -> LaunchCommand:
    return LaunchCommand(engine=engine, argv=argv, command=shlex.join(argv), notes=notes)


def _max_seqs(result: FitResult) -> int:
    """Concurrent sequences per replica: what the pool holds, never above the engine cap."""
    per_replica = (result.max_concurrency or 0) // max(1, result.replicas)
    return max(1, min(per_replica, result.max_num_seqs))


# Formats an engine can produce while loading a 16-bit checkpoint (fp8, bitsandbytes); the others are
# calibrated offline (GPTQ, AWQ) or shipped that way (MXFP4), so the model id must name such a checkpoint.
_ONLINE_QUANTIZATION = ("fp8", "nf4", "nf4-nodq")


def _prequantized_note(dtype: str, model_id: str) -> list[str]:
    if dtype in _ONLINE_QUANTIZATION:
        return []
    how = "published in it (gpt-oss is)" if dtype.startswith("mxfp4") else f"quantized offline with {dtype.upper()}"
    return [f"{dtype}: the engine cannot quantize to it while loading; unless {model_id} is already {how}, "
            f"point at such a checkpoint of it"]


def vllm_command(result: FitResult, model_id: str, *, pin_kv_pool: bool = False) -> LaunchCommand:
    """`vllm serve`; pin_kv_pool adds --kv-cache-memory-bytes with the planned pool, which vLLM then takes as
    is, skipping profiling (gpu_worker.determine_available_memory): the same pool on every vLLM version."""
    argv = ["vllm", "serve", model_id,
            "--tensor-parallel-size", str(result.tp),
            "--pipeline-parallel-size", str(result.pp)]
    if result.replicas > 1:
        argv += ["--data-parallel-size", str(result.replicas)]
    argv += ["--max-model-len", str(result.context_tokens),
             "--max-num-seqs", str(_max_seqs(result)),
             "--gpu-memory-utilization", f"{result.gpu_util:g}",
             "--block-size", str(result.block_size)]
    notes = []
    if pin_kv_pool and result.kv_budget_bytes_per_gpu > 0:
        argv += ["--kv-cache-memory-bytes", str(result.kv_budget_bytes_per_gpu)]
        notes.append("--kv-cache-memory-bytes pins the planned pool (vLLM skips its memory profiling and ignores "
                     "--gpu-memory-utilization); check the weights + activations still fit beside it")
    if result.dtype in DTYPE_NAMES:
        argv += ["--dtype", DTYPE_NAMES[result.dtype]]
    if result.dtype in VLLM_QUANTIZATION:
        argv += ["--quantization", VLLM_QUANTIZATION[result.dtype]]
        notes += _prequantized_note(result.dtype, model_id)
    elif result.dtype not in DTYPE_NAMES:
        notes.append(f"{result.dtype}: point vLLM at a checkpoint already in this format (no --quantization flag)")
    if result.kv_dtype in VLLM_KV:
        argv += ["--kv-cache-dtype", VLLM_KV[result.kv_dtype]]
    if result.pp > 1 and result.tp * result.pp > 8:
        notes.append("pipeline stages on several nodes: start a Ray cluster first (vLLM multi-node serving)")
    return _command("vllm", argv, notes)


def sglang_command(result: FitResult, model_id: str) -> LaunchCommand:
    argv = ["python", "-m", "sglang.launch_server", "--model-path", model_id,
            "--tp-size", str(result.tp)]
    if result.pp > 1:
        argv += ["--pp-size", str(result.pp)]
    if result.replicas > 1:
        argv += ["--dp-size", str(result.replicas)]
    argv += ["--context-length", str(result.context_tokens),
             "--max-running-requests", str(_max_seqs(result)),
             "--mem-fraction-static", f"{result.gpu_util:g}"]
    if result.dtype in DTYPE_NAMES:
        argv += ["--dtype", DTYPE_NAMES[result.dtype]]
    notes: list[str] = []
    if result.dtype in SGLANG_QUANTIZATION:
        argv += ["--quantization", SGLANG_QUANTIZATION[result.dtype]]
        notes += _prequantized_note(result.dtype, model_id)
    if result.kv_dtype in SGLANG_KV:
        argv += ["--kv-cache-dtype", SGLANG_KV[result.kv_dtype]]
    return _command("sglang", argv, notes)


def trtllm_command(result: FitResult, model_id: str, free_fraction: float) -> LaunchCommand:
    argv = ["trtllm-serve", model_id, "--tp_size", str(result.tp), "--pp_size", str(result.pp),
            "--max_seq_len", str(result.context_tokens), "--max_batch_size", str(_max_seqs(result)),
            "--kv_cache_free_gpu_memory_fraction", f"{free_fraction:g}"]
    notes = [f"{result.replicas} replicas: start one server per replica behind a load balancer"] \
        if result.replicas > 1 else []
    return _command("trt-llm", argv, notes)


def launch_command(engine: str, result: FitResult, model_id: str, *, memory_fraction: float | None = None,
                   pin_kv_pool: bool = False) -> LaunchCommand:
    if engine == "vllm":
        return vllm_command(result, model_id, pin_kv_pool=pin_kv_pool)
    if engine == "sglang":
        return sglang_command(result, model_id)
    if engine == "trt-llm":
        return trtllm_command(result, model_id, memory_fraction if memory_fraction is not None else 0.9)
    raise ValueError(f"no launch command for engine {engine!r}")


def llama_server_command(model_path: str, *, gpu_layers: int, ctx_size: int, parallel: int, kv_type_k: str,
                         kv_type_v: str, flash_attn: bool, ubatch: int) -> LaunchCommand:
    argv = ["llama-server", "-m", model_path, "-ngl", str(gpu_layers), "-c", str(ctx_size), "-np", str(parallel),
            "-ub", str(ubatch), "-fa", "on" if flash_attn else "off"]
    notes = []
    if kv_type_k != "f16" or kv_type_v != "f16":
        argv += ["-ctk", kv_type_k, "-ctv", kv_type_v]
        if not flash_attn and kv_type_v != "f16":
            notes.append("a quantized V cache needs flash attention (-fa on) in llama.cpp")
    return _command("llama.cpp", argv, notes)


# Training configs (`finetune --emit`): emit_training.py, re-exported for callers of this module.
from llmfit.engine.emit_training import (  # noqa: E402
    TRAINING_EMIT_TARGETS,
    TrainingConfig,
    bnb_config,
    deepspeed_config,
    emit_training,
    peft_config,
)

__all__ = [
    "TRAINING_EMIT_TARGETS",
    "LaunchCommand",
    "TrainingConfig",
    "bnb_config",
    "deepspeed_config",
    "emit_training",
    "launch_command",
    "llama_server_command",
    "peft_config",
    "sglang_command",
    "trtllm_command",
    "vllm_command",
]
