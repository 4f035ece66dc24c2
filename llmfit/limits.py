"""Every bound llmfit holds hostile input to, in one place (docs/hardening.md lists them; a test checks it).

Each bound is far beyond any real model, file or device, so a real input never meets one; a value past
it is a typo or an attack, and is refused (exit 2, one line) where it enters, before anything is
allocated or iterated from it. Each constant carries its reason in the comment beside it; the
`BOUNDS` table at the end is what the docs and the tests read.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from llmfit.errors import LlmfitError

# ---- model architecture (config.json, GGUF metadata, presets) -----------------------------------------
# Published decoders have at most ~130 layers (Llama-3.1-405B: 126); the engine walks layers one by one.
MAX_LAYERS = 4096
# Attention / KV heads: the largest published count is 128 (Llama-3.1-405B, DeepSeek-V3).
MAX_HEADS = 16_384
# hidden_size, intermediate_size, head_dim, ranks: the widest published is 53,248 (405B's MLP).
MAX_WIDTH = 2**20
# Vocabulary: the largest published is 262,208 (Gemma 3).
MAX_VOCAB = 2**24
# Routed experts: the most published is 512 (Qwen3-Next); per token at most a few dozen.
MAX_EXPERTS = 65_536
# Context / position embeddings / any token count: the longest published window is 10M (Llama 4 Scout).
MAX_TOKENS = 2**40
# Any other integer a config holds (window sizes, steps, rope originals): a typo past this, not a model.
MAX_CONFIG_INT = 2**40
# rope_scaling factor: the largest published is 64 (YaRN); a context is its length times the factor.
MAX_ROPE_FACTOR = 10_000
# A float in a config (rope factor, norm eps, theta): finite and below this (rope_theta is at most ~1e8).
MAX_CONFIG_FLOAT = 1e12
# Entries of any one list in a config (layer_types has one per layer).
MAX_CONFIG_LIST = 2**16
# Parameters of one model: the largest published is ~2e12 (Kimi K2 is 1.04e12).
MAX_PARAMS = 10**15
# Bytes of one device or deployment: 1 EiB, a million times an H200.
MAX_BYTES = 2**60
# Decimal digits in a number typed on the command line or found in a file: 2**60 has 19.
MAX_NUMBER_CHARS = 40

# ---- GPU presets ---------------------------------------------------------------------------------------
# Peak dense TFLOPS of one accelerator: the fastest published (B200 fp4) is ~10,000.
MAX_TFLOPS = 1e7
# Memory bandwidth of one accelerator in bytes/s: the fastest published (B200) is 8e12.
MAX_BANDWIDTH_BYTES_PER_S = 10**16
# Price of one GPU-hour in USD: the most expensive on-demand is ~$15.
MAX_PRICE_PER_HOUR = 1e6
# GPUs compared by one `fit --gpu a,b,c`: a comparison table, not a sweep (that is `plan`).
MAX_GPU_LIST = 64

# ---- files ---------------------------------------------------------------------------------------------
# A config.json is a few kB (the largest Hub ones, with quantization maps, ~1 MB).
MAX_CONFIG_BYTES = 5 * 2**20
# model.safetensors.index.json: DeepSeek-V3's (91k tensors) is ~9 MB.
MAX_INDEX_BYTES = 64 * 2**20
# A safetensors JSON header: the safetensors library itself refuses headers over 100 MB.
MAX_SAFETENSORS_HEADER_BYTES = 100 * 2**20
# A .npy header (numpy writes at most 64 KiB for format 1.0, more only for huge structured dtypes).
MAX_NPY_HEADER_BYTES = 2**20
# A text file read whole (an engine start-up log, a preset): logs of a start-up are < 1 MB.
MAX_TEXT_BYTES = 64 * 2**20
# Nesting of any JSON document llmfit reads: config.json nests 3-4 levels, a safetensors header 3.
MAX_JSON_DEPTH = 64
# Items (values, keys, containers) in one JSON document: a 14 MB safetensors header has ~600k.
MAX_JSON_ITEMS = 2**22
# A path component: what Linux, macOS and Windows file systems accept (NAME_MAX).
MAX_PATH_COMPONENT_BYTES = 255
# A whole path: Linux PATH_MAX.
MAX_PATH_BYTES = 4096

# ---- quantize-demo -------------------------------------------------------------------------------------
# Weights held in float64 at once for round-to-nearest: 4M (32 MiB); a larger layer is sampled down.
MAX_QUANT_WEIGHTS = 2**22
# Rows (output channels) quantize-demo reports one by one; a taller layer is sampled to evenly spaced rows.
MAX_QUANT_ROWS = 4096
# Elements a weight or calibration file may claim: 2**34 (a 17-billion-entry tensor is no one layer).
MAX_MATRIX_ELEMENTS = 2**34
# Input columns GPTQ / AWQ work on: the Hessian is columns x columns (1024**2 x 8 B = 8 MiB), and the
# column-by-column GPTQ loop is rows x columns x block; a wider layer is sampled to its first columns.
MAX_GPTQ_COLUMNS = 1024
# Rows (output channels) GPTQ / AWQ work on; a taller layer is sampled to evenly spaced rows.
MAX_GPTQ_ROWS = 1024
# Calibration inputs (generated --samples, or rows of --calibration): GPTQ's own default is 128.
MAX_SAMPLES = 8192
# --seed: numpy seeds are unsigned; 32 bits is every seed a demo needs.
MAX_SEED = 2**32 - 1
# Largest |weight| or |input| quantize-demo takes: real weights are < 1e3; squares must stay finite.
MAX_ABS_VALUE = 1e15


class Bound(NamedTuple):
    name: str
    value: int | float
    why: str


# What docs/hardening.md lists (a test holds the page to this table).
BOUNDS: tuple[Bound, ...] = (
    Bound("MAX_LAYERS", MAX_LAYERS, "decoder layers; the largest published model has 126"),
    Bound("MAX_HEADS", MAX_HEADS, "attention / KV heads; the most published is 128"),
    Bound("MAX_WIDTH", MAX_WIDTH, "hidden / intermediate / head / rank widths; the widest published is 53,248"),
    Bound("MAX_VOCAB", MAX_VOCAB, "vocabulary; the largest published is 262,208"),
    Bound("MAX_EXPERTS", MAX_EXPERTS, "routed experts; the most published is 512"),
    Bound("MAX_TOKENS", MAX_TOKENS, "any token count (context, sequence, dataset); the longest window is 10M"),
    Bound("MAX_CONFIG_INT", MAX_CONFIG_INT, "a count of no other class (check_int's default)"),
    Bound("MAX_ROPE_FACTOR", MAX_ROPE_FACTOR, "rope_scaling factor; the largest published is 64"),
    Bound("MAX_CONFIG_FLOAT", MAX_CONFIG_FLOAT, "rope_theta and rope_scaling numbers; every float is finite"),
    Bound("MAX_CONFIG_LIST", MAX_CONFIG_LIST, "entries of one list in a config.json (layer_types: one per layer)"),
    Bound("MAX_PARAMS", MAX_PARAMS, "parameters of one model; the largest published is ~2e12"),
    Bound("MAX_BYTES", MAX_BYTES, "bytes of a device or deployment (1 EiB)"),
    Bound("MAX_NUMBER_CHARS", MAX_NUMBER_CHARS, "characters of one typed number"),
    Bound("MAX_TFLOPS", MAX_TFLOPS, "TFLOPS of one GPU preset; the fastest published is ~10,000"),
    Bound("MAX_BANDWIDTH_BYTES_PER_S", MAX_BANDWIDTH_BYTES_PER_S, "memory bandwidth of one GPU; B200 is 8e12"),
    Bound("MAX_PRICE_PER_HOUR", MAX_PRICE_PER_HOUR, "USD per GPU-hour"),
    Bound("MAX_GPU_LIST", MAX_GPU_LIST, "GPUs in one `fit --gpu a,b,c` comparison"),
    Bound("MAX_CONFIG_BYTES", MAX_CONFIG_BYTES, "config.json size"),
    Bound("MAX_INDEX_BYTES", MAX_INDEX_BYTES, "model.safetensors.index.json size; DeepSeek-V3's is ~9 MB"),
    Bound("MAX_SAFETENSORS_HEADER_BYTES", MAX_SAFETENSORS_HEADER_BYTES, "safetensors JSON header, as the library"),
    Bound("MAX_NPY_HEADER_BYTES", MAX_NPY_HEADER_BYTES, ".npy header"),
    Bound("MAX_TEXT_BYTES", MAX_TEXT_BYTES, "a text file read whole (a log)"),
    Bound("MAX_JSON_DEPTH", MAX_JSON_DEPTH, "nesting of any JSON read; real files nest 3-4 levels"),
    Bound("MAX_JSON_ITEMS", MAX_JSON_ITEMS, "values in one JSON document (decoded JSON costs ~60 B an item)"),
    Bound("MAX_PATH_COMPONENT_BYTES", MAX_PATH_COMPONENT_BYTES, "one path component (NAME_MAX)"),
    Bound("MAX_PATH_BYTES", MAX_PATH_BYTES, "a whole path (PATH_MAX)"),
    Bound("MAX_QUANT_WEIGHTS", MAX_QUANT_WEIGHTS, "weights quantize-demo rounds at once; larger is sampled"),
    Bound("MAX_QUANT_ROWS", MAX_QUANT_ROWS, "rows quantize-demo reports; taller is sampled"),
    Bound("MAX_MATRIX_ELEMENTS", MAX_MATRIX_ELEMENTS, "elements a .npy / safetensors tensor may claim"),
    Bound("MAX_GPTQ_COLUMNS", MAX_GPTQ_COLUMNS, "input columns GPTQ / AWQ use; wider is sampled"),
    Bound("MAX_GPTQ_ROWS", MAX_GPTQ_ROWS, "output rows GPTQ / AWQ use; taller is sampled"),
    Bound("MAX_SAMPLES", MAX_SAMPLES, "calibration inputs (--samples, --calibration rows)"),
    Bound("MAX_SEED", MAX_SEED, "--seed (numpy seeds are unsigned)"),
    Bound("MAX_ABS_VALUE", MAX_ABS_VALUE, "largest absolute weight or input quantize-demo takes"),
)


class LimitError(ValueError, LlmfitError):
    """A value past one of the bounds above, or of the wrong type; the message names the key."""


# config.json keys (any architecture, top level or nested text_config / vision_config) -> their bound.
# Every one must be an integer (not a bool, not a string, not 32.0) within [0, bound] or null.
CONFIG_INT_KEYS: dict[str, int] = {
    **dict.fromkeys(("num_hidden_layers", "n_layer", "n_layers", "num_layers", "first_k_dense_replace",
                     "max_window_layers", "num_nextn_predict_layers", "decoder_sparse_step",
                     "moe_layer_freq", "sliding_window_pattern", "full_attention_interval"), MAX_LAYERS),
    **dict.fromkeys(("num_attention_heads", "num_key_value_heads", "n_head", "n_heads", "n_head_kv",
                     "num_kv_heads", "num_heads", "multi_query_group_num", "linear_num_key_heads",
                     "linear_num_value_heads", "index_n_heads"), MAX_HEADS),
    **dict.fromkeys(("hidden_size", "intermediate_size", "head_dim", "moe_intermediate_size",
                     "shared_expert_intermediate_size", "kv_lora_rank", "q_lora_rank", "qk_rope_head_dim",
                     "qk_nope_head_dim", "v_head_dim", "ffn_hidden_size", "n_embed", "n_embd", "d_model",
                     "n_inner", "d_ff", "linear_key_head_dim", "linear_value_head_dim", "index_head_dim",
                     "global_head_dim"), MAX_WIDTH),
    "vocab_size": MAX_VOCAB,
    **dict.fromkeys(("num_experts", "num_local_experts", "n_routed_experts", "num_experts_per_tok",
                     "experts_per_token", "n_shared_experts", "n_group", "topk_group",
                     "num_shared_experts", "index_topk"), MAX_EXPERTS),
    **dict.fromkeys(("max_position_embeddings", "n_positions", "max_seq_len", "seq_length",
                     "max_sequence_length", "max_seq_length", "seq_len", "original_max_position_embeddings",
                     "attention_chunk_size"), MAX_TOKENS),
}
# Keys that hold an object (or null) when present; a list or a number there is refused.
CONFIG_OBJECT_KEYS = ("rope_scaling", "rope_parameters", "text_config", "vision_config", "quantization_config",
                      "audio_config")
# Keys that hold a list (or null) when present.
CONFIG_LIST_KEYS = ("layer_types", "architectures", "mlp_only_layers")


def check_config(data: dict[str, Any], where: str) -> None:
    """Types and bounds of a config dict, before anything is built from it (a per-layer list of 10**9
    entries, a loop of 10**12): each count llmfit reads an int in [0, its bound], containers of the
    right kind, every float finite, the rope parameters (and rope_theta) within MAX_CONFIG_FLOAT and the
    rope factor in (0, MAX_ROPE_FACTOR], no list longer than MAX_CONFIG_LIST. Keys llmfit does not
    read are left alone beyond that (their integers are already held to MAX_NUMBER_CHARS digits by the
    JSON reader). Nested objects (text_config, vision_config, rope_scaling) are held to the same rules;
    the walk is iterative (depth is already capped by the JSON reader)."""
    stack: list[tuple[str, Any, bool]] = [("", data, False)]
    while stack:
        prefix, node, rope = stack.pop()
        if isinstance(node, list):
            if len(node) > MAX_CONFIG_LIST:
                raise LimitError(f"{where}: {prefix or 'a list'} has {len(node):,} entries (limit {MAX_CONFIG_LIST:,})")
            stack.extend((f"{prefix}[{i}]", item, rope) for i, item in enumerate(node)
                         if isinstance(item, (dict, list, float)))
            continue
        if isinstance(node, float):
            _check_float(node, prefix, where, bounded=rope)
            continue
        if not isinstance(node, dict):
            continue
        for key, value in node.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if key in CONFIG_INT_KEYS and value is not None:
                check_int(value, name, where=where, high=CONFIG_INT_KEYS[key])
            elif key in CONFIG_OBJECT_KEYS and value is not None and not isinstance(value, dict):
                raise LimitError(f"{where}: {name} must be an object, got {_kind(value)}")
            elif key in CONFIG_LIST_KEYS and value is not None and not isinstance(value, list):
                raise LimitError(f"{where}: {name} must be a list, got {_kind(value)}")
            elif key in ("factor", "rope_theta") and value is not None:
                _check_positive(value, name, where, MAX_ROPE_FACTOR if key == "factor" else MAX_CONFIG_FLOAT)
            if isinstance(value, (dict, list, float)):
                stack.append((name, value, rope or key in ("rope_scaling", "rope_parameters")))


def _check_positive(value: object, name: str, where: str, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0 < value <= high:
        raise LimitError(f"{where}: {name} must be a number in (0, {high:g}], got {value!r}")


def _check_float(value: float, name: str, where: str, *, bounded: bool) -> None:
    if not math.isfinite(value) or (bounded and abs(value) > MAX_CONFIG_FLOAT):
        raise LimitError(f"{where}: {name} = {value!r} is not a finite number within {MAX_CONFIG_FLOAT:g}")


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, (int, float)):
        return f"a number ({value!r})"
    if isinstance(value, str):
        return f"a string ({value[:40]!r})"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def check_int(value: object, name: str, *, where: str = "", low: int = 0, high: int = MAX_CONFIG_INT) -> int:
    """An integer in [low, high]: a bool, a string ("32"), a float (32.0, 1e9) or an out-of-range value is
    one line naming the key."""
    prefix = f"{where}: " if where else ""
    if isinstance(value, bool) or not isinstance(value, int):
        raise LimitError(f"{prefix}{name} must be an integer, got {_kind(value)}")
    if not low <= value <= high:
        raise LimitError(f"{prefix}{name} = {value:,} is out of range (allowed {low:,} to {high:,})")
    return value
