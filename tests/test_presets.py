"""The built-in preset library: every model's computed parameter count equals its published count, KV
layouts are sane, every model runs through `fit`, and every GPU preset carries its sources.

Counts are checked against the figures quoted in each preset (`published_params`, from keras-hub preset
metadata, HF safetensors totals and shared/validation/param_counts.yaml, each cited in `params_source`).
Where a publisher gives only a rounded figure ("671B", "12.9B"), the computed count must lie within one
unit of the last published digit: publishers both round and truncate (DeepSeek's 36.6B active is
36.63B; its paper's 37B rounds that), so a tighter rule would encode guesses about their arithmetic.
"""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from llmfit.engine.layers import FullAttention, LatentAttention, SlidingAttention, attention_kind, kind_of_each_layer
from llmfit.engine.params import count_params
from llmfit.presets import load_registry
from llmfit.specs import GpuSpec, ModelSpec

REGISTRY = load_registry()
MODEL_NAMES = REGISTRY.model_names()
GPU_NAMES = REGISTRY.gpu_names()

# Presets with no exact published count, and why. Each must say so in its own params_source too.
KNOWN_UNPUBLISHED = {
    "falcon-7b": "TII published '7B' only; no exact count found in a primary source",
    "deepseek-v3": "DeepSeek publishes rounded figures (671B main model, 685B with the MTP module)",
    "deepseek-r1": "the DeepSeek-V3 architecture; rounded figures only",
    "deepseek-v3.2-exp": "DeepSeek publishes rounded figures (685B with the MTP layer)",
    "ai21-jamba-mini-1.6": "AI21 publishes '52B total / 12B active' only",
    "kimi-linear-48b-a3b-instruct": "Moonshot publishes '48B / 3B activated'; the Hub rounds the total to 49.1B",
    "falcon-h1-1.5b-instruct": "TII publishes the rounded size (1.5B) only",
}

# GPU presets other issues and tests refer to by name.
REQUIRED_GPUS = ["a100-40", "a100-80", "h100-80", "h200", "l4", "l40s", "a10g", "t4", "rtx-3090", "rtx-4090",
                 "mi300x", "b200"]


def _rounded(text: str) -> tuple[Decimal, Decimal]:
    """'12.9B' -> (12_900_000_000, 100_000_000): the value and one unit of its last digit."""
    match = re.fullmatch(r"([0-9]+)(?:\.([0-9]+))?([MB])", text)
    assert match, text
    scale = Decimal(10) ** (9 if match.group(3) == "B" else 6)
    decimals = len(match.group(2) or "")
    return Decimal(text[:-1]) * scale, scale / Decimal(10) ** decimals


def _kinds(spec: ModelSpec) -> list[type]:
    """The kind type of each decoder layer (SlidingAttention is a FullAttention subclass: compared by type)."""
    return [type(kind) for kind in kind_of_each_layer(spec)]


def _model(name: str) -> ModelSpec:
    return REGISTRY.model(name)


def test_library_size() -> None:
    assert len(MODEL_NAMES) >= 40
    assert len(GPU_NAMES) >= 20


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_model_count_equals_published(name: str) -> None:
    spec = _model(name)
    total = count_params(spec).total_params
    if spec.published_params is None:
        assert name in KNOWN_UNPUBLISHED, f"{name}: no published_params and not listed as known-unpublished"
        assert spec.params_source, f"{name}: says nothing about where its count comes from"
    else:
        assert name not in KNOWN_UNPUBLISHED, f"{name}: has a published count now; drop it from the list"
        assert total == spec.published_params, f"{name}: computed {total:,} != published {spec.published_params:,}"
    if spec.published_params_rounded:
        value, unit = _rounded(spec.published_params_rounded)
        assert abs(total - value) <= unit, f"{name}: {total:,} is not {spec.published_params_rounded}"


