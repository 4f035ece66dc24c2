"""What PEFT can wrap in a model, by the model's real module names, and what each method then trains.

PEFT matches `target_modules` against module names (peft/tuners/tuners_utils.py `check_target_module_exists`:
a name matches a key when it equals it or ends with "." + key), so the names must be the ones the modeling
file uses. They differ by architecture, and by transformers version for mixtures of experts:

- Llama, Mistral, Qwen2/Qwen3, Gemma 1-3 (transformers models/*/modeling_*.py): self_attn.{q,k,v,o}_proj,
  mlp.{gate,up,down}_proj, all nn.Linear.
- Phi-3 (models/phi3/modeling_phi3.py Phi3Attention, Phi3MLP): fused self_attn.qkv_proj (q, k and v in one
  nn.Linear of (heads + 2 kv) x head_dim outputs) and mlp.gate_up_proj (2 x intermediate outputs); `q_proj`
  does not exist, so PEFT refuses `q_proj, v_proj` ("Target modules ... not found in the base model").
- Falcon (models/falcon/modeling_falcon.py): self_attention.query_key_value, self_attention.dense,
  mlp.dense_h_to_4h, mlp.dense_4h_to_h.
- Mixtral, transformers 4 (models/mixtral/modeling_mixtral.py MixtralBlockSparseTop2MLP): each expert is
  block_sparse_moe.experts.N.{w1 (gate), w3 (up), w2 (down)}, nn.Linear; the router block_sparse_moe.gate is
  an nn.Linear(hidden, num_experts).
- Qwen2/3-MoE and DeepSeek, transformers 4: mlp.experts.N.{gate,up,down}_proj, nn.Linear; Qwen's router
  mlp.gate is an nn.Linear, DeepSeek's MoEGate holds a bare nn.Parameter (remote modeling_deepseek.py).
- Transformers 5 (models/mixtral/modeling_mixtral.py MixtralExperts, models/qwen3_moe/modeling_qwen3_moe.py
  Qwen3MoeExperts, `@use_experts_implementation`): the experts of a layer are two 3-D nn.Parameters,
  experts.gate_up_proj (E, 2 x intermediate, hidden) and experts.down_proj (E, hidden, intermediate), and the
  router (MixtralTopKRouter / Qwen3MoeTopKRouter) holds `weight` as an nn.Parameter. Neither is an
  nn.Linear: `all-linear` skips them, and LoRA reaches the experts only through `target_parameters`
  (peft/tuners/lora/layer.py ParamWrapper: lora_A = Linear(in, r x E), lora_B = Linear(r x E, out), i.e.
  r x E x (in + out) per layer, the same count as one adapter per expert). gpt-oss stores its experts that way
  in every version (models/gpt_oss/modeling_gpt_oss.py GptOssExperts, transposed: gate_up_proj (E, hidden,
  2 x intermediate)).
- DeepSeek-V2/V3 multi-head latent attention: self_attn.q_a_proj, q_b_proj (or q_proj without q_lora_rank),
  kv_a_proj_with_mqa, kv_b_proj, o_proj.

`all-linear` is PEFT's `_maybe_include_all_linear_layers` (peft/tuners/tuners_utils.py): every nn.Linear
(and Conv1D) of the model except the output layer `get_output_embeddings()` (lm_head, tied or not).

Default targets per model type are PEFT's (peft/utils/constants.py @5d602fdb
TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING, ..._IA3_TARGET_MODULES_MAPPING,
..._IA3_FEEDFORWARD_MODULES_MAPPING). A model type with no entry (phi3, qwen3_moe, deepseek_v3, gpt_oss,
gemma3 multimodal) makes PEFT raise "Please specify `target_modules` in `peft_config`"; llmfit then plans the
modules that hold the same projections and says so, and `--emit peft` writes them explicitly.

Short names (q, k, v, o, gate, up, down, router) are roles: they resolve to whatever the architecture calls
that projection (gate -> w1 on Mixtral 4, up -> w3, down -> w2; router -> gate). A fused module is taken
only when every part it holds is asked for (q,k,v -> qkv_proj; gate,up -> gate_up_proj): PEFT cannot wrap
part of a matrix. Any other name is matched literally as PEFT does.
"""

