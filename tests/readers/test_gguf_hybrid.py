"""GGUF metadata of hybrid architectures -> the same spec as their config.json (keys as convert_hf_to_gguf.py
writes them; per-layer head_count_kv 0 = a recurrent layer, as llama_hparams::recurrent_layer_arr)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from llmfit.engine.params import count_params
from llmfit.presets import Registry
from llmfit.readers.config import ModelFileError, spec_fields
from llmfit.readers.gguf_file import spec_from_gguf
from llmfit.readers.gguf_reader import read_gguf
from llmfit.specs import ModelSpec
from tests.readers import hybrid_configs as H
from tests.readers.gguf_files import write_sparse_tensors


def _gguf(path: Path, metadata: dict[str, Any], shapes: Mapping[str, tuple[int, ...]]) -> ModelSpec:
    """Write a real GGUF (gguf-py's GGUFWriter) of `metadata` (ints as UINT32, per-layer lists as arrays, as
    convert_hf_to_gguf.py writes them) and F16 tensor infos of `shapes` in ggml order (ne0 first, as a GGUF
    stores them; the data is a sparse hole), then read it back through spec_from_gguf."""
    import gguf

    writer = gguf.GGUFWriter(str(path), metadata["general.architecture"])
    for key, value in metadata.items():
        if key == "general.architecture":
            continue
        if isinstance(value, list):
            writer.add_array(key, value)
        else:
            writer.add_key_value(key, value, gguf.GGUFValueType.UINT32)
    write_sparse_tensors(writer, path, {name: (tuple(reversed(shape)), np.dtype(np.float16))  # numpy order
                                        for name, shape in shapes.items()})
    reader = read_gguf(path)  # per-layer arrays come back as lists; tensor shapes in ggml order
    for key, value in metadata.items():
        assert reader.metadata[key] == value
    assert {t.name: t.shape for t in reader.tensors} == shapes
    return spec_from_gguf(path)


def _spec(config: dict[str, Any]) -> ModelSpec:
    return ModelSpec(name="x", source="t", **spec_fields(config, "x.gguf"))


_PER_LAYER_KV = [2 if (i + 1) % 4 == 0 else 0 for i in range(48)]


@pytest.mark.parametrize("kv_keys", [
    # as Qwen3NextModel writes it (conversion/qwen.py): one head_count_kv and full_attention_interval; llama.cpp's
    # src/models/qwen3next.cpp marks block i recurrent unless (i + 1) % full_attention_interval == 0
    {"qwen3next.attention.head_count_kv": 2, "qwen3next.full_attention_interval": 4},
    # a per-layer head_count_kv (0 on the recurrent blocks) with no interval key: the default interval 4 agrees
    {"qwen3next.attention.head_count_kv": _PER_LAYER_KV},
])
def test_qwen3_next_gguf_metadata_gives_the_config_spec_without_mtp(tmp_path: Path, kv_keys: dict[str, Any]) -> None:
    c = H.QWEN3_NEXT_80B
    metadata = kv_keys | {
        "general.architecture": "qwen3next", "qwen3next.block_count": 48, "qwen3next.embedding_length": 2048,
        "qwen3next.context_length": 262144, "qwen3next.attention.head_count": 16,
        "qwen3next.attention.key_length": 256, "qwen3next.feed_forward_length": 5120,
        "qwen3next.ssm.conv_kernel": 4, "qwen3next.ssm.state_size": 128, "qwen3next.ssm.group_count": 16,
        "qwen3next.ssm.time_step_rank": 32, "qwen3next.ssm.inner_size": 4096, "qwen3next.expert_count": 512,
        "qwen3next.expert_used_count": 10, "qwen3next.expert_feed_forward_length": 512,
        "qwen3next.expert_shared_feed_forward_length": 512,
    }
    tensors = {"token_embd.weight": (2048, 151936), "output.weight": (2048, 151936)}
    from_gguf = _gguf(tmp_path / "x.gguf", metadata, tensors)
    from_config = _spec(c)
    mtp = sum(from_config.extra_params.values())  # the converter drops Qwen3-Next's MTP layer
    assert count_params(from_gguf).total_params == count_params(from_config).total_params - mtp
    assert from_gguf.layer_groups == from_config.layer_groups


def test_nemotron_h_gguf_metadata_rebuilds_the_block_pattern(tmp_path: Path) -> None:
    pattern = H.NEMOTRON_NANO_9B_V2["hybrid_override_pattern"]
    metadata = {
        "general.architecture": "nemotron_h", "nemotron_h.block_count": 56, "nemotron_h.embedding_length": 4480,
        "nemotron_h.context_length": 131072, "nemotron_h.attention.head_count": 40,
        "nemotron_h.attention.head_count_kv": [8 if c == "*" else 0 for c in pattern],
        "nemotron_h.feed_forward_length": [15680 if c == "-" else 0 for c in pattern],
        "nemotron_h.attention.key_length": 128, "nemotron_h.ssm.conv_kernel": 4, "nemotron_h.ssm.state_size": 128,
        "nemotron_h.ssm.group_count": 8, "nemotron_h.ssm.time_step_rank": 128, "nemotron_h.ssm.inner_size": 10240,
    }
    tensors = {"token_embd.weight": (4480, 131072), "output.weight": (4480, 131072),
               "blk.0.ssm_conv1d.bias": (12288,)}
    spec = _gguf(tmp_path / "x.gguf", metadata, tensors)
    assert count_params(spec).total_params == 8_888_227_328


def test_lfm2_gguf_metadata(tmp_path: Path) -> None:
    attention = [2, 5, 8, 10, 12, 14]
    metadata = {
        "general.architecture": "lfm2", "lfm2.block_count": 16, "lfm2.embedding_length": 2048,
        "lfm2.context_length": 128000, "lfm2.attention.head_count": 32,
        "lfm2.attention.head_count_kv": [8 if i in attention else 0 for i in range(16)],
        "lfm2.feed_forward_length": 8192, "lfm2.shortconv.l_cache": 3,
    }
    spec = _gguf(tmp_path / "x.gguf", metadata, {"token_embd.weight": (2048, 65536)})
    assert count_params(spec).total_params == 1_170_340_608


def test_llama4_gguf_metadata_counts_the_text_model(tmp_path: Path) -> None:
    """Llama-4 Scout GGUF (text only: the vision tower is a separate mmproj): 108,641,793,536 - 871,932,416."""
    metadata = {
        "general.architecture": "llama4", "llama4.block_count": 48, "llama4.embedding_length": 5120,
        "llama4.context_length": 10485760, "llama4.attention.head_count": 40, "llama4.attention.head_count_kv": 8,
        "llama4.attention.key_length": 128, "llama4.feed_forward_length": 16384,
        "llama4.expert_feed_forward_length": 8192, "llama4.expert_count": 16, "llama4.expert_used_count": 1,
        "llama4.interleave_moe_layer_step": 1,
    }
    tensors = {"token_embd.weight": (5120, 202048), "output.weight": (5120, 202048)}
    spec = _gguf(tmp_path / "x.gguf", metadata, tensors)
    assert count_params(spec).total_params == 108_641_793_536 - 871_932_416
    assert {g.kind.name: g.layers for g in spec.layer_groups} == {"chunked_attention": 36, "full_attention": 12}


_SMALL_NEMOTRON_H = {
    "general.architecture": "nemotron_h", "nemotron_h.block_count": 4, "nemotron_h.embedding_length": 64,
    "nemotron_h.context_length": 1024, "nemotron_h.attention.head_count": 4,
    "nemotron_h.attention.head_count_kv": [1, 0, 0, 0], "nemotron_h.feed_forward_length": [0, 64, 0, 64],
    "nemotron_h.attention.key_length": 16, "nemotron_h.ssm.conv_kernel": 4, "nemotron_h.ssm.state_size": 16,
    "nemotron_h.ssm.group_count": 1, "nemotron_h.ssm.time_step_rank": 4, "nemotron_h.ssm.inner_size": 128,
}


@pytest.mark.parametrize(("change", "message"), [
    ({"nemotron_h.attention.head_count_kv": [1, 0]}, "attention.head_count_kv has 2 entries for 4 blocks"),
    ({"nemotron_h.feed_forward_length": [64] * 9}, "feed_forward_length has 9 entries for 4 blocks"),
    ({"nemotron_h.block_count": 4_000_000_000, "nemotron_h.attention.head_count_kv": 1,
      "nemotron_h.feed_forward_length": 64}, "block_count 4,000,000,000 is outside 1..4,096"),
    ({"nemotron_h.block_count": 0}, "block_count 0 is outside"),
])
def test_hybrid_gguf_per_layer_arrays_must_match_block_count(tmp_path: Path, change: dict[str, Any],
                                                              message: str) -> None:
    """A per-layer array of the wrong length, or a block_count past MAX_LAYERS (a list of that many entries
    would be built), is one ModelFileError, not an IndexError or a MemoryError."""
    with pytest.raises(ModelFileError, match=re.escape(message)):
        _gguf(tmp_path / "x.gguf", _SMALL_NEMOTRON_H | change, {"token_embd.weight": (64, 256)})


def test_small_hybrid_gguf_reads(tmp_path: Path) -> None:
    spec = _gguf(tmp_path / "x.gguf", _SMALL_NEMOTRON_H, {"token_embd.weight": (64, 256)})
    assert spec.num_hidden_layers == 4 and spec.vocab_size == 256


# Fields a GGUF cannot carry or names differently: its identity and provenance, and the checkpoint's own notes.
_IDENTITY = {"name", "source", "hf_id", "checkpoint", "aliases", "params_source", "params_convention",
             "published_params", "published_params_rounded", "published_active_params",
             "published_active_params_rounded", "architecture", "torch_dtype", "count_note", "notes", "rope_scaling"}


def _same_model(from_gguf: ModelSpec, from_config: ModelSpec, preset: ModelSpec, *, not_in_gguf: int = 0) -> None:
    """The GGUF's spec is the config.json's: every architecture field, the layer groups (kinds and layers), the
    parameter counts; and the built-in preset of the model has the same layer groups and counts (less
    `not_in_gguf`: a vision tower the preset counts and a text-only GGUF leaves to its mmproj file)."""
    assert preset.layer_groups == from_gguf.layer_groups
    if not_in_gguf:
        assert count_params(preset).total_params - not_in_gguf == count_params(from_gguf).total_params
    else:
        assert count_params(preset) == count_params(from_gguf)
    a = {k: v for k, v in dataclasses.asdict(from_gguf).items() if k not in _IDENTITY}
    b = {k: v for k, v in dataclasses.asdict(from_config).items() if k not in _IDENTITY}
    assert {k: (a[k], b.get(k)) for k in a if a[k] != b.get(k)} == {}
    assert from_gguf.layer_groups == from_config.layer_groups
    assert count_params(from_gguf) == count_params(from_config)


def test_falcon_h1_gguf_metadata_gives_the_config_spec(tmp_path: Path, registry: Registry) -> None:
    """Falcon-H1-1.5B as convert_hf_to_gguf.py writes it for llama.cpp's falcon-h1 (src/models/falcon-h1.cpp
    load_arch_hparams: ssm.conv_kernel / inner_size / state_size / time_step_rank (= Mamba-2 heads) / group_count;
    every block recurrent and with attention, so head_count_kv is one number)."""
    c = H.FALCON_H1_15B
    metadata = {
        "general.architecture": "falcon-h1", "falcon-h1.block_count": 24, "falcon-h1.embedding_length": 2048,
        "falcon-h1.context_length": 131072, "falcon-h1.attention.head_count": 8,
        "falcon-h1.attention.head_count_kv": 2, "falcon-h1.attention.key_length": 128,
        "falcon-h1.feed_forward_length": 4608, "falcon-h1.ssm.conv_kernel": 4, "falcon-h1.ssm.inner_size": 3072,
        "falcon-h1.ssm.state_size": 256, "falcon-h1.ssm.time_step_rank": 48, "falcon-h1.ssm.group_count": 1,
    }
    # mamba_conv_bias (FalconH1Config default true): blk.N.ssm_conv1d.bias of conv_dim = 3072 + 2 x 1 x 256.
    tensors = {"token_embd.weight": (2048, 65537), "output.weight": (2048, 65537), "blk.0.ssm_conv1d.bias": (3584,)}
    from_gguf = _gguf(tmp_path / "x.gguf", metadata, tensors)
    _same_model(from_gguf, _spec(c), registry.model("falcon-h1-1.5b-instruct"))
    assert {g.kind.name: g.layers for g in from_gguf.layer_groups} == {"full_attention": 24, "mamba2": 24}


def _kimi_linear_metadata() -> dict[str, Any]:
    full = set(H.KIMI_LINEAR_48B["linear_attn_config"]["full_attn_layers"])  # 1-based
    return {
        "general.architecture": "kimi-linear", "kimi-linear.block_count": 27, "kimi-linear.embedding_length": 2304,
        "kimi-linear.context_length": 1048576, "kimi-linear.attention.head_count": 32,
        "kimi-linear.attention.head_count_kv": [32 if i + 1 in full else 0 for i in range(27)],
        "kimi-linear.attention.key_length_mla": 192, "kimi-linear.attention.value_length_mla": 128,
        "kimi-linear.attention.kv_lora_rank": 512, "kimi-linear.rope.dimension_count": 64,
        "kimi-linear.kda.head_dim": 128, "kimi-linear.ssm.conv_kernel": 4, "kimi-linear.feed_forward_length": 9216,
        "kimi-linear.expert_count": 256, "kimi-linear.expert_used_count": 8, "kimi-linear.expert_shared_count": 1,
        "kimi-linear.expert_feed_forward_length": 1024, "kimi-linear.leading_dense_block_count": 1,
    }


def test_kimi_linear_gguf_metadata_gives_the_config_spec(tmp_path: Path, registry: Registry) -> None:
    """Kimi-Linear-48B-A3B as llama.cpp's kimi-linear reads it (src/models/kimi-linear.cpp load_arch_hparams:
    head_count_kv 0 = a KDA layer, kda.head_dim, ssm.conv_kernel, key_length_mla = 128 + 64, value_length_mla,
    kv_lora_rank, no q_lora_rank; expert_* keys, leading_dense_block_count; blk.N.exp_probs_b.bias = the sigmoid
    router's correction bias)."""
    c = H.KIMI_LINEAR_48B
    metadata = _kimi_linear_metadata() | {"kimi-linear.expert_gating_func": 2}
    tensors = {"token_embd.weight": (2304, 163840), "output.weight": (2304, 163840),
               "blk.1.exp_probs_b.bias": (256,)}
    from_gguf = _gguf(tmp_path / "x.gguf", metadata, tensors)
    _same_model(from_gguf, _spec(c), registry.model("kimi-linear-48b-a3b-instruct"))
    assert {g.kind.name: g.layers for g in from_gguf.layer_groups} == {"linear_attention": 20, "mla": 7}


