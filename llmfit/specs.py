"""Spec objects: a model architecture (HF config.json fields) and a GPU.

Both are frozen stdlib dataclasses (llmfit/engine/records.py): free to build and to import. They are
validated where data comes in (presets, model files: `records.validate`, which hands them to pydantic),
from the constraints in their annotations and `extra="forbid"`, so a typo in a preset is an error naming
the field, not a silently ignored key. The cross-field rules are `__post_init__`, which pydantic runs after
the fields validate and which runs on every construction in code too. Field names follow Hugging Face
`config.json` where one exists.
"""

from __future__ import annotations

from dataclasses import field
from typing import TYPE_CHECKING, Annotated, Any, Literal

from llmfit import limits
from llmfit.engine.records import FORBID_EXTRA, BeforeCheck, Check, record
from llmfit.errors import SpecError
from llmfit.units import MAX_BYTES, parse_bytes

if TYPE_CHECKING:
    from llmfit.engine.layers import LayerGroup


def _bytes_value(value: object, info: Any) -> int:
    """YAML memory fields carry their unit ("80 GiB", "81559 MiB"); a bare number is refused."""
    if isinstance(value, bool):
        raise ValueError("expected a size with a unit, e.g. 80 GiB")
    if isinstance(value, int) and (info.context or {}).get("source") == "file":
        # A preset file says `memory: 96 GiB`; a bare 96 would be read as 96 bytes (design.md: refused).
        raise ValueError(f"{value} has no unit; write e.g. '{value} GiB' or '{value} GB'")
    if isinstance(value, int):
        # Already bytes (e.g. a spec built in code, or a JSON round-trip); held to the range parse_bytes allows.
        if not 0 < value <= MAX_BYTES:
            raise ValueError(f"{value} bytes is not a device size (1 B to 1 EiB); write e.g. '80 GiB'")
        return value
    if isinstance(value, str):
        return parse_bytes(value, what="memory")
    raise ValueError("expected a size with a unit, e.g. '80 GiB' or '81559 MiB'")


# `info` is pydantic's ValidationInfo: its context says whether the value comes from a file.
ByteSize = Annotated[int, BeforeCheck(_bytes_value)]

# strict: a bool (`true`), a string ("32") or a float (32.0) in a count is an error naming the field, not 1 or 32.
Positive = Annotated[int, Check(gt=0, le=2**40, strict=True)]
NonNegative = Annotated[int, Check(ge=0, le=2**40, strict=True)]
# Published decoders have at most ~130 layers (Llama-3.1-405B: 126); the engine walks layers one by one
# (sliding-window kinds, GGUF per-layer types), so a hostile 10**9 must be refused, not iterated.
MAX_LAYERS = limits.MAX_LAYERS
LayerCount = Annotated[int, Check(gt=0, le=MAX_LAYERS, strict=True)]

# config.json layer type names llmfit models (llmfit/engine/layers.py KIND_BUILDERS builds each into a kind).
LayerTypeName = Literal["full_attention", "sliding_attention", "chunked_attention", "cross_attention",
                        "linear_attention", "mamba", "mamba2", "short_conv", "mlp_only"]
MlpType = Literal["dense", "moe", "none"]


@record
class CheckpointInfo:
    """What a model file on disk stores, read from its headers (safetensors, GGUF) without loading a tensor.

    Only specs read from a file or a Hub repo carry one; presets do not. `format` is the llmfit weight
    format the stored tensors correspond to (a `--dtype` name, or a reader-defined scheme such as
    `fp8-block128` or `mxfp4-experts`); `stored_bytes` is the tensor data an engine loads.
    """

    __pydantic_config__ = FORBID_EXTRA

    # file, folder or repo id that was read
    path: str
    reader: Literal["safetensors", "gguf", "config.json", "index.json"]
    format: str
    format_note: str | None = None
    # tensor bytes an engine loads
    stored_bytes: Annotated[int, Check(ge=0)] | None = None
    # all tensor bytes in the files
    file_bytes: Annotated[int, Check(ge=0)] | None = None
    # logical (unpacked) parameters stored
    stored_params: Annotated[int, Check(ge=0)] | None = None
    bytes_by_dtype: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@record