from __future__ import annotations

from llmfit.engine.layers import attention_kind
from llmfit.engine.params import TensorGroup, tensor_groups
from llmfit.engine.records import record
from llmfit.errors import SpecError
from llmfit.specs import ModelSpec

ALL_LINEAR = "all-linear"  # peft/utils/constants.py INCLUDE_LINEAR_LAYERS_SHORTHAND
ROLES = ("q", "k", "v", "o", "gate", "up", "down", "router")
TRANSFORMERS_VERSIONS = (4, 5)
DEFAULT_TRANSFORMERS = 5

# config.json architectures[0] -> config.json model_type (the key of PEFT's mappings).
MODEL_TYPES = {
    "LlamaForCausalLM": "llama", "MistralForCausalLM": "mistral", "MixtralForCausalLM": "mixtral",
    "Qwen2ForCausalLM": "qwen2", "Qwen3ForCausalLM": "qwen3", "Qwen2MoeForCausalLM": "qwen2_moe",
    "Qwen3MoeForCausalLM": "qwen3_moe", "GemmaForCausalLM": "gemma", "Gemma2ForCausalLM": "gemma2",
    "Gemma3ForCausalLM": "gemma3_text", "Gemma3ForConditionalGeneration": "gemma3", "Phi3ForCausalLM": "phi3",
    "FalconForCausalLM": "falcon", "DeepseekV2ForCausalLM": "deepseek_v2", "DeepseekV3ForCausalLM": "deepseek_v3",
    "GptOssForCausalLM": "gpt_oss",
    # Families of the newer layer kinds (llmfit/engine/layers.py); PEFT has no default entry for them, so
    # FALLBACK_LORA_ROLES / FALLBACK_IA3_DEFAULT_ROLES apply.
    "DeepseekV32ForCausalLM": "deepseek_v32", "Qwen3NextForCausalLM": "qwen3_next",
    "NemotronHForCausalLM": "nemotron_h", "JambaForCausalLM": "jamba", "FalconH1ForCausalLM": "falcon_h1",
    "GraniteMoeHybridForCausalLM": "granitemoehybrid", "KimiLinearForCausalLM": "kimi_linear",
    "Lfm2ForCausalLM": "lfm2", "Llama4ForConditionalGeneration": "llama4",
    "MllamaForConditionalGeneration": "mllama", "Qwen2_5_VLForConditionalGeneration": "qwen2_5_vl",
    "Qwen3_5ForConditionalGeneration": "qwen3_5",
}
# Token mixers that are not attention (layers.py kinds) -> the attribute transformers gives them in a decoder
# layer: Qwen3-Next GatedDeltaNet `linear_attn` (modeling_qwen3_next.py), Mamba-2 `mixer` in Nemotron-H
# (modeling_nemotron_h.py), `mamba` in Jamba / Granite-4.0-H / Falcon-H1, LFM2's ShortConv `conv`. Their
# projections are nn.Linear (all-linear takes them); the conv1d kernels are not.
MIXER_PATHS = {"linear_attn": "linear_attn", "mamba": "mamba", "conv": "conv"}
MIXER_PATHS_BY_TYPE = {"nemotron_h": {"mamba": "mixer"}}

