"""Snapshot folders, sharded indexes, GPTQ checkpoints, GGUF files and the HF cache, all written here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from model_files import (
    GPTQ_GROUP,
    TINY_LLAMA_PARAMS,
    make_gptq_snapshot,
    make_sharded_snapshot,
    make_snapshot,
    tiny_llama_shapes,
    write_gguf,
    write_hf_cache,
)

from llmfit.engine.params import count_params
from llmfit.engine.weights import weight_bytes
from llmfit.presets import Registry
from llmfit.readers.config import ModelFileError
from llmfit.readers.native import native_format
from llmfit.readers.resolve import looks_like_file_or_repo, resolve_model_source


def test_snapshot_folder_reads_headers(tmp_path: Path, registry: Registry) -> None:
    snapshot = make_snapshot(tmp_path)
    spec = resolve_model_source(str(snapshot), registry)
    info = spec.checkpoint
    assert info is not None and info.reader == "safetensors" and info.format == "bf16"
    assert count_params(spec).total_params == TINY_LLAMA_PARAMS == info.stored_params == spec.published_params
    assert info.stored_bytes == 2 * TINY_LLAMA_PARAMS == info.bytes_by_dtype["BF16"]
    assert spec.name == "tiny-llama" and spec.kv_heads == 2


def test_sharded_index_and_index_only(tmp_path: Path, registry: Registry) -> None:
    sharded_snapshot = make_sharded_snapshot(tmp_path)
    spec = resolve_model_source(str(sharded_snapshot / "model.safetensors.index.json"), registry)
    assert spec.checkpoint is not None and spec.checkpoint.stored_bytes == 2 * TINY_LLAMA_PARAMS
    assert "2 files" in (spec.checkpoint.format_note or "")
    # config.json + index only (no shards): the index's total_size is what is known.
    for shard in sharded_snapshot.glob("*.safetensors"):
        shard.unlink()
    spec = resolve_model_source(str(sharded_snapshot), registry)
    assert spec.checkpoint is not None and spec.checkpoint.reader == "index.json"
    assert spec.checkpoint.stored_bytes == 2 * TINY_LLAMA_PARAMS and spec.checkpoint.stored_params is None


def test_missing_shard_is_refused(tmp_path: Path, registry: Registry) -> None:
    sharded_snapshot = make_sharded_snapshot(tmp_path)
    (sharded_snapshot / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(ModelFileError, match="lists 2 shards, 1 missing"):
        resolve_model_source(str(sharded_snapshot), registry)


def test_gptq_checkpoint_bytes_equal_the_gptq_formula(tmp_path: Path, registry: Registry) -> None:
    gptq_snapshot = make_gptq_snapshot(tmp_path)
    spec = resolve_model_source(str(gptq_snapshot), registry)
    info = spec.checkpoint
    assert info is not None and info.format == f"gptq-g{GPTQ_GROUP}"
    # Logical parameters: qweight int32 holds 8 weights; scales, qzeros, g_idx are metadata.
    assert info.stored_params == TINY_LLAMA_PARAMS
    # By hand, per linear (out x in): qweight in*out/2 + qzeros (in/g)*out/2 + scales (in/g)*out*2 + g_idx in*4;
    # embeddings, lm_head and norms fp16.
    expected = 0
    for name, shape in tiny_llama_shapes().items():
        if len(shape) == 2 and name.startswith("model.layers."):
            out_f, in_f = shape
            groups = in_f // GPTQ_GROUP
            expected += in_f * out_f // 2 + groups * out_f // 2 + groups * out_f * 2 + in_f * 4
        else:
            expected += 2 * (shape[0] * (shape[1] if len(shape) > 1 else 1))
    assert info.stored_bytes == expected
    # ... and the engine's GPTQ formula predicts exactly the stored bytes.
    assert weight_bytes(spec, native_format(spec)).weights_bytes == expected


def test_gguf_reads_metadata_and_exact_tensor_sizes(tmp_path: Path, registry: Registry) -> None:
    plain, q8 = tmp_path / "tiny.gguf", tmp_path / "tiny-q8.gguf"
    write_gguf(plain)
    write_gguf(q8, quantized="Q8_0")
    spec = resolve_model_source(str(plain), registry)
    assert spec.checkpoint is not None and spec.checkpoint.format == "fp32"
    assert count_params(spec).total_params == TINY_LLAMA_PARAMS == spec.checkpoint.stored_params
    assert spec.checkpoint.stored_bytes == 4 * TINY_LLAMA_PARAMS
    assert (spec.num_key_value_heads, spec.hidden_size, spec.vocab_size) == (2, 64, 256)
    quant = resolve_model_source(str(q8), registry)
    assert quant.checkpoint is not None and quant.checkpoint.format == "q8_0"
    # Q8_0: 34 bytes per block of 32 weights (ggml-common.h block_q8_0); the rest F32.
    layer_params = sum(s[0] * s[1] for n, s in tiny_llama_shapes().items() if len(s) == 2 and "layers" in n)
    assert quant.checkpoint.bytes_by_dtype == {"Q8_0": layer_params // 32 * 34,
                                               "F32": 4 * (TINY_LLAMA_PARAMS - layer_params)}


def test_hf_cache_offline(tmp_path: Path, registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    write_hf_cache(tmp_path, "tiny-org/Tiny-Llama", with_weights=True)
    write_hf_cache(tmp_path, "tiny-org/config-only", with_weights=False)
    assert looks_like_file_or_repo("tiny-org/Tiny-Llama", registry)
    spec = resolve_model_source("tiny-org/Tiny-Llama", registry)
    assert spec.name == "tiny-llama" and spec.hf_id == "tiny-org/Tiny-Llama"
    assert spec.checkpoint is not None and spec.checkpoint.stored_bytes == 2 * TINY_LLAMA_PARAMS
    bare = resolve_model_source("tiny-org/config-only", registry)
    assert bare.checkpoint is not None and bare.checkpoint.reader == "config.json"
    assert bare.checkpoint.stored_bytes is None and count_params(bare).total_params == TINY_LLAMA_PARAMS
    with pytest.raises(ModelFileError, match="not in the local Hugging Face cache and HF_HUB_OFFLINE"):
        resolve_model_source("tiny-org/not-cached", registry)


def test_names_that_are_presets_stay_presets(registry: Registry, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "7b").mkdir()  # a folder named like a preset does not shadow it
    assert not looks_like_file_or_repo("7b", registry)
    assert not looks_like_file_or_repo("meta-llama/Llama-3.1-8B", registry)  # a preset's hf_id
    assert looks_like_file_or_repo("./7b", registry)
    assert looks_like_file_or_repo("missing.gguf", registry)
    with pytest.raises(ModelFileError, match="no such file"):
        resolve_model_source("missing.gguf", registry)


def test_config_json_alone_and_bad_json(tmp_path: Path, registry: Registry) -> None:
    bad = tmp_path / "config.json"
    bad.write_text("{not json")
    with pytest.raises(ModelFileError, match="not valid JSON"):
        resolve_model_source(str(bad), registry)
    bad.write_text(json.dumps({"model_type": "llama", "hidden_size": 64}))
    with pytest.raises(ModelFileError, match="missing num_hidden_layers"):
        resolve_model_source(str(bad), registry)
