"""llama.cpp on a workstation: how many layers go on the GPU (-ngl), what stays in system RAM.

llama.cpp's placement (src/llama-model.cpp, load_tensors; src/llama-context.cpp; src/llama-kv-cache*.cpp):
- the input embedding (token_embd) always stays on the CPU; with -ngl N the LAST N repeating layers go to
  the GPU (i_gpu_start = n_layer - N); the output layer (output.weight and output_norm, or a duplicate of
  token_embd when tied) goes to the GPU only when N > n_layer (so -ngl n_layer+1 offloads everything);
- each layer's K and V live on that layer's device (offload_kqv, default on; --no-kv-offload keeps all
  KV in RAM). A full-attention layer caches n_ctx cells (all sequences together); a sliding-window
  layer caches size_swa = min(n_ctx_seq, pad(n_swa x (unified ? n_seq : 1) + n_ubatch, 256)) cells per
  stream, one stream per sequence unless the cache is unified (llama-kv-cache-iswa.cpp);
- K and V bytes per cell and layer: kv_heads x head_dim x type size (f16 2 B, q8_0 34/32 B, q4_0 18/32 B);
  MLA caches its latent as K (V a view of it); DeepSeek-V3.2 adds its indexer keys, a second cache of one head
  of indexer_head_size at -ctk with a cell per main cell (src/llama-kv-cache-dsa.cpp): the kind's cell_values();
- a hybrid's layers hold a KV cell, a recurrent cell or both: Falcon-H1 runs attention beside Mamba-2 in every
  block, so llama-model.cpp create_memory filters every layer into both caches;
- the output buffer (host memory) holds n_seq_max rows of fp32 logits: n_seq_max x n_vocab x 4 B
  (llama_context::output_reserve);
- the compute buffer is what ggml-alloc measures for one ubatch of n_ubatch tokens; modelled here as
  the widest point of a layer in f32: the KQ scores n_ubatch x n_kv x n_head x 4 B without flash
  attention, the FFN n_ubatch x 3 n_ff x 4 B, or the logits n_ubatch x n_vocab x 4 B on the output's
  device, plus two hidden-state rows (input and residual);
- platform footprint (CUDA context, cuBLAS handles): 250 MiB of VRAM and 150 MiB of RAM, the defaults
  of gguf-parser-go's --platform-footprint (the estimator GPUStack schedules with).
The GPU budget is the device memory; no fraction is reserved (llama.cpp allocates what it needs).
"""

from __future__ import annotations

from dataclasses import field
from fractions import Fraction
from typing import Annotated, Any

from llmfit.engine.formats import GGML_TYPES, WeightFormat
from llmfit.engine.records import Check, record
from llmfit.engine.weights import group_bytes
from llmfit.errors import SpecError
from llmfit.specs import GpuSpec, ModelSpec
from llmfit.units import MIB, ceil_div

VRAM_FOOTPRINT_BYTES = 250 * MIB
RAM_FOOTPRINT_BYTES = 150 * MIB
KV_TYPES = {"f16": "f16", "fp16": "f16", "bf16": "bf16", "f32": "f32", "fp32": "f32", "q8_0": "q8_0", "q4_0": "q4_0",
            "q4_1": "q4_1", "q5_0": "q5_0", "q5_1": "q5_1"}


@record
class LlamaCppOptions:
    ctx_size: Annotated[int, Check(gt=0)]  # -c: cells of the whole cache (all sequences)
    parallel: Annotated[int, Check(gt=0)] = 1  # -np: sequences (slots)
    cache_type_k: str = "f16"
    cache_type_v: str = "f16"
    flash_attn: bool = True
    ubatch: Annotated[int, Check(gt=0)] = 512  # -ub
    kv_unified: bool = True
    kv_offload: bool = True
    gpu_layers: int | None = None  # -ngl; None = as many as fit
    pad: int = 256


@record
class MemoryLine:
    name: str
    bytes: int
    note: str = ""


