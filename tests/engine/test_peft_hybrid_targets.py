"""PEFT targets on the newer layer kinds: the token mixers' projections under transformers' own names.

PEFT's all-linear takes every nn.Linear but the output layer (peft/tuners/tuners_utils.py
`_maybe_include_all_linear_layers`); a recurrent mixer's projections are nn.Linear in transformers
(modeling_qwen3_next.py Qwen3NextGatedDeltaNet.in_proj_qkvz / in_proj_ba / out_proj, modeling_nemotron_h.py
NemotronHMamba2Mixer.in_proj / out_proj under the layer's `mixer`, modeling_lfm2.py Lfm2ShortConv.in_proj /
out_proj under `conv`), so all-linear trains them and the default q,v does not.
"""

from __future__ import annotations

from llmfit.engine import peft_targets
from llmfit.engine.params import tensor_groups
from llmfit.presets import load_registry


def _spec(name: str):  # type: ignore[no-untyped-def]
    return load_registry().model(name)


def test_all_linear_takes_the_gated_deltanet_projections() -> None:
    spec = _spec("qwen3-next-80b-a3b")
    names = {m.name for m in peft_targets.resolve(spec, ("all-linear",)).modules}
    assert {"in_proj_qkvz", "in_proj_ba", "out_proj"} <= names
    default = {m.name for m in peft_targets.resolve(spec, None).modules}
    assert default == {"q_proj", "v_proj"}  # PEFT has no qwen3_next entry: llmfit plans q,v and says so


def test_nemotron_h_mamba_projections_sit_under_mixer() -> None:
    spec = _spec("nemotron-nano-9b-v2")
    mixer = [m for m in peft_targets.layout(spec).modules if m.path.startswith("mixer.")]
    assert {m.name for m in mixer} == {"in_proj", "out_proj"}
    # One in_proj per Mamba-2 layer: the count is the kind's own layer count, not every layer.
    in_proj = next(g for g in tensor_groups(spec) if g.name == "mamba.in_proj")
    assert next(m for m in mixer if m.name == "in_proj").count == in_proj.count < spec.num_hidden_layers


def test_lora_rank_8_on_lfm2_all_linear_counts_the_conv_projections() -> None:
    spec = _spec("lfm2-1.2b")
    resolution = peft_targets.resolve(spec, ("all-linear",))
    conv = [m for m in resolution.modules if m.path.startswith("conv.")]
    assert {m.name for m in conv} == {"in_proj", "out_proj"}
    # LoRA adds r x (in + out) per wrapped matrix (peft/tuners/lora/layer.py: lora_A r x in, lora_B out x r).
    # LFM2-1.2B (config.json): hidden 2048, 10 short-conv layers; in_proj 2048 -> 3 x 2048 (B, C, x).
    by_name = {m.name: m.lora_params(8) for m in conv}
    assert by_name == {"in_proj": 8 * (2048 + 3 * 2048) * 10, "out_proj": 8 * (2048 + 2048) * 10}
