"""Training configs for `llmfit finetune --emit deepspeed|peft|bnb`: the plan's settings in each library's names.

DeepSpeed keys from the DeepSpeed configuration JSON reference (deepspeed.ai/docs/config-json: batch size,
optimizer, fp16/bf16, gradient_clipping, ZeRO optimizations, offload_optimizer / offload_param,
zero_allow_untested_optimizer); PEFT classes from peft.tuners (LoraConfig with target_modules and
target_parameters, IA3Config with feedforward_modules, PromptTuningConfig, PrefixTuningConfig);
BitsAndBytesConfig from transformers (quantization_config for from_pretrained). Every value comes from the
finetune result; nothing is recomputed, and the PEFT target names are the model's real module names
(peft_targets.py), so PEFT finds each of them.
"""

from __future__ import annotations

import json
from dataclasses import field
from typing import TYPE_CHECKING, Any

from llmfit.engine.records import record
from llmfit.errors import SpecError

if TYPE_CHECKING:  # the finetune engine is imported lazily (fit --emit stays light)
    from llmfit.engine.finetune import FinetuneResult

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
    "paged-adamw-32bit": 'bitsandbytes.optim.PagedAdamW32bit (TrainingArguments optim="paged_adamw_32bit")',
    "sgd": 'torch.optim.SGD (TrainingArguments optim="sgd")',
    "adafactor": 'transformers.optimization.Adafactor (TrainingArguments optim="adafactor")',
}


@record
class TrainingConfig:
    """One emitted training artefact. `config` is the DeepSpeed JSON itself (emit deepspeed) or the keyword
    arguments of `config_class` (emit peft / bnb); `text` is the same as a file or a Python snippet."""

    emit: str
    config_class: str | None  # LoraConfig, IA3Config, PromptTuningConfig, PrefixTuningConfig, BitsAndBytesConfig
    import_from: str | None  # "peft", "transformers"; None for the DeepSpeed JSON
    config: dict[str, Any]
    text: str
    notes: list[str] = field(default_factory=list)


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
    # ZeRO-Offload (offload_optimizer) and ZeRO-Infinity (offload_param, stage 3 only): deepspeed.ai config-json
    # "offload_optimizer": {"device": "cpu", "pin_memory": true}, the settings the estimators call cpu_offload.
    if zero.get("cpu_offload", "none") != "none":
        config["zero_optimization"]["offload_optimizer"] = {"device": "cpu", "pin_memory": True}
    if zero.get("cpu_offload") == "params":
        config["zero_optimization"]["offload_param"] = {"device": "cpu", "pin_memory": True}
    notes = [f"train_batch_size {micro * accum * gpus} = micro-batch {micro} x accumulation {accum} x {gpus} GPU(s)"]
    optimizer = zero["optimizer"]
    if optimizer in ("adamw", "adamw-fused"):  # DeepSpeed builds its own fused AdamW from the JSON
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
        targets = list(result.peft_target_modules or [])
        all_linear = targets == ["all-linear"]
        rank = lora["r"]
        kwargs: dict[str, Any] = {"r": rank, "lora_alpha": lora["lora_alpha"],
                                  "target_modules": "all-linear" if all_linear else targets}
        if result.peft_target_parameters:
            # 3-D expert parameters (transformers 5 MoE): LoRA's ParamWrapper, reached by name.
            kwargs["target_parameters"] = list(result.peft_target_parameters)
        kwargs.update({"lora_dropout": lora["lora_dropout"], "bias": lora["bias"], "task_type": lora["task_type"]})
        # lora_alpha from the seam: 2 x r, the usual scaling alpha / r = 2 (PEFT's own default is 8 for any r).
        notes = [f"lora_alpha = {lora['lora_alpha']} (2 x r; PEFT's default is 8)",
                 "lora_dropout 0.0 as planned: a dropout > 0 also saves a mask and the dropped input per target",
                 f"module names as {result.model or 'the model'} ({result.model_type}) has them in transformers "
                 f"{result.transformers}"]
        if all_linear:
            notes.append(f"all-linear: every nn.Linear but lm_head ({', '.join(result.lora_target_modules or [])})")
        if result.adapter_dtype == "bf16":
            notes.append("the plan keeps the adapters in bf16: get_peft_model(model, peft_config, "
                         "autocast_adapter_dtype=False) (PEFT's default upcasts them to fp32)")
        if result.peft_target_parameters:
            notes.append("target_parameters needs peft >= 0.17 (LoRA ParamWrapper for nn.Parameter experts)")
        return "LoraConfig", kwargs, notes
    if method == "ia3":
        return "IA3Config", {"target_modules": list(result.peft_target_modules or []),
                             "feedforward_modules": list(result.peft_feedforward_modules or []),
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
