"""Parameter counting from the architecture: every tensor of a decoder, by shape.

The model is described as a list of tensor groups (name, shape, how many, what kind), so that the
total count, the active count of a mixture of experts, quantization (which tensors a format packs and
how many groups of 128 each has) and tensor-parallel sharding all read the same list.

Shapes follow the Hugging Face modeling code: Llama/Mistral/Qwen2/Gemma (q, k, v, o; gate, up, down),
Falcon (fused query_key_value, parallel attention), Mixtral/Qwen-MoE/DeepSeek (experts, shared
experts, router), DeepSeek-V2/V3 multi-head latent attention (q_a/q_b, kv_a_proj_with_mqa, kv_b).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from llmfit.specs import ModelSpec

TensorKind = Literal["embedding", "lm_head", "linear", "expert", "router", "vector", "extra"]


class TensorGroup(BaseModel):
    """`count` tensors of shape (rows x cols); rows = output features, cols = input features."""

    model_config = ConfigDict(frozen=True)

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


class ParamCount(BaseModel):
    """Parameters by component; `total_params` is the sum, `active_params` what one token touches."""

    model_config = ConfigDict(frozen=True)

    total_params: int
    active_params: int
    embedding_params: int
    lm_head_params: int
    attention_params: int
    mlp_params: int
    expert_params: int
    router_params: int
    vector_params: int
    extra_params: int


def _linear(groups: list[TensorGroup], name: str, out_f: int, in_f: int, count: int, bias: bool,
            kind: TensorKind = "linear", active: int | None = None) -> None:
    if out_f == 0 or in_f == 0 or count == 0:
        return
    groups.append(TensorGroup(name=name, kind=kind, rows=out_f, cols=in_f, count=count, active_count=active))
    if bias:
        groups.append(TensorGroup(name=f"{name}.bias", kind="vector", rows=1, cols=out_f, count=count,
                                  active_count=active))


def _vector(groups: list[TensorGroup], name: str, size: int, count: int, *, per_layer: bool = True) -> None:
    if size and count:
        groups.append(TensorGroup(name=name, kind="vector", rows=1, cols=size, count=count, per_layer=per_layer))


def _attention(spec: ModelSpec, groups: list[TensorGroup]) -> None:
    h, layers, heads = spec.hidden_size, spec.num_hidden_layers, spec.num_attention_heads
    if spec.is_mla:
        # DeepSeek-V2/V3 MLA (modeling_deepseek.py DeepseekV2Attention).
        rope, nope, v_dim = spec.qk_rope_head_dim or 0, spec.qk_nope_head_dim or 0, spec.v_head_dim or 0
        q_head = nope + rope
        if spec.q_lora_rank:
            _linear(groups, "attn.q_a_proj", spec.q_lora_rank, h, layers, False)
            _vector(groups, "attn.q_a_layernorm", spec.q_lora_rank, layers)
            _linear(groups, "attn.q_b_proj", heads * q_head, spec.q_lora_rank, layers, False)
        else:
            _linear(groups, "attn.q_proj", heads * q_head, h, layers, False)
        kv_rank = spec.kv_lora_rank or 0
        _linear(groups, "attn.kv_a_proj_with_mqa", kv_rank + rope, h, layers, False)
        _vector(groups, "attn.kv_a_layernorm", kv_rank, layers)
        _linear(groups, "attn.kv_b_proj", heads * (nope + v_dim), kv_rank, layers, False)
        _linear(groups, "attn.o_proj", h, heads * v_dim, layers, spec.attention_out_bias)
        return
    d, kv = spec.real_head_dim, spec.kv_heads
    if spec.architecture == "FalconForCausalLM":
        # Falcon fuses q, k, v into one query_key_value matrix.
        _linear(groups, "attn.query_key_value", (heads + 2 * kv) * d, h, layers, spec.attention_bias)
    else:
        _linear(groups, "attn.q_proj", heads * d, h, layers, spec.attention_bias)
        _linear(groups, "attn.k_proj", kv * d, h, layers, spec.attention_bias)
        _linear(groups, "attn.v_proj", kv * d, h, layers, spec.attention_bias)
    _linear(groups, "attn.o_proj", h, heads * d, layers, spec.attention_out_bias)
    if spec.qk_norm:
        _vector(groups, "attn.q_norm+k_norm", 2 * d, layers)
    if spec.attention_sinks:
        _vector(groups, "attn.sinks", heads, layers)


def _mlp(groups: list[TensorGroup], prefix: str, h: int, inter: int, count: int, spec: ModelSpec,
         kind: TensorKind = "linear", active: int | None = None, bias: bool = False) -> None:
    if spec.mlp_kind == "gated":
        _linear(groups, f"{prefix}.gate_proj", inter, h, count, bias, kind, active)
        _linear(groups, f"{prefix}.up_proj", inter, h, count, bias, kind, active)
    else:
        _linear(groups, f"{prefix}.up_proj", inter, h, count, bias, kind, active)
    _linear(groups, f"{prefix}.down_proj", h, inter, count, bias, kind, active)


def tensor_groups(spec: ModelSpec) -> list[TensorGroup]:
    """Every tensor of the model, grouped by shape. The sum of params is the model's parameter count."""
    h, layers = spec.hidden_size, spec.num_hidden_layers
    groups: list[TensorGroup] = [
        TensorGroup(name="embed_tokens", kind="embedding", rows=spec.vocab_size, cols=h, count=1, per_layer=False)
    ]
    _attention(spec, groups)

    moe_layers = layers - spec.first_k_dense_replace if spec.is_moe else 0
    dense_layers = layers - moe_layers
    _mlp(groups, "mlp", h, spec.intermediate_size, dense_layers, spec, bias=spec.mlp_bias)
    if moe_layers:
        expert_inter = spec.moe_intermediate_size or spec.intermediate_size
        _mlp(groups, "experts", h, expert_inter, moe_layers * spec.num_experts, spec, kind="expert",
             active=moe_layers * spec.num_experts_per_tok, bias=spec.expert_bias)
        if spec.num_shared_experts:
            shared_inter = spec.shared_expert_intermediate_size or expert_inter * spec.num_shared_experts
            _mlp(groups, "shared_experts", h, shared_inter, moe_layers, spec, bias=False)
            if spec.shared_expert_gate:
                _linear(groups, "shared_expert_gate", 1, h, moe_layers, False, kind="router")
        _linear(groups, "router", spec.num_experts, h, moe_layers, spec.router_bias, kind="router")
        if spec.router_correction_bias:
            _vector(groups, "router.e_score_correction_bias", spec.num_experts, moe_layers)

    norm_width = 2 if spec.norm_kind == "layernorm" else 1
    _vector(groups, "layer norms", h * norm_width, layers * spec.norms_per_layer)
    if spec.final_norm:
        _vector(groups, "final norm", h * norm_width, 1, per_layer=False)
    if not spec.tie_word_embeddings:
        groups.append(TensorGroup(name="lm_head", kind="lm_head", rows=spec.vocab_size, cols=h, count=1,
                                  per_layer=False))
    for name, params in spec.extra_params.items():
        groups.append(TensorGroup(name=name, kind="extra", rows=1, cols=params, count=1, per_layer=False))
    return groups


def count_params(spec: ModelSpec) -> ParamCount:
    """Total and active parameters by component (exact integers)."""
    groups = tensor_groups(spec)

    def total(*kinds: str, prefix: str | None = None) -> int:
        return sum(g.params for g in groups if g.kind in kinds and (prefix is None or g.name.startswith(prefix)))

    attention = sum(g.params for g in groups if g.name.startswith("attn.") and g.kind == "linear")
    vectors = total("vector")
    return ParamCount(
        total_params=sum(g.params for g in groups),
        active_params=sum(g.active_params for g in groups),
        embedding_params=total("embedding"),
        lm_head_params=total("lm_head"),
        attention_params=attention,
        mlp_params=total("linear") - attention,
        expert_params=total("expert"),
        router_params=total("router"),
        vector_params=vectors,
        extra_params=total("extra"),
    )
