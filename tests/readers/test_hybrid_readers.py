"""Hybrid / multimodal config.json readers: published counts to the parameter, and unknown layer kinds refused.

Counts: HF safetensors totals and load-time counts (sources in each preset's params_source and in
tests/readers/hybrid_configs.py). A count that matches to the parameter cannot come from a mis-read field.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from llmfit.engine.params import count_params
from llmfit.readers.config import ModelFileError, spec_fields, text_spec_fields
from llmfit.specs import ModelSpec
from tests.readers import hybrid_configs as H


def _spec(config: dict[str, Any]) -> ModelSpec:
    return ModelSpec(name="x", source="test", **spec_fields(config, "config.json"))


@pytest.mark.parametrize(("config", "total"), [
    (H.QWEN3_NEXT_80B, 81_324_862_720),  # HF safetensors total (MTP layer included)
    (H.NEMOTRON_NANO_9B_V2, 8_888_227_328),
    (H.GRANITE_40_H_SMALL, 32_207_337_984),
    (H.LFM2_12B, 1_170_340_608),
    (H.LLAMA4_SCOUT, 108_641_793_536),
    (H.LLAMA4_MAVERICK, 401_583_781_376),
    (H.MLLAMA_11B, 10_670_220_835),
    (H.QWEN25_VL_7B, 8_292_166_656),
    (H.MISTRAL_SMALL_32_24B, 24_011_361_280),  # keras-hub mistral3_presets.py 'mistral_small_3.2_24b_instruct_2506_en'
])
def test_hybrid_config_counts_equal_the_checkpoint_totals(config: dict[str, Any], total: int) -> None:
    assert count_params(_spec(config)).total_params == total


def test_qwen35_text_and_mtp_equal_the_checkpoint_split() -> None:
    """Qwen3.5-2B checkpoint headers: language 1,881,825,088 (Qwen3_5ForCausalLM's own count), MTP 60,828,160."""
    fields = text_spec_fields(H.QWEN35_2B_TEXT, "config.json text_config", nested=True)
    spec = ModelSpec(name="x", source="t", **fields)
    assert count_params(spec).total_params - sum(spec.extra_params.values()) == 1_881_825_088
    assert sum(spec.extra_params.values()) == 60_828_160


def test_vision_towers_are_their_own_lines() -> None:
    """Qwen2.5-VL-7B: vision module 676,550,144 and language model 7,615,616,512 (sum(p.numel()) of public runs)."""
    spec = _spec(H.QWEN25_VL_7B)
    assert sum(spec.extra_params.values()) == 676_550_144
    assert count_params(spec).active_params == 7_615_616_512  # a vision tower does not run per text token


def test_mllama_cross_attention_holds_the_image_tokens() -> None:
    spec = _spec(H.MLLAMA_11B)
    cross = next(g for g in spec.layer_groups if g.kind.name == "cross_attention")
    assert cross.layers == 8 and cross.kind.token_cap(100) == cross.kind.token_cap(100_000) == 4 * 1601


@pytest.mark.parametrize(("config", "kind", "model_type"), [
    ({**H.QWEN3_NEXT_80B, "layer_types": ["linear_attention"] * 47 + ["retention"]}, "retention", "qwen3_next"),
    ({**H.NEMOTRON_NANO_9B_V2, "hybrid_override_pattern": "M" * 55 + "E"}, "E", "nemotron_h"),
    ({**H.GRANITE_40_H_SMALL, "layer_types": ["mamba"] * 39 + ["sliding"]}, "sliding", "granitemoehybrid"),
    # the old reader took linear_attention in any config and counted it as full attention with no state
    ({"model_type": "qwen2", "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 2,
      "num_attention_heads": 14, "num_key_value_heads": 2, "vocab_size": 151936, "max_position_embeddings": 32768,
      "layer_types": ["linear_attention", "full_attention"]}, "linear_attention", "qwen2"),
])
def test_unknown_layer_kind_is_refused_naming_kind_and_model_type(config: dict[str, Any], kind: str,
                                                                   model_type: str) -> None:
    with pytest.raises(ModelFileError, match=f"'{kind}'.*model_type '{model_type}'"):
        spec_fields(config, "config.json")


def test_unknown_layer_kind_exits_2(tmp_path: Path, cli: Any) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**H.QWEN3_NEXT_80B, "layer_types": ["linear_attention"] * 47 + ["retention"]}))
    run = cli("kv", str(path))
    assert run.exit_code == 2
    assert "retention" in run.stderr and "qwen3_next" in run.stderr and "Traceback" not in run.stderr