@pytest.mark.parametrize("name", [n for n in MODEL_NAMES if _model(n).is_moe])
def test_moe_active_params_match_published(name: str) -> None:
    spec = _model(name)
    counts = count_params(spec)
    assert counts.active_params < counts.total_params
    active = counts.active_params - (counts.embedding_params if spec.published_active_excludes_embedding else 0)
    assert spec.published_active_params or spec.published_active_params_rounded, f"{name}: no active count"
    if spec.published_active_params:
        assert active == spec.published_active_params
    if spec.published_active_params_rounded:
        value, unit = _rounded(spec.published_active_params_rounded)
        assert abs(active - value) <= unit, f"{name}: active {active:,} is not {spec.published_active_params_rounded}"


def test_mixtral_counts_by_hand() -> None:
    """Mixtral-8x7B from its shapes (config.json): 46,702,792,704 total (keras-hub), ~12.9B active."""
    spec = _model("mixtral-8x7b")
    h, layers, vocab, experts, inter = 4096, 32, 32000, 8, 14336
    attention = layers * (h * h * 2 + h * 1024 * 2)  # q and o: 4096x4096; k and v: 8 heads x 128
    expert = 3 * h * inter  # gate, up, down
    router = layers * experts * h
    norms = layers * 2 * h + h
    shared = 2 * vocab * h + attention + router + norms
    counts = count_params(spec)
    assert counts.total_params == shared + layers * experts * expert == 46_702_792_704
    assert counts.active_params == shared + layers * 2 * expert
    assert round(counts.active_params / 1e9, 1) == 12.9


def test_deepseek_v3_main_model_vs_mtp_convention() -> None:
    """671B main model; one MTP layer (11.5B unique, README_WEIGHTS.md) brings the checkpoint near 685B."""
    spec = _model("deepseek-v3")
    total = count_params(spec).total_params
    assert spec.num_hidden_layers == 61
    assert round(total / 1e9) == 671
    mtp_unique = Decimal("11.5e9")
    embedding_and_head_copies = 2 * spec.vocab_size * spec.hidden_size  # the MTP layer stores its own copies
    assert round((total + mtp_unique + embedding_and_head_copies) / Decimal("1e9")) in (684, 685)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_model_preset_is_well_formed(name: str) -> None:
    spec = _model(name)
    assert spec.name == name
    assert spec.source.strip()
    assert spec.hf_id and "/" in spec.hf_id, f"{name}: hf_id missing"
    # The preset name is the HF model name, lowercased, without the organisation (design.md) -- or one of the
    # field guide's generic sizes, which are Llama-2's.
    hf_name = spec.hf_id.split("/")[1].lower()
    assert name == hf_name or name in ("7b", "13b", "70b"), f"{name}: not named after {spec.hf_id}"
    for alias in spec.aliases:
        assert REGISTRY.model(alias).name == name, f"alias {alias} of {name} resolves elsewhere"


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_kv_layout_is_sane(name: str) -> None:
    spec = _model(name)
    assert spec.num_attention_heads % spec.kv_heads == 0
    if isinstance(attention_kind(spec), LatentAttention):
        assert spec.kv_lora_rank and spec.qk_rope_head_dim
    elif spec.head_dim is None:
        # No explicit head_dim: hidden_size must split evenly over the heads.
        assert spec.hidden_size % spec.num_attention_heads == 0
    kinds = _kinds(spec)
    assert len(kinds) == spec.num_hidden_layers
    if SlidingAttention in kinds:
        assert spec.sliding_window is not None and spec.sliding_window < spec.max_position_embeddings
        assert FullAttention in kinds or spec.family == "mistral", f"{name}: every layer windowed"


