"""GGUF metadata of hybrid architectures -> the same spec as their config.json (keys as convert_hf_to_gguf.py
writes them; per-layer head_count_kv 0 = a recurrent layer, as llama_hparams::recurrent_layer_arr)."""

from __future__ import annotations

from typing import Any

from llmfit.engine.params import count_params
from llmfit.readers.config import spec_fields
from llmfit.readers.gguf_file import config_from_metadata
from llmfit.specs import ModelSpec
from tests.readers import hybrid_configs as H


class _Field:
    def __init__(self, value: Any) -> None:
        self.value = value

    def contents(self) -> Any:
        return self.value


class _Reader:
    def __init__(self, fields: dict[str, Any]) -> None:
        self.fields = {k: _Field(v) for k, v in fields.items()}


class _Tensor:
    def __init__(self, *shape: int) -> None:
        self.shape = shape


def _spec(config: dict[str, Any]) -> ModelSpec:
    return ModelSpec(name="x", source="t", **spec_fields(config, "x.gguf"))


def test_qwen3_next_gguf_metadata_gives_the_config_spec_without_mtp() -> None:
    c = H.QWEN3_NEXT_80B
    kinds = ["full_attention" if (i + 1) % 4 == 0 else "linear_attention" for i in range(48)]
    reader = _Reader({
        "general.architecture": "qwen3next", "qwen3next.block_count": 48, "qwen3next.embedding_length": 2048,
        "qwen3next.context_length": 262144, "qwen3next.attention.head_count": 16,
        "qwen3next.attention.head_count_kv": [2 if k == "full_attention" else 0 for k in kinds],
        "qwen3next.attention.key_length": 256, "qwen3next.feed_forward_length": 5120,
        "qwen3next.ssm.conv_kernel": 4, "qwen3next.ssm.state_size": 128, "qwen3next.ssm.group_count": 16,
        "qwen3next.ssm.time_step_rank": 32, "qwen3next.ssm.inner_size": 4096, "qwen3next.expert_count": 512,
        "qwen3next.expert_used_count": 10, "qwen3next.expert_feed_forward_length": 512,
        "qwen3next.expert_shared_feed_forward_length": 512,
    })
    tensors = {"token_embd.weight": _Tensor(2048, 151936), "output.weight": _Tensor(2048, 151936)}
    from_gguf = _spec(config_from_metadata(reader, tensors, "x.gguf"))
    from_config = _spec(c)
    mtp = sum(from_config.extra_params.values())
    assert count_params(from_gguf).total_params == count_params(from_config).total_params - mtp
    assert [g.kind for g in from_gguf.layer_groups] == [g.kind for g in from_config.layer_groups]


def test_nemotron_h_gguf_metadata_rebuilds_the_block_pattern() -> None:
    pattern = H.NEMOTRON_NANO_9B_V2["hybrid_override_pattern"]
    reader = _Reader({
        "general.architecture": "nemotron_h", "nemotron_h.block_count": 56, "nemotron_h.embedding_length": 4480,
        "nemotron_h.context_length": 131072, "nemotron_h.attention.head_count": 40,
        "nemotron_h.attention.head_count_kv": [8 if c == "*" else 0 for c in pattern],
        "nemotron_h.feed_forward_length": [15680 if c == "-" else 0 for c in pattern],
        "nemotron_h.attention.key_length": 128, "nemotron_h.ssm.conv_kernel": 4, "nemotron_h.ssm.state_size": 128,
        "nemotron_h.ssm.group_count": 8, "nemotron_h.ssm.time_step_rank": 128, "nemotron_h.ssm.inner_size": 10240,
    })
    tensors = {"token_embd.weight": _Tensor(4480, 131072), "output.weight": _Tensor(4480, 131072),
               "blk.0.ssm_conv1d.bias": _Tensor(12288)}
    spec = _spec(config_from_metadata(reader, tensors, "x.gguf"))
    assert count_params(spec).total_params == 8_888_227_328


def test_lfm2_gguf_metadata() -> None:
    attention = [2, 5, 8, 10, 12, 14]
    reader = _Reader({
        "general.architecture": "lfm2", "lfm2.block_count": 16, "lfm2.embedding_length": 2048,
        "lfm2.context_length": 128000, "lfm2.attention.head_count": 32,
        "lfm2.attention.head_count_kv": [8 if i in attention else 0 for i in range(16)],
        "lfm2.feed_forward_length": 8192, "lfm2.shortconv.l_cache": 3,
    })
    spec = _spec(config_from_metadata(reader, {"token_embd.weight": _Tensor(2048, 65536)}, "x.gguf"))
    assert count_params(spec).total_params == 1_170_340_608


def test_llama4_gguf_metadata_counts_the_text_model() -> None:
    """Llama-4 Scout GGUF (text only: the vision tower is a separate mmproj): 108,641,793,536 - 871,932,416."""
    reader = _Reader({
        "general.architecture": "llama4", "llama4.block_count": 48, "llama4.embedding_length": 5120,
        "llama4.context_length": 10485760, "llama4.attention.head_count": 40, "llama4.attention.head_count_kv": 8,
        "llama4.attention.key_length": 128, "llama4.feed_forward_length": 16384,
        "llama4.expert_feed_forward_length": 8192, "llama4.expert_count": 16, "llama4.expert_used_count": 1,
        "llama4.interleave_moe_layer_step": 1,
    })
    tensors = {"token_embd.weight": _Tensor(5120, 202048), "output.weight": _Tensor(5120, 202048)}
    spec = _spec(config_from_metadata(reader, tensors, "x.gguf"))
    assert count_params(spec).total_params == 108_641_793_536 - 871_932_416
    assert {g.kind.name: g.layers for g in spec.layer_groups} == {"chunked_attention": 36, "full_attention": 12}