# peft/utils/constants.py @5d602fdb, the entries for the decoder families llmfit has presets of.
PEFT_LORA_DEFAULTS: dict[str, tuple[str, ...]] = {
    "llama": ("q_proj", "v_proj"), "mistral": ("q_proj", "v_proj"), "mixtral": ("q_proj", "v_proj"),
    "gemma": ("q_proj", "v_proj"), "gemma2": ("q_proj", "v_proj"), "gemma3_text": ("q_proj", "v_proj"),
    "qwen2": ("q_proj", "v_proj"), "qwen3": ("q_proj", "v_proj"), "falcon": ("query_key_value",),
}
PEFT_IA3_DEFAULTS: dict[str, tuple[str, ...]] = {
    "llama": ("k_proj", "v_proj", "down_proj"), "mistral": ("k_proj", "v_proj", "down_proj"),
    "mixtral": ("k_proj", "v_proj", "w2"), "falcon": ("query_key_value", "dense_4h_to_h"),
    "gemma": ("q_proj", "v_proj", "down_proj"), "gemma2": ("q_proj", "v_proj", "down_proj"),
    "gemma3_text": ("q_proj", "v_proj", "down_proj"), "qwen2": ("q_proj", "v_proj", "down_proj"),
    "qwen3": ("q_proj", "v_proj", "down_proj"),
}
PEFT_IA3_FEEDFORWARD: dict[str, tuple[str, ...]] = {
    "llama": ("down_proj",), "mistral": ("down_proj",), "mixtral": ("w2",), "falcon": ("dense_4h_to_h",),
    "gemma": ("down_proj",), "gemma2": ("down_proj",), "gemma3_text": ("down_proj",), "qwen2": ("down_proj",),
    "qwen3": ("down_proj",),
}
# Model types PEFT has no entry for: the roles llmfit plans instead (those of the nearest mapped family).
FALLBACK_LORA_ROLES = ("q", "v")
FALLBACK_IA3_ROLES = {"qwen3_moe": ("q", "v", "down"), "qwen2_moe": ("q", "v", "down"), "gemma3": ("q", "v", "down")}
FALLBACK_IA3_DEFAULT_ROLES = ("k", "v", "down")


@record(kw_only=False)
class TargetModule:
    """One module (or 3-D parameter) name as the model has it, with its shape and how many exist."""

    name: str  # what PEFT matches: q_proj, qkv_proj, w1, gate, gate_up_proj
    path: str  # where it sits in a decoder layer, e.g. block_sparse_moe.experts.*.w1
    roles: tuple[str, ...]  # the short names it holds: ("q", "k", "v") for a fused qkv_proj
    rows: int  # output features of one matrix (one expert)
    cols: int  # input features
    count: int  # instances in the model (layers; x experts for per-expert nn.Linear)
    experts: int = 1  # experts stacked in one 3-D parameter (1 for an nn.Linear)
    linear: bool = True  # nn.Linear (target_modules, all-linear); False: nn.Parameter (target_parameters)
    sources: tuple[str, ...] = ()  # the params.py tensor groups (leaf names) it is made of

    def lora_params(self, rank: int) -> int:
        """LoRA A (r x in) + B (out x r) per matrix (Hu et al. 2021); ParamWrapper r x E x (in + out)."""
        return rank * (self.rows + self.cols) * self.experts * self.count

    @property
    def matrices(self) -> int:
        return self.count * self.experts


@record(kw_only=False)
class Layout:
    """How one architecture (at one transformers major version) names its linear layers."""

    model_type: str
    transformers: int
    modules: tuple[TargetModule, ...]

    def names(self) -> list[str]:
        return sorted({m.name for m in self.modules})

    def describe(self) -> str:
        linear = sorted({m.name for m in self.modules if m.linear})
        params = sorted({m.name for m in self.modules if not m.linear})
        text = ", ".join(linear)
        if params:
            text += f"; nn.Parameters (target_parameters): {', '.join(params)}"
        return text


# --------------------------------------------------------------------------------------------- layouts


def model_type(spec: ModelSpec) -> str:
    """config.json model_type from the architecture (a spec without one is read as Llama-shaped)."""
    return MODEL_TYPES.get(spec.architecture or "", "llama")


def _leaf(group: TensorGroup) -> str:
    return group.name.rsplit(".", 1)[-1]