def test_attention_layouts_by_family() -> None:
    """Explicit head_dim and sliding patterns that planners get wrong (issue 3)."""
    gemma2 = _model("gemma-2-9b")
    assert gemma2.real_head_dim == 256 != gemma2.hidden_size // gemma2.num_attention_heads
    assert _kinds(gemma2)[:2] == [SlidingAttention, FullAttention]
    assert _kinds(gemma2).count(FullAttention) == 21
    gemma3 = _model("gemma-3-27b-pt")
    assert _kinds(gemma3)[:6] == [SlidingAttention] * 5 + [FullAttention]
    assert _kinds(gemma3).count(FullAttention) == 62 // 6
    oss = _model("gpt-oss-120b")
    assert _kinds(oss)[:2] == [SlidingAttention, FullAttention] and oss.sliding_window == 128
    assert _kinds(oss).count(FullAttention) == 18
    qwen3 = _model("qwen3-32b")
    assert qwen3.real_head_dim * qwen3.num_attention_heads == 8192 != qwen3.hidden_size
    assert _kinds(_model("llama-3.1-8b")) == [FullAttention] * 32


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_fit_runs_for_every_model(cli, name: str) -> None:  # type: ignore[no-untyped-def]
    run = cli("fit", name, "--gpu", "h200", "--format", "json")
    assert run.exit_code in (0, 1), f"{name}: exit {run.exit_code}: {run.stderr}"
    data = run.json()
    assert data["total_params"] == count_params(_model(name)).total_params
    assert (run.exit_code == 0) == data["fits"]


@pytest.mark.parametrize("name", GPU_NAMES)
def test_gpu_preset_is_well_formed(name: str) -> None:
    gpu: GpuSpec = REGISTRY.gpu(name)
    assert gpu.name == name
    assert gpu.memory > 0
    assert gpu.source.strip() and gpu.memory_source, f"{name}: memory needs its source"
    assert gpu.memory_bandwidth_bytes_per_s, f"{name}: no bandwidth"
    assert gpu.native_dtypes, f"{name}: no native dtypes"
    # Apple publishes no tensor TFLOPS; every other vendor's datasheet does.
    assert gpu.tflops or gpu.vendor == "apple", f"{name}: no TFLOPS"
    assert all(v > 0 for v in gpu.tflops.values())
    assert set(gpu.tflops) <= set(gpu.native_dtypes) | {"fp32", "tf32"}, f"{name}: TFLOPS for a dtype it lacks"
    if gpu.price_per_hour is not None:
        assert gpu.price_source, f"{name}: a price needs its source"
    if gpu.unified_memory:
        assert gpu.gpu_memory_share is not None and gpu.usable_memory_bytes < gpu.memory
    else:
        assert gpu.gpu_memory_share is None and gpu.usable_memory_bytes == gpu.memory


@pytest.mark.parametrize("name", GPU_NAMES)
def test_gpu_dtype_support_follows_architecture(name: str) -> None:
    """bf16 from Ampere (8.0), fp8 from Ada/Hopper (8.9), fp4 from Blackwell (10.0): CUDA programming guide."""
    gpu = REGISTRY.gpu(name)
    if gpu.vendor != "nvidia" or gpu.compute_capability is None:
        return
    cc = tuple(int(p) for p in gpu.compute_capability.split("."))
    assert ("bf16" in gpu.native_dtypes) == (cc >= (8, 0)), name
    assert ("fp8" in gpu.native_dtypes) == (cc >= (8, 9)), name
    assert ("fp4" in gpu.native_dtypes) == (cc >= (10, 0)), name


def test_required_gpus_exist() -> None:
    for name in REQUIRED_GPUS:
        assert REGISTRY.gpu(name).name == name


def test_unified_memory_share_is_applied() -> None:
    apple = [REGISTRY.gpu(n) for n in GPU_NAMES if REGISTRY.gpu(n).unified_memory]
    assert apple, "no Apple silicon preset"
    for gpu in apple:
        assert gpu.vendor == "apple"
        assert gpu.usable_memory_bytes == int(gpu.memory * gpu.gpu_memory_share)  # type: ignore[operator]