def _deepseek32_metadata(layers: int, mtp: int) -> dict[str, Any]:
    """DeepSeek-V3.2-Exp as llama.cpp's deepseek32 reads it: DeepSeek-V3's keys (key_length_mla 192, value_length_mla
    128, kv/q LoRA ranks, rope 64) plus attention.indexer.head_count / key_length / top_k (src/llama-arch.cpp
    LLM_KV_ATTENTION_INDEXER_*); block_count includes the nextn_predict_layers MTP blocks (src/models/deepseek32.cpp
    runs n_layer - nextn_predict_layers)."""
    return {
        "general.architecture": "deepseek32", "deepseek32.block_count": layers + mtp,
        "deepseek32.nextn_predict_layers": mtp, "deepseek32.embedding_length": 7168,
        "deepseek32.context_length": 163840, "deepseek32.attention.head_count": 128,
        "deepseek32.attention.head_count_kv": 1, "deepseek32.attention.key_length": 576,
        "deepseek32.attention.value_length": 512, "deepseek32.attention.key_length_mla": 192,
        "deepseek32.attention.value_length_mla": 128, "deepseek32.attention.q_lora_rank": 1536,
        "deepseek32.attention.kv_lora_rank": 512, "deepseek32.rope.dimension_count": 64,
        "deepseek32.feed_forward_length": 18432, "deepseek32.expert_count": 256, "deepseek32.expert_used_count": 8,
        "deepseek32.expert_shared_count": 1, "deepseek32.expert_feed_forward_length": 2048,
        "deepseek32.leading_dense_block_count": 3, "deepseek32.attention.indexer.head_count": 64,
        "deepseek32.attention.indexer.key_length": 128, "deepseek32.attention.indexer.top_k": 2048,
    }