_ROLE_OF = {"q_proj": "q", "k_proj": "k", "v_proj": "v", "o_proj": "o", "gate_proj": "gate", "up_proj": "up",
            "down_proj": "down", "query_key_value": "qkv"}


def _dense(group: TensorGroup, name_map: dict[str, str], path: str) -> TargetModule:
    leaf = _leaf(group)
    role = _ROLE_OF.get(leaf)
    roles: tuple[str, ...] = ("q", "k", "v") if role == "qkv" else ((role,) if role else ())
    name = name_map.get(leaf, leaf)
    return TargetModule(name=name, path=f"{path}.{name}", roles=roles, rows=group.rows, cols=group.cols,
                        count=group.count, sources=(leaf,))


def layout(spec: ModelSpec, transformers: int = DEFAULT_TRANSFORMERS) -> Layout:
    """The model's linear layers under their real names, from params.py's tensor groups."""
    if transformers not in TRANSFORMERS_VERSIONS:
        raise SpecError(f"--transformers {transformers}: allowed {', '.join(map(str, TRANSFORMERS_VERSIONS))}")
    mtype = model_type(spec)
    groups = [g for g in tensor_groups(spec) if g.kind in ("linear", "expert", "router")
              and not g.name.endswith(".bias")]
    by_name = {g.name: g for g in groups}
    modules: list[TargetModule] = []
    fused_experts = transformers >= 5 or mtype == "gpt_oss"
    moe_layers = spec.num_hidden_layers - spec.first_k_dense_replace if spec.is_moe else 0

    # Attention.
    attn_path = "self_attention" if mtype == "falcon" else "self_attn"
    attn_names = {"o_proj": "dense"} if mtype == "falcon" else {}
    if mtype == "phi3":
        q, k, v = by_name["attn.q_proj"], by_name["attn.k_proj"], by_name["attn.v_proj"]
        modules.append(TargetModule(name="qkv_proj", path="self_attn.qkv_proj", roles=("q", "k", "v"),
                                    rows=q.rows + k.rows + v.rows, cols=q.cols, count=q.count,
                                    sources=("q_proj", "k_proj", "v_proj")))
        modules.append(_dense(by_name["attn.o_proj"], {}, attn_path))
    else:
        modules += [_dense(g, attn_names, attn_path) for g in groups if g.name.startswith("attn.")]
        # Modules the name map leaves without a role take the attention kind's (MLA: q, or k and v).
        attention = attention_kind(spec)
        modules = [m if m.roles or not attention.lora_roles(m.name) else TargetModule(
            name=m.name, path=m.path, rows=m.rows, cols=m.cols, count=m.count, sources=m.sources,
            roles=attention.lora_roles(m.name)) for m in modules]

    # Token mixers other than attention (linear attention, Mamba, short convolution).
    mixer_paths = MIXER_PATHS | MIXER_PATHS_BY_TYPE.get(mtype, {})
    for g in groups:
        prefix = g.name.split(".", 1)[0]
        if prefix in mixer_paths and "." in g.name:
            modules.append(_dense(g, {}, mixer_paths[prefix]))

    # Dense MLP layers.
    mlp_names = {"up_proj": "dense_h_to_4h", "down_proj": "dense_4h_to_h"} if mtype == "falcon" else {}
    mlp = [g for g in groups if g.name.startswith("mlp.")]
    if mtype == "phi3" and mlp:
        gate, up = by_name["mlp.gate_proj"], by_name["mlp.up_proj"]
        modules.append(TargetModule(name="gate_up_proj", path="mlp.gate_up_proj", roles=("gate", "up"),
                                    rows=gate.rows + up.rows, cols=gate.cols, count=gate.count,
                                    sources=("gate_proj", "up_proj")))
        modules.append(_dense(by_name["mlp.down_proj"], {}, "mlp"))
    else:
        modules += [_dense(g, mlp_names, "mlp") for g in mlp]

    # Mixture of experts.
    if moe_layers:
        block = "block_sparse_moe" if mtype == "mixtral" and transformers < 5 else "mlp"
        experts = [g for g in groups if g.name.startswith("experts.")]
        if fused_experts:
            expert_gate = next((g for g in experts if _leaf(g) == "gate_proj"), None)
            down = next(g for g in experts if _leaf(g) == "down_proj")
            up = next(g for g in experts if _leaf(g) == "up_proj")
            out = up.rows + (expert_gate.rows if expert_gate is not None else 0)
            modules.append(TargetModule(name="gate_up_proj", path=f"{block}.experts.gate_up_proj",
                                        roles=("gate", "up") if expert_gate is not None else ("up",), rows=out,
                                        cols=up.cols, count=moe_layers, experts=spec.num_experts, linear=False,
                                        sources=("gate_proj", "up_proj")))
            modules.append(TargetModule(name="down_proj", path=f"{block}.experts.down_proj", roles=("down",),
                                        rows=down.rows, cols=down.cols, count=moe_layers,
                                        experts=spec.num_experts, linear=False, sources=("down_proj",)))
        else:
            names = {"gate_proj": "w1", "up_proj": "w3", "down_proj": "w2"} if mtype == "mixtral" else {}
            modules += [_dense(g, names, f"{block}.experts.*") for g in experts]
        shared_path = "mlp.shared_expert" if mtype.startswith("qwen") else "mlp.shared_experts"
        modules += [_dense(g, {}, shared_path) for g in groups if g.name.startswith("shared_experts.")]
        if "shared_expert_gate" in by_name:
            g = by_name["shared_expert_gate"]
            modules.append(TargetModule(name="shared_expert_gate", path="mlp.shared_expert_gate", roles=(),
                                        rows=g.rows, cols=g.cols, count=g.count, sources=("shared_expert_gate",)))
        router = by_name["router"]
        # The router is an nn.Linear named `gate` in transformers 4 Mixtral / Qwen-MoE; a bare nn.Parameter
        # (TopKRouter.weight) in transformers 5, in DeepSeek's MoEGate and gpt-oss's router.
        router_linear = transformers < 5 and mtype in ("mixtral", "qwen2_moe", "qwen3_moe")
        router_name = "router" if mtype == "gpt_oss" else "gate"
        modules.append(TargetModule(name=router_name, path=f"{block}.{router_name}", roles=("router",),
                                    rows=router.rows, cols=router.cols, count=router.count,
                                    linear=router_linear, sources=("router",)))
    return Layout(model_type=mtype, transformers=transformers, modules=tuple(modules))