@record
class LlamaCppResult:
    """Where each part of the model lives under llama.cpp, and whether GPU and RAM hold it."""

    model: str
    gpu: str
    dtype: str
    ctx_size: int
    parallel: int
    n_layer: int
    gpu_layers: int  # the -ngl value (n_layer + 1 = everything, output layer included)
    layers_on_gpu: int
    layers_in_ram: int
    output_on_gpu: bool
    weights_bytes: int
    weights_bytes_per_layer: int
    kv_bytes: int
    kv_bytes_gpu: int
    kv_bytes_ram: int
    kv_full_cells: int
    # The common fit keys (docs/output.md): one sequence's share of the cache, its recurrent state included, and
    # that fixed state apart (f32 cells of the recurrent layers, src/llama-memory-recurrent.cpp); 0 without
    # recurrent layers.
    kv_bytes_per_request: int = 0
    state_bytes_per_request: int = 0
    kv_swa_cells: int | None
    compute_buffer_bytes_gpu: int
    compute_buffer_bytes_ram: int
    output_buffer_bytes: int
    vram_bytes: int
    vram_needed_bytes: int
    ram_bytes: int | None
    ram_needed_bytes: int
    vram_lines: list[MemoryLine]
    ram_lines: list[MemoryLine]
    fits_gpu: bool
    fits_ram: bool
    fits: bool
    notes: list[str] = field(default_factory=list)


def kv_type_bytes(type_name: str) -> Fraction:
    """Bytes per cached value of a ggml type (block size / block bytes from ggml-common.h)."""
    key = KV_TYPES.get(type_name.lower())
    if key is None:
        raise SpecError(f"unknown llama.cpp cache type {type_name!r} (allowed: f16, bf16, f32, q8_0, q4_0, q4_1, "
                        "q5_0, q5_1)")
    block, size = GGML_TYPES[key]
    return Fraction(size, block)


def swa_cells(spec: ModelSpec, options: LlamaCppOptions, window: int | None = None) -> int:
    """Cells per stream of the sliding-window (or, Llama-4, chunked: LLAMA_SWA_TYPE_CHUNKED) cache
    (llama_kv_cache_iswa)."""
    window = window if window is not None else spec.sliding_window or 0
    per_stream = options.ctx_size // (1 if options.kv_unified else options.parallel)
    wanted = window * (options.parallel if options.kv_unified else 1) + options.ubatch
    return min(per_stream, ceil_div(wanted, options.pad) * options.pad)


def kv_layer_bytes(spec: ModelSpec, options: LlamaCppOptions) -> list[int]:
    """KV (and recurrent state) bytes of each layer for the whole cache, in layer order, from each layer kind:
    attention layers cache K and V per cell (MLA: the compressed latent as K, V a view of it); windowed and
    chunked layers hold size_swa cells per stream; recurrent layers (Mamba, linear attention, short conv)
    hold one f32 cell per sequence (src/llama-memory-recurrent.cpp, cache_policy.recurrent_cell_bytes);
    MLP-only blocks nothing."""
    from llmfit.engine.cache_policy import recurrent_cell_bytes

    k_bytes, v_bytes = kv_type_bytes(options.cache_type_k), kv_type_bytes(options.cache_type_v)
    streams = 1 if options.kv_unified else options.parallel
    full_cells = ceil_div(options.ctx_size, options.pad) * options.pad
    out = [0] * spec.num_hidden_layers
    for group in spec.layer_groups:
        kind = group.kind
        if kind.has_state:
            size = recurrent_cell_bytes(group) * max(1, options.parallel)
        elif kind.caches_tokens:
            k_values, v_values = kind.cell_values()
            per_cell = k_values * k_bytes + v_values * v_bytes
            window = kind.window
            if kind.fixed_tokens_per_request and window:
                cells = window * options.parallel
            elif window is not None:
                cells = swa_cells(spec, options, window) * streams
            else:
                cells = full_cells
            value = per_cell * cells
            size = ceil_div(value.numerator, value.denominator)
        else:
            size = 0
        for index in group.layer_indices:
            out[index] += size
    return out


def state_bytes_per_sequence(spec: ModelSpec) -> int:
    """One sequence's recurrent cells over every recurrent layer (conv + SSM state in f32,
    cache_policy.recurrent_cell_bytes); 0 for a model without recurrent layers."""
    from llmfit.engine.cache_policy import recurrent_cell_bytes

    return sum(group.layers * recurrent_cell_bytes(group) for group in spec.layer_groups if group.kind.has_state)