def test_deepseek32_gguf_metadata_gives_the_config_spec_with_its_mtp_layer(tmp_path: Path, registry: Registry) -> None:
    tensors = {"token_embd.weight": (7168, 129280), "output.weight": (7168, 129280), "blk.3.exp_probs_b.bias": (256,)}
    from_gguf = _gguf(tmp_path / "x.gguf", _deepseek32_metadata(61, 1), tensors)
    _same_model(from_gguf, _spec(H.DEEPSEEK_V32_EXP), registry.model("deepseek-v3.2-exp"))
    assert from_gguf.num_hidden_layers == 61 and from_gguf.index_n_heads == 64


def test_deepseek32_gguf_nextn_must_be_below_block_count(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="nextn_predict_layers 5 must be below block_count 5"):
        _gguf(tmp_path / "x.gguf", _deepseek32_metadata(0, 5), {"token_embd.weight": (7168, 256)})


def test_kimi_linear_gguf_through_kv_and_llamacpp_fit(tmp_path: Path, cli: Any) -> None:
    """`kv` and `fit --engine llama.cpp` on a Kimi-Linear GGUF. llama.cpp's recurrent cell of a KDA layer
    (llama-hparams.cpp n_embd_r / n_embd_s, f32): conv 3 x 32 heads x 128 x (4 - 1) = 36,864 values + state
    32 x 128 x 128 = 524,288 values, x 4 B = 2,244,608 B; 20 KDA layers = 44,892,160 B per sequence."""
    metadata = _kimi_linear_metadata()
    path = tmp_path / "kimi.gguf"
    _gguf(path, metadata, {"token_embd.weight": (2304, 163840), "output.weight": (2304, 163840)})
    kv = cli("kv", str(path), "--context", "4k", "--format", "json")
    assert kv.exit_code == 0, kv.stderr
    fit = cli("fit", str(path), "--gpu", "h100-80gb", "--engine", "llama.cpp", "--context", "4k", "--format", "json")
    assert fit.exit_code in (0, 1), fit.stderr
    assert fit.json()["state_bytes_per_request"] == 20 * 4 * (3 * 32 * 128 * 3 + 32 * 128 * 128) == 44_892_160