# --------------------------------------------------------------------------------------------- resolution


@record(kw_only=False)
class Resolution:
    """Which modules a target list wraps, and the PEFT config lists that reproduce it."""

    modules: tuple[TargetModule, ...]
    target_modules: tuple[str, ...]  # nn.Linear names for PEFT's target_modules ("all-linear" kept as is)
    target_parameters: tuple[str, ...]  # 3-D parameter names for LoRA's target_parameters
    all_linear: bool
    notes: tuple[str, ...]


def _refuse(spec: ModelSpec, lay: Layout, what: str) -> SpecError:
    return SpecError(f"{what} not in {spec.name} ({lay.model_type}, transformers {lay.transformers}); "
                     f"its modules: {lay.describe()}; or all-linear")


def resolve(spec: ModelSpec, targets: tuple[str, ...] | None, *, transformers: int = DEFAULT_TRANSFORMERS,
            method: str = "lora") -> Resolution:
    """LoRA targets -> modules. None means PEFT's default for the model type. Raises SpecError (exit 2) for a
    name the model does not have, as PEFT raises, naming it and listing what exists."""
    lay = layout(spec, transformers)
    notes: list[str] = []
    if targets is None:
        default = PEFT_LORA_DEFAULTS.get(lay.model_type)
        if default is not None:
            targets = default
        else:
            # The whole modules that hold q or v (qkv_proj on Phi-3; the MLA projections on DeepSeek).
            holders = {m.name for m in lay.modules if m.linear and set(m.roles) & set(FALLBACK_LORA_ROLES)}
            targets = tuple(sorted(holders))
            notes.append(f"PEFT has no default target_modules for model type {lay.model_type} (it raises 'Please "
                         f"specify `target_modules`'); planned with the modules holding q and v: {', '.join(targets)}")
    cleaned = tuple(t.strip() for t in targets if t.strip())
    if not cleaned:
        raise SpecError("--lora-targets is empty; give e.g. q,v or all-linear")
    if any(t.lower() == ALL_LINEAR for t in cleaned):
        if len(cleaned) > 1:
            raise SpecError("--lora-targets all-linear stands alone (PEFT takes it as the whole target_modules)")
        chosen = tuple(m for m in lay.modules if m.linear)
        skipped = sorted({m.name for m in lay.modules if not m.linear})
        if skipped:
            notes.append(f"all-linear wraps nn.Linear layers only: {', '.join(skipped)} "
                         f"(3-D parameters in transformers {lay.transformers}) are not trained")
        if spec.extra_params:
            notes.append(f"all-linear also wraps linear layers of {', '.join(spec.extra_params)}, whose shapes "
                         "the preset does not describe (not counted)")
        return Resolution(modules=chosen, target_modules=(ALL_LINEAR,), target_parameters=(), all_linear=True,
                          notes=tuple(notes))
    roles = {t.lower() for t in cleaned if t.lower() in ROLES}
    literal = [t for t in cleaned if t.lower() not in ROLES]
    chosen_list: list[TargetModule] = []
    for module in lay.modules:
        if (module.roles and roles.issuperset(module.roles)) or module.name in literal:
            chosen_list.append(module)
    # Roles asked for that no module fully answers.
    covered = {r for m in chosen_list for r in m.roles}
    missing = sorted(roles - covered, key=ROLES.index)
    if missing:
        partial = sorted({m.name for m in lay.modules if set(m.roles) & set(missing)})
        if partial:
            others = sorted({r for m in lay.modules if m.name in partial for r in m.roles} - set(missing))
            raise SpecError(f"--lora-targets {','.join(missing)}: {spec.name} ({lay.model_type}) holds "
                            f"{'/'.join(missing)} in {', '.join(partial)}, which also holds {', '.join(others)}; "
                            f"PEFT wraps whole modules (it finds no {missing[0]}_proj): give {', '.join(partial)}")
        raise _refuse(spec, lay, f"--lora-targets {','.join(missing)}")
    unknown = [t for t in literal if t not in {m.name for m in lay.modules}]
    if unknown:
        raise _refuse(spec, lay, f"target module{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}")
    chosen = tuple(chosen_list)
    target_modules = tuple(dict.fromkeys(m.name for m in chosen if m.linear))  # model order, once each
    # PEFT matches target_parameters by the end of the parameter's full name.
    target_parameters = tuple(sorted({f"experts.{m.name}" if m.experts > 1 else f"{m.name}.weight"
                                      for m in chosen if not m.linear}))
    if target_parameters and method == "qlora":
        raise SpecError(f"{', '.join(target_parameters)} are 3-D nn.Parameters in transformers {lay.transformers}: "
                        "bitsandbytes quantizes nn.Linear layers only, so QLoRA cannot target them")
    if target_parameters:
        notes.append(f"{', '.join(target_parameters)}: 3-D parameters, trained through LoRA target_parameters "
                     "(ParamWrapper, lora_dropout must be 0)")
    return Resolution(modules=chosen, target_modules=target_modules, target_parameters=target_parameters,
                      all_linear=False, notes=tuple(notes))


