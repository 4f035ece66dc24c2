"""Invariants of the engine over generated architectures (hypothesis), not single hand-checked rows.

Each property is one a capacity planner must never break, whatever the model:
- more context or more requests never need less KV memory;
- fewer bits per weight never give more weight bytes (compared only within chains where every tensor
  gets fewer bits, so the claim is definitional, not an accident of one architecture);
- more data-parallel replicas never serve fewer concurrent requests (exactly replicas x one replica);
- the memory lines always add up to the totals they explain;
- the parameter count does not depend on the storage format or the checkpoint dtype;
- results survive their JSON form (`to_json` -> `records.validate`, schema_version aside).

Models are drawn from the built-in presets and from generated dense, GQA/MQA, sliding-window, MLA and
mixture-of-experts shapes. Example counts are bounded so the file runs in a few seconds.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmfit.engine.formats import FORMATS, get_format
from llmfit.engine.kv import KV_DTYPE_BITS, KvResult, kv_cache, kv_layout, request_bytes
from llmfit.engine.layers import LatentAttention, attention_kind
from llmfit.engine.params import count_params, tensor_groups
from llmfit.engine.records import replace, validate
from llmfit.engine.serving import Deployment, FitResult, ServingOptions, fit
from llmfit.engine.weights import weight_bytes
from llmfit.presets import load_registry
from llmfit.render.jsonout import SCHEMA_VERSION, to_json
from llmfit.specs import GpuSpec, ModelSpec
from llmfit.units import GIB

PROPERTY_SETTINGS = settings(
    max_examples=int(os.environ.get("LLMFIT_PROPERTY_EXAMPLES", "60")),  # raise it locally to hunt harder
    deadline=None,  # first calls build caches; the suite bound is the example count
    derandomize=not os.environ.get("LLMFIT_PROPERTY_EXAMPLES"),  # CI: the same examples every run, no flakes
    suppress_health_check=[HealthCheck.too_slow],
)

REGISTRY = load_registry(None)
PRESET_MODELS = [REGISTRY.model(name) for name in REGISTRY.model_names()]

# Chains of formats in which each next format stores every tensor in at most as many bits
# (see llmfit/engine/formats.py for each definition).
FEWER_BITS_CHAINS: list[list[str]] = [
    ["fp32", "bf16", "int8-raw", "int4-raw"],
    ["fp32", "fp16"],
    ["bf16", "fp8"],
    ["int8", "int4"],
    ["int8-g32", "int4-g32"],
    ["nf4-nodq", "nf4"],
    ["q8_0", "q5_1", "q5_0", "q4_1", "q4_0"],
    ["q6_k", "q5_k_m", "q4_k_m"],
]
KV_DTYPES = [name for name in KV_DTYPE_BITS if name in ("fp32", "fp16", "bf16", "fp8", "q8_0", "q4_0")]


@st.composite
def generated_models(draw: st.DrawFn) -> ModelSpec:
    """A valid decoder: dense or MoE, MHA/GQA/MQA or MLA, optionally with sliding-window layers."""
    heads = draw(st.sampled_from([1, 2, 4, 8, 12, 16, 32, 40, 64]))
    kv_heads = draw(st.sampled_from([d for d in range(1, heads + 1) if heads % d == 0]))
    head_dim = draw(st.sampled_from([16, 32, 64, 80, 128, 256]))
    layers = draw(st.integers(1, 96))
    fields: dict[str, Any] = {
        "name": "generated",
        "source": "hypothesis",
        "hidden_size": draw(st.sampled_from([heads * head_dim, draw(st.integers(64, 16384))])),
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "head_dim": head_dim,
        "intermediate_size": draw(st.integers(0, 65536)),
        "vocab_size": draw(st.integers(256, 262144)),
        "max_position_embeddings": draw(st.sampled_from([2048, 4096, 8192, 32768, 131072])),
        "tie_word_embeddings": draw(st.booleans()),
        "torch_dtype": draw(st.sampled_from(["bfloat16", "float16", "float32"])),
        "mlp_kind": draw(st.sampled_from(["gated", "plain"])),
        "norm_kind": draw(st.sampled_from(["rmsnorm", "layernorm"])),
        "attention_bias": draw(st.booleans()),
        "qk_norm": draw(st.booleans()),
    }
    shape = draw(st.sampled_from(["dense", "dense", "sliding", "moe", "mla"]))
    if shape == "sliding":
        fields["sliding_window"] = draw(st.sampled_from([128, 512, 4096]))
        fields["sliding_window_pattern"] = draw(st.integers(1, 6))
    elif shape == "moe":
        experts = draw(st.integers(2, 64))
        fields.update(num_experts=experts, num_experts_per_tok=draw(st.integers(1, experts)),
                      moe_intermediate_size=draw(st.integers(64, 8192)),
                      num_shared_experts=draw(st.integers(0, 2)),
                      first_k_dense_replace=draw(st.integers(0, layers)))
    elif shape == "mla":
        fields.update(kv_lora_rank=draw(st.sampled_from([64, 512])), qk_rope_head_dim=64, qk_nope_head_dim=128,
                      v_head_dim=128, q_lora_rank=draw(st.sampled_from([None, 1536])))
        del fields["num_key_value_heads"]
    return validate(ModelSpec, fields)


MODELS = st.one_of(st.sampled_from(PRESET_MODELS), generated_models())
GPUS = st.builds(lambda mib: GpuSpec(name="gpu", memory=mib * 2**20, source="hypothesis"),
                 st.integers(min_value=4 * 1024, max_value=256 * 1024))
CONTEXTS = st.integers(min_value=1, max_value=262144)
BLOCKS = st.sampled_from([1, 8, 16, 32, 128])


# ---- KV: more context or batch never needs less memory ----

@PROPERTY_SETTINGS
@given(spec=MODELS, kv_dtype=st.sampled_from(KV_DTYPES), a=CONTEXTS, b=CONTEXTS, block=BLOCKS)
def test_more_context_never_needs_less_kv(spec: ModelSpec, kv_dtype: str, a: int, b: int, block: int) -> None:
    short, long = sorted((a, b))
    layout = kv_layout(spec, kv_dtype)
    assert request_bytes(layout, short, block_size=block) <= request_bytes(layout, long, block_size=block)
    # Paging rounds up to whole blocks: never below the exact (contiguous) size.
    assert request_bytes(layout, long, block_size=block) >= request_bytes(layout, long, block_size=1)


@PROPERTY_SETTINGS
@given(spec=MODELS, kv_dtype=st.sampled_from(KV_DTYPES), context=CONTEXTS, a=st.integers(1, 4096),
       b=st.integers(1, 4096))
def test_more_requests_never_need_less_kv(spec: ModelSpec, kv_dtype: str, context: int, a: int, b: int) -> None:
    few, many = sorted((a, b))
    small = kv_cache(spec, kv_dtype=kv_dtype, context_tokens=context, batch=few)
    large = kv_cache(spec, kv_dtype=kv_dtype, context_tokens=context, batch=many)
    assert small.total_bytes <= large.total_bytes
    assert large.total_bytes == many * large.kv_bytes_per_request  # the batch line sums to the total


@PROPERTY_SETTINGS
@given(spec=MODELS, context=CONTEXTS)
def test_fewer_bits_per_cached_value_never_more_kv(spec: ModelSpec, context: int) -> None:
    by_bits = sorted(KV_DTYPES, key=lambda name: KV_DTYPE_BITS[name])
    sizes = [request_bytes(kv_layout(spec, name), context, block_size=16) for name in by_bits]
    assert sizes == sorted(sizes)


# ---- weights: fewer bits never more bytes; lines sum to the total; counts independent of format ----

@PROPERTY_SETTINGS
@given(spec=MODELS, chain=st.sampled_from(FEWER_BITS_CHAINS))
def test_fewer_bits_never_more_weight_bytes(spec: ModelSpec, chain: list[str]) -> None:
    sizes = [weight_bytes(spec, get_format(name)).weights_bytes for name in chain]
    assert sizes == sorted(sizes, reverse=True), dict(zip(chain, sizes, strict=True))


@PROPERTY_SETTINGS
@given(spec=MODELS, fmt=st.sampled_from(sorted(FORMATS)))
def test_weight_lines_sum_to_the_total(spec: ModelSpec, fmt: str) -> None:
    result = weight_bytes(spec, get_format(fmt))
    assert sum(line.bytes for line in result.lines) == result.weights_bytes
    assert result.packed_bytes + result.quant_metadata_bytes + result.unquantized_bytes == result.weights_bytes
    assert sum(line.params for line in result.lines) == result.total_params


@PROPERTY_SETTINGS
@given(spec=MODELS, formats=st.lists(st.sampled_from(sorted(FORMATS)), min_size=2, max_size=4),
       dtype=st.sampled_from(["bfloat16", "float16", "float32"]))
def test_parameter_count_is_independent_of_format_and_dtype(spec: ModelSpec, formats: list[str], dtype: str) -> None:
    counts = count_params(spec)
    assert counts.total_params == sum(group.params for group in tensor_groups(spec))
    components = (counts.embedding_params + counts.lm_head_params + counts.attention_params + counts.mlp_params
                  + counts.expert_params + counts.router_params + counts.vector_params + counts.extra_params)
    assert components == counts.total_params  # the component lines sum to the total
    assert {weight_bytes(spec, get_format(name)).total_params for name in formats} == {counts.total_params}
    assert count_params(replace(spec, torch_dtype=dtype)) == counts


# ---- fit: replicas, memory lines, JSON ----

def _fit(spec: ModelSpec, gpu: GpuSpec, fmt: str, *, gpu_count: int = 1, tp: int = 1, pp: int = 1,
         context: int = 8192, max_num_seqs: int = 256) -> FitResult:
    return fit(spec, gpu, get_format(fmt), Deployment(gpu_count=gpu_count, tp=tp, pp=pp),
               ServingOptions(context_tokens=context, max_num_seqs=max_num_seqs))


def _splits(spec: ModelSpec) -> list[tuple[int, int]]:
    """(tp, pp) pairs the engine accepts for this model (TP divides the heads and KV heads evenly)."""
    out = []
    for tp in (1, 2, 4, 8):
        kv = spec.kv_heads
        if spec.num_attention_heads % tp or (not isinstance(attention_kind(spec), LatentAttention)
                                             and ((tp <= kv and kv % tp) or (tp > kv and tp % kv))):
            continue
        out += [(tp, pp) for pp in (1, 2, 4) if pp <= spec.num_hidden_layers]
    return out


@PROPERTY_SETTINGS
@given(spec=MODELS, gpu=GPUS, fmt=st.sampled_from(["bf16", "int4", "fp8", "q4_k_m"]), data=st.data(),
       replicas=st.integers(1, 8), context=st.integers(1, 131072), seqs=st.integers(1, 1024))
def test_more_replicas_never_fewer_concurrent_requests(spec: ModelSpec, gpu: GpuSpec, fmt: str, data: st.DataObject,
                                                       replicas: int, context: int, seqs: int) -> None:
    tp, pp = data.draw(st.sampled_from(_splits(spec)))
    one = _fit(spec, gpu, fmt, gpu_count=tp * pp, tp=tp, pp=pp, context=context, max_num_seqs=seqs)
    many = _fit(spec, gpu, fmt, gpu_count=tp * pp * replicas, tp=tp, pp=pp, context=context, max_num_seqs=seqs)
    assert many.replicas == replicas
    assert (many.max_concurrency or 0) >= (one.max_concurrency or 0)
    if one.max_concurrency is not None:
        assert many.max_concurrency == replicas * one.max_concurrency
        assert many.recommended_concurrency == replicas * (one.recommended_concurrency or 0)
    assert many.fits >= one.fits  # adding replicas never turns a yes into a no


@PROPERTY_SETTINGS
@given(spec=MODELS, gpu=GPUS, fmt=st.sampled_from(sorted(FORMATS)), data=st.data(), context=st.integers(1, 131072))
def test_fit_memory_lines_sum_to_the_totals(spec: ModelSpec, gpu: GpuSpec, fmt: str, data: st.DataObject,
                                            context: int) -> None:
    tp, pp = data.draw(st.sampled_from(_splits(spec)))
    replicas = data.draw(st.integers(1, 3))
    r = _fit(spec, gpu, fmt, gpu_count=tp * pp * replicas, tp=tp, pp=pp, context=context)
    # One GPU: usable memory = weights + runtime overhead + KV budget (the budget may be negative); with PP, of
    # the stage whose pool is smallest (weights_bytes_per_gpu is the fullest GPU's).
    weights_there = r.stage_weights_bytes_per_gpu[r.limiting_stage] if pp > 1 else r.weights_bytes_per_gpu
    assert r.usable_bytes_per_gpu == weights_there + r.overhead_bytes_per_gpu + r.kv_budget_bytes_per_gpu
    assert r.usable_bytes_per_gpu <= r.gpu_memory_bytes_per_gpu
    assert sum(line.bytes_per_gpu for line in r.overhead_lines) == r.overhead_bytes_per_gpu
    assert sum(line.bytes for line in r.weights_lines) == r.weights_bytes
    # Whole deployment = per GPU x GPUs; one copy of the weights is spread, never lost, by the split.
    assert r.overhead_bytes == r.overhead_bytes_per_gpu * r.gpu_count
    assert r.kv_budget_bytes == r.kv_budget_bytes_per_gpu * r.gpu_count
    assert r.weights_bytes_per_gpu * tp * pp >= r.weights_bytes
    if tp * pp == 1:
        assert r.weights_bytes_per_gpu == r.weights_bytes
    assert r.loads == (r.kv_budget_bytes_per_gpu > 0)
    if r.kv_tokens is not None:
        assert r.kv_tokens == r.kv_blocks * r.block_size  # type: ignore[operator]
        assert 0 <= (r.recommended_concurrency or 0) <= (r.max_concurrency or 0) <= r.replicas * r.max_num_seqs


@PROPERTY_SETTINGS
@given(spec=MODELS, gpu=GPUS, fmt=st.sampled_from(sorted(FORMATS)), context=st.integers(1, 131072))
def test_fit_result_round_trips_through_json(spec: ModelSpec, gpu: GpuSpec, fmt: str, context: int) -> None:
    result = _fit(spec, gpu, fmt, context=context)
    payload = json.loads(to_json(result))  # allow_nan=False: raises on NaN or infinity
    assert payload.pop("schema_version") == SCHEMA_VERSION
    assert validate(FitResult, json.loads(json.dumps(payload))) == result
    listed = json.loads(to_json([result, result]))
    assert [validate(FitResult, item) for item in listed] == [result, result]


@PROPERTY_SETTINGS
@given(spec=MODELS, kv_dtype=st.sampled_from(KV_DTYPES), context=CONTEXTS, batch=st.integers(1, 512),
       typical=st.one_of(st.none(), CONTEXTS))
def test_kv_result_round_trips_through_json(spec: ModelSpec, kv_dtype: str, context: int, batch: int,
                                            typical: int | None) -> None:
    result = kv_cache(spec, kv_dtype=kv_dtype, context_tokens=context, batch=batch, typical_tokens=typical)
    payload = json.loads(to_json(result))
    assert payload.pop("schema_version") == SCHEMA_VERSION
    assert validate(KvResult, json.loads(json.dumps(payload))) == result


@pytest.mark.parametrize("chain", FEWER_BITS_CHAINS, ids=lambda c: ">".join(c))
def test_chains_are_ordered_by_nominal_bits(chain: list[str]) -> None:
    """The chains above really go from more to fewer bits (a mistyped chain would test nothing)."""
    bits = [get_format(name).packed_bits_per_weight() if get_format(name).is_quantized
            else get_format(name).other_bits for name in chain]
    assert bits == sorted(bits, reverse=True)
    assert GIB == 2**30


# ---- properties that a plausible breakage violates (issue 18: each was checked by breaking the code) ----
# Breakages these catch: `fits` always true (or never); max_concurrency computed without the context;
# every KV dtype costing the same; NaN allowed into JSON; no upper bound on token counts; every crash
# reported as bad input (exit 2) instead of an internal error (exit 3).

FULL_ATTENTION = [m for m in PRESET_MODELS if m.sliding_window is None and not getattr(m, "layer_types", None)
                  and m.kv_lora_rank is None]


@PROPERTY_SETTINGS
@given(spec=MODELS, fmt=st.sampled_from(["bf16", "int4", "fp8"]), share=st.integers(1, 99))
def test_a_gpu_smaller_than_the_weights_never_fits(spec: ModelSpec, fmt: str, share: int) -> None:
    weights = weight_bytes(spec, get_format(fmt)).weights_bytes
    gpu = GpuSpec(name="small", memory=max(1, weights * share // 100), source="hypothesis")
    result = _fit(spec, gpu, fmt, context=4096)
    assert not result.fits and not result.loads
    assert (result.max_concurrency or 0) == 0


@PROPERTY_SETTINGS
@given(spec=MODELS, fmt=st.sampled_from(["bf16", "int4"]), context=st.integers(1, 32768),
       minimum=st.integers(1, 64))
def test_a_gpu_with_room_for_the_requests_fits(spec: ModelSpec, fmt: str, context: int, minimum: int) -> None:
    """Memory for weights x 2 + 8 GiB + `minimum` full-context requests x 2: yes, with at least `minimum`."""
    weights = weight_bytes(spec, get_format(fmt)).weights_bytes
    per_request = request_bytes(kv_layout(spec, "fp16" if spec.torch_dtype == "float16" else "bf16"
                                          if spec.torch_dtype == "bfloat16" else "fp32"), context, block_size=16)
    memory = min(2 * weights + 8 * GIB + 2 * minimum * per_request, 2**59)
    result = fit(spec, GpuSpec(name="big", memory=memory, source="hypothesis"), get_format(fmt),
                 Deployment(gpu_count=1, tp=1, pp=1), ServingOptions(context_tokens=context, min_concurrency=minimum,
                                                         max_num_seqs=4096))
    assert result.fits, (memory, result.kv_budget_bytes, result.max_concurrency)
    assert (result.max_concurrency or 0) >= minimum


@PROPERTY_SETTINGS
@given(spec=st.sampled_from(FULL_ATTENTION), gpu=GPUS, fmt=st.sampled_from(["bf16", "int4"]),
       context=st.integers(256, 16384), factor=st.integers(4, 16))
def test_longer_context_serves_fewer_requests(spec: ModelSpec, gpu: GpuSpec, fmt: str, context: int,
                                              factor: int) -> None:
    """Full attention: KV per request grows with the context, so concurrency falls (never rises); by a
    factor >= 4 it strictly falls whenever the short context served >= 4 (a result that ignores the
    context would not)."""
    short = _fit(spec, gpu, fmt, context=context, max_num_seqs=10**6)
    long = _fit(spec, gpu, fmt, context=context * factor, max_num_seqs=10**6)
    assert (long.max_concurrency or 0) <= (short.max_concurrency or 0)
    assert long.kv_bytes_per_request > short.kv_bytes_per_request
    if (short.max_concurrency or 0) >= 4:
        assert (long.max_concurrency or 0) < (short.max_concurrency or 0)


@PROPERTY_SETTINGS
@given(spec=MODELS, context=CONTEXTS)
def test_wider_kv_dtypes_cost_strictly_more_per_token(spec: ModelSpec, context: int) -> None:
    """fp8 < bf16 = fp16 < fp32 per token and per request, for every model (a KV cache that ignored
    its dtype would cost the same in all)."""
    per_token = {name: kv_cache(spec, kv_dtype=name, context_tokens=context).kv_bytes_per_token
                 for name in ("fp8", "bf16", "fp16", "fp32")}
    assert per_token["fp8"] < per_token["bf16"] == per_token["fp16"] < per_token["fp32"], per_token
    assert per_token["fp32"] == 2 * per_token["bf16"] == 4 * per_token["fp8"]


NON_FINITE = st.sampled_from([float("nan"), float("inf"), float("-inf")])


@PROPERTY_SETTINGS
@given(spec=MODELS, gpu=GPUS, value=NON_FINITE, key=st.sampled_from(["gpu_util", "bits_per_weight"]))
def test_json_output_never_holds_nan_or_infinity(spec: ModelSpec, gpu: GpuSpec, value: float, key: str) -> None:
    """to_json refuses a non-finite figure (json.dumps allow_nan=False) rather than printing NaN, which
    strict JSON parsers (jq, JavaScript) reject; and real results always parse strictly."""
    result = _fit(spec, gpu, "bf16", context=2048)

    def refuse(name: str) -> None:
        raise AssertionError(f"{name} in JSON output")

    json.loads(to_json(result), parse_constant=refuse)
    broken = replace(result, **{key: value})
    with pytest.raises(ValueError):
        to_json(broken)


@PROPERTY_SETTINGS
@given(n=st.integers(min_value=2**40 + 1, max_value=10**39), suffix=st.sampled_from(["", "k", "K", "M"]))
def test_token_counts_have_an_upper_bound(n: int, suffix: str) -> None:
    from llmfit import limits
    from llmfit.errors import UnitError
    from llmfit.units import parse_count, parse_tokens

    assert limits.MAX_TOKENS == 2**40
    with pytest.raises(UnitError):
        parse_tokens(f"{n}{suffix}", what="--context")
    with pytest.raises(UnitError):
        parse_tokens(n, what="--context")
    with pytest.raises(UnitError):
        parse_count(str(n * 10**6), what="--dataset-tokens")


@PROPERTY_SETTINGS
@given(n=st.integers(min_value=1, max_value=2**40))
def test_token_counts_up_to_the_bound_are_exact(n: int) -> None:
    from llmfit.units import parse_tokens

    assert parse_tokens(str(n)) == n
    if n % 1024 == 0:
        assert parse_tokens(f"{n // 1024}k") == n


INTERNAL_ERRORS = st.sampled_from([RuntimeError("boom"), KeyError("x"), ZeroDivisionError("division by zero"),
                                   TypeError("unsupported operand"), AttributeError("no attribute"),
                                   RecursionError("maximum recursion depth"), IndexError("list index"),
                                   ValueError("a plain ValueError is a bug, not bad input"), OverflowError("big"),
                                   AssertionError("")])


@settings(PROPERTY_SETTINGS, max_examples=20)
@given(error=INTERNAL_ERRORS, command=st.sampled_from([["fit", "7b", "--gpu", "a100-80"], ["kv", "7b"],
                                                       ["finetune", "7b", "--gpu", "a100-80"]]))
def test_an_internal_error_is_exit_3_not_bad_input(error: Exception, command: list[str]) -> None:
    """Any exception that is not an LlmfitError is a bug: exit 3 with one `internal error:` line (a
    top level that turned every crash into exit 2 would tell CI its input was wrong)."""
    from test_fuzz_cli import invoke

    import llmfit.cli.resolve as resolve
    from llmfit.errors import SpecError

    def boom(*args: object, **kwargs: object) -> None:
        raise error

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(resolve, "registry", boom)
        code, out, err = invoke([*command, "--format", "json"])
    assert code == 3, (code, err)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("internal error: "), err
    assert "Traceback" not in err and out == ""

    def bad_input(*args: object, **kwargs: object) -> None:
        raise SpecError("bad input")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(resolve, "registry", bad_input)
        code, out, err = invoke([*command, "--format", "json"])
    assert code == 2 and err.strip() == "error: bad input", (code, err)
