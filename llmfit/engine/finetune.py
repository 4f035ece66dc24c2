"""Fine-tuning memory, term by term: full fine-tune, LoRA, QLoRA and the PEFT family, one GPU or many.

Model states (per trainable parameter unless said otherwise):
- full, `bf16-mixed` (DeepSpeed / FSDP mixed precision, the ZeRO paper's accounting): bf16 weights 2 B,
  bf16 gradients 2 B, fp32 master weights 4 B, optimizer states (AdamW: momentum + variance, 2 x 4 B).
  With AdamW that is 2 + 2 + K with K = 12 (Rajbhandari et al. 2019, ZeRO, section 3.1).
- full, `bf16` (pure bf16, torchtune's default): weights, gradients and optimizer states all in bf16.
- full, `fp32`: 4 B weights, 4 B gradients, fp32 states.
- PEFT methods: the base is frozen (bf16, fp32 with `--precision fp32`, or NF4 for QLoRA) and only the
  added parameters train; PEFT's `autocast_adapter_dtype=True` keeps them in fp32, so their weights,
  gradients and optimizer states are fp32 and no master copy exists.
ZeRO (stage 1: optimizer states and master weights, 2: + gradients, 3: + parameters, frozen ones too)
divides those terms by the data-parallel GPU count.

Activations are an inventory of the tensors autograd saves in one decoder layer, built from the
architecture (hidden size, query and KV heads, head_dim, the real intermediate size, MoE top-k, MLA
ranks). With the conventions of Korthikanti et al. 2022 (arXiv:2205.05198, section 4.1: GPT layer,
LayerNorm, 4h GeLU MLP, dropout, fp16 softmax, eager attention) the inventory sums to exactly
s*b*h*(34 + 5*a*s/h) bytes per layer; the Hugging Face conventions used by default differ where the
code differs (cited at each item). A frozen linear layer does not save its input (autograd saves
`x` of `x @ W.T` only to compute W's gradient), except bitsandbytes 4-bit layers, whose MatMul4Bit
saves it whenever the input needs a gradient. Gradient checkpointing keeps each layer's input plus one
layer recomputed during backward.

The peak is the larger of two moments: the end of the forward pass (every saved activation and the
loss's logits alive; gradients not yet allocated when the trainer frees them with
`zero_grad(set_to_none=True)` on one GPU with no accumulation) and the optimizer step (gradients and
the optimizer's temporaries alive, activations freed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import field
from fractions import Fraction
from typing import Annotated, Literal

from llmfit.engine import peft_targets
from llmfit.engine.formats import get_format
from llmfit.engine.layers import attention_kind
from llmfit.engine.params import TensorGroup, count_params, tensor_groups
from llmfit.engine.peft_targets import DEFAULT_TRANSFORMERS, TargetModule
from llmfit.engine.recipes import PLAIN, CpuOffload, LossModel, Recipe
from llmfit.engine.records import Check, record
from llmfit.engine.weights import weight_bytes
from llmfit.errors import SpecError
from llmfit.specs import GpuSpec, ModelSpec
from llmfit.units import MIB, ceil_div

Method = Literal["full", "lora", "qlora", "ia3", "prompt-tuning", "prefix-tuning", "adapter"]
METHODS: tuple[str, ...] = ("full", "lora", "qlora", "ia3", "prompt-tuning", "prefix-tuning", "adapter")
PEFT_METHODS = frozenset(METHODS) - {"full"}
LORA_METHODS = frozenset({"lora", "qlora"})
Precision = Literal["bf16-mixed", "bf16", "fp32"]
PRECISIONS: tuple[str, ...] = ("bf16-mixed", "bf16", "fp32")
Attention = Literal["sdpa", "eager"]

# Constants with sources.
CUDA_CONTEXT_BYTES = 512 * MIB  # CUDA context + cuBLAS/cuDNN workspaces: 300 MiB - 2 GiB in practice; --overhead
FRAGMENTATION = Fraction(5, 100)  # Megatron-LM theoretical_memory_usage.py: overhead_factor = 1.05
BNB_BLOCK = 256  # bitsandbytes optim/optimizer.py Optimizer2State.init_state: blocksize = 256, fp32 absmax
BNB_MIN_8BIT_SIZE = 4096  # bitsandbytes 8-bit optimizers: tensors under min_8bit_size keep 32-bit states
DEEPSPEED_REDUCE_BUCKET = 500_000_000  # DeepSpeed ZeRO reduce_bucket_size default 5e8 elements
DEEPSPEED_PREFETCH_BUCKET = 50_000_000  # DeepSpeed ZeRO-3 stage3_prefetch_bucket_size default 5e7
DEFAULT_MFU = 0.35  # model FLOPs utilisation: 0.30-0.35 (ftune), 42-54 % for Megatron at scale (Korthikanti 2022)


@record(kw_only=False)
class OptimizerSpec:
    name: str
    description: str
    states: int  # full-size states per parameter (AdamW 2: momentum, variance; SGD 1; Adafactor factored)
    eight_bit: bool = False
    paged: bool = False
    factored: bool = False
    bnb: bool = False  # bitsandbytes: 32-bit states are fp32 whatever the parameter dtype
    fused: bool = False  # one in-place kernel: no step temporaries
    source: str = ""


OPTIMIZERS: dict[str, OptimizerSpec] = {
    o.name: o
    for o in (
        OptimizerSpec("adamw", "AdamW (torch, foreach): momentum and variance", 2,
                      source="Loshchilov & Hutter 2019; torch.optim.AdamW"),
        OptimizerSpec("adamw-fused", "AdamW (torch, fused=True): momentum and variance, one in-place kernel", 2,
                      fused=True, source="torch.optim.AdamW(fused=True) (_fused_adamw_); transformers "
                      "TrainingArguments optim default 'adamw_torch_fused' on torch >= 2.8"),
        OptimizerSpec("adamw-8bit", "bitsandbytes AdamW8bit: 8-bit momentum and variance, fp32 absmax per 256", 2,
                      eight_bit=True, bnb=True,
                      source="Dettmers et al. 2022 (8-bit optimizers); bitsandbytes optimizer.py"),
        OptimizerSpec("paged-adamw-8bit", "bitsandbytes PagedAdamW8bit: as adamw-8bit, states in paged unified "
                      "memory (evicted to CPU under pressure)", 2, eight_bit=True, paged=True, bnb=True,
                      source="QLoRA paper section 3 (paged optimizers); bitsandbytes"),
        OptimizerSpec("paged-adamw-32bit", "bitsandbytes PagedAdamW32bit: fp32 momentum and variance in paged "
                      "unified memory (the QLoRA paper's optimizer)", 2, paged=True, bnb=True,
                      source="artidoro/qlora qlora.py optim 'paged_adamw_32bit'; bitsandbytes optim/adamw.py"),
        OptimizerSpec("sgd", "SGD with momentum: one buffer (none with momentum=0)", 1, source="torch.optim.SGD"),
        OptimizerSpec("adafactor", "Adafactor: factored second moment (rows + cols per matrix), no momentum", 1,
                      factored=True, source="Shazeer & Stern 2018; transformers.optimization.Adafactor beta1=None"),
    )
}


@record
class FinetuneOptions:
    """What the user asked for (validated by the CLI; the engine re-checks what it depends on)."""

    method: Method = "lora"
    # The trainer recipe: fills every setting below that is not given (None) with that trainer's default.
    recipe: Recipe = PLAIN
    seq_tokens: Annotated[int, Check(gt=0)] = 2048
    # A None below (the default) is filled in by __post_init__: the recipe's default, else _DEFAULTS; so
    # every reader sees the annotated type.
    micro_batch: Annotated[int, Check(gt=0)] = None  # type: ignore[assignment]
    grad_accum: Annotated[int, Check(gt=0)] = None  # type: ignore[assignment]
    optimizer: str = None  # type: ignore[assignment]
    precision: Precision = None  # type: ignore[assignment]
    grad_checkpointing: bool = None  # type: ignore[assignment]
    # saved activations (checkpoints) moved to CPU as they are produced
    activation_offload: bool = None  # type: ignore[assignment]
    # torch.compile of the model and loss (COMPILED_CONVENTIONS; the loss keeps bf16 logits)
    compile: bool = None  # type: ignore[assignment]
    # full: each parameter steps and frees its gradient inside backward
    optimizer_in_backward: bool = None  # type: ignore[assignment]
    # PEFT methods: dtype of the trained parameters
    adapter_dtype: Literal["fp32", "bf16"] = None  # type: ignore[assignment]
    # QLoRA: non-quantized parameters cast to fp32 (prepare_model_for_kbit_training)
    kbit_upcast_fp32: bool = None  # type: ignore[assignment]
    # "optimizer": ZeRO-Offload; "params": ZeRO-Infinity / FSDP CPU offload
    cpu_offload: CpuOffload = None  # type: ignore[assignment]
    recipe_defaults: tuple[str, ...] = ()  # the settings the recipe filled in (said in the output)
    attention: Attention = "sdpa"
    lora_rank: Annotated[int, Check(gt=0)] = 16
    lora_targets: tuple[str, ...] | None = None  # None: PEFT's default for the model type
    transformers: Annotated[int, Check(ge=4, le=5)] = DEFAULT_TRANSFORMERS  # module layout of MoE experts
    virtual_tokens: Annotated[int, Check(gt=0)] = 20
    adapter_reduction_factor: Annotated[int, Check(gt=0)] = 16
    adapter_config: Literal["seq_bn", "double_seq_bn"] = "seq_bn"
    qlora_format: Literal["nf4", "nf4-nodq"] = "nf4"  # QLoRA base: bitsandbytes NF4 with / without double quant
    gpus: Annotated[int, Check(gt=0)] = 1
    zero: Annotated[int, Check(ge=0, le=3)] = None  # type: ignore[assignment]
    dataset_tokens: Annotated[int, Check(gt=0)] | None = None
    mfu: Annotated[float, Check(gt=0, le=1)] = DEFAULT_MFU
    overhead_override_bytes: Annotated[int, Check(ge=0)] | None = None

    def __post_init__(self) -> None:
        """Settings left out (None) take the recipe's default for the method; ZeRO defaults to the recipe's
        multi-GPU sharding on several GPUs (DDP = 0, FSDP = 3), none on one. (Runs on every construction,
        as pydantic's before-validator did; a copy with everything set fills nothing and keeps its list.)"""
        recipe: object = self.recipe
        if recipe is None:
            recipe = PLAIN
        elif isinstance(recipe, dict):
            from llmfit.engine.records import validate

            recipe = validate(Recipe, recipe)
        assert isinstance(recipe, Recipe)
        object.__setattr__(self, "recipe", recipe)
        method = str(self.method or "lora")
        defaults = recipe.defaults(method)
        filled: list[str] = []
        for key in ("grad_checkpointing", "activation_offload", "compile", "optimizer", "optimizer_in_backward",
                    "precision", "adapter_dtype", "kbit_upcast_fp32", "cpu_offload", "micro_batch", "grad_accum"):
            if getattr(self, key) is not None:
                continue
            value = getattr(defaults, key)
            if key == "optimizer_in_backward" and (method != "full" or (self.grad_accum or 1) > 1):
                value = False  # torchtune: "Requires gradient_accumulation_steps=1"
            if key == "kbit_upcast_fp32" and method != "qlora":
                value = False
            default = _DEFAULTS[key]
            object.__setattr__(self, key, default if value is None else value)
            if value is not None and value != default:
                filled.append(key)
        if self.zero is None:
            object.__setattr__(self, "zero", recipe.multi_gpu_zero if (self.gpus or 1) > 1 else 0)
        if filled:
            object.__setattr__(self, "recipe_defaults", tuple(filled))


_DEFAULTS: dict[str, object] = {
    "micro_batch": 1,
    "grad_accum": 1,
    "optimizer": "adamw",
    "precision": "bf16-mixed",
    "grad_checkpointing": False,
    "activation_offload": False,
    "compile": False,
    "optimizer_in_backward": False,
    "adapter_dtype": "fp32",
    "kbit_upcast_fp32": False,
    "cpu_offload": "none",
    "zero": 0,
}


@record
class TrainableTensor:
    """`count` trainable tensors of shape rows x cols (ndim 1 for vectors), as the optimizer sees them."""

    name: str
    rows: int
    cols: int
    count: int
    ndim: int = 2

    @property
    def params(self) -> int:
        return self.rows * self.cols * self.count


@record
class MemoryLine:
    """One named term: bytes on one GPU and over the whole deployment, the formula, and whether it is
    resident at the peak moment."""

    name: str
    category: Literal["weights", "gradients", "master_weights", "optimizer", "activations", "logits", "overhead",
                      "offloaded"]
    bytes_per_gpu: int
    bytes: int
    at_peak: bool = True
    formula: str = ""
    note: str = ""


@record
class ActivationItem:
    """One saved tensor of a decoder layer: bytes per token (or per token pair for attention scores)."""

    name: str
    bytes_per_token: int  # per query token (or per key/value token when per_kv)
    per_kv: bool = False  # scales with the key/value length (prefix tuning lengthens it)
    per_token_pair: bool = False  # scales with query x key length (eager attention scores)
    layers: int = 1
    layer_kind: Literal["all", "dense", "moe"] = "all"  # which layers hold it (MoE models mix both)
    source: str = ""


@record
class LimitSearch:
    max_micro_batch: int | None  # largest micro-batch at --seq that fits (0: not even 1)
    max_seq_tokens: int | None  # longest sequence at --batch that fits (0: not even 1 token)
    evaluations: int  # configurations evaluated by the searches


@record
class TrainingTime:
    tokens_per_step: int
    flops_per_token: int
    flops_per_step: int
    flops_formula: str
    peak_tflops_per_gpu: float
    peak_tflops_dtype: str
    mfu: float
    step_seconds: float
    tokens_per_second: float
    dataset_tokens: int | None
    steps_per_epoch: int | None
    epoch_seconds: float | None
    gpu_hours: float | None
    price_per_gpu_hour: float | None
    cost_usd: float | None


@record
class FinetuneResult:
    """`llmfit finetune`: keys as design.md fixes them. No suffix = whole deployment, `_per_gpu` = one GPU;
    `total_params` and `weights_bytes` (one copy of the weights) are properties of the model."""

    model: str
    gpu: str | None
    gpu_count: int
    method: str
    precision: str
    optimizer: str
    zero: int
    seq_tokens: int
    micro_batch: int
    grad_accum: int
    grad_checkpointing: bool
    attention: str
    lora_rank: int | None
    lora_targets: list[str] | None
    lora_target_modules: list[str] | None  # the real module names LoRA wraps
    model_type: str | None = None  # config.json model_type (PEFT's mapping key)
    transformers: int = DEFAULT_TRANSFORMERS  # transformers major version whose module layout was planned
    peft_target_modules: list[str] | None = None  # LoraConfig / IA3Config target_modules ("all-linear" as given)
    peft_target_parameters: list[str] | None = None  # LoraConfig target_parameters (3-D expert parameters)
    peft_feedforward_modules: list[str] | None = None  # IA3Config feedforward_modules
    virtual_tokens: int | None
    base_format: str | None = None  # weight format of the frozen base (PEFT methods); None for full
    total_params: int
    trainable_params: int
    all_params: int  # PEFT's print_trainable_parameters "all params": base + added
    trainable_percent: float  # 100 x trainable / all, as PEFT prints it
    trainable_tensors: list[TrainableTensor]
    weights_bytes: int
    weights_bytes_per_gpu: int
    frozen_weights_bytes: int
    trainable_weights_bytes: int
    gradients_bytes: int
    gradients_bytes_per_gpu: int
    master_weights_bytes: int
    master_weights_bytes_per_gpu: int
    optimizer_bytes: int
    optimizer_bytes_per_gpu: int
    model_states_bytes: int
    model_states_bytes_per_gpu: int
    activations_bytes: int
    activations_bytes_per_gpu: int
    logits_bytes: int
    logits_bytes_per_gpu: int
    overhead_bytes: int
    overhead_bytes_per_gpu: int
    total_bytes: int
    total_bytes_per_gpu: int
    # The torch allocator's peak (torch.cuda.max_memory_allocated) and what the caching allocator reserves
    # (max_memory_reserved: fragmentation, the load-time peak); total = reserved + CUDA context.
    peak_allocated_bytes: int = 0
    peak_allocated_bytes_per_gpu: int = 0
    peak_reserved_bytes: int = 0
    peak_reserved_bytes_per_gpu: int = 0
    recipe: str = "hf"
    recipe_title: str = ""
    trainer_peak_figure: str = "allocated"  # which of the two the recipe's trainer prints
    trainer_peak_label: str = ""
    trainer_peak_bytes_per_gpu: int = 0
    activation_offload: bool = False
    optimizer_in_backward: bool = False
    adapter_dtype: str | None = None
    cpu_offload: str = "none"
    cpu_offload_bytes: int = 0  # host RAM (ZeRO-Offload, ZeRO-Infinity, FSDP CPU offload)
    cpu_offload_bytes_per_gpu: int = 0
    paged_optimizer_bytes: int = 0  # bitsandbytes paged states: unified memory, evicted to CPU under pressure
    paged_optimizer_bytes_per_gpu: int = 0
    peak_phase: Literal["forward", "optimizer-step"]
    gpu_memory_bytes_per_gpu: int | None
    margin_bytes_per_gpu: int | None  # device memory - total per GPU (negative: short by that much)
    fits: bool | None  # None when no GPU was given
    lines: list[MemoryLine]
    activation_items: list[ActivationItem]
    limits: LimitSearch | None
    training: TrainingTime | None
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    explain: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------------ trainable counts


def _matrix_groups(spec: ModelSpec) -> list[TensorGroup]:
    """Linear layers a PEFT method can wrap: attention, MLP, experts, routers (never embeddings, lm_head)."""
    return [g for g in tensor_groups(spec) if g.kind in ("linear", "expert", "router") and not g.name.endswith(".bias")]


def lora_params(rows: int, cols: int, rank: int) -> int:
    """LoRA on one (out x in) matrix: A is r x in, B is out x r -> r x (in + out) (Hu et al. 2021)."""
    return rank * (rows + cols)


def _lora_tensors(modules: tuple[TargetModule, ...], rank: int) -> list[TrainableTensor]:
    """PEFT lora.Linear: lora_A Linear(in, r), lora_B Linear(r, out); on a 3-D expert parameter ParamWrapper
    stacks the experts: lora_A Linear(in, r x E), lora_B Linear(r x E, out) (peft/tuners/lora/layer.py)."""
    out = []
    for m in modules:
        out.append(TrainableTensor(name=f"{m.path}.lora_A", rows=rank * m.experts, cols=m.cols, count=m.count))
        out.append(TrainableTensor(name=f"{m.path}.lora_B", rows=m.rows, cols=rank * m.experts, count=m.count))
    return out


def _adapter_tensors(spec: ModelSpec, reduction_factor: int, config: str) -> list[TrainableTensor]:
    """AdapterHub `adapters` bottleneck adapters: per adapter a down projection Linear(h, h // rf) and an
    up projection Linear(h // rf, h), both with bias. SeqBnConfig (Pfeiffer): one adapter per layer after
    the MLP; DoubleSeqBnConfig (Houlsby): two (after attention and after the MLP)."""
    h = spec.hidden_size
    bottleneck = h // reduction_factor
    if bottleneck < 1:
        raise SpecError(f"--reduction-factor {reduction_factor} leaves no bottleneck for hidden size {h}")
    per_layer = 2 if config == "double_seq_bn" else 1
    n = spec.num_hidden_layers * per_layer
    return [
        TrainableTensor(name="adapter_down", rows=bottleneck, cols=h, count=n),
        TrainableTensor(name="adapter_down.bias", rows=1, cols=bottleneck, count=n, ndim=1),
        TrainableTensor(name="adapter_up", rows=h, cols=bottleneck, count=n),
        TrainableTensor(name="adapter_up.bias", rows=1, cols=h, count=n, ndim=1),
    ]


@record(kw_only=False)
class TrainablePlan:
    """What trains, tensor by tensor, and the PEFT names that reproduce it."""

    tensors: list[TrainableTensor]
    wrapped_sources: list[str]  # params.py tensor groups a LoRA/IA3 module wraps (for the activation inventory)
    target_modules: list[str] | None  # PEFT target_modules as --emit peft writes it
    target_parameters: list[str] | None  # LoRA target_parameters (3-D expert parameters)
    feedforward_modules: list[str] | None  # IA3
    modules: list[str]  # the real module names wrapped
    model_type: str
    notes: list[str]


def trainable_plan(spec: ModelSpec, options: FinetuneOptions) -> TrainablePlan:
    """What trains under `options.method`, by the model's real module names (peft_targets.py)."""
    method = options.method
    mtype = peft_targets.model_type(spec)
    notes: list[str] = []
    sources: list[str] = []
    target_modules: list[str] | None = None
    target_parameters: list[str] | None = None
    feedforward: list[str] | None = None
    modules: list[str] = []
    if method == "full":
        tensors = [TrainableTensor(name=g.name, rows=g.rows, cols=g.cols, count=g.count,
                                   ndim=1 if g.kind == "vector" else 2) for g in tensor_groups(spec)]
    elif method in LORA_METHODS:
        res = peft_targets.resolve(spec, options.lora_targets, transformers=options.transformers, method=method)
        tensors = _lora_tensors(res.modules, options.lora_rank)
        sources = sorted({src for m in res.modules for src in m.sources})
        modules = list(dict.fromkeys(m.name for m in res.modules))
        target_modules = list(res.target_modules)
        target_parameters = list(res.target_parameters)
        notes += res.notes
        fused = sorted({m.name for m in peft_targets.layout(spec, options.transformers).modules
                        if not m.linear and m.experts > 1})
        if method == "qlora" and fused:
            notes.append(f"the base is planned fully in NF4, but bitsandbytes quantizes nn.Linear layers: the 3-D "
                         f"expert parameters ({', '.join(fused)}) of transformers {options.transformers} stay in 16 "
                         "bits unless the loader quantizes them (check your versions, or plan --transformers 4)")
    elif method == "ia3":
        plan = peft_targets.ia3(spec, transformers=options.transformers)
        tensors = [TrainableTensor(name=f"{v.module.path}.ia3_l", rows=1 if v.feedforward else v.module.rows,
                                   cols=v.module.cols if v.feedforward else 1, count=v.module.matrices)
                   for v in plan.vectors]
        sources = sorted({src for v in plan.vectors for src in v.module.sources})
        modules = list(plan.target_modules)
        target_modules, feedforward = list(plan.target_modules), list(plan.feedforward_modules)
        notes += plan.notes
    elif method == "prompt-tuning":
        tensors = [TrainableTensor(name="prompt_embeddings", rows=options.virtual_tokens, cols=spec.hidden_size,
                                   count=1)]
    elif method == "prefix-tuning":
        width = spec.num_hidden_layers * 2 * peft_targets.prefix_token_dim(spec)
        tensors = [TrainableTensor(name="prefix_embeddings", rows=options.virtual_tokens, cols=width, count=1)]
    elif method == "adapter":
        tensors = _adapter_tensors(spec, options.adapter_reduction_factor, options.adapter_config)
    else:  # pragma: no cover - Literal-checked
        raise SpecError(f"unknown method {method!r}")
    return TrainablePlan(tensors=tensors, wrapped_sources=sources, target_modules=target_modules,
                         target_parameters=target_parameters, feedforward_modules=feedforward, modules=modules,
                         model_type=mtype, notes=notes)


def trainable_tensors(spec: ModelSpec, options: FinetuneOptions) -> tuple[list[TrainableTensor], list[str], list[str]]:
    """What trains, tensor by tensor; the real module names wrapped; notes."""
    plan = trainable_plan(spec, options)
    return plan.tensors, plan.modules, plan.notes


# ------------------------------------------------------------------------------------------ activations


@record(kw_only=False)
class ActivationConventions:
    """What a framework saves where the architecture leaves a choice."""

    norm_saves_fp32_input: bool  # HF/torchtune RMSNorm upcasts to fp32 and pow() saves that (4 B/value)
    norm_saves_normalized: bool  # weight * x_hat saves x_hat when the norm weight trains
    softmax_bytes: int  # eager attention: bytes saved per score (HF: fp32 softmax 4 + bf16 copy 2)
    dropout_masks: bool  # 1-byte masks after attention, after the MLP, and on the attention probabilities
    source: str
    fused_pointwise: bool = False  # torch.compile: pointwise results (SiLU, the gate product) recomputed in backward


HF_CONVENTIONS = ActivationConventions(
    norm_saves_fp32_input=True, norm_saves_normalized=True, softmax_bytes=6, dropout_masks=False,
    source="transformers modeling_llama.py (LlamaRMSNorm upcast; eager_attention_forward softmax in fp32 then "
    ".to(query.dtype)); attention_dropout 0.0 and no hidden dropout in Llama/Mistral/Qwen/Gemma/Falcon configs",
)
# torch.compile (AOTAutograd's min-cut rematerialization partitioner, torch/_functorch/partitioners.py) recomputes
# pointwise ops in backward instead of saving their outputs, and keeps what matmuls need: RMSNorm keeps its bf16
# input (and a per-token rstd) instead of the fp32 upcast; the gated MLP keeps the gate and up outputs and
# recomputes SiLU (the product, down_proj's input, is kept for its weight gradient); the loss is the recipe's
# compiled loss (LossModel.compiled).
COMPILED_CONVENTIONS = ActivationConventions(
    norm_saves_fp32_input=False, norm_saves_normalized=True, softmax_bytes=6, dropout_masks=False,
    fused_pointwise=True,
    source="torch.compile min-cut partitioner: pointwise ops recomputed, matmul outputs and inputs saved",
)
KORTHIKANTI_CONVENTIONS = ActivationConventions(
    norm_saves_fp32_input=False, norm_saves_normalized=False, softmax_bytes=5, dropout_masks=True,
    source="Korthikanti et al. 2022 section 4.1: 16-bit activations, 1-byte dropout masks, LayerNorm input saved",
)


@record(kw_only=False)
class _Saves:
    """Which linear layers save their input: trainable weight, LoRA-wrapped, or a 4-bit QLoRA layer."""

    all_linear: bool  # full fine-tune or QLoRA (MatMul4Bit saves A whenever it needs a gradient)
    modules: frozenset[str]

    def any(self, *names: str) -> bool:
        return self.all_linear or bool(self.modules.intersection(names))


def _mlp_items(prefix: str, h: int, inter: int, gated: bool, saves: _Saves, act: int, layers: int,
               kind: Literal["all", "dense", "moe"], multiplicity: int = 1,
               gathered: bool = False, fused: bool = False) -> list[ActivationItem]:
    """One MLP (or `multiplicity` experts per token): SiLU/GeLU and the gate product keep their inputs."""
    items = []
    k = multiplicity

    def add(name: str, per_token: int, source: str = "") -> None:
        items.append(ActivationItem(name=f"{prefix}: {name}", bytes_per_token=per_token, layers=layers,
                                    layer_kind=kind, source=source))

    if gathered and saves.any("gate_proj", "up_proj"):
        add("tokens gathered per expert", act * h * k)
    if fused:
        # Compiled: the matmul outputs are kept, the activation and the product recomputed from them.
        add("gate and up outputs (activation recomputed)" if gated else "up output (activation recomputed)",
            (2 if gated else 1) * act * inter * k, "torch.compile min-cut partitioner")
    elif gated:
        add("activation input (gate output)", act * inter * k, "SiLU backward needs its input")
        add("act(gate) and up (the product's operands)", 2 * act * inter * k)
    else:
        add("activation input (up output)", act * inter * k, "GeLU backward needs its input")
    if saves.any("down_proj"):
        add("down_proj input", act * inter * k)
    if gathered:
        add("expert outputs (weighted by the router)", act * h * k)
    return items


def activation_items(spec: ModelSpec, options: FinetuneOptions, *, lora_modules: list[str] | None = None,
                     conventions: ActivationConventions = HF_CONVENTIONS) -> list[ActivationItem]:
    """The saved tensors of every decoder layer (per token), from the architecture."""
    act = 4 if options.precision == "fp32" else 2
    norm_in = 4 if conventions.norm_saves_fp32_input else act
    method = options.method
    full = method == "full"
    modules = set(lora_modules or [])
    if method == "ia3":
        modules |= {"down_proj"}  # the IA3 scaling multiplies the down_proj input and saves it
    saves = _Saves(all_linear=method in ("full", "qlora"), modules=frozenset(modules))
    h, layers, a = spec.hidden_size, spec.num_hidden_layers, spec.num_attention_heads
    items: list[ActivationItem] = []

    def add(name: str, per_token: int, *, per_kv: bool = False, pair: bool = False, n: int = layers,
            kind: Literal["all", "dense", "moe"] = "all", source: str = "") -> None:
        if per_token > 0 and n > 0:
            items.append(ActivationItem(name=name, bytes_per_token=per_token, per_kv=per_kv, per_token_pair=pair,
                                        layers=n, layer_kind=kind, source=source))

    pre_norms = min(spec.norms_per_layer, 2) or 1
    norm_count = spec.norms_per_layer
    add("norm inputs" + (" (fp32 upcast)" if conventions.norm_saves_fp32_input else ""), norm_count * norm_in * h,
        source="Korthikanti: 2sbh per LayerNorm; HF RMSNorm saves its fp32 upcast")
    if full and conventions.norm_saves_normalized:
        add("normalized x (norm weight trains)", pre_norms * act * h)
    if conventions.dropout_masks:
        add("dropout masks (attention and MLP outputs)", 2 * h)

    # Attention.
    attention = attention_kind(spec)
    for saved in attention.saved_inputs(h):
        if not saved.modules or saves.any(*saved.modules):
            add(saved.name, (4 if saved.fp32 else act) * saved.values_per_token)
    q_width, k_width, v_width, o_width = attention.attention_widths()
    if method == "ia3":
        add("k and v before the IA3 scaling", act * (k_width + v_width))
    add("Q (after RoPE)", act * q_width, source="saved by the attention kernel")
    add("K and V", act * (k_width + v_width), per_kv=True, source="saved by the attention kernel")
    if options.attention == "eager":
        if conventions.dropout_masks:
            add("attention scores: softmax out 2 B, dropout mask 1 B, dropout out 2 B", conventions.softmax_bytes * a,
                pair=True, source="Korthikanti: 5as^2b")
        else:
            add("attention probabilities: fp32 softmax output + bf16 copy", conventions.softmax_bytes * a, pair=True,
                source="HF eager_attention_forward: softmax(dtype=float32).to(query.dtype)")
    else:
        add("attention output + logsumexp (memory-efficient kernel)", act * o_width + 4 * a,
            source="SDPA flash / mem-efficient backward needs out and logsumexp; no s^2 term")
    if saves.any("o_proj"):
        add("o_proj input", act * o_width)

    # MLP: dense layers, MoE layers (experts top-k, shared experts, router).
    moe_layers = layers - spec.first_k_dense_replace if spec.is_moe else 0
    dense_layers = layers - moe_layers
    gated = spec.mlp_kind == "gated"
    if spec.norms_per_layer >= 2 and saves.any("gate_proj", "up_proj"):
        add("MLP input (gate/up input)", act * h)
    if dense_layers and spec.intermediate_size:
        items += _mlp_items("MLP", h, spec.intermediate_size, gated, saves, act, dense_layers,
                            "dense" if moe_layers else "all", fused=conventions.fused_pointwise)
    if moe_layers:
        expert_inter = spec.moe_intermediate_size or spec.intermediate_size
        add("router probabilities (fp32 softmax)", 4 * spec.num_experts, n=moe_layers, kind="moe")
        items += _mlp_items(f"experts (top-{spec.num_experts_per_tok})", h, expert_inter, gated, saves, act,
                            moe_layers, "moe", multiplicity=spec.num_experts_per_tok, gathered=True,
                            fused=conventions.fused_pointwise)
        if spec.num_shared_experts:
            shared = spec.shared_expert_intermediate_size or expert_inter * spec.num_shared_experts
            items += _mlp_items("shared experts", h, shared, gated, saves, act, moe_layers, "moe",
                                fused=conventions.fused_pointwise)

    # Added modules.
    if method in LORA_METHODS:
        wrapped = len(modules & {g.name.rsplit(".", 1)[-1] for g in _matrix_groups(spec)})
        add("LoRA A outputs (rank wide, saved by B)", act * options.lora_rank * max(wrapped, 1))
    if method == "adapter":
        per_layer = 2 if options.adapter_config == "double_seq_bn" else 1
        bottleneck = h // options.adapter_reduction_factor
        add("bottleneck adapters: input, down output, activation", per_layer * act * (h + 2 * bottleneck))
    return items


def korthikanti_layer_bytes(s: int, b: int, h: int, a: int) -> int:
    """Korthikanti et al. 2022 eq. (1): activation bytes of one GPT layer, no parallelism: sbh(34 + 5as/h)."""
    return s * b * h * 34 + 5 * a * s * s * b


# ------------------------------------------------------------------------------------------ the plan


@record(kw_only=False)
class _Coefficients:
    """Activation bytes as a function of micro-batch b and sequence s (exact integers)."""

    per_query: int  # x b x s_q, all layers
    per_kv: int  # x b x s_kv
    per_pair: int  # x b x s_q x s_kv
    layer_max_query: int  # the largest single layer (gradient checkpointing recomputes one)
    layer_max_kv: int
    layer_max_pair: int
    checkpoint_per_query: int  # layer inputs kept with checkpointing, all layers
    outside_per_query: int  # final norm and lm_head input
    vocab: int
    layers: int
    q_extra: int  # virtual tokens added to the query length (prompt tuning)
    kv_extra: int  # virtual tokens added to the key/value length (prefix tuning)


def _coefficients(spec: ModelSpec, options: FinetuneOptions, items: list[ActivationItem]) -> _Coefficients:
    act = 4 if options.precision == "fp32" else 2
    per_q = sum(i.bytes_per_token * i.layers for i in items if not i.per_kv and not i.per_token_pair)
    per_kv = sum(i.bytes_per_token * i.layers for i in items if i.per_kv)
    per_pair = sum(i.bytes_per_token * i.layers for i in items if i.per_token_pair)
    # One layer: the heaviest layer kind (dense or MoE), recomputed alone under gradient checkpointing.
    def one_layer(select: Callable[[ActivationItem], bool]) -> int:
        return max(sum(i.bytes_per_token for i in items if select(i) and i.layer_kind in ("all", kind))
                   for kind in ("dense", "moe"))

    norm_in = 4  # the final RMSNorm upcast
    outside = norm_in * spec.hidden_size + (act * spec.hidden_size if options.method == "full" else 0)
    return _Coefficients(
        per_query=per_q, per_kv=per_kv, per_pair=per_pair,
        layer_max_query=one_layer(lambda i: not i.per_kv and not i.per_token_pair),
        layer_max_kv=one_layer(lambda i: i.per_kv), layer_max_pair=one_layer(lambda i: i.per_token_pair),
        checkpoint_per_query=act * spec.hidden_size * spec.num_hidden_layers,
        outside_per_query=outside, vocab=spec.vocab_size, layers=spec.num_hidden_layers,
        q_extra=options.virtual_tokens if options.method == "prompt-tuning" else 0,
        kv_extra=options.virtual_tokens if options.method == "prefix-tuning" else 0,
    )


# Activation offloading keeps the layers whose tensors are still being copied or already prefetched back on
# the GPU: torchtune/training/_activation_offloading.py OffloadActivations (a side stream copies each saved
# tensor to pinned CPU memory; the last layers' are kept, the next layer's are brought back during backward).
OFFLOAD_LAYERS_ON_GPU = 2


def _activation_bytes(c: _Coefficients, b: int, s: int, checkpointing: bool, loss: LossModel = PLAIN.loss,
                      offload: bool = False) -> tuple[int, int]:
    """(layer activations, logits and their gradient) for micro-batch b at sequence s, one GPU."""
    s_q, s_kv = s + c.q_extra, s + c.q_extra + c.kv_extra
    kept = min(c.layers, OFFLOAD_LAYERS_ON_GPU) if offload else c.layers
    if checkpointing:
        checkpoints = c.checkpoint_per_query * kept // c.layers
        layers = b * (s_q * (checkpoints + c.layer_max_query) + s_kv * c.layer_max_kv
                      + s_q * s_kv * c.layer_max_pair)
    elif offload:
        layers = b * kept * (s_q * c.layer_max_query + s_kv * c.layer_max_kv + s_q * s_kv * c.layer_max_pair)
    else:
        layers = b * (s_q * c.per_query + s_kv * c.per_kv + s_q * s_kv * c.per_pair)
    layers += b * s_q * c.outside_per_query
    logits = loss.bytes(b * s_q, c.vocab)
    return layers, logits


def _shard(n_bytes: int, parts: int) -> int:
    return ceil_div(n_bytes, parts)


def _optimizer_state_bytes(tensors: list[TrainableTensor], opt: OptimizerSpec, state_bytes: int) -> int:
    total = 0
    for t in tensors:
        n = t.rows * t.cols
        if opt.factored:
            # Adafactor: a matrix keeps a row and a column second-moment vector; a vector keeps it whole.
            per = (t.rows + t.cols) if t.ndim >= 2 else n
            total += per * state_bytes * t.count
        elif opt.eight_bit and n >= BNB_MIN_8BIT_SIZE:
            blocks = ceil_div(n, BNB_BLOCK)
            total += opt.states * (n + 4 * blocks) * t.count
        elif opt.eight_bit:
            total += opt.states * 4 * n * t.count
        else:
            total += opt.states * state_bytes * n * t.count
    return total


def _step_temporary_bytes(tensors: list[TrainableTensor], opt: OptimizerSpec, state_bytes: int) -> int:
    """torch's foreach AdamW / SGD (the CUDA default) allocate one state-sized temporary (e.g.
    _foreach_sqrt(exp_avg_sq)); bitsandbytes' fused 8-bit kernels update in place; Adafactor builds one
    update of the gradient's size."""
    params = sum(t.params for t in tensors)
    if opt.eight_bit or opt.fused:
        return 0
    return params * state_bytes


def _largest_layer_params(spec: ModelSpec) -> int:
    """Parameters of the largest decoder layer (an FSDP unit): the per-layer tensor groups, per layer
    (MoE layers hold every expert), or the embedding / output when those are larger (sharded separately)."""
    layers = spec.num_hidden_layers
    per_layer = sum(g.params for g in tensor_groups(spec) if g.per_layer) // layers
    outside = max(g.params for g in tensor_groups(spec) if not g.per_layer)
    return max(per_layer, outside)


def _largest_tensor(spec: ModelSpec | None) -> int:
    """Parameters of the largest single tensor (0 when only a bare count is known)."""
    if spec is None:
        return 0
    return max(g.rows * g.cols for g in tensor_groups(spec))


@record(kw_only=False)
class _Plan:
    """Everything about one configuration that does not depend on micro-batch and sequence length."""

    static_forward: int  # per GPU bytes resident at the end of forward, excluding activations and overhead
    static_step: int  # per GPU bytes resident at the optimizer step, excluding overhead
    coefficients: _Coefficients | None
    checkpointing: bool
    fixed_overhead: int
    loss: LossModel = PLAIN.loss
    offload: bool = False
    load_peak: int = 0  # allocated at load time (QLoRA: 4-bit base + the bf16 matrix being quantized)

    def peak(self, b: int, s: int) -> tuple[int, int, int, str]:
        """(total per GPU = reserved + context, layer activations, logits, phase) for micro-batch b, sequence s.
        Reserved = the larger of the training-step peak and the load-time peak, plus fragmentation."""
        layers, logits = (0, 0) if self.coefficients is None else \
            _activation_bytes(self.coefficients, b, s, self.checkpointing, self.loss, self.offload)
        forward = self.static_forward + layers + logits
        step = self.static_step
        allocated, phase = (forward, "forward") if forward >= step else (step, "optimizer-step")
        held = max(allocated, self.load_peak)
        fragmentation = ceil_div(held * FRAGMENTATION.numerator, FRAGMENTATION.denominator)
        return held + fragmentation + self.fixed_overhead, layers, logits, phase


def search_max(fits: Callable[[int], bool], start: int, limit: int) -> tuple[int, int]:
    """Largest n in [1, limit] with fits(n), for fits monotone (true up to some n, false beyond): doubling
    from `start`, then bisection. 0 when fits(1) is false. Returns (n, evaluations)."""
    evaluations = 1
    if not fits(1):
        return 0, evaluations
    low, high = 1, max(2, start)
    while high <= limit:
        evaluations += 1
        if not fits(high):
            break
        low, high = high, high * 2
    high = min(high, limit + 1)
    while high - low > 1:
        mid = (low + high) // 2
        evaluations += 1
        if fits(mid):
            low = mid
        else:
            high = mid
    return low, evaluations


MAX_SEARCH_BATCH = 1 << 20
MAX_SEARCH_SEQ = 1 << 24


def finetune(spec: ModelSpec | None, gpu: GpuSpec | None, options: FinetuneOptions, *,
             params: int | None = None) -> FinetuneResult:
    """Memory of fine-tuning `spec` (or a bare parameter count) with `options`, per GPU and in total."""
    if (spec is None) == (params is None):
        raise SpecError("give a model architecture or a bare parameter count, not both")
    opt = OPTIMIZERS.get(options.optimizer)
    if opt is None:
        raise SpecError(f"unknown optimizer {options.optimizer!r} (allowed: {', '.join(OPTIMIZERS)})")
    if options.method not in METHODS:
        raise SpecError(f"unknown method {options.method!r} (allowed: {', '.join(METHODS)})")
    if spec is None and options.method != "full":
        raise SpecError(f"--method {options.method} needs an architecture (a model preset or config.json): "
                        "its trainable count and activations depend on the layer shapes; --params allows full only")
    n_gpus, zero = options.gpus, options.zero
    if zero and n_gpus == 1:
        zero_note = f"ZeRO-{zero} on one GPU shards nothing"
    else:
        zero_note = ""
    warnings: list[str] = []
    notes: list[str] = []
    explain: list[str] = []
    method = options.method
    full = method == "full"

    # Parameters.
    if spec is not None:
        counts = count_params(spec)
        total_params = counts.total_params
        trainable_info = trainable_plan(spec, options)
        tensors = trainable_info.tensors
        lora_modules = trainable_info.wrapped_sources
        notes += trainable_info.notes
    else:
        assert params is not None
        total_params = params
        tensors = [TrainableTensor(name="weights", rows=1, cols=params, count=1)]
        lora_modules = []
        trainable_info = None
    trainable = sum(t.params for t in tensors)
    all_params = total_params + (0 if full else trainable)

    # Bytes per value.
    recipe = options.recipe
    precision = options.precision
    base_bytes = 4 if precision == "fp32" else 2
    adapter_b = 4 if options.adapter_dtype == "fp32" or precision == "fp32" else 2
    if full:
        weight_b, grad_b = base_bytes, base_bytes
        master_b = 4 if precision == "bf16-mixed" else 0
        state_b = 2 if precision == "bf16" else 4
    else:
        # PEFT: autocast_adapter_dtype keeps adapters in fp32 (torchtune and the QLoRA repo: bf16); a torch
        # optimizer keeps its states in the parameter's dtype.
        weight_b, grad_b, master_b, state_b = adapter_b, adapter_b, 0, adapter_b
    if opt.bnb and not opt.eight_bit:
        state_b = 4  # bitsandbytes 32-bit optimizers hold fp32 states for 16-bit parameters too
    if options.optimizer_in_backward and (not full or options.grad_accum > 1):
        raise SpecError("optimizer-in-backward steps each parameter as its gradient is ready: it needs a full "
                        "fine-tune and --grad-accum 1 (torchtune: 'Requires gradient_accumulation_steps=1')")
    offload = options.cpu_offload
    if offload == "params" and zero != 3:
        raise SpecError("--cpu-offload params (ZeRO-Infinity / FSDP CPU offload) shards the parameters: use --zero 3")

    # Weights: frozen base + trainable parameters.
    upcast_bytes = 0
    if full:
        frozen_bytes = 0
        frozen_note = ""
        trainable_weight_bytes = trainable * weight_b
    else:
        assert spec is not None  # PEFT methods need an architecture (checked above)
        base_format = get_format(options.qlora_format if method == "qlora" else
                                 ("fp32" if precision == "fp32" else "bf16"))
        frozen = weight_bytes(spec, base_format)
        frozen_bytes = frozen.weights_bytes
        frozen_note = "; ".join(f"{line.name} {line.bytes:,} B" for line in frozen.lines)
        trainable_weight_bytes = trainable * weight_b
        if method == "qlora" and options.kbit_upcast_fp32:
            # prepare_model_for_kbit_training casts every 16-bit parameter (embeddings, lm_head, norms) to fp32.
            unquantized = counts.embedding_params + counts.lm_head_params + counts.vector_params
            upcast_bytes = 2 * unquantized
            frozen_bytes += upcast_bytes
    weights_bytes = frozen_bytes + trainable_weight_bytes
    gradients = trainable * grad_b
    master = trainable * master_b
    optimizer = _optimizer_state_bytes(tensors, opt, state_b)
    temporaries = _step_temporary_bytes(tensors, opt, state_b)
    largest_trainable = max(t.rows * t.cols for t in tensors)
    # DeepSpeed ZeRO-1/2 keep an fp32 copy of their gradient partition (stage_1_and_2.py estimator: "18 =
    # 2_grads_16bit + 4_grads_32bit + 4_params_32bit + 8_optimizer_states_32bit"); stage 3 counts the fp32 grads
    # instead of the 16-bit ones (stage3.py: 18 = 2 B params + 16 B fp32 params, grads, momentum, variance).
    fp32_grads = trainable * 4 if full and recipe.deepspeed_fp32_grad_partition and zero >= 1 and precision != "fp32" \
        else 0
    if fp32_grads and zero == 3:
        gradients = 0

    # Sharding (data-parallel degree = every GPU) and CPU offload.
    shard_opt = n_gpus if zero >= 1 else 1
    shard_grad = n_gpus if zero >= 2 else 1
    shard_param = n_gpus if zero >= 3 else 1
    weights_gpu = _shard(weights_bytes, shard_param)
    gradients_gpu = _shard(gradients, shard_grad)
    master_gpu = _shard(master, shard_opt)
    optimizer_gpu = _shard(optimizer, shard_opt)
    temporaries_gpu = _shard(temporaries, shard_opt)
    fp32_grads_gpu = _shard(fp32_grads, shard_opt)
    if options.optimizer_in_backward:
        # Each parameter's gradient is stepped and freed as soon as backward produces it.
        gradients_gpu = largest_trainable * grad_b
        temporaries_gpu = largest_trainable * state_b if temporaries else 0
    cpu_lines: list[MemoryLine] = []
    offloaded = 0
    if offload != "none":
        # ZeRO-Offload: fp32 master, optimizer states and fp32 gradients live in CPU RAM and step there; the
        # GPU keeps the 16-bit parameters, and gradients only pass through the reduce bucket (DeepSpeed
        # estimator, offload_optimizer=cpu: GPU 2 x params). ZeRO-Infinity / FSDP CPU offload moves the
        # parameters too: the GPU holds the gathered units only (stage3.py: largest_layer_memory).
        offloaded = master_gpu + optimizer_gpu + fp32_grads_gpu + gradients_gpu
        master_gpu = optimizer_gpu = fp32_grads_gpu = gradients_gpu = temporaries_gpu = 0
        if offload == "params":
            offloaded += weights_gpu
            weights_gpu = 0
    paged_gpu = 0
    if opt.paged:
        # bitsandbytes paged optimizers allocate their states with cudaMallocManaged: unified memory the torch
        # allocator does not see, evicted page by page to CPU RAM when the GPU runs out (QLoRA paper, 3).
        paged_gpu, optimizer_gpu = optimizer_gpu, 0
    states_gpu = weights_gpu + gradients_gpu + master_gpu + optimizer_gpu + fp32_grads_gpu

    # Working buffers that depend on the sharding.
    buffer_lines: list[MemoryLine] = []
    if n_gpus > 1 and zero == 0:
        buffer_lines.append(MemoryLine(
            name="DDP gradient buckets", category="gradients", bytes_per_gpu=gradients, bytes=gradients * n_gpus,
            formula=f"a second copy of the gradients: {gradients:,} B",
            note="torch DDP flat buckets (gradient_as_bucket_view=False, the default)"))
    elif n_gpus > 1 and zero in (1, 2):
        bucket = min(DEEPSPEED_REDUCE_BUCKET, trainable) * grad_b
        buffer_lines.append(MemoryLine(
            name="ZeRO reduce bucket", category="gradients", bytes_per_gpu=bucket, bytes=bucket * n_gpus,
            formula=f"min(5e8, {trainable:,}) x {grad_b} B", note="DeepSpeed reduce_bucket_size default 5e8"))
    elif (n_gpus > 1 or offload == "params") and zero == 3:
        if recipe.sharding_unit == "layer" and spec is not None:
            # FSDP all-gathers a unit's parameters before use (the unit computing and the next one prefetched);
            # in backward a full fine-tune also materializes the unit's unsharded gradient before the
            # reduce-scatter (torch.distributed.fsdp fully_shard: unsharded grads, then reduce_scatter).
            layer = _largest_layer_params(spec)
            units = 3 if full else 2
            gathered = units * layer * base_bytes
            what = "computing + prefetched" + (" + its unsharded gradient" if full else "")
            buffer_lines.append(MemoryLine(
                name="FSDP gathered layers", category="weights", bytes_per_gpu=gathered, bytes=gathered * n_gpus,
                formula=f"{units} x largest unit {layer:,} params x {base_bytes} B ({what})",
                note=f"{recipe.name}: one FSDP unit per decoder layer, all-gathered before use"))
        else:
            largest = _largest_tensor(spec)
            gathered = 4 * largest + min(DEEPSPEED_PREFETCH_BUCKET, total_params) * base_bytes
            buffer_lines.append(MemoryLine(
                name="ZeRO-3 gathered parameters", category="weights", bytes_per_gpu=gathered,
                bytes=gathered * n_gpus,
                formula=f"4 B x largest layer {largest:,} + min(5e7, params) x {base_bytes} B prefetch",
                note="DeepSpeed estimate_zero3: largest_layer_memory = 4 x largest_layer_params; "
                "stage3_prefetch_bucket_size 5e7"))
    dequant = 0
    largest_linear = 0
    if method == "qlora" and spec is not None:
        largest_linear = max(g.rows * g.cols for g in _matrix_groups(spec))
        dequant = largest_linear * 2
    buffers_gpu = sum(line.bytes_per_gpu for line in buffer_lines) + dequant

    # Gradients live through the forward pass when they accumulate (grad_accum > 1) or sit in persistent
    # communication buffers (DDP / ZeRO partitions on several GPUs); otherwise zero_grad(set_to_none=True)
    # frees them before the next forward and backward allocates them as it frees activations.
    grads_in_forward = (options.grad_accum > 1 or n_gpus > 1) and not options.optimizer_in_backward
    resident = weights_gpu + master_gpu + optimizer_gpu + fp32_grads_gpu + buffers_gpu
    static_forward = resident + (gradients_gpu if grads_in_forward else 0)
    static_step = resident + gradients_gpu + temporaries_gpu

    items: list[ActivationItem] = []
    coefficients = None
    if spec is not None:
        items = activation_items(spec, options, lora_modules=lora_modules,
                                 conventions=COMPILED_CONVENTIONS if options.compile else HF_CONVENTIONS)
        coefficients = _coefficients(spec, options, items)
    else:
        notes.append("--params: model states only; activations and logits need an architecture "
                     "(give a model preset or config.json)")

    fixed_overhead = options.overhead_override_bytes if options.overhead_override_bytes is not None \
        else CUDA_CONTEXT_BYTES
    # Load time: bitsandbytes / torchtune quantize each bf16 weight on the GPU as it arrives, so the 4-bit
    # base plus the largest bf16 matrix is allocated once; the caching allocator keeps that peak reserved.
    load_peak = weights_gpu + 2 * largest_linear if method == "qlora" else 0
    loss_model = recipe.loss.compiled() if options.compile else recipe.loss
    plan = _Plan(static_forward=static_forward, static_step=static_step, coefficients=coefficients,
                 checkpointing=options.grad_checkpointing, fixed_overhead=fixed_overhead, loss=loss_model,
                 offload=options.activation_offload, load_peak=load_peak)
    b, s = options.micro_batch, options.seq_tokens
    total_gpu, layers_gpu, logits_gpu, phase = plan.peak(b, s)
    allocated = static_forward + layers_gpu + logits_gpu if phase == "forward" else static_step
    reserved = total_gpu - fixed_overhead
    fragmentation = reserved - max(allocated, load_peak)
    overhead_gpu = fixed_overhead + fragmentation

    at_forward = phase == "forward"
    lines: list[MemoryLine] = []

    def line(name: str, category: str, per_gpu: int, formula: str, note: str = "", *, at_peak: bool = True,
             whole: int | None = None) -> None:
        lines.append(MemoryLine(name=name, category=category, bytes_per_gpu=per_gpu,  # type: ignore[arg-type]
                                bytes=per_gpu * n_gpus if whole is None else whole, at_peak=at_peak,
                                formula=formula, note=note))

    def sharded(n: int, by: int) -> str:
        return f" / {by} GPUs" if by > 1 else ""

    if not full:
        nf4_kind = "double quant" if options.qlora_format == "nf4" else "no double quant"
        base_name = f"frozen base weights (NF4, {nf4_kind})" if method == "qlora" else \
            f"frozen base weights ({'fp32' if precision == 'fp32' else 'bf16'})"
        frozen_whole = frozen_bytes - upcast_bytes
        frozen_gpu = 0 if offload == "params" else _shard(frozen_whole, shard_param)
        line(base_name, "weights", frozen_gpu, f"{total_params:,} params{sharded(frozen_whole, shard_param)}",
             frozen_note, whole=frozen_gpu * n_gpus)
        if upcast_bytes:
            up_gpu = 0 if offload == "params" else _shard(upcast_bytes, shard_param)
            line("fp32 upcast of the unquantized parameters", "weights", up_gpu,
                 f"(embeddings + lm_head + norms) x 2 B more{sharded(upcast_bytes, shard_param)}",
                 "peft prepare_model_for_kbit_training casts every non-4-bit parameter to fp32")
        adapter_gpu = weights_gpu - frozen_gpu - (0 if not upcast_bytes or offload == "params"
                                                  else _shard(upcast_bytes, shard_param))
        dtype = "fp32" if weight_b == 4 else "bf16"
        line(f"trainable parameters ({method}, {dtype})", "weights", adapter_gpu,
             f"{trainable:,} x {weight_b} B{sharded(trainable_weight_bytes, shard_param)}",
             "PEFT autocast_adapter_dtype keeps adapters in fp32" if weight_b == 4 else
             f"{recipe.name}: adapters in the model's bf16")
    else:
        line(f"weights ({'fp32' if precision == 'fp32' else 'bf16'})", "weights", weights_gpu,
             f"{trainable:,} x {weight_b} B{sharded(weights_bytes, shard_param)}")
    if options.optimizer_in_backward:
        line("gradients (optimizer in backward)", "gradients", gradients_gpu,
             f"largest tensor {largest_trainable:,} x {grad_b} B",
             "each parameter steps and frees its gradient inside backward (torchtune optimizer_in_bwd)",
             at_peak=not at_forward)
    elif gradients or offload == "none":
        line("gradients", "gradients", gradients_gpu, f"{trainable:,} x {grad_b} B{sharded(gradients, shard_grad)}",
             "" if grads_in_forward else "allocated during backward as activations are freed",
             at_peak=grads_in_forward or not at_forward)
    if fp32_grads:
        line("fp32 gradient partition", "gradients", fp32_grads_gpu,
             f"{trainable:,} x 4 B{sharded(fp32_grads, shard_opt)}",
             "DeepSpeed keeps the reduced gradients in fp32 for the optimizer (estimator: 4_grads_32bit)")
    if master:
        line("fp32 master weights", "master_weights", master_gpu, f"{trainable:,} x 4 B{sharded(master, shard_opt)}",
             "mixed precision: the optimizer updates an fp32 copy (ZeRO counts it in K)")
    state_desc = f"{opt.states} x {state_b} B" if not (opt.eight_bit or opt.factored) else \
        ("2 x (1 B + 4 B / 256)" if opt.eight_bit else f"(rows + cols) x {state_b} B per matrix")
    if opt.paged:
        line(f"optimizer states ({opt.name}, paged)", "optimizer", paged_gpu,
             f"{trainable:,} x {state_desc}{sharded(optimizer, shard_opt)}",
             f"{opt.description}; unified memory outside the torch allocator, evicted to CPU under pressure: "
             "not counted against the GPU", at_peak=False)
    elif offload == "none":
        line(f"optimizer states ({opt.name})", "optimizer", optimizer_gpu,
             f"{trainable:,} x {state_desc}{sharded(optimizer, shard_opt)}", opt.description)
    if temporaries_gpu:
        what_steps = f"largest tensor {largest_trainable:,} x {state_b} B" if options.optimizer_in_backward else \
            f"{trainable:,} x {state_b} B{sharded(temporaries, shard_opt)}"
        line("optimizer step temporaries", "optimizer", temporaries_gpu, what_steps,
             "foreach AdamW/SGD: one state-sized temporary during step()", at_peak=not at_forward)
    if offloaded:
        what = "parameters, gradients, master weights, optimizer states" if offload == "params" else \
            "fp32 master weights, optimizer states, gradients"
        scheme = "ZeRO-Infinity / FSDP CPU offload" if offload == "params" else "ZeRO-Offload"
        cpu_lines.append(MemoryLine(name=f"in CPU RAM ({scheme})", category="offloaded", bytes_per_gpu=offloaded,
                                    bytes=offloaded * n_gpus, at_peak=False, formula=what,
                                    note="host memory per GPU; the optimizer steps on the CPU"))
        lines.extend(cpu_lines)
    for buffer in buffer_lines:
        lines.append(buffer)
    if dequant:
        line("dequantized weight buffer", "weights", dequant, "largest 4-bit matrix in bf16",
             "bitsandbytes dequantizes one layer at a time for the matmul")
    if spec is not None and coefficients is not None:
        tokens = f"{b} x {s + coefficients.q_extra:,} tokens"
        how = "layer inputs + one layer recomputed" if options.grad_checkpointing else "every saved tensor, all layers"
        if options.activation_offload:
            how += f"; offloaded to CPU but {OFFLOAD_LAYERS_ON_GPU} layers in flight"
        line("activations", "activations", layers_gpu, f"{tokens}: {how}",
             "Korthikanti 2022 inventory from the architecture; see --explain", at_peak=at_forward)
        loss = loss_model
        chunk = loss.chunk(b * (s + coefficients.q_extra))
        line("logits and their gradient", "logits", logits_gpu,
             f"{tokens} x {spec.vocab_size:,} vocab x {loss.saved_bytes_per_logit} B saved + {chunk:,} tokens "
             f"x {loss.transient_bytes_per_logit} B per chunk", f"{recipe.name} loss: {loss.name}",
             at_peak=at_forward)
    line("CUDA context, cuBLAS workspace", "overhead", fixed_overhead,
         "--overhead" if options.overhead_override_bytes is not None else "512 MiB",
         "outside torch.cuda.max_memory_allocated")
    line("allocator fragmentation", "overhead", fragmentation,
         f"5 % of {max(allocated, load_peak):,} B reserved at the peak",
         "Megatron-LM theoretical memory: overhead_factor 1.05; reserved = allocated + fragmentation")


    margin = None
    fits = None
    gpu_memory = None
    if gpu is not None:
        gpu_memory = gpu.usable_memory_bytes
        margin = gpu_memory - total_gpu
        fits = margin >= 0

    # Largest micro-batch and longest sequence (binary searches over the same function).
    limits = None
    if gpu is not None and coefficients is not None:
        budget = gpu.usable_memory_bytes

        def batch_fits(n: int) -> bool:
            return plan.peak(n, s)[0] <= budget

        def seq_fits(n: int) -> bool:
            return plan.peak(b, n)[0] <= budget

        max_b, eval_b = search_max(batch_fits, b, MAX_SEARCH_BATCH)
        max_s, eval_s = search_max(seq_fits, s, MAX_SEARCH_SEQ)
        limits = LimitSearch(max_micro_batch=max_b, max_seq_tokens=max_s, evaluations=eval_b + eval_s)
        if spec is not None and max_s > spec.max_position_embeddings:
            notes.append(f"memory allows {max_s:,}-token sequences; {spec.name} was trained to "
                         f"{spec.max_position_embeddings:,} (longer needs rope scaling)")

    if spec is not None and s > spec.max_position_embeddings:
        warnings.append(f"--seq {s:,} exceeds {spec.name}'s maximum {spec.max_position_embeddings:,} tokens "
                        "(needs rope scaling); computed anyway")
    if zero_note:
        notes.append(zero_note)
    if opt.paged:
        notes.append(f"paged optimizer: its {paged_gpu:,} B of states sit in unified memory outside the torch "
                     "allocator and move to CPU RAM when the GPU runs out (slower, never an OOM): not counted")
    if method == "prompt-tuning":
        notes.append(f"prompt tuning lengthens every sequence by {options.virtual_tokens} virtual tokens")
    if method == "prefix-tuning":
        notes.append(f"prefix tuning adds {options.virtual_tokens} key/value positions to every layer")

    training = _training_time(spec, gpu, options, total_params, trainable)
    explain += _explain(spec, options, items, coefficients, lines, total_gpu, phase, opt)

    if recipe.packing:
        notes.append(f"{recipe.name} packs samples (sample packing): every micro-batch row is the full {s:,} tokens")
    else:
        notes.append(f"no sample packing in the {recipe.name} recipe: --seq is the longest sample the batch is "
                     "padded to; packed data (or padding_free) keeps every row at --seq")
    recipe_notes = _recipe_notes(options)
    notes = recipe_notes + notes
    allocated_gpu = allocated
    trainer_peak = reserved if recipe.peak_figure == "reserved" else allocated_gpu
    activations_gpu = layers_gpu
    return FinetuneResult(
        peak_allocated_bytes=allocated_gpu * n_gpus,
        peak_allocated_bytes_per_gpu=allocated_gpu,
        peak_reserved_bytes=reserved * n_gpus,
        peak_reserved_bytes_per_gpu=reserved,
        recipe=recipe.name,
        recipe_title=recipe.title,
        trainer_peak_figure=recipe.peak_figure,
        trainer_peak_label=recipe.peak_label,
        trainer_peak_bytes_per_gpu=trainer_peak,
        activation_offload=options.activation_offload,
        optimizer_in_backward=options.optimizer_in_backward,
        adapter_dtype=None if full else ("fp32" if weight_b == 4 else "bf16"),
        cpu_offload=offload,
        cpu_offload_bytes=offloaded * n_gpus,
        cpu_offload_bytes_per_gpu=offloaded,
        paged_optimizer_bytes=paged_gpu * n_gpus,
        paged_optimizer_bytes_per_gpu=paged_gpu,
        model=spec.name if spec is not None else f"{total_params:,} params",
        gpu=gpu.name if gpu is not None else None,
        gpu_count=n_gpus,
        method=method,
        precision=precision,
        optimizer=opt.name,
        zero=zero,
        seq_tokens=s,
        micro_batch=b,
        grad_accum=options.grad_accum,
        grad_checkpointing=options.grad_checkpointing,
        attention=options.attention,
        lora_rank=options.lora_rank if method in LORA_METHODS else None,
        lora_targets=(list(options.lora_targets) if options.lora_targets is not None else ["peft-default"])
        if method in LORA_METHODS else None,
        lora_target_modules=trainable_info.modules if trainable_info is not None and method in LORA_METHODS
        else None,
        model_type=trainable_info.model_type if trainable_info is not None else None,
        transformers=options.transformers,
        peft_target_modules=trainable_info.target_modules if trainable_info is not None else None,
        peft_target_parameters=trainable_info.target_parameters if trainable_info is not None else None,
        peft_feedforward_modules=trainable_info.feedforward_modules if trainable_info is not None else None,
        virtual_tokens=options.virtual_tokens if method in ("prompt-tuning", "prefix-tuning") else None,
        base_format=None if full else base_format.name,
        total_params=total_params,
        trainable_params=trainable,
        all_params=all_params,
        trainable_percent=100 * trainable / all_params,
        trainable_tensors=tensors if len(tensors) <= 64 else tensors[:64],
        weights_bytes=weights_bytes,
        weights_bytes_per_gpu=weights_gpu,
        frozen_weights_bytes=frozen_bytes,
        trainable_weights_bytes=trainable_weight_bytes,
        gradients_bytes=gradients_gpu * n_gpus,
        gradients_bytes_per_gpu=gradients_gpu,
        master_weights_bytes=master_gpu * n_gpus,
        master_weights_bytes_per_gpu=master_gpu,
        optimizer_bytes=optimizer_gpu * n_gpus,
        optimizer_bytes_per_gpu=optimizer_gpu,
        model_states_bytes=states_gpu * n_gpus,
        model_states_bytes_per_gpu=states_gpu,
        activations_bytes=activations_gpu * n_gpus,
        activations_bytes_per_gpu=activations_gpu,
        logits_bytes=logits_gpu * n_gpus,
        logits_bytes_per_gpu=logits_gpu,
        overhead_bytes=overhead_gpu * n_gpus,
        overhead_bytes_per_gpu=overhead_gpu,
        total_bytes=total_gpu * n_gpus,
        total_bytes_per_gpu=total_gpu,
        peak_phase=phase,  # type: ignore[arg-type]
        gpu_memory_bytes_per_gpu=gpu_memory,
        margin_bytes_per_gpu=margin,
        fits=fits,
        lines=lines,
        activation_items=items,
        limits=limits,
        training=training,
        warnings=warnings,
        notes=notes,
        explain=explain,
    )


_SETTING_WORDS: dict[str, Callable[[FinetuneOptions], str]] = {
    "grad_checkpointing": lambda o: f"gradient checkpointing {'on' if o.grad_checkpointing else 'off'}",
    "activation_offload": lambda o: "activation offloading to CPU",
    "compile": lambda o: "torch.compile",
    "optimizer": lambda o: f"optimizer {o.optimizer}",
    "optimizer_in_backward": lambda o: "optimizer step fused into backward",
    "precision": lambda o: f"precision {o.precision}",
    "adapter_dtype": lambda o: f"adapters in {o.adapter_dtype}",
    "kbit_upcast_fp32": lambda o: "unquantized parameters upcast to fp32 (prepare_model_for_kbit_training)",
    "cpu_offload": lambda o: f"CPU offload of the {o.cpu_offload}",
    "micro_batch": lambda o: f"micro-batch {o.micro_batch}",
    "grad_accum": lambda o: f"gradient accumulation {o.grad_accum}",
}


def _recipe_notes(options: FinetuneOptions) -> list[str]:
    """Say which settings came from the recipe (and where the recipe has them from)."""
    if not options.recipe_defaults:
        return []
    recipe = options.recipe
    family = "full" if options.method == "full" else ("qlora" if options.method == "qlora" else "peft")
    parts = []
    for key in options.recipe_defaults:
        words = _SETTING_WORDS[key](options)
        source = recipe.sources.get(f"{family}.{key}") or recipe.sources.get(f"peft.{key}")
        parts.append(f"{words} ({source})" if source else words)
    return [f"{recipe.name} recipe defaults: " + "; ".join(parts)]


# ------------------------------------------------------------------------------------------ time and cost


def training_flops_per_token(spec: ModelSpec | None, method: str, total_params: int, trainable: int, seq: int,
                             checkpointing: bool) -> tuple[int, str]:
    """Training FLOPs per token. Full: 6 x N (forward 2N, backward 4N: Kaplan et al. 2020; EleutherAI
    Transformer Math 101 C = 6PD) with N the matmul parameters one token touches (MoE: active experts;
    embedding lookups are free, a tied lm_head is not), plus causal attention 6 x L x s x (heads x
    head_dim) (forward 2 x L x s x a x d for QK^T and AV over half the keys). PEFT: the frozen base runs
    forward (2N) and backward through activations only (2N), the added weights 6 x trainable.
    Checkpointing adds one more forward (2N)."""
    if spec is not None:
        counts = count_params(spec)
        matmul = counts.active_params - counts.vector_params
        if not spec.tie_word_embeddings:
            matmul -= counts.embedding_params
        # The attention output: heads x v_head_dim under MLA, heads x head_dim otherwise.
        width = attention_kind(spec).attention_widths()[3] or spec.num_attention_heads * spec.real_head_dim
        attention_fwd = 2 * spec.num_hidden_layers * seq * width
    else:
        matmul, attention_fwd = total_params, 0
    forward = 2 * matmul + attention_fwd
    if method == "full":
        flops = 3 * forward
        formula = f"6 x {matmul:,} matmul params + 6 x attention {attention_fwd // 2:,}"
    else:
        flops = 2 * forward + 6 * trainable
        formula = f"4 x {matmul:,} (frozen forward + backward to activations) + 4 x attention " \
                  f"{attention_fwd // 2:,} + 6 x {trainable:,} trainable"
    if checkpointing:
        flops += forward
        formula += " + one recomputed forward"
    return flops, formula


def _training_time(spec: ModelSpec | None, gpu: GpuSpec | None, options: FinetuneOptions, total_params: int,
                   trainable: int) -> TrainingTime | None:
    if gpu is None:
        return None
    dtype = "fp32" if options.precision == "fp32" else "bf16"
    peak = gpu.tflops.get(dtype) or (gpu.tflops.get("tf32") if dtype == "fp32" else gpu.tflops.get("fp16"))
    if not peak:
        return None
    seq = options.seq_tokens + (options.virtual_tokens if options.method == "prompt-tuning" else 0)
    per_token, formula = training_flops_per_token(spec, options.method, total_params, trainable, seq,
                                                  options.grad_checkpointing)
    tokens_per_step = options.micro_batch * options.seq_tokens * options.grad_accum * options.gpus
    flops_step = per_token * tokens_per_step
    rate = options.gpus * peak * 1e12 * options.mfu
    step_seconds = flops_step / rate
    steps = epoch = hours = cost = None
    if options.dataset_tokens is not None:
        steps = ceil_div(options.dataset_tokens, tokens_per_step)
        epoch = steps * step_seconds
        hours = epoch / 3600 * options.gpus
        cost = hours * gpu.price_per_hour if gpu.price_per_hour is not None else None
    return TrainingTime(
        tokens_per_step=tokens_per_step, flops_per_token=per_token, flops_per_step=flops_step, flops_formula=formula,
        peak_tflops_per_gpu=peak, peak_tflops_dtype=dtype, mfu=options.mfu, step_seconds=step_seconds,
        tokens_per_second=tokens_per_step / step_seconds, dataset_tokens=options.dataset_tokens,
        steps_per_epoch=steps, epoch_seconds=epoch, gpu_hours=hours, price_per_gpu_hour=gpu.price_per_hour,
        cost_usd=cost,
    )


# ------------------------------------------------------------------------------------------ explain


def _explain(spec: ModelSpec | None, options: FinetuneOptions, items: list[ActivationItem],
             coefficients: _Coefficients | None, lines: list[MemoryLine], total: int, phase: str,
             opt: OptimizerSpec) -> list[str]:
    out = []
    for memory_line in lines:
        mark = "" if memory_line.at_peak else " (not resident at the peak)"
        out.append(f"{memory_line.name}: {memory_line.formula} = {memory_line.bytes_per_gpu:,} B per GPU{mark}")
    if spec is not None and coefficients is not None:
        out.append(f"activations per layer and token (h={spec.hidden_size}, heads={spec.num_attention_heads}, "
                   f"kv_heads={spec.kv_heads}, head_dim={spec.real_head_dim}, intermediate={spec.intermediate_size}"
                   + (f", experts {spec.num_experts_per_tok}/{spec.num_experts}" if spec.is_moe else "") + "):")
        for item in items:
            scale = " x key length" if item.per_token_pair else (" per key/value token" if item.per_kv else "")
            count = f" x {item.layers} layers" if item.layers != spec.num_hidden_layers else ""
            out.append(f"  {item.name}: {item.bytes_per_token:,} B{scale}{count}")
        if options.grad_checkpointing:
            out.append(f"  checkpointing keeps each layer's input ({coefficients.checkpoint_per_query:,} B per token, "
                       f"all layers) and recomputes one layer ({coefficients.layer_max_query:,} B per token)")
        out.append(f"  Korthikanti 2022: s*b*h*(34 + 5*a*s/h) per GPT layer; this inventory follows the same rule "
                   f"for {spec.architecture or 'this model'} ({options.attention} attention)")
    out.append(f"peak = the larger of end-of-forward and optimizer step: {phase}; total {total:,} B per GPU")
    return out


# ------------------------------------------------------------------------------------------ emit seam


def training_settings(result: FinetuneResult) -> dict[str, object]:
    """The plan's settings for a launch config (issue 9 `finetune --emit deepspeed|peft|bnb` renders them):
    the LoRA / PEFT method, the ZeRO stage and micro-batch, and the bitsandbytes 4-bit load arguments."""
    settings: dict[str, object] = {
        "method": result.method,
        "target_modules": result.peft_target_modules,
        "target_parameters": result.peft_target_parameters,
        "feedforward_modules": result.peft_feedforward_modules,
        "zero": {"stage": result.zero, "gpus": result.gpu_count, "train_micro_batch_size_per_gpu": result.micro_batch,
                 "gradient_accumulation_steps": result.grad_accum, "bf16": result.precision != "fp32",
                 "gradient_checkpointing": result.grad_checkpointing, "optimizer": result.optimizer,
                 "cpu_offload": result.cpu_offload},
    }
    if result.lora_rank is not None:
        settings["lora"] = {"r": result.lora_rank, "lora_alpha": 2 * result.lora_rank, "lora_dropout": 0.0,
                            "bias": "none", "target_modules": result.peft_target_modules,
                            "target_parameters": result.peft_target_parameters, "task_type": "CAUSAL_LM"}
    if result.virtual_tokens is not None:
        settings["prompt"] = {"num_virtual_tokens": result.virtual_tokens}
    if result.method == "qlora":
        # bitsandbytes computes in the 16-bit dtype of the run (fp32 runs compute in fp32).
        settings["bnb"] = {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4",
                           "bnb_4bit_use_double_quant": result.base_format != "nf4-nodq",
                           "bnb_4bit_compute_dtype": "float32" if result.precision == "fp32" else "bfloat16"}
    return settings


__all__ = [
    "COMPILED_CONVENTIONS",
    "HF_CONVENTIONS",
    "KORTHIKANTI_CONVENTIONS",
    "METHODS",
    "OPTIMIZERS",
    "PRECISIONS",
    "FinetuneOptions",
    "FinetuneResult",
    "activation_items",
    "finetune",
    "korthikanti_layer_bytes",
    "lora_params",
    "trainable_plan",
    "trainable_tensors",
    "training_flops_per_token",
    "training_settings",
]
