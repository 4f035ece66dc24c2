"""Weight bytes per format, from each format's definition."""

from __future__ import annotations

from fractions import Fraction

import pytest

from llmfit.engine.formats import FORMATS, ggml_bits, gguf_tensor_type
from llmfit.engine.weights import dense_param_bytes, weight_bytes
from llmfit.specs import ModelSpec

LLAMA31_8B = ModelSpec(name="8b", source="t", hidden_size=4096, num_hidden_layers=32, num_attention_heads=32,
                       num_key_value_heads=8, intermediate_size=14336, vocab_size=128256,
                       max_position_embeddings=131072)


@pytest.mark.parametrize(("ggml_type", "bpw"), [("q8_0", 8.5), ("q4_0", 4.5), ("q4_k", 4.5), ("q5_k", 5.5),
                                                 ("q6_k", 6.5625), ("q2_k", 2.625), ("q3_k", 3.4375),
                                                 ("mxfp4", 4.25)])
def test_ggml_block_bits(ggml_type, bpw):
    """ggml-common.h static_asserts: e.g. block_q4_0 = fp16 scale + 32 x 4 bits = 18 bytes / 32 weights."""
    assert float(ggml_bits(ggml_type)) == bpw


def test_gptq_bits_per_packed_weight_from_definition():
    """GPTQ 4-bit group 128: 4 + (16-bit scale + 4-bit zero) / 128 = 4.15625 bits (+ g_idx per input column)."""
    assert FORMATS["gptq"].packed_bits_per_weight() == 4 + Fraction(20, 128)
    assert FORMATS["gptq-g32"].packed_bits_per_weight() == 4 + Fraction(20, 32)
    assert FORMATS["nf4"].packed_bits_per_weight() == 4 + Fraction(8, 64) + Fraction(32, 64 * 256)
    assert FORMATS["nf4-nodq"].packed_bits_per_weight() == Fraction(9, 2)


def test_int4_separates_packed_scales_and_16bit_tensors():
    result = weight_bytes(LLAMA31_8B, FORMATS["int4"])
    lines = {line.name: line for line in result.lines}
    embed_and_head = 2 * 128256 * 4096
    assert lines["unquantized tensors"].params == embed_and_head + 65 * 4096  # + norms
    assert lines["packed weights"].bytes == lines["packed weights"].params // 2
    linear = lines["packed weights"].params
    assert lines["scales and zero points"].bytes == linear // 128 * 20 // 8
    assert result.weights_bytes == sum(line.bytes for line in result.lines)
    assert result.bits_per_weight > 4.5  # not a nominal 4.0: the 16-bit embeddings are 13 % of the model


def test_fp8_keeps_embeddings_and_lm_head_in_bf16():
    """vLLM runtime fp8: 8.03e9 params, 1.05e9 of them (embed + lm_head) in bf16: ~8.46 GiB (measured 8.49)."""
    result = weight_bytes(LLAMA31_8B, FORMATS["fp8"])
    assert result.weights_bytes / 2**30 == pytest.approx(8.46, abs=0.01)


def test_q4_k_m_uses_q6_k_for_half_of_attn_v_and_ffn_down():
    types = [gguf_tensor_type("q4_k_m", "attn_v", layer, 32) for layer in range(32)]
    assert types.count("q6_k") == 16 and types.count("q4_k") == 16
    assert gguf_tensor_type("q4_k_m", "output", None, 32) == "q6_k"
    bpw = weight_bytes(LLAMA31_8B, FORMATS["q4_k_m"]).bits_per_weight
    assert 4.8 < bpw < 4.95  # why Q4_K_M is ~4.9 bpw and not 4.5


def test_dense_param_bytes_int4_raw_is_half_a_byte():
    assert dense_param_bytes(7_000_000_000, FORMATS["int4-raw"]).weights_bytes == 3_500_000_000
    assert dense_param_bytes(7, FORMATS["int4-raw"]).weights_bytes == 4  # ceil, never 0


def test_fewer_bits_never_more_bytes():
    sizes = [weight_bytes(LLAMA31_8B, FORMATS[name]).weights_bytes
             for name in ("fp32", "bf16", "fp8", "q8_0", "q6_k", "q4_k_m", "q4_0", "int4-raw")]
    assert sizes == sorted(sizes, reverse=True)
