"""Layer kinds: one frozen type per way a decoder layer mixes tokens, each owning its own rules.

A kind knows its parameter tensors, the KV bytes it caches per token (per GPU under tensor
parallelism), how many tokens one request keeps (window, chunk, fixed encoder tokens, or the whole
context), the fixed state it keeps per sequence (conv + SSM / recurrent state, at its own dtype), its
attention FLOPs and bytes read per token, what it saves for training, and its `--explain` formula.
The attention kinds (FullAttention and its windowed forms, LatentAttention) also own the shape rules
engines and trainers size "the attention" by: the TP split of the KV heads, the rotary dims, the q/k/v
and output widths, the input of the CUDA-graph split point, training's saved inputs and PEFT roles;
`attention_kind(spec)` is the kind of a model's (first) attention layers.
How an engine *caches* a kind (pages, grouping, padding, admission) is the engine's policy
(llmfit/engine/cache_policy.py), not the kind's.

Sources, beside each rule:
- attention shapes: transformers modeling_llama.py / modeling_qwen3_next.py (gated q_proj) /
  modeling_deepseek_v3.py (MLA) / modeling_mllama.py (cross-attention);
- KV replication under TP: SGLang `get_num_kv_heads(tp) = max(1, kv_heads // tp)`, vLLM
  `ModelConfig.get_num_kv_heads` (same rule); MLA's latent is one head, replicated on every GPU;
- state shapes: vllm/model_executor/layers/mamba/mamba_utils.py `MambaStateShapeCalculator`
  (mamba1_state_shape, mamba2_state_shape, short_conv_state_shape, gated_delta_net_state_shape,
  kda_state_shape) and `MambaStateDtypeCalculator` for their dtypes;
- DeepSeek-V3.2 indexer key cache: vllm/model_executor/models/deepseek_v2.py `Indexer.__init__`:
  `DeepseekV32IndexerCache(head_dim=index_head_dim + index_head_dim // 128 * 4, dtype=torch.uint8)`
  (fp8 values plus one fp32 scale per 128-value block), whatever the main KV dtype.

Adding a kind: a subclass here (+ its entry in KIND_BUILDERS), its config.json fields in
llmfit/readers/config.py, and tests. Nothing else branches on a kind's name.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from fractions import Fraction
from typing import TYPE_CHECKING, ClassVar, Literal

from llmfit.engine.records import record
from llmfit.errors import SpecError
from llmfit.units import ceil_div

if TYPE_CHECKING:
    from llmfit.specs import ModelSpec

TensorKind = Literal["embedding", "lm_head", "linear", "expert", "router", "vector", "extra"]


@record
class TensorGroup:
    """`count` tensors of shape (rows x cols); rows = output features, cols = input features."""

    name: str
    kind: TensorKind
    rows: int
    cols: int
    count: int
    # Layers this group belongs to (for pipeline split); None = outside the layer stack.
    per_layer: bool = True
    # Mixture-of-experts: how many of the `count` tensors run for one token (None = all).
    active_count: int | None = None

    @property
    def params(self) -> int:
        return self.rows * self.cols * self.count

    @property
    def active_params(self) -> int:
        return self.rows * self.cols * (self.count if self.active_count is None else self.active_count)


def linear(groups: list[TensorGroup], name: str, out_f: int, in_f: int, count: int, bias: bool,
           kind: TensorKind = "linear", active: int | None = None) -> None:
    """Append a linear layer (out_f x in_f) and, if it has one, its bias vector."""
    if out_f == 0 or in_f == 0 or count == 0:
        return
    groups.append(TensorGroup(name=name, kind=kind, rows=out_f, cols=in_f, count=count, active_count=active))
    if bias:
        groups.append(TensorGroup(name=f"{name}.bias", kind="vector", rows=1, cols=out_f, count=count,
                                  active_count=active))


def vector(groups: list[TensorGroup], name: str, size: int, count: int, *, per_layer: bool = True) -> None:
    """Append `count` vectors of `size` (norm weights, biases, per-head scalars: never quantized)."""
    if size and count:
        groups.append(TensorGroup(name=name, kind="vector", rows=1, cols=size, count=count, per_layer=per_layer))


def _bytes_of(values: int, bits: Fraction) -> int:
    """Whole bytes of `values` values at `bits` each (block formats such as q8_0 round up per layer)."""
    exact = Fraction(values) * bits / 8
    return ceil_div(exact.numerator, exact.denominator)


def _split(value: int, tp: int, what: str) -> int:
    # vllm.distributed.divide asserts exact division; an engine refuses a split that does not divide.
    if value % tp:
        raise SpecError(f"{what} ({value}) cannot be split evenly over TP={tp}")
    return value // tp


def _causal_pairs(tokens: int, cap: int | None) -> int:
    """(query, key) pairs of a causal prompt of `tokens`, each query seeing at most `cap` keys."""
    if cap is None or cap >= tokens:
        return tokens * (tokens + 1) // 2
    return cap * (cap + 1) // 2 + (tokens - cap) * cap


@record(kw_only=False)
class CacheComponent:
    """One per-token cache a kind keeps (the KV of attention, an MLA latent, an indexer's key cache)."""

    name: str
    bytes_per_token: Fraction  # per layer, per GPU
    formula: str


@record(kw_only=False)
class SavedInput:
    """An input an attention kind's modules save for backward (a projection's input, a norm's fp32 input)."""

    name: str
    values_per_token: int
    fp32: bool = False  # saved as its fp32 upcast (HF RMSNorm), else at the activation dtype
    modules: tuple[str, ...] = ()  # saved only when one of these modules saves its input; () = always


@record(kw_only=False)
class LayerKind(ABC):
    """A token mixer. Subclasses are frozen dataclasses: equal fields, same kind (layers group by it)."""

    name: ClassVar[str]
    # True for kinds whose cache grows with the tokens a request holds (attention in all its forms).
    caches_tokens: ClassVar[bool] = False
    # True for kinds whose memory is a fixed per-sequence state (Mamba, linear attention, short conv).
    has_state: ClassVar[bool] = False
    # The cache family of the kind, as vLLM names its KVCacheSpec classes (vllm/v1/kv_cache_interface.py:
    # FullAttentionSpec "full", SlidingWindowSpec "sliding", ChunkedLocalAttentionSpec "chunked", CrossAttentionSpec
    # "cross", MLAAttentionSpec "mla", MambaSpec "state"); "none" caches nothing. Engine policies page, group and cap
    # each family by their own rules (llmfit/engine/cache_policy.py).
    cache_family: ClassVar[str] = "none"
    # True when the kind caches K and V per KV head (MHA / GQA / MQA), so a head layout names it.
    kv_head_layout: ClassVar[bool] = False
    # True when the tokens a request caches are a fixed set of its own (encoder tokens), not positions of the context.
    fixed_tokens_per_request: ClassVar[bool] = False
    # How the kind is named when it is a model's only kind ("MLA"); "" = by its heads or its layer kinds.
    family_label: ClassVar[str] = ""

    @abstractmethod
    def tensor_groups(self, hidden: int, count: int) -> list[TensorGroup]:
        """The mixer's parameter tensors for `count` layers of this kind (names prefixed `attn.` etc.)."""

    # -- KV cache -------------------------------------------------------------------------------------
    def cache_components(self, kv_bits: Fraction, tp: int, *,
                         indexer_bits: Fraction | None = None) -> tuple[CacheComponent, ...]:
        """Per-token caches of one layer on one GPU; the sum is kv_bytes_per_token. `indexer_bits`: the
        precision an engine stores a sparse indexer's keys at, when not the indexer's own (llama.cpp: -ctk)."""
        return ()

    @property
    def kv_values_per_token(self) -> int:
        """Values one layer caches per token (2 x kv_heads x head_dim, the MLA latent); 0 without a token cache."""
        return 0

    def kv_heads_per_gpu(self, tp: int) -> int:
        """KV heads one GPU holds under TP; 1 for a kind without KV heads (an MLA latent is one replicated head)."""
        return 1

    def kv_bytes_per_token(self, kv_bits: Fraction, tp: int, *, indexer_bits: Fraction | None = None) -> Fraction:
        """KV bytes per token of one layer on one GPU under TP (replicated heads counted on each GPU)."""
        return sum((c.bytes_per_token for c in self.cache_components(kv_bits, tp, indexer_bits=indexer_bits)),
                   Fraction(0))

    def kv_shard(self, tp: int) -> Fraction:
        """Share of the layer's KV (and its K/V projections) one GPU holds under TP."""
        return Fraction(1)

    def token_cap(self, context_tokens: int) -> int:
        """Tokens one request keeps cached in this layer (0 for state-only kinds)."""
        return context_tokens if self.caches_tokens else 0

    @property
    def window(self) -> int | None:
        """The cap on cached tokens, when fixed (sliding window, chunk, encoder tokens); None = context."""
        return None

    # -- fixed state per sequence ---------------------------------------------------------------------
    def state_bytes(self, tp: int) -> int:
        """Fixed per-sequence state of one layer on one GPU (conv + SSM/recurrent), 0 for attention."""
        return 0

    def state_formula(self) -> str:
        return ""

    def state_values(self) -> int:
        """Values of one sequence's state in one layer, whole (TP 1): conv + SSM / recurrent; 0 for attention."""
        return 0

    # -- llama.cpp cells --------------------------------------------------------------------------------
    def cell_values(self) -> tuple[int, int]:
        """(K, V) values one layer stores per llama.cpp KV cell (src/llama-kv-cache.cpp: K rows of n_embd_k_gqa,
        V rows of n_embd_v_gqa, at -ctk / -ctv); (0, 0) for kinds without a token cache."""
        return (0, 0)

    # -- compute and traffic ---------------------------------------------------------------------------
    def prefill_flops(self, prompt_tokens: int) -> int:
        """Token-mixing FLOPs of one layer for a causal prompt (QK^T and AV; scan for recurrent kinds),
        the matmuls of its projections excluded (they are 2 x params per token, counted with the weights)."""
        return 0

    def decode_flops_per_token(self, context_tokens: int) -> int:
        """Token-mixing FLOPs of one decode step at `context_tokens` tokens of history, one layer."""
        return 0

    def decode_bytes_per_token(self, context_tokens: int, kv_bits: Fraction, tp: int) -> int:
        """Cache bytes one decode step reads in one layer on one GPU (its KV within the cap + its state)."""
        kv = self.kv_bytes_per_token(kv_bits, tp) * self.token_cap(context_tokens)
        return ceil_div(kv.numerator, kv.denominator) + self.state_bytes(tp)

    # -- training ---------------------------------------------------------------------------------------
    def saved_activation_values(self, hidden: int, seq_tokens: int) -> int:
        """Values per sequence one layer's mixer saves for backward with flash-style kernels
        (inputs of its projections and its output; no seq x seq score matrix)."""
        return 2 * hidden * seq_tokens

    # -- explain ---------------------------------------------------------------------------------------
    @abstractmethod
    def explain(self) -> str:
        """The per-layer cache formula in words and numbers."""


# ---------------------------------------------------------------------------------------------------
# Attention kinds
# ---------------------------------------------------------------------------------------------------

@record
class FullAttention(LayerKind):
    """Softmax attention over the whole context: MHA (kv_heads = heads), GQA, MQA (kv_heads = 1).

    Per layer and token: 2 (K and V) x kv_heads x head_dim values. `output_gate`: Qwen3-Next's gated
    attention, whose q_proj also produces a sigmoid gate (modeling_qwen3_next.py Qwen3NextAttention:
    q_proj out = num_heads x head_dim x 2); it does not change the cache."""

    name: ClassVar[str] = "full_attention"
    caches_tokens: ClassVar[bool] = True
    cache_family: ClassVar[str] = "full"
    kv_head_layout: ClassVar[bool] = True

    heads: int
    kv_heads: int
    head_dim: int
    qkv_bias: bool = False
    out_bias: bool = False
    qk_norm: bool = False
    sinks: bool = False
    fused_qkv: bool = False  # Falcon's query_key_value
    output_gate: bool = False

    def tensor_groups(self, hidden: int, count: int) -> list[TensorGroup]:
        groups: list[TensorGroup] = []
        d, kv, heads = self.head_dim, self.kv_heads, self.heads
        if self.fused_qkv:
            linear(groups, "attn.query_key_value", (heads + 2 * kv) * d, hidden, count, self.qkv_bias)
        else:
            linear(groups, "attn.q_proj", heads * d * (2 if self.output_gate else 1), hidden, count, self.qkv_bias)
            linear(groups, "attn.k_proj", kv * d, hidden, count, self.qkv_bias)
            linear(groups, "attn.v_proj", kv * d, hidden, count, self.qkv_bias)
        linear(groups, "attn.o_proj", hidden, heads * d, count, self.out_bias)
        if self.qk_norm:
            vector(groups, "attn.q_norm+k_norm", 2 * d, count)
        if self.sinks:
            vector(groups, "attn.sinks", heads, count)
        return groups

    @property
    def kv_values_per_token(self) -> int:
        return 2 * self.kv_heads * self.head_dim

    def kv_heads_per_gpu(self, tp: int) -> int:
        # SGLang get_num_kv_heads: max(1, kv_heads // tp); vLLM ModelConfig.get_num_kv_heads likewise.
        return max(1, self.kv_heads // tp)

    def kv_shard(self, tp: int) -> Fraction:
        return Fraction(self.kv_heads_per_gpu(tp), self.kv_heads)

    def cache_components(self, kv_bits: Fraction, tp: int, *,
                         indexer_bits: Fraction | None = None) -> tuple[CacheComponent, ...]:
        whole = _bytes_of(self.kv_values_per_token, kv_bits)
        return (CacheComponent(self.name, Fraction(whole) * self.kv_shard(tp), self.explain()),)

    def cell_values(self) -> tuple[int, int]:
        width = self.kv_heads * self.head_dim
        return (width, width)

    def _pairs(self, prompt_tokens: int) -> int:
        return _causal_pairs(prompt_tokens, self.window)

    def prefill_flops(self, prompt_tokens: int) -> int:
        # QK^T and AV: heads x 2 FLOPs x (qk_dim + v_dim) per attended pair.
        return self.heads * 2 * (2 * self.head_dim) * self._pairs(prompt_tokens)

    def decode_flops_per_token(self, context_tokens: int) -> int:
        return self.heads * 2 * (2 * self.head_dim) * self.token_cap(context_tokens)

    def saved_activation_values(self, hidden: int, seq_tokens: int) -> int:
        # input, q, k, v, attention output (flash attention saves no score matrix)
        return seq_tokens * (2 * hidden + (self.heads + 2 * self.kv_heads) * self.head_dim)

    # -- the attention's shape as engines and trainers see it -------------------------------------------
    def splits_kv_evenly(self, tp: int) -> bool:
        """Whether an engine accepts TP for the KV heads: kv_heads divisible by TP, or TP a multiple of
        kv_heads (each head replicated; vLLM ModelConfig.get_num_kv_heads, SGLang get_num_kv_heads)."""
        kv = self.kv_heads
        return not ((tp <= kv and kv % tp) or (tp > kv and tp % kv))

    @property
    def rotary_dim(self) -> int:
        """Dimensions RoPE rotates: the whole head (vLLM get_rope(head_size=head_dim))."""
        return self.head_dim

    def attention_widths(self) -> tuple[int, int, int, int]:
        """(q, k, v, attention output) values per token over all heads (1/TP of each on one GPU)."""
        d = self.head_dim
        return self.heads * d, self.kv_heads * d, self.kv_heads * d, self.heads * d

    def attention_op_input_width(self, tp: int) -> int:
        """Values per token entering the attention op on one GPU (q, k and v, each split over TP): the
        static buffer at vLLM's piecewise CUDA-graph split point (vllm/compilation/backends.py)."""
        q, k, v, _ = self.attention_widths()
        return (q + k + v) // tp

    def saved_inputs(self, hidden: int) -> tuple[SavedInput, ...]:
        """Inputs the attention's projections save for training (HF modeling_llama.py: q/k/v share one input)."""
        return (SavedInput("q/k/v projection input", hidden,
                           modules=("q_proj", "k_proj", "v_proj", "query_key_value")),)

    def lora_roles(self, module: str) -> tuple[str, ...]:
        """PEFT roles of an attention module the name map leaves without one (none for q/k/v/o_proj)."""
        return ()

    # The KV-per-token formula of --explain, in names and with the numbers substituted.
    kv_formula_names: ClassVar[str] = "2 x kv_heads x head_dim"

    def kv_formula_terms(self) -> str:
        return f"2 x {self.kv_heads} x {self.head_dim}"

    def explain(self) -> str:
        return f"2 x {self.kv_heads} kv_heads x {self.head_dim} head_dim values per token"


@record
class SlidingAttention(FullAttention):
    """Attention over the last `window` tokens (Mistral, Gemma-2/3 local layers, gpt-oss, Phi-3)."""

    name: ClassVar[str] = "sliding_attention"
    cache_family: ClassVar[str] = "sliding"
    window_tokens: int

    @property
    def window(self) -> int | None:
        return self.window_tokens

    def token_cap(self, context_tokens: int) -> int:
        return min(context_tokens, self.window_tokens)

    def explain(self) -> str:
        return super().explain() + f", at most {self.window_tokens} tokens (sliding window)"


@record
class ChunkedAttention(FullAttention):
    """Chunked local attention (Llama-4 RoPE layers): a token attends within its chunk of
    `attention_chunk_size` tokens, so a layer holds at most one chunk (vLLM ChunkedLocalAttentionSpec;
    transformers modeling_llama4.py builds the chunked causal mask from attention_chunk_size)."""

    name: ClassVar[str] = "chunked_attention"
    cache_family: ClassVar[str] = "chunked"
    chunk_tokens: int

    @property
    def window(self) -> int | None:
        return self.chunk_tokens

    def token_cap(self, context_tokens: int) -> int:
        return min(context_tokens, self.chunk_tokens)

    def _pairs(self, prompt_tokens: int) -> int:
        full, rest = divmod(prompt_tokens, self.chunk_tokens)
        c = self.chunk_tokens
        return full * c * (c + 1) // 2 + rest * (rest + 1) // 2

    def explain(self) -> str:
        return super().explain() + f", at most one chunk of {self.chunk_tokens} tokens"


@record
class CrossAttention(FullAttention):
    """Cross-attention to a fixed number of encoder (image) tokens (mllama): K and V of the encoder
    tokens are cached once per request, whatever the text context (modeling_mllama.py
    MllamaTextCrossAttention: q/k/v/o, q_norm and k_norm of head_dim; the decoder layer adds a tanh
    gate on attention and one on the MLP)."""

    name: ClassVar[str] = "cross_attention"
    cache_family: ClassVar[str] = "cross"
    fixed_tokens_per_request: ClassVar[bool] = True
    encoder_tokens: int

    @property
    def window(self) -> int | None:
        return self.encoder_tokens

    def token_cap(self, context_tokens: int) -> int:
        return self.encoder_tokens

    def tensor_groups(self, hidden: int, count: int) -> list[TensorGroup]:
        groups = super().tensor_groups(hidden, count)
        vector(groups, "cross_attn.gates", 2, count)  # cross_attn_attn_gate, cross_attn_mlp_gate
        return groups

    def _pairs(self, prompt_tokens: int) -> int:
        return prompt_tokens * self.encoder_tokens

    def explain(self) -> str:
        return super().explain() + f", {self.encoder_tokens} encoder tokens per request (not the context)"


@record
class SparseIndexer:
    """DeepSeek-V3.2's lightning indexer, a component of each MLA layer: its own key cache of
    index_head_dim fp8 values + one fp32 scale per 128 values per token, whatever --kv-dtype
    (vllm/model_executor/models/deepseek_v2.py Indexer: DeepseekV32IndexerCache(head_dim=
    index_head_dim + index_head_dim // 128 * 4, dtype=torch.uint8)); weights wq_b, wk, k_norm
    (LayerNorm: weight and bias), weights_proj (DeepSeek-V3.2-Exp inference/model.py Indexer)."""

    n_heads: int
    head_dim: int
    topk: int
    q_lora_rank: int

    @property
    def key_bytes_per_token(self) -> int:
        return self.head_dim + self.head_dim // 128 * 4

    def tensor_groups(self, hidden: int, count: int) -> list[TensorGroup]:
        groups: list[TensorGroup] = []
        linear(groups, "attn.indexer.wq_b", self.n_heads * self.head_dim, self.q_lora_rank, count, False)
        linear(groups, "attn.indexer.wk", self.head_dim, hidden, count, False)
        vector(groups, "attn.indexer.k_norm", 2 * self.head_dim, count)
        linear(groups, "attn.indexer.weights_proj", self.n_heads, hidden, count, False)
        return groups


@record
class LatentAttention(LayerKind):
    """Multi-head latent attention (DeepSeek-V2/V3, Kimi): one latent of kv_lora_rank + qk_rope_head_dim
    values per token and layer, no separate K and V (vLLM MLA backends, SGLang MLA `cell_size`); the
    latent is one head, replicated on every TP GPU. `indexer`: DeepSeek-V3.2's sparse-attention indexer,
    whose key cache is a second cache line of the same layer."""

    name: ClassVar[str] = "mla"
    caches_tokens: ClassVar[bool] = True
    cache_family: ClassVar[str] = "mla"
    family_label: ClassVar[str] = "MLA"

    heads: int
    q_lora_rank: int | None
    kv_lora_rank: int
    qk_rope_head_dim: int
    qk_nope_head_dim: int
    v_head_dim: int
    out_bias: bool = False
    indexer: SparseIndexer | None = None

    def tensor_groups(self, hidden: int, count: int) -> list[TensorGroup]:
        # DeepSeek-V2/V3 MLA (modeling_deepseek.py DeepseekV2Attention).
        groups: list[TensorGroup] = []
        rope, nope, v_dim, heads = self.qk_rope_head_dim, self.qk_nope_head_dim, self.v_head_dim, self.heads
        if self.q_lora_rank:
            linear(groups, "attn.q_a_proj", self.q_lora_rank, hidden, count, False)
            vector(groups, "attn.q_a_layernorm", self.q_lora_rank, count)
            linear(groups, "attn.q_b_proj", heads * (nope + rope), self.q_lora_rank, count, False)
        else:
            linear(groups, "attn.q_proj", heads * (nope + rope), hidden, count, False)
        linear(groups, "attn.kv_a_proj_with_mqa", self.kv_lora_rank + rope, hidden, count, False)
        vector(groups, "attn.kv_a_layernorm", self.kv_lora_rank, count)
        linear(groups, "attn.kv_b_proj", heads * (nope + v_dim), self.kv_lora_rank, count, False)
        linear(groups, "attn.o_proj", hidden, heads * v_dim, count, self.out_bias)
        if self.indexer is not None:
            groups += self.indexer.tensor_groups(hidden, count)
        return groups

    @property
    def kv_values_per_token(self) -> int:
        return self.kv_lora_rank + self.qk_rope_head_dim

    def cell_values(self) -> tuple[int, int]:
        # llama.cpp caches the latent (kv_lora_rank + rope dims) as K; V is a view of it. DeepSeek-V3.2's indexer
        # keys (src/llama-kv-cache-dsa.cpp: one head of indexer_head_size, type_k, a cell per main cell) add to K.
        return (self.kv_values_per_token + (self.indexer.head_dim if self.indexer is not None else 0), 0)

    def cache_components(self, kv_bits: Fraction, tp: int, *,
                         indexer_bits: Fraction | None = None) -> tuple[CacheComponent, ...]:
        lines = [CacheComponent(self.name, Fraction(_bytes_of(self.kv_values_per_token, kv_bits)), self.explain())]
        if self.indexer is not None and indexer_bits is not None:
            # llama.cpp src/llama-kv-cache-dsa.cpp: the indexer keys are a second llama_kv_cache of one head of
            # indexer_head_size at type_k (no V: the MLA hparams make V a view of K), as many cells as the main one.
            idx = self.indexer
            lines.append(CacheComponent(
                "sparse_indexer", Fraction(_bytes_of(idx.head_dim, indexer_bits)),
                f"{idx.head_dim} index_head_dim x {float(indexer_bits):g} bits (the KV cache type) = "
                f"{_bytes_of(idx.head_dim, indexer_bits)} B per token"))
        elif self.indexer is not None:
            idx = self.indexer
            lines.append(CacheComponent(
                "sparse_indexer", Fraction(idx.key_bytes_per_token),
                f"{idx.head_dim} index_head_dim fp8 + {idx.head_dim // 128} x 4 B scales = "
                f"{idx.key_bytes_per_token} B per token (its own precision)"))
        return tuple(lines)

    def prefill_flops(self, prompt_tokens: int) -> int:
        qk = self.qk_nope_head_dim + self.qk_rope_head_dim
        pairs = _causal_pairs(prompt_tokens, None)
        if self.indexer is not None:
            # The indexer scores every pair (n_heads x head_dim), attention then reads top-k keys only.
            idx = self.indexer
            sparse = sum(min(i + 1, idx.topk) for i in range(min(prompt_tokens, idx.topk)))
            sparse += max(0, prompt_tokens - idx.topk) * idx.topk
            return self.heads * 2 * (qk + self.v_head_dim) * sparse + idx.n_heads * 2 * idx.head_dim * pairs
        return self.heads * 2 * (qk + self.v_head_dim) * pairs

    def decode_flops_per_token(self, context_tokens: int) -> int:
        qk = self.qk_nope_head_dim + self.qk_rope_head_dim
        attended = context_tokens if self.indexer is None else min(context_tokens, self.indexer.topk)
        flops = self.heads * 2 * (qk + self.v_head_dim) * attended
        if self.indexer is not None:
            flops += self.indexer.n_heads * 2 * self.indexer.head_dim * context_tokens
        return flops

    def saved_activation_values(self, hidden: int, seq_tokens: int) -> int:
        qk = self.qk_nope_head_dim + self.qk_rope_head_dim
        return seq_tokens * (2 * hidden + (self.q_lora_rank or 0) + self.kv_values_per_token
                             + self.heads * (qk + qk + self.v_head_dim))

    # -- the attention's shape as engines and trainers see it -------------------------------------------
    def splits_kv_evenly(self, tp: int) -> bool:
        """Always: the latent is one head, replicated on every TP GPU (vLLM MLA backends), so the KV heads
        put no constraint on TP."""
        return True

    @property
    def rotary_dim(self) -> int:
        """Dimensions RoPE rotates: qk_rope_head_dim of each head (modeling_deepseek_v3.py: only q_pe/k_pe)."""
        return self.qk_rope_head_dim

    def attention_widths(self) -> tuple[int, int, int, int]:
        """(q, k, v, attention output) values per token over all heads once kv_b_proj has expanded the latent
        (modeling_deepseek_v3.py: q and k of qk_nope + qk_rope, v and the output of v_head_dim per head)."""
        qk = self.heads * (self.qk_nope_head_dim + self.qk_rope_head_dim)
        v = self.heads * self.v_head_dim
        return qk, qk, v, v

    def attention_op_input_width(self, tp: int) -> int:
        """q split over TP plus the latent (kv_lora_rank + qk_rope_head_dim), whole on every GPU: vLLM's MLA
        attention op takes the compressed KV, not expanded K and V."""
        q, _, _, _ = self.attention_widths()
        return q // tp + self.kv_values_per_token

    def saved_inputs(self, hidden: int) -> tuple[SavedInput, ...]:
        """Inputs MLA's projections and norms save for training (modeling_deepseek_v3.py DeepseekV3Attention:
        q_a_proj / kv_a_proj_with_mqa share the hidden input; q_a_layernorm and kv_a_layernorm save theirs in
        fp32; q_b_proj and kv_b_proj take the normalized ranks)."""
        inputs = [SavedInput("q_a / kv_a input", hidden, modules=("q_proj", "q_a_proj", "kv_a_proj_with_mqa"))]
        if self.q_lora_rank:
            inputs.append(SavedInput("q_a_layernorm input (fp32)", self.q_lora_rank, fp32=True))
            inputs.append(SavedInput("q_b_proj input", self.q_lora_rank, modules=("q_b_proj",)))
        inputs.append(SavedInput("kv_a_layernorm input (fp32)", self.kv_lora_rank, fp32=True))
        inputs.append(SavedInput("kv_b_proj input", self.kv_lora_rank, modules=("kv_b_proj",)))
        return tuple(inputs)

    def lora_roles(self, module: str) -> tuple[str, ...]:
        """MLA: the query (q_a/q_b or q_proj) carries q; kv_a_proj_with_mqa and kv_b_proj carry k and v."""
        return ("q",) if module.startswith("q_") else ("k", "v")

    kv_formula_names: ClassVar[str] = "(kv_lora_rank + qk_rope_head_dim)"

    def kv_formula_terms(self) -> str:
        return f"({self.kv_lora_rank} + {self.qk_rope_head_dim})"

    def explain(self) -> str:
        return (f"({self.kv_lora_rank} kv_lora_rank + {self.qk_rope_head_dim} qk_rope_head_dim) values per token "
                "(one latent, replicated under TP)")


# ---------------------------------------------------------------------------------------------------
# State kinds (a fixed per-sequence state, no per-token cache)
# ---------------------------------------------------------------------------------------------------

@record
class _StateKind(LayerKind):
    has_state: ClassVar[bool] = True
    cache_family: ClassVar[str] = "state"
    conv_bits: int = 16  # vLLM mamba_cache_dtype ("auto": the model dtype)
    state_bits: int = 16  # vLLM mamba_ssm_cache_dtype ("auto": = conv state dtype)

    @abstractmethod
    def state_shapes(self, tp: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(conv state shape, SSM / recurrent state shape) on one GPU; () when there is none."""

    def state_bytes(self, tp: int) -> int:
        conv, ssm = self.state_shapes(tp)
        return _prod(conv) * self.conv_bits // 8 + _prod(ssm) * self.state_bits // 8

    def state_values(self) -> int:
        conv, ssm = self.state_shapes(1)
        return _prod(conv) + _prod(ssm)

    def state_formula(self) -> str:
        conv, ssm = self.state_shapes(1)
        parts = []
        if conv:
            parts.append(f"conv {' x '.join(map(str, conv))} x {self.conv_bits // 8} B")
        if ssm:
            parts.append(f"state {' x '.join(map(str, ssm))} x {self.state_bits // 8} B")
        return " + ".join(parts)

    def decode_bytes_per_token(self, context_tokens: int, kv_bits: Fraction, tp: int) -> int:
        return self.state_bytes(tp)

    def explain(self) -> str:
        return f"{type(self).__name__}: no per-token cache; fixed state per sequence: {self.state_formula()}"


def _prod(shape: tuple[int, ...]) -> int:
    out = 1 if shape else 0
    for n in shape:
        out *= n
    return out


@record
class GatedDeltaNet(_StateKind):
    """Gated DeltaNet linear attention (Qwen3-Next, Qwen3.5): a recurrent state per value head.

    State: vllm mamba_utils.py MambaStateShapeCalculator.gated_delta_net_state_shape:
      conv  (conv_dim / tp, conv_kernel - 1), conv_dim = 2 x num_k_heads x head_k_dim + num_v_heads x head_v_dim
      state (num_v_heads / tp, head_v_dim, head_k_dim)
    dtypes: MambaStateDtypeCalculator.gated_delta_net_state_dtype (conv: model dtype; state:
    mamba_ssm_cache_dtype, "auto" = conv dtype).
    Tensors: modeling_qwen3_next.py Qwen3NextGatedDeltaNet: in_proj_qkvz (2 key_dim + 2 value_dim),
    in_proj_ba (2 num_v_heads), depthwise conv1d without bias, dt_bias, A_log, RMSNormGated(head_v_dim),
    out_proj (Qwen3.5 splits in_proj_qkvz / in_proj_ba into four matrices of the same total)."""

    name: ClassVar[str] = "linear_attention"

    num_k_heads: int
    num_v_heads: int
    head_k_dim: int
    head_v_dim: int
    conv_kernel: int

    @property
    def conv_dim(self) -> int:
        return 2 * self.num_k_heads * self.head_k_dim + self.num_v_heads * self.head_v_dim

    def state_shapes(self, tp: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        return ((_split(self.conv_dim, tp, "gated deltanet conv_dim"), self.conv_kernel - 1),
                (_split(self.num_v_heads, tp, "linear_num_value_heads"), self.head_v_dim, self.head_k_dim))

    def tensor_groups(self, hidden: int, count: int) -> list[TensorGroup]:
        groups: list[TensorGroup] = []
        key_dim, value_dim = self.num_k_heads * self.head_k_dim, self.num_v_heads * self.head_v_dim
        linear(groups, "linear_attn.in_proj_qkvz", 2 * key_dim + 2 * value_dim, hidden, count, False)
        linear(groups, "linear_attn.in_proj_ba", 2 * self.num_v_heads, hidden, count, False)
        vector(groups, "linear_attn.conv1d", self.conv_dim * self.conv_kernel, count)
        vector(groups, "linear_attn.dt_bias+A_log", 2 * self.num_v_heads, count)
        vector(groups, "linear_attn.norm", self.head_v_dim, count)
        linear(groups, "linear_attn.out_proj", hidden, value_dim, count, False)
        return groups

    def prefill_flops(self, prompt_tokens: int) -> int:
        # Recurrent update and read-out: ~ 4 x heads x head_k x head_v FLOPs per token (chunked scan).
        return 4 * self.num_v_heads * self.head_k_dim * self.head_v_dim * prompt_tokens

    def decode_flops_per_token(self, context_tokens: int) -> int:
        return 4 * self.num_v_heads * self.head_k_dim * self.head_v_dim


@record
class KimiDeltaAttention(_StateKind):
    """Kimi Delta Attention (Kimi-Linear): per-channel gated delta rule.

    State: vllm mamba_utils.py MambaStateShapeCalculator.kda_state_shape:
      conv  (conv_dim / tp, conv_kernel - 1), conv_dim = num_heads x head_dim + 2 x num_k_heads x head_k_dim
      state (num_heads / tp, head_dim, head_dim)
    dtypes: MambaStateDtypeCalculator.kda_state_dtype: conv in the model dtype, recurrent state float32.
    Tensors: vllm/model_executor/layers/kda.py KimiDeltaAttention: q/k/v_proj, q/k/v_conv1d (no bias),
    f_a_proj (hidden -> head_dim), f_b_proj (head_dim -> heads x head_dim), b_proj (hidden -> heads),
    A_log (heads), dt_bias (heads x head_dim), g_a_proj, g_b_proj, o_norm (head_dim), o_proj."""

    name: ClassVar[str] = "linear_attention"

    num_heads: int
    head_dim: int
    conv_kernel: int
    state_bits: int = 32

    @property
    def conv_dim(self) -> int:
        return 3 * self.num_heads * self.head_dim

    def state_shapes(self, tp: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        return ((_split(self.conv_dim, tp, "KDA conv_dim"), self.conv_kernel - 1),
                (_split(self.num_heads, tp, "KDA num_heads"), self.head_dim, self.head_dim))

    def tensor_groups(self, hidden: int, count: int) -> list[TensorGroup]:
        groups: list[TensorGroup] = []
        proj, hd = self.num_heads * self.head_dim, self.head_dim
        for name in ("q_proj", "k_proj", "v_proj"):
            linear(groups, f"linear_attn.{name}", proj, hidden, count, False)
        vector(groups, "linear_attn.qkv_conv1d", 3 * proj * self.conv_kernel, count)
        linear(groups, "linear_attn.f_a_proj", hd, hidden, count, False)
        linear(groups, "linear_attn.f_b_proj", proj, hd, count, False)
        linear(groups, "linear_attn.b_proj", self.num_heads, hidden, count, False)
        vector(groups, "linear_attn.A_log+dt_bias", self.num_heads + proj, count)
        linear(groups, "linear_attn.g_a_proj", hd, hidden, count, False)
        linear(groups, "linear_attn.g_b_proj", proj, hd, count, False)
        vector(groups, "linear_attn.o_norm", hd, count)
        linear(groups, "linear_attn.o_proj", hidden, proj, count, False)
        return groups

    def prefill_flops(self, prompt_tokens: int) -> int:
        return 4 * self.num_heads * self.head_dim * self.head_dim * prompt_tokens

    def decode_flops_per_token(self, context_tokens: int) -> int:
        return 4 * self.num_heads * self.head_dim * self.head_dim


@record
class Mamba(_StateKind):
    """Mamba (selective SSM, Jamba).

    State: vllm mamba_utils.py MambaStateShapeCalculator.mamba1_state_shape:
      conv (intermediate / tp, conv_kernel - 1), state (intermediate / tp, state_size)
    dtypes: MambaStateDtypeCalculator.mamba1_state_dtype (conv: mamba_cache_dtype; state:
    mamba_ssm_cache_dtype). Tensors: modeling_jamba.py JambaMambaMixer: in_proj (2 x intermediate),
    depthwise conv1d (+ bias), x_proj (dt_rank + 2 x state), dt_proj (+ bias), A_log (intermediate x
    state), D, out_proj; Jamba adds dt/B/C RMSNorms."""

    name: ClassVar[str] = "mamba"

    intermediate: int
    state_size: int
    conv_kernel: int
    dt_rank: int
    conv_bias: bool = True
    proj_bias: bool = False
    inner_norms: bool = True

    def state_shapes(self, tp: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        inter = _split(self.intermediate, tp, "mamba intermediate size")
        return (inter, self.conv_kernel - 1), (inter, self.state_size)

    def tensor_groups(self, hidden: int, count: int) -> list[TensorGroup]:
        groups: list[TensorGroup] = []
        inter = self.intermediate
        linear(groups, "mamba.in_proj", 2 * inter, hidden, count, self.proj_bias)
        vector(groups, "mamba.conv1d", inter * self.conv_kernel + (inter if self.conv_bias else 0), count)
        linear(groups, "mamba.x_proj", self.dt_rank + 2 * self.state_size, inter, count, False)
        linear(groups, "mamba.dt_proj", inter, self.dt_rank, count, True)
        vector(groups, "mamba.A_log+D", inter * self.state_size + inter, count)
        if self.inner_norms:
            vector(groups, "mamba.dt/b/c_layernorm", self.dt_rank + 2 * self.state_size, count)
        linear(groups, "mamba.out_proj", hidden, inter, count, self.proj_bias)
        return groups

    def prefill_flops(self, prompt_tokens: int) -> int:
        return 6 * self.intermediate * self.state_size * prompt_tokens

    def decode_flops_per_token(self, context_tokens: int) -> int:
        return 6 * self.intermediate * self.state_size


@record
class Mamba2(_StateKind):
    """Mamba-2 (Nemotron-H, Granite-4.0-H, Falcon-H1, Zamba2).

    State: vllm mamba_utils.py MambaStateShapeCalculator.mamba2_state_shape:
      n_groups' = n_groups + extra_groups_for_head_shards(n_groups, tp)   (groups replicated to the TP size)
      conv  ((intermediate + 2 x n_groups' x state_size) / tp, conv_kernel - 1)
      state (num_heads / tp, head_dim, state_size)
    dtypes: MambaStateDtypeCalculator.mamba2_state_dtype (conv: mamba_cache_dtype; state:
    mamba_ssm_cache_dtype). Tensors: vllm mamba_mixer2.py / modeling_nemotron_h.py NemotronHMamba2Mixer:
    in_proj (2 x intermediate + 2 x n_groups x state + heads), conv1d over intermediate + 2 n_groups state
    (+ bias), dt_bias, A_log, D (heads), gated RMSNorm (intermediate), out_proj."""

    name: ClassVar[str] = "mamba2"

    intermediate: int
    state_size: int
    conv_kernel: int
    num_heads: int
    head_dim: int
    n_groups: int
    conv_bias: bool = True
    proj_bias: bool = False
    out_bias: bool | None = None  # Falcon-H1: out_proj bias = projectors_bias (None: as proj_bias)
    gated_norm: bool = True  # Falcon-H1 mamba_rms_norm false: no gated RMSNorm

    def state_shapes(self, tp: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        groups = self.n_groups if self.n_groups % tp == 0 else tp  # extra_groups_for_head_shards
        conv_dim = self.intermediate + 2 * groups * self.state_size
        return ((_split(conv_dim, tp, "mamba2 conv_dim"), self.conv_kernel - 1),
                (_split(self.num_heads, tp, "mamba_n_heads"), self.head_dim, self.state_size))

    def tensor_groups(self, hidden: int, count: int) -> list[TensorGroup]:
        groups: list[TensorGroup] = []
        inter, gs = self.intermediate, self.n_groups * self.state_size
        linear(groups, "mamba.in_proj", 2 * inter + 2 * gs + self.num_heads, hidden, count, self.proj_bias)
        conv_dim = inter + 2 * gs
        vector(groups, "mamba.conv1d", conv_dim * self.conv_kernel + (conv_dim if self.conv_bias else 0), count)
        vector(groups, "mamba.dt_bias+A_log+D", 3 * self.num_heads, count)
        if self.gated_norm:
            vector(groups, "mamba.norm", inter, count)
        out_bias = self.proj_bias if self.out_bias is None else self.out_bias
        linear(groups, "mamba.out_proj", hidden, inter, count, out_bias)
        return groups

    def prefill_flops(self, prompt_tokens: int) -> int:
        return 6 * self.num_heads * self.head_dim * self.state_size * prompt_tokens

    def decode_flops_per_token(self, context_tokens: int) -> int:
        return 6 * self.num_heads * self.head_dim * self.state_size


@record
class ShortConv(_StateKind):
    """Gated short convolution (LFM2): only a conv state of the last L_cache - 1 inputs.

    State: vllm mamba_utils.py MambaStateShapeCalculator.short_conv_state_shape:
      conv (hidden / tp, L_cache - 1)   (vllm models/lfm2.py passes conv_dim = hidden_size)
    dtype: MambaStateDtypeCalculator.short_conv_state_dtype (mamba_cache_dtype, "auto" = model dtype).
    Tensors: modeling_lfm2.py Lfm2ShortConv: in_proj (hidden -> 3 hidden), depthwise conv (hidden x
    L_cache), out_proj, all with bias only when conv_bias."""

    name: ClassVar[str] = "short_conv"

    conv_dim: int
    conv_kernel: int
    bias: bool = False

    def state_shapes(self, tp: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        return (_split(self.conv_dim, tp, "short conv dim"), self.conv_kernel - 1), ()

    def tensor_groups(self, hidden: int, count: int) -> list[TensorGroup]:
        groups: list[TensorGroup] = []
        linear(groups, "conv.in_proj", 3 * self.conv_dim, hidden, count, self.bias)
        vector(groups, "conv.conv", self.conv_dim * self.conv_kernel + (self.conv_dim if self.bias else 0), count)
        linear(groups, "conv.out_proj", hidden, self.conv_dim, count, self.bias)
        return groups

    def prefill_flops(self, prompt_tokens: int) -> int:
        return 2 * self.conv_dim * self.conv_kernel * prompt_tokens

    def decode_flops_per_token(self, context_tokens: int) -> int:
        return 2 * self.conv_dim * self.conv_kernel


@record
class NoMixer(LayerKind):
    """A block without a token mixer (Nemotron-H's MLP-only `-` blocks): no cache, no state."""

    name: ClassVar[str] = "mlp_only"

    def tensor_groups(self, hidden: int, count: int) -> list[TensorGroup]:
        return []

    def saved_activation_values(self, hidden: int, seq_tokens: int) -> int:
        return 0

    def explain(self) -> str:
        return "no token mixer: nothing cached"


# ---------------------------------------------------------------------------------------------------
# Layer groups of a model
# ---------------------------------------------------------------------------------------------------

@record(kw_only=False)
class LayerGroup:
    """Layers of one kind (equal fields), by decoder layer index."""

    kind: LayerKind
    layer_indices: tuple[int, ...]

    @property
    def layers(self) -> int:
        return len(self.layer_indices)

    def layers_in(self, start: int, end: int) -> int:
        """How many of this group's layers fall in [start, end) (one pipeline stage)."""
        return sum(1 for i in self.layer_indices if start <= i < end)


def _need(spec: ModelSpec, kind: str, *names: str) -> list[int]:
    values = [getattr(spec, n) for n in names]
    missing = [n for n, v in zip(names, values, strict=True) if v is None]
    if missing:
        raise SpecError(f"{spec.name}: {kind} layers need {', '.join(missing)}")
    return [int(v) for v in values]


def _attention_fields(spec: ModelSpec) -> dict[str, int | bool]:
    return {"heads": spec.num_attention_heads, "kv_heads": spec.kv_heads, "head_dim": spec.real_head_dim,
            "qkv_bias": spec.attention_bias, "out_bias": spec.attention_out_bias, "qk_norm": spec.qk_norm,
            "sinks": spec.attention_sinks, "fused_qkv": spec.architecture == "FalconForCausalLM",
            "output_gate": spec.attn_output_gate}


def _full(spec: ModelSpec) -> FullAttention | LatentAttention:
    if spec.kv_lora_rank:
        rope, nope, v_dim = _need(spec, "MLA", "qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim")
        indexer = None
        if spec.index_n_heads:
            n_heads, head_dim, topk, q_rank = _need(spec, "sparse-indexer", "index_n_heads", "index_head_dim",
                                                    "index_topk", "q_lora_rank")
            indexer = SparseIndexer(n_heads=n_heads, head_dim=head_dim, topk=topk, q_lora_rank=q_rank)
        return LatentAttention(heads=spec.num_attention_heads, q_lora_rank=spec.q_lora_rank,
                               kv_lora_rank=spec.kv_lora_rank, qk_rope_head_dim=rope, qk_nope_head_dim=nope,
                               v_head_dim=v_dim, out_bias=spec.attention_out_bias, indexer=indexer)
    return FullAttention(**_attention_fields(spec))  # type: ignore[arg-type]


def _sliding(spec: ModelSpec) -> LayerKind:
    (window,) = _need(spec, "sliding_attention", "sliding_window")
    return SlidingAttention(window_tokens=window, **_attention_fields(spec))  # type: ignore[arg-type]


def _chunked(spec: ModelSpec) -> LayerKind:
    (chunk,) = _need(spec, "chunked_attention", "attention_chunk_size")
    return ChunkedAttention(chunk_tokens=chunk, **_attention_fields(spec))  # type: ignore[arg-type]


def _cross(spec: ModelSpec) -> LayerKind:
    (tokens,) = _need(spec, "cross_attention", "cross_attention_tokens")
    fields = _attention_fields(spec) | {"qk_norm": True, "qkv_bias": False, "out_bias": False}
    return CrossAttention(encoder_tokens=tokens, **fields)  # type: ignore[arg-type]


def _state_bits(spec: ModelSpec) -> dict[str, int]:
    model_bits = spec.dtype_bits
    ssm = {"float32": 32, "float16": 16, "bfloat16": 16}.get(spec.mamba_ssm_cache_dtype or "", model_bits)
    return {"conv_bits": model_bits, "state_bits": ssm}


def _linear_attention(spec: ModelSpec) -> LayerKind:
    if spec.linear_attention_kind == "kda":
        heads, head_dim, kernel = _need(spec, "KDA", "linear_num_value_heads", "linear_value_head_dim",
                                        "linear_conv_kernel_dim")
        # KDA: recurrent state float32 whatever the model dtype (kda_state_dtype).
        return KimiDeltaAttention(num_heads=heads, head_dim=head_dim, conv_kernel=kernel,
                                  conv_bits=spec.dtype_bits, state_bits=32)
    nk, nv, dk, dv, kernel = _need(spec, "linear_attention (Gated DeltaNet)", "linear_num_key_heads",
                                   "linear_num_value_heads", "linear_key_head_dim", "linear_value_head_dim",
                                   "linear_conv_kernel_dim")
    return GatedDeltaNet(num_k_heads=nk, num_v_heads=nv, head_k_dim=dk, head_v_dim=dv, conv_kernel=kernel,
                         **_state_bits(spec))


def _mamba(spec: ModelSpec) -> LayerKind:
    inter, state, kernel, dt_rank = _need(spec, "mamba", "mamba_intermediate_size", "mamba_d_state",
                                          "mamba_d_conv", "mamba_dt_rank")
    return Mamba(intermediate=inter, state_size=state, conv_kernel=kernel, dt_rank=dt_rank,
                 conv_bias=spec.mamba_conv_bias, proj_bias=spec.mamba_proj_bias,
                 inner_norms=spec.mamba_inner_norms, **_state_bits(spec))


def _mamba2(spec: ModelSpec) -> LayerKind:
    inter, state, kernel, heads, head_dim, groups = _need(
        spec, "mamba2", "mamba_intermediate_size", "mamba_d_state", "mamba_d_conv", "mamba_n_heads",
        "mamba_head_dim", "mamba_n_groups")
    return Mamba2(intermediate=inter, state_size=state, conv_kernel=kernel, num_heads=heads, head_dim=head_dim,
                  n_groups=groups, conv_bias=spec.mamba_conv_bias, proj_bias=spec.mamba_proj_bias,
                  out_bias=spec.mamba_out_bias, gated_norm=spec.mamba_gated_norm, **_state_bits(spec))


def _short_conv(spec: ModelSpec) -> LayerKind:
    (kernel,) = _need(spec, "short_conv", "conv_l_cache")
    return ShortConv(conv_dim=spec.hidden_size, conv_kernel=kernel, bias=spec.conv_bias, conv_bits=spec.dtype_bits)


def _no_mixer(spec: ModelSpec) -> LayerKind:
    return NoMixer()


# config layer-type name -> the kind it builds from the spec's fields.
KIND_BUILDERS: dict[str, Callable[[ModelSpec], LayerKind]] = {
    "full_attention": _full,
    "sliding_attention": _sliding,
    "chunked_attention": _chunked,
    "cross_attention": _cross,
    "linear_attention": _linear_attention,
    "mamba": _mamba,
    "mamba2": _mamba2,
    "short_conv": _short_conv,
    "mlp_only": _no_mixer,
}
KNOWN_LAYER_TYPES = tuple(KIND_BUILDERS)


def layer_type_names(spec: ModelSpec) -> list[str]:
    """The layer type of each decoder layer: layer_types if given, else from the sliding-window fields."""
    if spec.layer_types is not None:
        return list(spec.layer_types)
    n = spec.num_hidden_layers
    if spec.sliding_window is not None and spec.sliding_window_pattern:
        p = spec.sliding_window_pattern
        return ["full_attention" if (i + 1) % p == 0 else "sliding_attention" for i in range(n)]
    if spec.sliding_window is not None and spec.use_sliding_window:
        return ["sliding_attention" if i >= spec.max_window_layers else "full_attention" for i in range(n)]
    return ["full_attention"] * n


def build_layer_groups(spec: ModelSpec) -> tuple[LayerGroup, ...]:
    """Group the decoder layers by kind (first-seen order). Parallel hybrids (Falcon-H1: attention and
    Mamba-2 side by side in every layer) put each layer index in two groups."""
    names = layer_type_names(spec)
    built: dict[str, LayerKind] = {}
    by_kind: dict[LayerKind, list[int]] = {}
    for index, name in enumerate(names):
        if name not in built:
            builder = KIND_BUILDERS.get(name)
            if builder is None:
                raise SpecError(f"{spec.name}: layer kind {name!r} is not modelled "
                                f"(llmfit knows {', '.join(KNOWN_LAYER_TYPES)})")
            built[name] = builder(spec)
        by_kind.setdefault(built[name], []).append(index)
        if spec.parallel_mamba and name != "mlp_only":
            by_kind.setdefault(_mamba2(spec), []).append(index)
    return tuple(LayerGroup(kind=kind, layer_indices=tuple(indices)) for kind, indices in by_kind.items())


AttentionKind = FullAttention | LatentAttention


def attention_kinds_of(spec: ModelSpec) -> tuple[AttentionKind, ...]:
    """The model's distinct attention kinds, first-seen order. A model without attention layers (all
    Mamba, say) gets the kind its attention fields describe, which the engines still check and size."""
    kinds = tuple(g.kind for g in spec.layer_groups if isinstance(g.kind, FullAttention | LatentAttention))
    return kinds or (_full(spec),)


def attention_kind(spec: ModelSpec) -> AttentionKind:
    """The kind of the model's (first) attention layers: what rules sized by "the attention" ask."""
    return attention_kinds_of(spec)[0]


def kind_of_each_layer(spec: ModelSpec) -> list[LayerKind]:
    """The kind of each decoder layer (a parallel hybrid's layer: its first group, the attention)."""
    kinds: list[LayerKind | None] = [None] * spec.num_hidden_layers
    for group in spec.layer_groups:
        for i in group.layer_indices:
            kinds[i] = kinds[i] or group.kind
    return [k for k in kinds if k is not None]


@record(kw_only=False)
class StageLayers:
    """Decoder layers [start, end) of one pipeline stage."""

    start: int
    end: int


def pipeline_stages(layers: int, pp: int) -> tuple[StageLayers, ...]:
    """layers // pp per stage, the remainder one each on the first stages (as serving.fit splits them)."""
    bounds: list[StageLayers] = []
    start = 0
    for s in range(pp):
        size = layers // pp + (1 if s < layers % pp else 0)
        bounds.append(StageLayers(start, start + size))
        start += size
    return tuple(bounds)


__all__ = [
    "KIND_BUILDERS",
    "KNOWN_LAYER_TYPES",
    "AttentionKind",
    "CacheComponent",
    "ChunkedAttention",
    "CrossAttention",
    "FullAttention",
    "GatedDeltaNet",
    "KimiDeltaAttention",
    "LatentAttention",
    "LayerGroup",
    "LayerKind",
    "Mamba",
    "Mamba2",
    "NoMixer",
    "SavedInput",
    "ShortConv",
    "SlidingAttention",
    "SparseIndexer",
    "StageLayers",
    "TensorGroup",
    "TensorKind",
    "attention_kind",
    "attention_kinds_of",
    "build_layer_groups",
    "kind_of_each_layer",
    "layer_type_names",
    "linear",
    "pipeline_stages",
    "vector",
]