class ModelSpec:
    """A decoder-only transformer, as its config.json describes it, plus its published parameter count."""

    __pydantic_config__ = FORBID_EXTRA

    # preset name: the HF model name, lowercased, without the organisation
    name: str
    # Hugging Face repo id, e.g. meta-llama/Llama-3.1-8B
    hf_id: str | None = None
    aliases: list[str] = field(default_factory=list)
    # where the architecture and count come from
    source: Annotated[str, Check(min_length=1)]
    family: str | None = None
    # config.json architectures[0]
    architecture: str | None = None

    # Published parameter count and the convention it follows (tied embeddings counted once, etc.).
    published_params: Positive | None = None
    params_source: str | None = None
    params_convention: str | None = None
    # Where the publisher gives only a rounded figure ("671B", "12.9B"), it is kept as written, so a test can
    # check the computed count rounds to it; exact counts go in published_params / published_active_params.
    published_params_rounded: Annotated[str, Check(pattern=r"^[0-9]+(\.[0-9]+)?[MB]$")] | None = None
    # MoE: exact published parameters used per token (embeddings included)
    published_active_params: Positive | None = None
    published_active_params_rounded: Annotated[str, Check(pattern=r"^[0-9]+(\.[0-9]+)?[MB]$")] | None = None
    # the publisher's active count leaves out the input embedding (a lookup, not compute), as DeepSeek and OpenAI do;
    # llmfit's active_params always include it
    published_active_excludes_embedding: bool = False
    # The published checkpoint's own weight format when it is not torch_dtype (config.json quantization_config).
    # format name of the published weights, e.g. 'mxfp4' (gpt-oss), 'fp8' (DeepSeek-V3)
    checkpoint_format: str | None = None
    # which tensors checkpoint_format covers; the rest stay in torch_dtype
    checkpoint_format_tensors: Literal["linear", "experts"] | None = None

    hidden_size: Positive
    num_hidden_layers: LayerCount
    num_attention_heads: Positive
    num_key_value_heads: Positive | None = None
    head_dim: Positive | None = None
    intermediate_size: NonNegative
    vocab_size: Positive
    max_position_embeddings: Positive
    tie_word_embeddings: bool = False
    torch_dtype: Literal["float32", "float16", "bfloat16"] = "bfloat16"

    # Layer shapes that change the count.
    # gated: gate/up/down (SwiGLU, 3 matrices); plain: up/down (2 matrices)
    mlp_kind: Literal["gated", "plain"] = "gated"
    # layernorm carries a bias vector as well as a weight
    norm_kind: Literal["rmsnorm", "layernorm"] = "rmsnorm"
    # normalisation vectors per layer: 2 (pre-attn, pre-mlp), 1 (Falcon parallel), 4 (Gemma-2)
    norms_per_layer: NonNegative = 2
    # bias on q, k, v projections (Qwen2, gpt-oss)
    attention_bias: bool = False
    # bias on the output projection (gpt-oss)
    attention_out_bias: bool = False
    mlp_bias: bool = False
    # per-head RMSNorm on q and k (Qwen3, Gemma-3): 2 x head_dim
    qk_norm: bool = False
    # one learned sink logit per head and layer (gpt-oss)
    attention_sinks: bool = False
    final_norm: bool = True

    # Mixture of experts (Mixtral: num_local_experts; DeepSeek: n_routed_experts; Qwen-MoE: num_experts).
    num_experts: NonNegative = 0
    num_experts_per_tok: NonNegative = 0
    num_shared_experts: NonNegative = 0
    moe_intermediate_size: NonNegative | None = None
    shared_expert_intermediate_size: NonNegative | None = None
    # sigmoid gate on the shared expert (Qwen2-MoE)
    shared_expert_gate: bool = False
    # leading layers with a dense MLP (DeepSeek)
    first_k_dense_replace: NonNegative = 0
    # bias on the router (gpt-oss)
    router_bias: bool = False
    # e_score_correction_bias of size num_experts per MoE layer (DeepSeek-V3)
    router_correction_bias: bool = False
    # biases inside each expert (gpt-oss)
    expert_bias: bool = False

    # Multi-head latent attention (DeepSeek-V2/V3).
    q_lora_rank: NonNegative | None = None
    kv_lora_rank: NonNegative | None = None
    qk_rope_head_dim: NonNegative | None = None
    qk_nope_head_dim: NonNegative | None = None
    v_head_dim: NonNegative | None = None

    # Per-layer attention kinds (sliding windows).
    sliding_window: Positive | None = None
    # token-mixer kind of each layer (config.json layer_types); overrides the rest
    layer_types: list[LayerTypeName] | None = None
    # Qwen2/Mistral semantics: layers from max_window_layers on use the window
    use_sliding_window: bool = False
    max_window_layers: NonNegative = 0
    # Gemma semantics: layer i is global when (i + 1) % pattern == 0, else sliding
    sliding_window_pattern: Positive | None = None
    # Gated attention (Qwen3-Next): q_proj also produces an output gate (2 x heads x head_dim).
    attn_output_gate: bool = False
    # Chunked local attention (Llama-4): a chunked_attention layer holds at most one chunk.
    attention_chunk_size: Positive | None = None
    # Cross-attention (mllama): image tokens every cross_attention layer attends to, per request.
    cross_attention_tokens: Positive | None = None
    # DeepSeek-V3.2 sparse-attention indexer (a component of each MLA layer).
    index_n_heads: Positive | None = None
    index_head_dim: Positive | None = None
    index_topk: Positive | None = None
    # Linear attention (Qwen3-Next / Qwen3.5 Gated DeltaNet; Kimi-Linear KDA: heads = value heads).
    linear_attention_kind: Literal["gated_deltanet", "kda"] = "gated_deltanet"
    linear_num_key_heads: Positive | None = None
    linear_num_value_heads: Positive | None = None
    linear_key_head_dim: Positive | None = None
    linear_value_head_dim: Positive | None = None
    linear_conv_kernel_dim: Positive | None = None
    # Mamba / Mamba-2 mixers (Jamba, Nemotron-H, Granite-4.0-H, Falcon-H1).
    # mamba_expand x hidden_size
    mamba_intermediate_size: Positive | None = None
    mamba_d_state: Positive | None = None
    mamba_d_conv: Positive | None = None
    mamba_dt_rank: Positive | None = None
    mamba_n_heads: Positive | None = None
    mamba_head_dim: Positive | None = None
    mamba_n_groups: Positive | None = None
    mamba_conv_bias: bool = True
    mamba_proj_bias: bool = False
    # Falcon-H1 projectors_bias; None = mamba_proj_bias
    mamba_out_bias: bool | None = None
    # gated RMSNorm before out_proj (Falcon-H1 mamba_rms_norm)
    mamba_gated_norm: bool = True
    # Jamba's dt/B/C RMSNorms inside the mixer
    mamba_inner_norms: bool = False
    # dtype of the SSM state (vLLM mamba_ssm_cache_dtype); None = the model dtype
    mamba_ssm_cache_dtype: Literal["float32", "float16", "bfloat16"] | None = None
    # Falcon-H1: a Mamba-2 mixer beside attention in each layer
    parallel_mamba: bool = False
    # Short convolution (LFM2).
    conv_l_cache: Positive | None = None
    conv_bias: bool = False
    # MLP of each layer (dense, moe, none); None = first_k_dense_replace dense layers then MoE (or all dense).
    mlp_layer_types: list[MlpType] | None = None
    # Extra parameters a formula cannot see (e.g. a multimodal model's vision tower), each named.
    extra_params: dict[str, NonNegative] = field(default_factory=dict)
    # Set when the spec was read from a model file / Hub repo: what the checkpoint really stores.
    checkpoint: CheckpointInfo | None = None

    def __post_init__(self) -> None:
        kv_heads = self.kv_heads
        if kv_heads > self.num_attention_heads or self.num_attention_heads % kv_heads:
            raise ValueError(
                f"num_key_value_heads ({kv_heads}) must divide num_attention_heads ({self.num_attention_heads})"
            )
        if self.real_head_dim == 0:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) // num_attention_heads ({self.num_attention_heads}) is 0: "
                "set head_dim"
            )
        if self.layer_types is not None and len(self.layer_types) != self.num_hidden_layers:
            raise ValueError(
                f"layer_types has {len(self.layer_types)} entries for {self.num_hidden_layers} layers"
            )
        if "sliding_attention" in (self.layer_types or []) and self.sliding_window is None:
            raise ValueError("layer_types has sliding_attention layers but sliding_window is not set")
        if self.mlp_layer_types is not None and len(self.mlp_layer_types) != self.num_hidden_layers:
            raise ValueError(
                f"mlp_layer_types has {len(self.mlp_layer_types)} entries for {self.num_hidden_layers} layers"
            )
        if "moe" in (self.mlp_layer_types or []) and not self.num_experts:
            raise ValueError("mlp_layer_types has moe layers but num_experts is 0")
        try:
            self.layer_groups  # noqa: B018 - built (and kept) here: a spec whose layers do not build is refused
        except SpecError as error:
            raise ValueError(str(error)) from None
        if self.num_experts:
            if not (0 < self.num_experts_per_tok <= self.num_experts):
                raise ValueError("num_experts_per_tok must be between 1 and num_experts")
            if self.first_k_dense_replace > self.num_hidden_layers:
                raise ValueError("first_k_dense_replace exceeds num_hidden_layers")
        if self.kv_lora_rank and None in (self.qk_rope_head_dim, self.qk_nope_head_dim, self.v_head_dim):
            raise ValueError("MLA (kv_lora_rank) needs qk_rope_head_dim, qk_nope_head_dim and v_head_dim")

    @property
    def kv_heads(self) -> int:
        return self.num_key_value_heads or self.num_attention_heads

    @property
    def real_head_dim(self) -> int:
        """head_dim as the model uses it: explicit in config.json, else hidden_size / heads."""
        return self.head_dim or self.hidden_size // self.num_attention_heads

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    @property
    def layer_groups(self) -> tuple[LayerGroup, ...]:
        """The decoder layers grouped by kind (llmfit/engine/layers.py); checked at validation. Built once per
        spec (a function of its frozen fields; kept in the instance's __dict__, beside the fields, which
        equality, hashing and the JSON forms do not look at)."""
        groups: tuple[LayerGroup, ...] | None = self.__dict__.get("_layer_groups")
        if groups is None:
            from llmfit.engine.layers import build_layer_groups

            groups = self.__dict__["_layer_groups"] = tuple(build_layer_groups(self))
        return groups

    @property
    def dtype_bits(self) -> int:
        return 32 if self.torch_dtype == "float32" else 16