@record(kw_only=False)
class Ia3Vector:
    module: TargetModule
    feedforward: bool  # scales the input (1 x in) instead of the output (out x 1)

    @property
    def params(self) -> int:
        width = self.module.cols if self.feedforward else self.module.rows
        return width * self.module.matrices


@record(kw_only=False)
class Ia3Plan:
    vectors: tuple[Ia3Vector, ...]
    target_modules: tuple[str, ...]
    feedforward_modules: tuple[str, ...]
    notes: tuple[str, ...]


def ia3(spec: ModelSpec, *, transformers: int = DEFAULT_TRANSFORMERS) -> Ia3Plan:
    """PEFT IA3 (Liu et al. 2022) with PEFT's default modules for the model type: a learned vector per
    target nn.Linear, out x 1 on the output, or 1 x in on the input for a feed-forward module
    (peft/tuners/ia3/layer.py Linear: weight shape (1, in_features) if is_feedforward else (out_features, 1))."""
    lay = layout(spec, transformers)
    notes: list[str] = []
    names = PEFT_IA3_DEFAULTS.get(lay.model_type)
    if names is not None:
        feedforward = set(PEFT_IA3_FEEDFORWARD[lay.model_type])
        wanted = set(names)
        picked = [m for m in lay.modules if m.linear and m.name in wanted]
    else:
        roles = set(FALLBACK_IA3_ROLES.get(lay.model_type, FALLBACK_IA3_DEFAULT_ROLES))
        picked = [m for m in lay.modules if m.linear and m.roles and set(m.roles) & roles]
        feedforward = {m.name for m in picked if "down" in m.roles}
        ff = f" (feed-forward: {', '.join(sorted(feedforward))})" if feedforward else ""
        notes.append(f"PEFT has no IA3 default for model type {lay.model_type} (it raises 'Please specify "
                     f"`target_modules`'); planned with {', '.join(sorted({m.name for m in picked}))}{ff}")
    unwrapped = sorted({m.name for m in lay.modules if not m.linear and "down" in m.roles})
    if unwrapped:
        notes.append(f"IA3 wraps nn.Linear only: the experts' {', '.join(unwrapped)} (3-D parameters in "
                     f"transformers {lay.transformers}) get no vector")
    if not picked:
        raise _refuse(spec, lay, "IA3's default modules")
    vectors = tuple(Ia3Vector(module=m, feedforward=m.name in feedforward) for m in picked)
    return Ia3Plan(vectors=vectors, target_modules=tuple(dict.fromkeys(m.name for m in picked)),
                   feedforward_modules=tuple(dict.fromkeys(m.name for m in picked if m.name in feedforward)),
                   notes=tuple(notes))


