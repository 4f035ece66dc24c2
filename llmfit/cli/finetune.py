"""`llmfit finetune`: what fine-tuning MODEL with a method costs on GPU, term by term, and does it fit?"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from llmfit.cli.common import (
    ExplainOpt,
    FormatOpt,
    PlotOpt,
    PresetsOpt,
    UnitsOpt,
    emit,
    exit_with,
    handle_errors,
    warn,
)
from llmfit.engine.records import to_jsonable
from llmfit.render import OutputFormat
from llmfit.units import DisplayUnits


@handle_errors
def finetune_command(
    model: Annotated[str | None, typer.Argument(help="Model preset (e.g. 7b, llama-3.1-8b), config.json or repo id. "
                                                "Omit with --params.", show_default=False)] = None,
    method: Annotated[str, typer.Option("--method", "-m", help="full, lora, qlora, ia3, prompt-tuning, "
                                        "prefix-tuning, adapter (AdapterHub bottleneck).")] = "lora",
    gpu: Annotated[str | None, typer.Option("--gpu", "-g", help="GPU preset; h100-80x8 = eight of them. Without a "
                                            "GPU: memory only, no verdict.", show_default=False)] = None,
    gpus: Annotated[int | None, typer.Option("--gpus", help="Data-parallel GPUs (default: the count in --gpu, "
                                             "else 1).", show_default=False)] = None,
    recipe: Annotated[str, typer.Option("--recipe", help="Trainer whose defaults to plan with: hf (Trainer + PEFT), "
                                        "trl, torchtune, unsloth, axolotl, deepspeed, qlora-paper.")] = "hf",
    zero: Annotated[int | None, typer.Option("--zero", help="DeepSpeed ZeRO / FSDP sharding stage: 0 none, 1 "
                                             "optimizer states, 2 + gradients, 3 + parameters. Default: the recipe's "
                                             "multi-GPU sharding (hf DDP 0, torchtune FSDP 3, deepspeed 2).",
                                             show_default=False)] = None,
    seq: Annotated[str, typer.Option("--seq", "-s", help="Training sequence length: 2048, 4k.")] = "2048",
    batch: Annotated[int | None, typer.Option("--batch", "-b", help="Micro-batch per GPU (default: the recipe's, "
                                              "else 1).", show_default=False)] = None,
    grad_accum: Annotated[int | None, typer.Option("--grad-accum", help="Gradient accumulation steps (>1 keeps "
                                                   "gradients alive through the forward pass).",
                                                   show_default=False)] = None,
    optimizer: Annotated[str | None, typer.Option("--optimizer", help="adamw, adamw-8bit, paged-adamw-8bit, "
                                                  "paged-adamw-32bit, sgd, adafactor (default: the recipe's).",
                                                  show_default=False)] = None,
    precision: Annotated[str | None, typer.Option("--precision", help="bf16-mixed (bf16 compute, fp32 master), "
                                                  "bf16 (pure), fp32 (default: the recipe's).",
                                                  show_default=False)] = None,
    grad_checkpointing: Annotated[bool | None, typer.Option(
        "--grad-checkpointing/--no-grad-checkpointing", help="Recompute activations in backward (keeps layer inputs "
        "only). Default: the recipe's (hf: on for QLoRA, as its paper and prepare_model_for_kbit_training).",
        show_default=False)] = None,
    activation_offload: Annotated[bool | None, typer.Option(
        "--activation-offload/--no-activation-offload", help="Move saved activations to CPU RAM as they are "
        "produced (torchtune enable_activation_offloading, Unsloth 'unsloth' checkpointing).",
        show_default=False)] = None,
    compile_model: Annotated[bool | None, typer.Option(
        "--compile/--no-compile", help="torch.compile of model and loss: pointwise results recomputed in backward, "
        "the loss keeps less (torchtune compile: True).", show_default=False)] = None,
    optimizer_in_backward: Annotated[bool | None, typer.Option(
        "--optimizer-in-backward/--no-optimizer-in-backward", help="Full fine-tune: step each parameter inside "
        "backward and free its gradient (torchtune optimizer_in_bwd; needs --grad-accum 1).",
        show_default=False)] = None,
    adapter_dtype: Annotated[str | None, typer.Option("--adapter-dtype", help="PEFT methods: fp32 (PEFT's "
                                                      "autocast_adapter_dtype) or bf16 (torchtune, the QLoRA repo).",
                                                      show_default=False)] = None,
    cpu_offload: Annotated[str | None, typer.Option("--cpu-offload", help="none, optimizer (ZeRO-Offload: master "
                                                    "weights, optimizer states and gradients in CPU RAM), params "
                                                    "(ZeRO-Infinity / FSDP CPU offload; needs --zero 3).",
                                                    show_default=False)] = None,
    attention: Annotated[str, typer.Option("--attention", help="sdpa (memory-efficient, no s^2 term) or "
                                           "eager.")] = "sdpa",
    lora_rank: Annotated[int, typer.Option("--lora-rank", "-r", help="LoRA rank r.")] = 16,
    lora_targets: Annotated[str | None, typer.Option(
        "--lora-targets", help="Roles q,k,v,o,gate,up,down,router (resolved to the model's own module names), "
        "module names (qkv_proj, w1, ...), or all-linear. Default: PEFT's default for the model type.",
        show_default=False)] = None,
    transformers_major: Annotated[int, typer.Option(
        "--transformers", help="transformers major version whose module layout to plan: 5 (MoE experts are 3-D "
        "parameters) or 4 (one nn.Linear per expert).")] = 5,
    virtual_tokens: Annotated[int, typer.Option("--virtual-tokens", help="Prompt / prefix tuning virtual "
                                                "tokens.")] = 20,
    reduction_factor: Annotated[int, typer.Option("--reduction-factor", help="Bottleneck adapter: hidden / "
                                                  "bottleneck.")] = 16,
    adapter_config: Annotated[str, typer.Option("--adapter-config", help="seq_bn (Pfeiffer, one per layer) or "
                                                "double_seq_bn (Houlsby, two).")] = "seq_bn",
    dataset_tokens: Annotated[str | None, typer.Option("--dataset-tokens", help="Tokens per epoch (e.g. 50M, 1e9) "
                                                       "for time and cost.", show_default=False)] = None,
    mfu: Annotated[str, typer.Option("--mfu", help="Model FLOPs utilisation for the time estimate.")] = "0.35",
    params: Annotated[str | None, typer.Option("--params", help="What-if: a bare parameter count (7.5e9, 70B); "
                                               "model states only.", show_default=False)] = None,
    overhead: Annotated[str | None, typer.Option("--overhead", help="What-if: CUDA context etc. per GPU, e.g. "
                                                 "1GiB.", show_default=False)] = None,
    gpu_memory: Annotated[str | None, typer.Option("--gpu-memory", help="What-if: device memory, e.g. 24GiB.",
                                                   show_default=False)] = None,
    qlora_quant: Annotated[str | None, typer.Option("--qlora-quant", help="QLoRA base: nf4 (double quant) or "
                                                    "nf4-nodq. Default nf4.", show_default=False)] = None,
    emit_to: Annotated[str | None, typer.Option("--emit", help="Print the training config matching the plan: "
                                                "deepspeed (ds_config JSON), peft (LoraConfig etc.), bnb "
                                                "(BitsAndBytesConfig).", show_default=False)] = None,
    plot: PlotOpt = None,
    fmt: FormatOpt = OutputFormat.table,
    units: UnitsOpt = DisplayUnits.gib,
    explain: ExplainOpt = False,
    presets: PresetsOpt = None,
) -> None:
    """Memory of fine-tuning MODEL, term by term, and whether it fits. Exit 0 fits, 1 not, 2 bad input.

    The trainer recipe (--recipe) supplies every setting not given: checkpointing, optimizer, loss chunking,
    adapter dtype, offloading, sharding. The output says which settings came from the recipe.

    Examples:

      llmfit finetune 7b --method qlora --gpu rtx-4090 --seq 2048 --batch 4

      llmfit finetune llama-3.1-8b --method lora --recipe torchtune --gpu rtx-4090

      llmfit finetune mixtral-8x7b-v0.1 --method lora --lora-targets all-linear --transformers 4

      llmfit finetune llama-3.1-70b --method full --recipe torchtune --gpu a100-80x8 --cpu-offload params

      llmfit finetune llama-3.1-8b --method qlora --emit peft --format json | jq .emitted.config
    """
    from llmfit.cli import resolve
    from llmfit.engine.emit import TRAINING_EMIT_TARGETS, emit_training
    from llmfit.engine.finetune import METHODS, OPTIMIZERS, PRECISIONS, FinetuneOptions, finetune
    from llmfit.errors import SpecError
    from llmfit.render.finetune import finetune_document
    from llmfit.training_recipes import get_recipe
    from llmfit.units import parse_bytes, parse_count, parse_fraction, parse_tokens

    reg = resolve.registry(presets)
    spec, n_params = resolve.model_or_params(model, params, reg)

    def choice(flag: str, value: str, allowed: tuple[str, ...] | list[str]) -> str:
        key = value.strip().lower()
        if key not in allowed:
            raise SpecError(f"unknown {flag} {value!r} (allowed: {', '.join(allowed)})")
        return key

    method_name = choice("--method", method, METHODS)
    optimizer_name = choice("--optimizer", optimizer, list(OPTIMIZERS)) if optimizer is not None else None
    precision_name = choice("--precision", precision, PRECISIONS) if precision is not None else None
    adapter_name_dtype = choice("--adapter-dtype", adapter_dtype, ("fp32", "bf16")) if adapter_dtype else None
    offload_name = choice("--cpu-offload", cpu_offload, ("none", "optimizer", "params")) if cpu_offload else None
    recipe_spec = get_recipe(recipe)
    attention_name = choice("--attention", attention, ("sdpa", "eager"))
    adapter_name = choice("--adapter-config", adapter_config, ("seq_bn", "double_seq_bn"))
    emit_name = choice("--emit", emit_to, TRAINING_EMIT_TARGETS) if emit_to is not None else None
    quant_name = choice("--qlora-quant", qlora_quant, ("nf4", "nf4-nodq")) if qlora_quant is not None else "nf4"
    if qlora_quant is not None and method_name != "qlora":
        raise SpecError(f"--qlora-quant is for --method qlora (the {method_name} base is not quantized)")
    for flag, value, high in (("--batch", 1 if batch is None else batch, 1 << 20),
                              ("--grad-accum", 1 if grad_accum is None else grad_accum, 1 << 20),
                              ("--lora-rank", lora_rank, 1 << 16), ("--virtual-tokens", virtual_tokens, 1 << 20),
                              ("--reduction-factor", reduction_factor, 1 << 16)):
        if value <= 0 or value > high:
            raise SpecError(f"{flag} must be a positive integer up to {high:,}, got {value}")
    if zero is not None and zero not in (0, 1, 2, 3):
        raise SpecError(f"--zero must be 0, 1, 2 or 3, got {zero}")
    targets = None
    if lora_targets is not None:
        targets = tuple(t.strip() for t in lora_targets.split(",") if t.strip())
        if not targets:
            raise SpecError("--lora-targets is empty; give e.g. q,v or all-linear")
    if transformers_major not in (4, 5):
        raise SpecError(f"--transformers must be 4 or 5, got {transformers_major}")

    gpu_spec = None
    preset_count = 1
    if gpu is not None or gpu_memory is not None:
        gpu_spec, preset_count = resolve.resolve_gpu(gpu, reg, gpu_memory)
    if gpus is not None and (gpus <= 0 or gpus > 1 << 16):
        raise SpecError(f"--gpus must be a positive integer, got {gpus}")
    if gpus is not None and preset_count > 1 and gpus != preset_count:
        raise SpecError(f"--gpu {gpu} means {preset_count} GPUs but --gpus says {gpus}")
    n_gpus = gpus if gpus is not None else preset_count

    options = FinetuneOptions(
        method=method_name,  # type: ignore[arg-type]
        recipe=recipe_spec,
        activation_offload=activation_offload,  # type: ignore[arg-type]
        compile=compile_model,  # type: ignore[arg-type]
        optimizer_in_backward=optimizer_in_backward,  # type: ignore[arg-type]
        adapter_dtype=adapter_name_dtype,  # type: ignore[arg-type]
        cpu_offload=offload_name,  # type: ignore[arg-type]
        seq_tokens=parse_tokens(seq, what="--seq"),
        micro_batch=batch,  # type: ignore[arg-type]
        grad_accum=grad_accum,  # type: ignore[arg-type]
        optimizer=optimizer_name,  # type: ignore[arg-type]
        precision=precision_name,  # type: ignore[arg-type]
        grad_checkpointing=grad_checkpointing,  # type: ignore[arg-type]
        attention=attention_name,  # type: ignore[arg-type]
        lora_rank=lora_rank,
        lora_targets=targets,
        transformers=transformers_major,
        virtual_tokens=virtual_tokens,
        adapter_reduction_factor=reduction_factor,
        adapter_config=adapter_name,  # type: ignore[arg-type]
        qlora_format=quant_name,  # type: ignore[arg-type]
        gpus=n_gpus,
        zero=zero,  # type: ignore[arg-type]
        dataset_tokens=parse_count(dataset_tokens, what="--dataset-tokens") if dataset_tokens else None,
        mfu=parse_fraction(mfu, what="--mfu"),
        overhead_override_bytes=parse_bytes(overhead, what="--overhead") if overhead else None,
    )
    result = finetune(spec, gpu_spec, options, params=n_params)
    emitted = emit_training(emit_name, result) if emit_name is not None else None
    for message in result.warnings:
        warn(message)
    if plot is not None:
        from llmfit.cli.plot_data import plot_finetune

        plot_finetune(plot, spec, gpu_spec, options, params=n_params, methods=METHODS)
    if emitted is None:
        emit(fmt, result, lambda: finetune_document(result, units), explain=explain)
    else:
        payload = {**to_jsonable(result), "emitted": to_jsonable(emitted)}
        emit(fmt, payload, lambda: _with_emitted(finetune_document(result, units), emitted), explain=explain)
    exit_with(result.fits is not False)


def _with_emitted(doc: Any, emitted: Any) -> Any:
    """The report with the emitted config as a block, exactly the text to save or paste."""
    from dataclasses import replace

    title = {"deepspeed": "DeepSpeed config (ds_config.json)", "peft": f"PEFT {emitted.config_class}",
             "bnb": "bitsandbytes quantization_config"}[emitted.emit]
    notes = "".join(f"\n# {note}" for note in emitted.notes)
    return replace(doc, blocks=[*doc.blocks, f"{title}:\n{emitted.text}{notes}"])


def register(app: typer.Typer) -> None:
    from llmfit.cli.examples import epilog

    app.command("finetune", epilog=epilog("finetune"))(finetune_command)