def compute_buffer_bytes(spec: ModelSpec, options: LlamaCppOptions, *, with_output: bool) -> int:
    """The modelled widest point of one ubatch on a device (see the module docstring)."""
    ub, h = options.ubatch, spec.hidden_size
    heads, d = spec.num_attention_heads, spec.real_head_dim
    n_kv = ceil_div(options.ctx_size // (1 if options.kv_unified else options.parallel), options.pad) * options.pad
    qkv = ub * (heads + 2 * spec.kv_heads) * d * 4
    attention = qkv + (0 if options.flash_attn else ub * n_kv * heads * 4)
    n_ff = spec.intermediate_size
    if spec.is_moe:
        n_ff = max(n_ff if spec.first_k_dense_replace else 0,
                   (spec.moe_intermediate_size or spec.intermediate_size) * spec.num_experts_per_tok)
    ffn = ub * 3 * n_ff * 4
    logits = ub * spec.vocab_size * 4 if with_output else 0
    return max(attention, ffn, logits) + 2 * ub * h * 4


def _placement(spec: ModelSpec, fmt: WeightFormat) -> tuple[int, int, int]:
    """(bytes of all repeating layers, token_embd bytes, output-layer bytes on its device)."""
    layers = embed = output = 0
    for item in group_bytes(spec, fmt):
        if item.group.per_layer:
            layers += item.bytes
        elif item.group.kind == "embedding":
            embed += item.bytes
        else:  # lm_head, final norm, extra towers
            output += item.bytes
    if spec.tie_word_embeddings:
        output += embed  # llama.cpp loads a duplicate of token_embd as the output on the output device
    return layers, embed, output


def llamacpp_fit(spec: ModelSpec, gpu: GpuSpec, fmt: WeightFormat, options: LlamaCppOptions,
                 ram_bytes: int | None = None) -> LlamaCppResult:
    n_layer = spec.num_hidden_layers
    layers_total, embed, output = _placement(spec, fmt)
    per_layer = ceil_div(layers_total, n_layer)
    kv_layers = kv_layer_bytes(spec, options)
    vram = gpu.usable_memory_bytes
    output_buffer = options.parallel * spec.vocab_size * 4

    def need(ngl: int) -> tuple[int, int, bool, int, int, int, int]:
        on_gpu = min(ngl, n_layer)
        first_gpu = n_layer - on_gpu
        out_gpu = ngl > n_layer
        kv_gpu = sum(kv_layers[first_gpu:]) if options.kv_offload else 0
        compute_gpu = compute_buffer_bytes(spec, options, with_output=out_gpu) if ngl > 0 else 0
        weights_gpu = layers_total - per_layer * first_gpu if on_gpu == n_layer else per_layer * on_gpu
        gpu_total = weights_gpu + (output if out_gpu else 0) + kv_gpu + compute_gpu + VRAM_FOOTPRINT_BYTES
        return gpu_total, on_gpu, out_gpu, kv_gpu, compute_gpu, weights_gpu, first_gpu

    if options.gpu_layers is not None:
        ngl = min(options.gpu_layers, n_layer + 1)
    else:
        ngl = next((n for n in range(n_layer + 1, -1, -1) if need(n)[0] <= vram), 0)
    gpu_total, on_gpu, out_gpu, kv_gpu, compute_gpu, weights_gpu, first_gpu = need(ngl)
    kv_total = sum(kv_layers)
    state_per_seq = state_bytes_per_sequence(spec)
    kv_ram = kv_total - kv_gpu
    compute_ram = compute_buffer_bytes(spec, options, with_output=not out_gpu) if (first_gpu or not out_gpu) else \
        2 * options.ubatch * spec.hidden_size * 4
    weights_ram = layers_total - weights_gpu
    ram_total = (weights_ram + embed + (0 if out_gpu else output) + kv_ram + compute_ram + output_buffer
                 + RAM_FOOTPRINT_BYTES)
    window = next((g.kind.window for g in spec.layer_groups
                   if g.kind.caches_tokens and g.kind.window is not None and not g.kind.fixed_tokens_per_request),
                  None)
    swa = swa_cells(spec, options, window) if window is not None else None
    vram_lines = [
        MemoryLine(name=f"weights of {on_gpu} layers", bytes=weights_gpu, note=f"~{per_layer:,} B per layer"),
        MemoryLine(name="output layer", bytes=output if out_gpu else 0,
                   note="on the GPU" if out_gpu else f"stays in RAM unless -ngl > {n_layer}"),
        MemoryLine(name="KV cache of the GPU layers", bytes=kv_gpu, note=f"K {options.cache_type_k}, V "
                   f"{options.cache_type_v}" + ("" if options.kv_offload else "; --no-kv-offload: all in RAM")
                   + (f"; with the recurrent state (f32, {state_per_seq:,} B per sequence over all layers)"
                      if state_per_seq else "")),
        MemoryLine(name="compute buffer", bytes=compute_gpu, note=f"one ubatch of {options.ubatch} tokens"
                   + (", flash attention" if options.flash_attn else ", KQ scores in f32")),
        MemoryLine(name="CUDA context", bytes=VRAM_FOOTPRINT_BYTES if ngl else 0, note="platform footprint"),
    ]
    ram_lines = [
        MemoryLine(name=f"weights of {n_layer - on_gpu} layers", bytes=weights_ram, note="mmapped from the file"),
        MemoryLine(name="token embeddings", bytes=embed, note="llama.cpp keeps the input layer on the CPU"),
        MemoryLine(name="output layer", bytes=0 if out_gpu else output),
        MemoryLine(name="KV cache of the RAM layers", bytes=kv_ram),
        MemoryLine(name="compute buffer (host)", bytes=compute_ram),
        MemoryLine(name="output buffer (logits)", bytes=output_buffer,
                   note=f"{options.parallel} seq x {spec.vocab_size:,} vocab x 4 B"),
        MemoryLine(name="runtime", bytes=RAM_FOOTPRINT_BYTES, note="platform footprint"),
    ]
    notes = []
    if not fmt.gguf_mix:
        notes.append(f"{fmt.name} is not a GGUF type: sizes as computed for that format; llama.cpp reads GGUF files")
    if state_per_seq:
        notes.append(f"recurrent state: {state_per_seq:,} B per sequence in f32 (one cell per sequence, "
                     f"{options.parallel} sequence(s)), the same at any context; the rest of the KV grows with -c")
    if ngl <= n_layer:
        notes.append(f"{n_layer - on_gpu} of {n_layer} layers run on the CPU: decode speed is bound by RAM bandwidth")
    fits_gpu = gpu_total <= vram
    fits_ram = ram_bytes is None or ram_total <= ram_bytes
    return LlamaCppResult(
        model=spec.name, gpu=gpu.name, dtype=fmt.name, ctx_size=options.ctx_size, parallel=options.parallel,
        n_layer=n_layer, gpu_layers=ngl, layers_on_gpu=on_gpu, layers_in_ram=n_layer - on_gpu, output_on_gpu=out_gpu,
        weights_bytes=layers_total + embed + output - (embed if spec.tie_word_embeddings else 0),
        weights_bytes_per_layer=per_layer, kv_bytes=kv_total, kv_bytes_gpu=kv_gpu, kv_bytes_ram=kv_ram,
        kv_full_cells=ceil_div(options.ctx_size, options.pad) * options.pad, kv_swa_cells=swa,
        kv_bytes_per_request=kv_total // max(1, options.parallel), state_bytes_per_request=state_per_seq,
        compute_buffer_bytes_gpu=compute_gpu, compute_buffer_bytes_ram=compute_ram,
        output_buffer_bytes=output_buffer, vram_bytes=vram, vram_needed_bytes=gpu_total, ram_bytes=ram_bytes,
        ram_needed_bytes=ram_total, vram_lines=vram_lines, ram_lines=ram_lines, fits_gpu=fits_gpu, fits_ram=fits_ram,
        fits=fits_gpu and fits_ram, notes=notes,
    )


def llamacpp_common_figures(result: LlamaCppResult, spec: ModelSpec, context_tokens: int, parallel: int,
                            cache_type: str) -> dict[str, Any]:
    """The fit keys every engine's answer carries (docs/output.md), as llama.cpp's offload plan gives them; the
    renderer nulls the rest. One GPU, no TP/PP; the compute buffer is the runtime overhead."""
    from llmfit.engine.params import count_params

    counts = count_params(spec)
    return {
        "engine": "llama.cpp", "gpu_count": 1, "tp": 1, "pp": 1, "replicas": 1, "kv_dtype": cache_type,
        "context_tokens": context_tokens, "total_params": counts.total_params, "active_params": counts.active_params,
        "gpu_memory_bytes_per_gpu": result.vram_bytes,
        "weights_bytes_per_gpu": result.vram_needed_bytes - result.kv_bytes_gpu - result.compute_buffer_bytes_gpu,
        "overhead_bytes": result.compute_buffer_bytes_gpu, "overhead_bytes_per_gpu": result.compute_buffer_bytes_gpu,
        # The whole cache over its --ctx-size cells.
        "kv_bytes_per_token": result.kv_bytes // max(1, result.ctx_size) if result.kv_bytes else None,
        "kv_tokens": result.kv_full_cells,
        # -np N slots of --ctx-size / N cells each: N requests of the full context at once, or none.
        "max_concurrency": parallel if result.fits else 0, "min_concurrency": parallel,
    }
