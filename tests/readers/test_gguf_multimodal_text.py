"""GGUF files of Qwen3.5 / Qwen3.5-MoE (llama.cpp `qwen35`, `qwen35moe`), Qwen2-VL / Qwen2.5-VL (`qwen2vl`) and
Gemma-3 (`gemma3`), and Qwen3-Next as its converter really writes it: the same spec as the config.json of the same
shapes, the text decoder only (the vision tower is in the separate mmproj GGUF, and the spec says so).

Keys as convert_hf_to_gguf.py writes them (conversion/qwen.py at llama.cpp 03173d5e: Qwen3_5TextModel ->
_LinearAttentionVReorderBase -> Qwen3NextModel.set_gguf_parameters: ssm.conv_kernel = linear_conv_kernel_dim,
ssm.state_size = linear_key_head_dim, ssm.group_count = linear_num_key_heads, ssm.time_step_rank =
linear_num_value_heads, ssm.inner_size = linear_value_head_dim x linear_num_value_heads, full_attention_interval,
rope.dimension_count = head_dim x partial_rotary_factor; one head_count_kv number; Qwen2VLModel: TextModel's keys and
rope.dimension_sections) and as llama.cpp reads them (src/models/qwen35.cpp, qwen3next.cpp, qwen2vl.cpp
load_arch_hparams), cross-checked with gguf-py 0.19.0's MODEL_ARCH / MODEL_TENSORS (qwen35, qwen35moe, qwen2vl)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from llmfit.engine.params import count_params
from llmfit.engine.records import replace
from llmfit.presets import Registry
from llmfit.readers.config import ModelFileError
from tests.readers import hybrid_configs as H
from tests.readers.test_config import GEMMA3_4B
from tests.readers.test_gguf_hybrid import _gguf, _same_model, _spec

_MMPROJ = "text decoder only: a vision tower and projector live in a separate mmproj GGUF"


def _qwen35_2b(mtp: int) -> dict[str, Any]:
    """Qwen3.5-2B's text_config (hybrid_configs.QWEN35_2B_TEXT) through Qwen3_5TextModel; `mtp` 1 = the converter
    that keeps the MTP block (block_count 24 + 1, nextn_predict_layers 1), 0 = one that drops it (no key)."""
    metadata: dict[str, Any] = {
        "general.architecture": "qwen35", "qwen35.block_count": 24 + mtp, "qwen35.embedding_length": 2048,
        "qwen35.context_length": 262144, "qwen35.attention.head_count": 8, "qwen35.attention.head_count_kv": 2,
        "qwen35.attention.key_length": 256, "qwen35.attention.value_length": 256,
        "qwen35.feed_forward_length": 6144, "qwen35.ssm.conv_kernel": 4, "qwen35.ssm.state_size": 128,
        "qwen35.ssm.group_count": 16, "qwen35.ssm.time_step_rank": 16, "qwen35.ssm.inner_size": 2048,
        "qwen35.full_attention_interval": 4, "qwen35.rope.dimension_count": 64,
        "qwen35.rope.dimension_sections": [11, 11, 10, 0],
    }
    if mtp:
        metadata["qwen35.nextn_predict_layers"] = mtp
    return metadata


_QWEN35_TENSORS = {"token_embd.weight": (2048, 248320)}  # tied: no output.weight


def test_qwen35_gguf_with_its_mtp_block_is_the_config_spec(tmp_path: Path, registry: Registry) -> None:
    """Qwen3.5-2B as qwen35 with the MTP block stored: the config.json spec (1,881,825,088 text + 60,828,160 MTP,
    tests/readers/test_hybrid_readers.py's split of the pinned checkpoint) and the preset less its vision tower
    (331,416,576 from the checkpoint headers), 18 Gated DeltaNet + 6 gated full-attention layers."""
    from_gguf = _gguf(tmp_path / "x.gguf", _qwen35_2b(1), _QWEN35_TENSORS)
    preset = registry.model("qwen3.5-2b")
    _same_model(from_gguf, _spec(H.QWEN35_2B_TEXT), preset, not_in_gguf=331_416_576)
    assert count_params(from_gguf).total_params == 1_881_825_088 + 60_828_160
    assert {g.kind.name: g.layers for g in from_gguf.layer_groups} == {"linear_attention": 18, "full_attention": 6}
    assert from_gguf.checkpoint is not None and any(_MMPROJ in n for n in from_gguf.checkpoint.notes)


def test_qwen35_gguf_without_mtp_counts_the_text_decoder(tmp_path: Path) -> None:
    spec = _gguf(tmp_path / "x.gguf", _qwen35_2b(0), _QWEN35_TENSORS)
    assert count_params(spec).total_params == 1_881_825_088 and spec.num_hidden_layers == 24
    assert not spec.extra_params


def test_qwen35_recurrent_layers_array_wins_over_the_interval(tmp_path: Path) -> None:
    """attention.recurrent_layers (llama.cpp get_key_or_arr(LLM_KV_ATTENTION_RECURRENT_LAYERS), one flag per block,
    MTP blocks included) is read before full_attention_interval."""
    flags = [(i + 1) % 2 != 0 for i in range(24)] + [False]
    spec = _gguf(tmp_path / "x.gguf", _qwen35_2b(1) | {"qwen35.attention.recurrent_layers": flags}, _QWEN35_TENSORS)
    assert {g.kind.name: g.layers for g in spec.layer_groups} == {"linear_attention": 12, "full_attention": 12}


@pytest.mark.parametrize(("change", "message"), [
    ({"qwen35.full_attention_interval": 0}, "full_attention_interval 0 must be a whole number in 1..25"),
    ({"qwen35.nextn_predict_layers": 25}, "nextn_predict_layers 25 must be below block_count 25"),
    ({"qwen35.attention.recurrent_layers": [True, False]}, "recurrent_layers has 2 entries for 25 blocks"),
])
def test_qwen35_bad_layer_metadata_is_one_error(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    with pytest.raises(ModelFileError, match=re.escape(message)):
        _gguf(tmp_path / "x.gguf", _qwen35_2b(1) | change, _QWEN35_TENSORS)


# A small Qwen3.5-MoE text_config (Qwen3_5MoeTextConfig fields; shapes kept small, the kinds real).
_QWEN35_MOE_SMALL: dict[str, Any] = {
    "model_type": "qwen3_5_moe_text", "hidden_size": 256, "num_hidden_layers": 8, "num_attention_heads": 4,
    "num_key_value_heads": 2, "head_dim": 64, "vocab_size": 1024, "max_position_embeddings": 4096,
    "tie_word_embeddings": False, "intermediate_size": 512, "linear_num_key_heads": 4, "linear_num_value_heads": 8,
    "linear_key_head_dim": 32, "linear_value_head_dim": 32, "linear_conv_kernel_dim": 4, "full_attention_interval": 4,
    "num_experts": 16, "num_experts_per_tok": 4, "moe_intermediate_size": 128, "shared_expert_intermediate_size": 128,
    "mtp_num_hidden_layers": 1,
}


def test_qwen35moe_gguf_is_the_config_spec(tmp_path: Path) -> None:
    c = _QWEN35_MOE_SMALL
    metadata = {
        "general.architecture": "qwen35moe", "qwen35moe.block_count": 9, "qwen35moe.nextn_predict_layers": 1,
        "qwen35moe.embedding_length": 256, "qwen35moe.context_length": 4096, "qwen35moe.attention.head_count": 4,
        "qwen35moe.attention.head_count_kv": 2, "qwen35moe.attention.key_length": 64,
        "qwen35moe.feed_forward_length": 512, "qwen35moe.ssm.conv_kernel": 4, "qwen35moe.ssm.state_size": 32,
        "qwen35moe.ssm.group_count": 4, "qwen35moe.ssm.time_step_rank": 8, "qwen35moe.ssm.inner_size": 256,
        "qwen35moe.full_attention_interval": 4, "qwen35moe.expert_count": 16, "qwen35moe.expert_used_count": 4,
        "qwen35moe.expert_feed_forward_length": 128, "qwen35moe.expert_shared_feed_forward_length": 128,
    }
    tensors = {"token_embd.weight": (256, 1024), "output.weight": (256, 1024)}
    from_gguf = _gguf(tmp_path / "x.gguf", metadata, tensors)
    from_config = _spec(c)
    assert from_gguf.layer_groups == from_config.layer_groups
    assert count_params(from_gguf) == count_params(from_config)
    assert from_gguf.num_experts == 16 and from_gguf.shared_expert_intermediate_size == 128
    assert {g.kind.name: g.layers for g in from_gguf.layer_groups} == {"linear_attention": 6, "full_attention": 2}


def _qwen25_vl_7b() -> dict[str, Any]:
    """Qwen2.5-VL-7B through Qwen2VLModel (TextModel's keys + rope.dimension_sections = mrope_section + [0])."""
    return {
        "general.architecture": "qwen2vl", "qwen2vl.block_count": 28, "qwen2vl.embedding_length": 3584,
        "qwen2vl.context_length": 128000, "qwen2vl.attention.head_count": 28, "qwen2vl.attention.head_count_kv": 4,
        "qwen2vl.feed_forward_length": 18944, "qwen2vl.rope.dimension_sections": [16, 24, 24, 0],
    }


_QWEN25_VL_TENSORS = {"token_embd.weight": (3584, 152064), "output.weight": (3584, 152064),
                      "blk.0.attn_q.bias": (3584,)}


def test_qwen2vl_gguf_is_the_text_decoder_of_the_config(tmp_path: Path, registry: Registry) -> None:
    """Qwen2.5-VL-7B as qwen2vl: the config.json's Qwen2 decoder (7,615,616,512, the language-model share of the
    published 8,292,166,656) without the vision tower + merger (676,550,144), which the spec notes."""
    from_gguf = _gguf(tmp_path / "x.gguf", _qwen25_vl_7b(), _QWEN25_VL_TENSORS)
    from_config = _spec(H.QWEN25_VL_7B)
    vision = sum(from_config.extra_params.values())
    assert vision == 676_550_144
    # the GGUF cannot tell Qwen2-VL from Qwen2.5-VL (both convert to qwen2vl): its family is llama.cpp's
    _same_model(from_gguf, replace(from_config, extra_params={}, family="qwen2_vl"),
                registry.model("qwen2.5-vl-7b-instruct"), not_in_gguf=vision)
    assert count_params(from_gguf).total_params == 7_615_616_512
    assert from_gguf.family == "qwen2_vl" and from_gguf.attention_bias
    assert from_gguf.checkpoint is not None and any(_MMPROJ in n for n in from_gguf.checkpoint.notes)


def test_qwen2vl_gguf_without_qkv_bias_is_refused(tmp_path: Path) -> None:
    tensors = {k: v for k, v in _QWEN25_VL_TENSORS.items() if "bias" not in k}
    with pytest.raises(ModelFileError, match=re.escape("qwen2vl GGUF without blk.0.attn_q.bias")):
        _gguf(tmp_path / "x.gguf", _qwen25_vl_7b(), tensors)


_GEMMA3_4B = {
    "general.architecture": "gemma3", "gemma3.block_count": 34, "gemma3.embedding_length": 2560,
    "gemma3.context_length": 131072, "gemma3.attention.head_count": 8, "gemma3.attention.head_count_kv": 4,
    "gemma3.attention.key_length": 256, "gemma3.attention.value_length": 256,
    "gemma3.feed_forward_length": 10240, "gemma3.attention.sliding_window": 1024,
}


def test_gemma3_gguf_is_the_text_config_with_its_5_to_1_pattern(tmp_path: Path) -> None:
    """Gemma-3-4B text as gemma3 (llama.cpp LLM_ARCH_GEMMA3: attention.sliding_window 1024, default period 6: 5 local,
    1 global): the config.json text count 3,880,263,168 (vision_tower_params' check of gemma-3-4b), 29 sliding + 5
    full layers, and the mmproj note."""
    spec = _gguf(tmp_path / "x.gguf", _GEMMA3_4B, {"token_embd.weight": (2560, 262208)})
    from_config = _spec(GEMMA3_4B)
    assert spec.layer_groups == from_config.layer_groups
    assert count_params(spec).total_params == 3_880_263_168
    assert {(g.kind.name, g.layers) for g in spec.layer_groups} == {("sliding_attention", 29), ("full_attention", 5)}
    assert spec.checkpoint is not None and any("if the model has one" in n for n in spec.checkpoint.notes)


@pytest.mark.parametrize(("change", "groups"), [
    # no (or a zero) window: llama.cpp runs LLAMA_SWA_TYPE_NONE, every layer global
    ({"gemma3.attention.sliding_window": 0}, {("full_attention", 34)}),
    # the pattern as one flag per layer (gguf-py add_sliding_window_pattern(Sequence[bool])): true = sliding
    ({"gemma3.attention.sliding_window_pattern": [i % 2 == 0 for i in range(34)]},
     {("sliding_attention", 17), ("full_attention", 17)}),
    ({"gemma3.attention.sliding_window_pattern": 4}, {("sliding_attention", 26), ("full_attention", 8)}),
])
def test_gemma3_gguf_window_keys(tmp_path: Path, change: dict[str, Any], groups: set[tuple[str, int]]) -> None:
    spec = _gguf(tmp_path / "x.gguf", _GEMMA3_4B | change, {"token_embd.weight": (2560, 262208)})
    assert {(g.kind.name, g.layers) for g in spec.layer_groups} == groups


@pytest.mark.parametrize("which", ["qwen35", "qwen2vl"])
def test_new_ggufs_through_kv_and_llamacpp_fit(tmp_path: Path, cli: Any, which: str) -> None:
    """`kv` and `fit --engine llama.cpp` on the Qwen3.5-2B and Qwen2.5-VL-7B files. Qwen3.5-2B KV: 6 attention
    layers x 2 (K, V) x 2 heads x 256 x 2 B (f16) = 12,288 B per token; its 18 GDN layers' f32 cells (llama.cpp
    llama-hparams.cpp n_embd_r = (conv 4 - 1) x (2 x 16 x 128 + 16 x 128), n_embd_s = 128 x 128 x 16) =
    18 x 4 x (3 x 6144 + 262,144) = 20,201,472 B per sequence. Qwen2.5-VL-7B: 28 x 2 x 4 x 128 x 2 = 57,344 B."""
    path = tmp_path / f"{which}.gguf"
    if which == "qwen35":
        _gguf(path, _qwen35_2b(1), _QWEN35_TENSORS)
    else:
        _gguf(path, _qwen25_vl_7b(), _QWEN25_VL_TENSORS)
    kv = cli("kv", str(path), "--context", "4k", "--format", "json")
    assert kv.exit_code == 0, kv.stderr
    assert kv.json()["kv_bytes_per_token"] == (12_288 if which == "qwen35" else 57_344)
    fit = cli("fit", str(path), "--gpu", "h100-80", "--engine", "llama.cpp", "--context", "4k", "--format", "json")
    assert fit.exit_code in (0, 1), fit.stderr
    if which == "qwen35":
        assert fit.json()["state_bytes_per_request"] == 18 * 4 * (3 * 6144 + 128 * 128 * 16) == 20_201_472


def test_key_names_are_gguf_py_writer_names(tmp_path: Path) -> None:
    """The same Qwen3.5-2B file written with gguf-py's own named GGUFWriter methods (the ones convert_hf_to_gguf.py
    calls) has exactly the keys the tests above write, and reads to the same spec; gguf-py's MODEL_ARCH_NAMES has
    qwen35 / qwen35moe / qwen2vl and no mllama (llama.cpp has no Llama-3.2-Vision architecture)."""
    import gguf
    import numpy as np

    from llmfit.readers.gguf_file import spec_from_gguf
    from llmfit.readers.gguf_reader import read_gguf
    from tests.readers.gguf_files import write_sparse_tensors

    names = set(gguf.MODEL_ARCH_NAMES.values())
    assert {"qwen35", "qwen35moe", "qwen2vl", "qwen3next", "gemma3", "llama4"} <= names and "mllama" not in names
    path = tmp_path / "writer.gguf"
    w = gguf.GGUFWriter(str(path), gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.QWEN35])
    w.add_block_count(25)
    w.add_nextn_predict_layers(1)
    w.add_embedding_length(2048)
    w.add_context_length(262144)
    w.add_head_count(8)
    w.add_head_count_kv(2)
    w.add_key_length(256)
    w.add_value_length(256)
    w.add_feed_forward_length(6144)
    w.add_ssm_conv_kernel(4)
    w.add_ssm_state_size(128)
    w.add_ssm_group_count(16)
    w.add_ssm_time_step_rank(16)
    w.add_ssm_inner_size(2048)
    w.add_full_attention_interval(4)
    w.add_rope_dimension_count(64)
    w.add_rope_dimension_sections([11, 11, 10, 0])
    write_sparse_tensors(w, path, {"token_embd.weight": ((248320, 2048), np.dtype(np.float16))})
    keys = {k for k in read_gguf(path).metadata if k.startswith("qwen35.")}
    assert keys == {k for k in _qwen35_2b(1) if k.startswith("qwen35.")}
    spec = spec_from_gguf(path)
    assert spec.layer_groups == _gguf(tmp_path / "x.gguf", _qwen35_2b(1), _QWEN35_TENSORS).layer_groups
    assert count_params(spec).total_params == 1_881_825_088 + 60_828_160


def test_an_mmproj_gguf_is_refused_pointing_at_the_text_file(tmp_path: Path, cli: Any) -> None:
    path = tmp_path / "mmproj-model-f16.gguf"
    with pytest.raises(ModelFileError, match=re.escape("pass the text model's .gguf")):
        _gguf(path, {"general.architecture": "clip", "clip.vision.block_count": 32},
              {"v.patch_embd.weight": (14, 1280)})
    run = cli("kv", str(path), "--format", "json")
    assert run.exit_code == 2 and "multimodal projector (mmproj) GGUF" in run.stderr
