"""Trainer recipes: what a fine-tuning framework does by default that changes the memory bill.

A recipe is data (configs/recipes/*.yaml, each setting with the config file or doc it comes from); this module
holds the types that own the rules, so the finetune engine asks the recipe instead of branching on its
name. The defaults of these types are the plain Hugging Face Trainer + PEFT (transformers TrainingArguments:
gradient_checkpointing False, optim adamw_torch; PEFT autocast_adapter_dtype=True keeps adapters in fp32; the
causal-LM loss upcasts the whole logits tensor to fp32), so `Recipe()` is the `hf` recipe and the data file
must agree with it (a test holds them together).

What a recipe decides, per method family (full fine-tune / LoRA and the PEFT family / QLoRA):
- activation checkpointing and activation offloading (saved tensors moved to CPU as they are produced);
- the optimizer, optimizer-in-backward (torchtune `optimizer_in_bwd`: each parameter steps and frees its
  gradient as soon as it is computed), and where optimizer states live (on the GPU, CPU offload);
- full fine-tune precision (mixed with an fp32 master copy, or torchtune's pure bf16) and the adapter dtype;
- the loss: how much of the (tokens x vocab) logits tensor is alive at once (whole, split into N chunks,
  chunks of N tokens, or a fused kernel);
- how several GPUs shard (DDP replicas, ZeRO / FSDP stages) and what the trainer prints as its peak
  (allocated, active or reserved memory).
"""

from __future__ import annotations

from dataclasses import field
from typing import Annotated, Literal

from llmfit.engine.records import FORBID_EXTRA, Check, record, replace

CpuOffload = Literal["none", "optimizer", "params"]  # "params": parameters, gradients and optimizer on CPU
PeakFigure = Literal["allocated", "active", "reserved"]


@record
class LossModel:
    """Bytes of the logits (tokens x vocab) alive around the loss.

    `saved_bytes_per_logit` stays for every token until backward (e.g. HF: the bf16 logits in the model output,
    2 B, + the fp32 log-softmax cross_entropy saves, 4 B); `transient_bytes_per_logit` is alive for one chunk
    at a time (the fp32 upcast, the gradients of log-softmax and logits). A chunk is the whole micro-batch
    (chunks 1), a 1/N split of it (torchtune's num_output_chunks), or a fixed number of tokens (TRL)."""

    __pydantic_config__ = FORBID_EXTRA

    name: str = "whole logits, fp32 upcast"
    chunks: Annotated[int, Check(ge=1)] = 1
    chunk_tokens: Annotated[int, Check(gt=0)] | None = None
    saved_bytes_per_logit: Annotated[int, Check(ge=0)] = 6
    transient_bytes_per_logit: Annotated[int, Check(ge=0)] = 6
    # Under torch.compile: bytes per logit still saved for every token (HF: the bf16 logits, 2, the fp32
    # log-softmax recomputed from them; torchtune's compiled chunk function keeps none).
    compiled_saved_bytes_per_logit: Annotated[int, Check(ge=0)] = 2

    def chunk(self, tokens: int) -> int:
        """Tokens of one loss chunk for a micro-batch of `tokens`."""
        if self.chunk_tokens is not None:
            return min(tokens, self.chunk_tokens)
        return -(-tokens // self.chunks)

    def compiled(self) -> LossModel:
        """The loss under torch.compile: the fp32 log-softmax is recomputed in backward (pointwise), so only
        `compiled_saved_bytes_per_logit` stays per token."""
        saved = min(self.saved_bytes_per_logit, self.compiled_saved_bytes_per_logit)
        return replace(self, name=f"{self.name} (compiled: {saved} B per logit kept)", saved_bytes_per_logit=saved)

    def bytes(self, tokens: int, vocab: int) -> int:
        return tokens * vocab * self.saved_bytes_per_logit + self.chunk(tokens) * vocab * self.transient_bytes_per_logit


@record
class MethodDefaults:
    """A recipe's defaults for one method family; the CLI flags override each."""

    __pydantic_config__ = FORBID_EXTRA

    grad_checkpointing: bool = False
    activation_offload: bool = False
    compile: bool = False
    optimizer: str = "adamw-fused"  # transformers TrainingArguments optim 'adamw_torch_fused' (torch >= 2.8)
    optimizer_in_backward: bool = False
    precision: Literal["bf16-mixed", "bf16", "fp32"] = "bf16-mixed"  # full fine-tune
    adapter_dtype: Literal["fp32", "bf16"] = "fp32"  # PEFT methods: the trained parameters
    kbit_upcast_fp32: bool = False  # QLoRA: non-quantized parameters (embeddings, norms, lm_head) cast to fp32
    cpu_offload: CpuOffload = "none"
    micro_batch: Annotated[int, Check(gt=0)] | None = None  # the recipe's own batch_size, when it sets one
    grad_accum: Annotated[int, Check(gt=0)] | None = None


@record
class Recipe:
    """One trainer's defaults, with a source for each (`sources`: setting -> where it is written)."""

    __pydantic_config__ = FORBID_EXTRA

    name: str = "hf"
    title: str = "Hugging Face Trainer + PEFT (transformers TrainingArguments defaults)"
    source: str = "transformers training_args.py TrainingArguments; peft tuners"
    full: MethodDefaults = MethodDefaults()
    peft: MethodDefaults = MethodDefaults()  # LoRA, IA3, prompt/prefix tuning, adapters
    qlora: MethodDefaults = MethodDefaults(grad_checkpointing=True, kbit_upcast_fp32=True)
    loss: LossModel = LossModel()
    multi_gpu_zero: Annotated[int, Check(ge=0, le=3)] = 0  # sharding when --gpus > 1 and no --zero: 0 DDP, 3 FSDP
    deepspeed_fp32_grad_partition: bool = False  # DeepSpeed ZeRO-1/2 keep an fp32 gradient partition (18 B/N)
    # What a sharded (ZeRO-3 / FSDP) run gathers on each GPU: "tensor" = DeepSpeed's 4 B x largest parameter
    # tensor + the prefetch bucket (stage3.py estimator); "layer" = FSDP's per-decoder-layer units, the layer
    # being computed and the next one prefetched, in 16 bits.
    sharding_unit: Literal["tensor", "layer"] = "tensor"
    packing: bool = False
    peak_figure: PeakFigure = "allocated"  # what the trainer prints as its peak
    peak_label: str = "torch.cuda.max_memory_allocated()"
    notes: tuple[str, ...] = ()
    sources: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.name != "hf" and not self.sources:
            raise ValueError(f"recipe {self.name!r}: every recipe cites its sources (sources: setting -> file)")

    def defaults(self, method: str) -> MethodDefaults:
        if method == "full":
            return self.full
        if method == "qlora":
            return self.qlora
        return self.peft


PLAIN = Recipe(sources={"qlora.grad_checkpointing": "peft/utils/other.py prepare_model_for_kbit_training("
                        "use_gradient_checkpointing=True); QLoRA paper recipe (artidoro/qlora qlora.py "
                        "gradient_checkpointing default True)",
                        "qlora.kbit_upcast_fp32": "peft/utils/other.py prepare_model_for_kbit_training: 'cast all "
                        "non INT8 parameters to fp32'"})

__all__ = ["PLAIN", "CpuOffload", "LossModel", "MethodDefaults", "PeakFigure", "Recipe"]