@record
class GpuSpec:
    """An accelerator as the device reports it, with the source of each figure."""

    __pydantic_config__ = FORBID_EXTRA

    name: str
    aliases: list[str] = field(default_factory=list)
    vendor: Literal["nvidia", "amd", "apple", "intel", "google", "other"] = "nvidia"
    display_name: str | None = None
    # total memory CUDA / ROCm / Metal reports to the engine (what vLLM and torch see: torch.cuda.mem_get_info()[1]),
    # e.g. '79.19 GiB'
    memory: ByteSize
    memory_source: str | None = None
    # nvidia-smi memory.total, kept beside `memory`: SGLang sizes its defaults from it (sglang/srt/utils
    # get_device_memory_capacity reads nvidia-smi)
    nvidia_smi_memory: ByteSize | None = None
    # How GPUs of one node talk: the TP all-reduce path, and with it the engine's non-torch memory at TP > 1
    # (vLLM's custom all-reduce buffers on NVLink; NCCL over PCIe).
    interconnect: Literal["nvlink", "pcie", "infinity-fabric", "none"] | None = None
    interconnect_source: str | None = None
    # peak memory bandwidth, bytes per second
    memory_bandwidth_bytes_per_s: Annotated[
        int, Check(gt=0, le=limits.MAX_BANDWIDTH_BYTES_PER_S, strict=True)
    ] | None = None
    # Dense (not sparse) peak tensor throughput per dtype, in TFLOPS (10**12 FLOP/s).
    tflops: dict[str, Annotated[float, Check(ge=0, le=limits.MAX_TFLOPS, allow_inf_nan=False, strict=True)]] = field(
        default_factory=dict)
    # Weight/KV formats with native hardware support ('fp8', 'bf16', 'int8', 'fp4', ...).
    native_dtypes: list[str] = field(default_factory=list)
    compute_capability: str | None = None
    unified_memory: bool = False
    # share of unified memory the GPU may use (Apple silicon)
    gpu_memory_share: Annotated[float, Check(gt=0, le=1)] | None = None
    # USD per GPU-hour, on-demand
    price_per_hour: Annotated[
        float, Check(ge=0, le=limits.MAX_PRICE_PER_HOUR, allow_inf_nan=False, strict=True)] | None = None
    price_source: str | None = None
    source: Annotated[str, Check(min_length=1)]
    notes: str | None = None

    @property
    def usable_memory_bytes(self) -> int:
        """Memory a GPU workload may use: all of it, or the documented share of unified memory."""
        if self.gpu_memory_share is not None:
            return int(self.memory * self.gpu_memory_share)
        return self.memory
