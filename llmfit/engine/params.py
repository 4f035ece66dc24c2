"""Parameter counting from the architecture: every tensor of a decoder, by shape.

The model is described as a list of tensor groups (name, shape, how many, what kind), so that the
total count, the active count of a mixture of experts, quantization (which tensors a format packs and
how many groups of 128 each has) and tensor-parallel sharding all read the same list.

Each layer kind (llmfit/engine/layers.py: attention in its forms, MLA and its sparse indexer, Gated
DeltaNet, KDA, Mamba, Mamba-2, short convolutions) gives its own token-mixer tensors; this module adds
the embeddings, the MLP of each layer (dense, MoE with shared experts and router, or none), the norms,
the lm_head and the extra lines (vision towers, MTP layers). Shapes follow the Hugging Face modeling
code: Llama/Mistral/Qwen2/Gemma (gate, up, down), Mixtral/Qwen-MoE/DeepSeek/Llama-4/Jamba/Granite
(experts, shared experts, router).
"""

from __future__ import annotations

from llmfit.engine.layers import TensorGroup, TensorKind, linear, vector
from llmfit.engine.records import record
from llmfit.specs import ModelSpec

__all__ = ["ParamCount", "TensorGroup", "TensorKind", "count_params", "mlp_layer_counts", "tensor_groups"]

def _linear(groups: list[TensorGroup], name: str, out_f: int, in_f: int, count: int, bias: bool,
            kind: TensorKind = "linear", active: int | None = None) -> None:
    linear(groups, name, out_f, in_f, count, bias, kind, active)


def _vector(groups: list[TensorGroup], name: str, size: int, count: int, *, per_layer: bool = True) -> None:
    vector(groups, name, size, count, per_layer=per_layer)


@record
class ParamCount:
    """Parameters by component; `total_params` is the sum, `active_params` what one token touches."""

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


def _mixers(spec: ModelSpec, groups: list[TensorGroup]) -> None:
    """Each layer kind's own tensors (llmfit/engine/layers.py); groups of the same tensor shape from
    different kinds (a sliding and a global layer of Gemma) merge into one group, as one stack."""
    merged: dict[tuple[str, str, int, int], int] = {}
    for layer_group in spec.layer_groups:
        for group in layer_group.kind.tensor_groups(spec.hidden_size, layer_group.layers):
            key = (group.name, group.kind, group.rows, group.cols)
            merged[key] = merged.get(key, 0) + group.count
    for (name, kind, rows, cols), count in merged.items():
        groups.append(TensorGroup(name=name, kind=kind, rows=rows, cols=cols, count=count))  # type: ignore[arg-type]


def mlp_layer_counts(spec: ModelSpec) -> tuple[int, int]:
    """(dense MLP layers, MoE layers): mlp_layer_types if given, else first_k_dense_replace dense then MoE."""
    if spec.mlp_layer_types is not None:
        return spec.mlp_layer_types.count("dense"), spec.mlp_layer_types.count("moe")
    moe = spec.num_hidden_layers - spec.first_k_dense_replace if spec.is_moe else 0
    return spec.num_hidden_layers - moe, moe


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
    _mixers(spec, groups)

    dense_layers, moe_layers = mlp_layer_counts(spec)
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
        # A vision tower or an MTP module does not run for a generated text token: not active.
        groups.append(TensorGroup(name=name, kind="extra", rows=1, cols=params, count=1, per_layer=False,
                                  active_count=0))
    return groups


_MIXER_PREFIXES = ("attn", "linear_attn", "mamba", "conv", "cross_attn")


def count_params(spec: ModelSpec) -> ParamCount:
    """Total and active parameters by component (exact integers)."""
    groups = tensor_groups(spec)

    def total(*kinds: str, prefix: str | None = None) -> int:
        return sum(g.params for g in groups if g.kind in kinds and (prefix is None or g.name.startswith(prefix)))

    # Token-mixer matrices of every kind (attention, linear attention, Mamba, short conv).
    attention = sum(g.params for g in groups if g.name.split(".")[0] in _MIXER_PREFIXES and g.kind == "linear")
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