def prefix_token_dim(spec: ModelSpec) -> int:
    """Width of one K (or V) prefix per layer and virtual token, as PEFT sizes it
    (peft/utils/other.py _prepare_prompt_learning_config): for a config with num_key_value_heads,
    head_dim (config.head_dim, else hidden_size // num_attention_heads) x num_key_value_heads; else
    hidden_size."""
    if spec.num_key_value_heads is None:
        return spec.hidden_size
    return spec.real_head_dim * spec.num_key_value_heads


def prefix_params(spec: ModelSpec, virtual_tokens: int) -> int:
    """PrefixEncoder without projection (peft/tuners/prefix_tuning/model.py): Embedding(num_virtual_tokens,
    num_layers x 2 x token_dim)."""
    return virtual_tokens * spec.num_hidden_layers * 2 * prefix_token_dim(spec)


def prompt_params(spec: ModelSpec, virtual_tokens: int) -> int:
    """PromptEmbedding (peft/tuners/prompt_tuning/model.py): Embedding(num_virtual_tokens x
    num_transformer_submodules (1 for a decoder), token_dim = hidden_size)."""
    return virtual_tokens * spec.hidden_size


__all__ = [
    "ALL_LINEAR",
    "DEFAULT_TRANSFORMERS",
    "ROLES",
    "Ia3Plan",
    "Layout",
    "Resolution",
    "TargetModule",
    "ia3",
    "layout",
    "model_type",
    "prefix_params",
    "prefix_token_dim",
    "prompt_params",
    "resolve",
]
