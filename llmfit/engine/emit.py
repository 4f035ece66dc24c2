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
JSON, PEFT and bitsandbytes arguments) for `finetune --emit` are at the end.
"""

from __future__ import annotations

import json
import shlex
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from llmfit.engine.serving import FitResult
from llmfit.errors import SpecError

if TYPE_CHECKING:  # the finetune engine is imported by the training emitters only (fit --emit stays light)
    from llmfit.engine.finetune import FinetuneResult

# llmfit weight format -> the engine's --quantization value (None: no flag; the checkpoint says it).
VLLM_QUANTIZATION = {"fp8": "fp8", "awq": "awq", "gptq": "gptq", "nf4": "bitsandbytes", "nf4-nodq": "bitsandbytes",
                     "mxfp4": "mxfp4"}
SGLANG_QUANTIZATION = {"fp8": "fp8", "awq": "awq", "gptq": "gptq", "nf4": "bitsandbytes",
                       "nf4-nodq": "bitsandbytes", "mxfp4": "mxfp4"}
VLLM_KV = {"fp8": "fp8", "fp8_e4m3": "fp8_e4m3", "fp8_e5m2": "fp8_e5m2"}
SGLANG_KV = {"fp8": "fp8_e4m3", "fp8_e4m3": "fp8_e4m3", "fp8_e5m2": "fp8_e5m2"}
LLAMACPP_KV = {"fp16": "f16", "bf16": "bf16", "fp32": "f32", "q8_0": "q8_0", "q4_0": "q4_0"}
DTYPE_NAMES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


class LaunchCommand(BaseModel):
    """One engine invocation: argv (for scripts) and the same as one shell-quoted line."""

    model_config = ConfigDict(frozen=True)

    engine: str
    argv: list[str]
    command: str
    notes: list[str] = []


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


# ------------------------------------------------------------------------------------------ training configs
# `llmfit finetune --emit deepspeed|peft|bnb`: the plan's settings (finetune.training_settings) in each
# library's own names. DeepSpeed keys from the DeepSpeed configuration JSON reference
# (deepspeed.ai/docs/config-json: batch size, optimizer, fp16/bf16, gradient_clipping, ZeRO optimizations,
# zero_allow_untested_optimizer); PEFT classes from peft.tuners (LoraConfig, IA3Config, PromptTuningConfig,
# PrefixTuningConfig); BitsAndBytesConfig from transformers (quantization_config for from_pretrained).

TRAINING_EMIT_TARGETS = ("deepspeed", "peft", "bnb")
# Values the memory plan does not decide: transformers TrainingArguments defaults (learning_rate 5e-5,
# adam_beta1/2 0.9/0.999, adam_epsilon 1e-8, weight_decay 0.0, max_grad_norm 1.0), so the emitted config
# trains exactly as the Trainer would without a DeepSpeed file.
ADAMW_PARAMS: dict[str, Any] = {"lr": 5e-5, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.0}
GRADIENT_CLIPPING = 1.0
# DeepSpeed ZeRO-3 defaults not used by the memory plan but written out so the file shows every stage-3 knob.
STAGE3_PARAM_PERSISTENCE_THRESHOLD = 100_000
STAGE3_MAX_LIVE_PARAMETERS = 1_000_000_000
STAGE3_MAX_REUSE_DISTANCE = 1_000_000_000
# Optimizers DeepSpeed does not build from its JSON: the model's code passes them to deepspeed.initialize.
CLIENT_OPTIMIZERS = {
    "adamw-8bit": 'bitsandbytes.optim.AdamW8bit (TrainingArguments optim="adamw_bnb_8bit")',
    "paged-adamw-8bit": 'bitsandbytes.optim.PagedAdamW8bit (TrainingArguments optim="paged_adamw_8bit")',
    "sgd": 'torch.optim.SGD (TrainingArguments optim="sgd")',
    "adafactor": 'transformers.optimization.Adafactor (TrainingArguments optim="adafactor")',
}


class TrainingConfig(BaseModel):
    """One emitted training artefact. `config` is the DeepSpeed JSON itself (emit deepspeed) or the keyword
    arguments of `config_class` (emit peft / bnb); `text` is the same as a file or a Python snippet."""

    model_config = ConfigDict(frozen=True)

    emit: str
    config_class: str | None  # LoraConfig, IA3Config, PromptTuningConfig, PrefixTuningConfig, BitsAndBytesConfig
    import_from: str | None  # "peft", "transformers"; None for the DeepSpeed JSON
    config: dict[str, Any]
    text: str
    notes: list[str] = []


def _zero_section(stage: int) -> dict[str, Any]:
    """zero_optimization with the buckets the memory plan counts (DeepSpeed defaults): reduce_bucket_size 5e8;
    stage 3 prefetch 5e7. overlap_comm false (DeepSpeed's documented default): overlapping keeps more bucket
    buffers alive than the plan's one bucket."""
    from llmfit.engine.finetune import DEEPSPEED_PREFETCH_BUCKET, DEEPSPEED_REDUCE_BUCKET

    zero: dict[str, Any] = {"stage": stage}
    if stage in (1, 2):
        zero.update({"allgather_partitions": True, "allgather_bucket_size": DEEPSPEED_REDUCE_BUCKET,
                     "reduce_scatter": True, "reduce_bucket_size": DEEPSPEED_REDUCE_BUCKET,
                     "overlap_comm": False, "contiguous_gradients": True})
    elif stage == 3:
        zero.update({"reduce_bucket_size": DEEPSPEED_REDUCE_BUCKET,
                     "stage3_prefetch_bucket_size": DEEPSPEED_PREFETCH_BUCKET,
                     "stage3_param_persistence_threshold": STAGE3_PARAM_PERSISTENCE_THRESHOLD,
                     "stage3_max_live_parameters": STAGE3_MAX_LIVE_PARAMETERS,
                     "stage3_max_reuse_distance": STAGE3_MAX_REUSE_DISTANCE,
                     # save_pretrained / save_model gather the shards into one 16-bit state dict
                     "stage3_gather_16bit_weights_on_model_save": True,
                     "overlap_comm": False, "contiguous_gradients": True})
    return zero


def deepspeed_config(result: FinetuneResult) -> TrainingConfig:
    """The DeepSpeed config JSON for the plan: train_batch_size = micro-batch x accumulation x GPUs (the
    identity DeepSpeed checks at start-up)."""
    zero: dict[str, Any] = _settings(result)["zero"]  # type: ignore[assignment]
    micro, accum, gpus = zero["train_micro_batch_size_per_gpu"], zero["gradient_accumulation_steps"], zero["gpus"]
    config: dict[str, Any] = {
        "train_batch_size": micro * accum * gpus,
        "train_micro_batch_size_per_gpu": micro,
        "gradient_accumulation_steps": accum,
        "gradient_clipping": GRADIENT_CLIPPING,
        "bf16": {"enabled": bool(zero["bf16"])},
        "fp16": {"enabled": False},
        "zero_optimization": _zero_section(zero["stage"]),
    }
    notes = [f"train_batch_size {micro * accum * gpus} = micro-batch {micro} x accumulation {accum} x {gpus} GPU(s)"]
    optimizer = zero["optimizer"]
    if optimizer == "adamw":
        config["optimizer"] = {"type": "AdamW", "params": dict(ADAMW_PARAMS)}
        notes.append("optimizer params are transformers TrainingArguments defaults (lr 5e-5): set your own lr")
    else:
        notes.append(f"{optimizer} is not built from the DeepSpeed JSON (8-bit and paged optimizers come from "
                     f"bitsandbytes, not DeepSpeed): pass {CLIENT_OPTIMIZERS[optimizer]} to deepspeed.initialize")
        if zero["stage"] >= 1:
            config["zero_allow_untested_optimizer"] = True
    if result.precision == "bf16":
        notes.append("DeepSpeed's bf16 mode keeps fp32 master weights and optimizer states; the plan for "
                     "--precision bf16 counts none: plan with bf16-mixed for what DeepSpeed allocates")
    if zero["gradient_checkpointing"]:
        notes.append("gradient checkpointing is the model's own (TrainingArguments(gradient_checkpointing=True)), "
                     "not DeepSpeed's activation_checkpointing section")
    if result.method == "qlora" and zero["stage"] == 3:
        notes.append("ZeRO-3 with a 4-bit base needs bnb_4bit_quant_storage=bfloat16 (--emit bnb writes it)")
    if zero["stage"] >= 1 and gpus == 1:
        notes.append(f"ZeRO-{zero['stage']} on one GPU shards nothing")
    return TrainingConfig(emit="deepspeed", config_class=None, import_from=None, config=config,
                          text=json.dumps(config, indent=2), notes=notes)


def _settings(result: FinetuneResult) -> dict[str, object]:
    from llmfit.engine.finetune import training_settings

    return training_settings(result)


def _python_call(variable: str, class_name: str, import_from: str, kwargs: dict[str, Any]) -> str:
    """`from lib import Class` and `variable = Class(key=value, ...)`, one argument a line, values as Python
    literals (ast.literal_eval reads each back)."""
    arguments = "".join(f"    {key}={value!r},\n" for key, value in kwargs.items())
    return f"from {import_from} import {class_name}\n\n{variable} = {class_name}(\n{arguments})"


def _peft_kwargs(result: FinetuneResult) -> tuple[str, dict[str, Any], list[str]]:
    settings = _settings(result)
    method = result.method
    if method in ("lora", "qlora"):
        lora: dict[str, Any] = dict(settings["lora"])  # type: ignore[call-overload]
        all_linear = any(t.strip().lower() == "all-linear" for t in result.lora_targets or [])
        rank = lora["r"]
        kwargs = {"r": rank, "lora_alpha": lora["lora_alpha"],
                  "target_modules": "all-linear" if all_linear else list(lora["target_modules"]),
                  "lora_dropout": lora["lora_dropout"], "bias": lora["bias"], "task_type": lora["task_type"]}
        # lora_alpha from the seam: 2 x r, the usual scaling alpha / r = 2 (PEFT's own default is 8 for any r).
        notes = [f"lora_alpha = {lora['lora_alpha']} (2 x r; PEFT's default is 8)",
                 "lora_dropout 0.0 as planned: a dropout > 0 also saves a mask and the dropped input per target"]
        if all_linear:
            notes.append(f"all-linear: every linear layer but lm_head ({', '.join(lora['target_modules'])})")
        return "LoraConfig", kwargs, notes
    if method == "ia3":
        # The plan's IA3 vectors: out x 1 scales a module's output, 1 x in its input (a feed-forward module).
        targets: list[str] = []
        feedforward: list[str] = []
        for tensor in result.trainable_tensors:
            module = tensor.name.rsplit(".", 2)[-2]
            if module not in targets:
                targets.append(module)
            if tensor.rows == 1 and module not in feedforward:
                feedforward.append(module)
        return "IA3Config", {"target_modules": targets, "feedforward_modules": feedforward,
                             "task_type": "CAUSAL_LM"}, []
    if method in ("prompt-tuning", "prefix-tuning"):
        prompt: dict[str, Any] = settings["prompt"]  # type: ignore[assignment]
        class_name = "PromptTuningConfig" if method == "prompt-tuning" else "PrefixTuningConfig"
        return class_name, {"num_virtual_tokens": prompt["num_virtual_tokens"], "task_type": "CAUSAL_LM"}, []
    raise SpecError(f"--emit peft needs a PEFT method (lora, qlora, ia3, prompt-tuning, prefix-tuning), not "
                    f"{method}" + (" (AdapterHub bottleneck adapters are configured in the adapters library)"
                                   if method == "adapter" else ""))


def peft_config(result: FinetuneResult) -> TrainingConfig:
    class_name, kwargs, notes = _peft_kwargs(result)
    return TrainingConfig(emit="peft", config_class=class_name, import_from="peft", config=kwargs,
                          text=_python_call("peft_config", class_name, "peft", kwargs), notes=notes)


def bnb_config(result: FinetuneResult) -> TrainingConfig:
    """BitsAndBytesConfig for the QLoRA base (transformers from_pretrained(quantization_config=...))."""
    settings = _settings(result)
    if "bnb" not in settings:
        raise SpecError(f"--emit bnb needs a quantized base (--method qlora); {result.method} loads the base "
                        f"in {result.base_format or result.precision}")
    kwargs: dict[str, Any] = dict(settings["bnb"])  # type: ignore[call-overload]
    notes = []
    if result.zero == 3:
        # PEFT docs, "Use PEFT QLoRA and DeepSpeed with ZeRO3": the packed 4-bit storage must be a float
        # dtype for ZeRO-3 to shard it like the other parameters.
        kwargs["bnb_4bit_quant_storage"] = "bfloat16"
        notes.append("bnb_4bit_quant_storage=bfloat16 lets ZeRO-3 shard the 4-bit weights")
    return TrainingConfig(emit="bnb", config_class="BitsAndBytesConfig", import_from="transformers",
                          config=kwargs, text=_python_call("bnb_config", "BitsAndBytesConfig", "transformers",
                                                           kwargs), notes=notes)


def emit_training(target: str, result: FinetuneResult) -> TrainingConfig:
    """`finetune --emit deepspeed|peft|bnb` for the plan in `result`."""
    if target == "deepspeed":
        return deepspeed_config(result)
    if target == "peft":
        return peft_config(result)
    if target == "bnb":
        return bnb_config(result)
    raise SpecError(f"unknown --emit {target!r} for finetune (allowed: {', '.join(TRAINING_EMIT_TARGETS)})")