def test_kv_json_of_a_hybrid_has_state_apart(cli: Any) -> None:
    short = cli("kv", "qwen3-next-80b-a3b-instruct", "--context", "4k", "--format", "json").json()
    long = cli("kv", "qwen3-next-80b-a3b-instruct", "--context", "128k", "--format", "json").json()
    assert short["state_bytes_per_request"] == long["state_bytes_per_request"] == 36 * 1_097_728
    assert long["kv_bytes_per_request"] - long["state_bytes_per_request"] == 32 * (
        short["kv_bytes_per_request"] - short["state_bytes_per_request"])
    kinds = {k["kind"]: k for k in long["kinds"]}
    assert kinds["linear_attention"]["kv_bytes_per_token"] == 0
    assert kinds["full_attention"]["state_bytes_per_request"] == 0


def test_mistral3_reads_text_config_and_counts_pixtral_by_hand(tmp_path: Path) -> None:
    """Mistral-Small-3.2-24B-Instruct-2506's config.json, written to a file and read as llmfit reads any config.json.

    By hand (modeling_pixtral.py / modeling_mistral3.py): tower = patch_conv 3 x 14 x 14 x 1024 (602,112) + ln_pre 1024
    + 24 layers x (4 x 1024^2 + 3 x 1024 x 4096 + 2 x 1024 = 16,779,264) = 403,305,472; projector = norm 1024 +
    merging_layer 4096 x 1024 + linear_1 1024 x 5120 + linear_2 5120 x 5120, no biases = 35,652,608; text = the
    published mistral-small-24b-base-2501 count 23,572,403,200."""
    from llmfit.readers.config import read_config_file

    path = tmp_path / "config.json"
    path.write_text(json.dumps(H.MISTRAL_SMALL_32_24B))
    spec = _spec(read_config_file(path))
    assert spec.architecture == "Mistral3ForConditionalGeneration"
    assert (spec.hidden_size, spec.num_hidden_layers, spec.num_attention_heads, spec.num_key_value_heads,
            spec.head_dim, spec.intermediate_size, spec.vocab_size) == (5120, 40, 32, 8, 128, 32768, 131072)
    assert spec.max_position_embeddings == 131072 and spec.sliding_window is None  # "sliding_window": null
    assert spec.extra_params == {"vision tower (pixtral)": 403_305_472,
                                 "multimodal projector (patch merger)": 35_652_608}
    counts = count_params(spec)
    assert counts.active_params == 23_572_403_200  # the vision tower does not run per text token
    assert counts.total_params == 24_011_361_280


def test_mistral3_projector_bias_and_merge_size_are_read() -> None:
    # multimodal_projector_bias: linear_1 and linear_2 get a bias of text hidden each; spatial_merge_size 1 leaves a
    # 1024 x 1024 merging_layer (modeling_mistral3.py Mistral3PatchMerger: hidden x merge^2 -> hidden).
    biased = _spec({**H.MISTRAL_SMALL_32_24B, "multimodal_projector_bias": True})
    assert biased.extra_params["multimodal projector (patch merger)"] == 35_652_608 + 2 * 5120
    unmerged = _spec({**H.MISTRAL_SMALL_32_24B, "spatial_merge_size": 1})
    assert unmerged.extra_params["multimodal projector (patch merger)"] == 35_652_608 - 3 * 1024 * 1024


def test_mistral3_without_vision_config_is_refused() -> None:
    config = {k: v for k, v in H.MISTRAL_SMALL_32_24B.items() if k != "vision_config"}
    with pytest.raises(ModelFileError, match="vision_config"):
        spec_fields(config, "config.json")


def test_fit_mistral_small_32_json(cli: Any) -> None:
    """`llmfit fit mistral-small-3.2 --gpu h100-80 --format json`: the preset with its vision tower counted."""
    run = cli("fit", "mistral-small-3.2", "--gpu", "h100-80", "--format", "json")
    assert run.exit_code == 0, run.stderr
    data = json.loads(run.stdout)
    assert data["model"] == "mistral-small-3.2-24b-instruct-2506"
    assert data["total_params"] == 24_011_361_280 and data["active_params"] == 23_572_403_200
    assert data["weights_bytes_per_gpu"] == 2 * 24_011_361_280  # bf16
    assert data["kv_tokens"] > 0
