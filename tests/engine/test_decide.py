"""The lever advisor's rules (field guide 5.6, 6.1, 6.4 scenario C, 6.5 hard exercise) and its hardware choice."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from llmfit.engine.decide import (
    FINETUNE_LEVERS,
    FULL_MIN_EXAMPLES,
    HARDWARE_RULES,
    PEFT_MIN_EXAMPLES,
    RAG_CONTEXT_TOKENS,
    RULES,
    THIN_MARGIN_RATIO,
    Hardware,
    Lever,
    MethodEstimate,
    Problem,
    Situation,
    decide,
)
from llmfit.engine.records import replace, validate
from llmfit.presets import Registry

GIB = 2**30


def situation(*problems: str, **kw: object) -> Situation:
    return Situation(problems=tuple(Problem(p) for p in problems), **kw)  # type: ignore[arg-type]


def plan_of(result: object) -> dict[str, str]:
    return {step.problem.value: step.lever.value for step in result.plan}  # type: ignore[attr-defined]


# --- the guide's 5.6 table, row by row ------------------------------------------------------------------


def test_row1_style_problem_gets_a_better_prompt() -> None:
    # 5.6 row 1: "Model already knows the knowledge; output style is the problem -> Better prompt".
    result = decide(situation("format"))
    assert result.recommendation == "prompt"
    assert result.plan[0].then == [Lever.lora]  # PEFT only if the prompt is not enough
    assert "prompt-first" in result.plan[0].rules


@pytest.mark.parametrize("kw", [{"private": True}, {"freshness": "weekly"}, {"freshness": "daily"},
                                {"freshness": "monthly"}, {"private": True, "freshness": "weekly"}])
def test_row2_private_or_changing_knowledge_gets_rag(kw: dict[str, object]) -> None:
    result = decide(situation("knowledge", prompt_tried=True, examples=50_000, **kw))
    assert result.recommendation == "rag"
    # "Do not bake fresh knowledge into weights": every fine-tuning lever is excluded, whatever the data.
    assert set(result.plan[0].excluded) == set(FINETUNE_LEVERS)
    assert {a.lever for a in result.alternatives if a.status == "excluded"} == set(FINETUNE_LEVERS)


def test_row2_freshness_is_never_solved_by_fine_tuning() -> None:
    result = decide(situation("knowledge", freshness="weekly", examples=10**6, prompt_tried=True))
    fired = {r.rule for r in result.reasons}
    assert {"fresh-knowledge-rag", "no-finetune-for-freshness"} <= fired


def test_static_public_knowledge_prompt_first_then_rag() -> None:
    first = decide(situation("knowledge"))
    assert first.recommendation == "prompt" and first.plan[0].then == [Lever.rag]
    assert decide(situation("knowledge", prompt_tried=True)).recommendation == "rag"


@pytest.mark.parametrize("problem", ["format", "behavior"])
def test_row3_stable_behaviour_with_examples_gets_peft(problem: str) -> None:
    result = decide(situation(problem, prompt_tried=True, examples=PEFT_MIN_EXAMPLES))
    assert result.recommendation == "lora"
    assert "stable-behaviour-peft" in result.plan[0].rules
    # A step below the threshold: the examples go into the prompt instead.
    fewer = decide(situation(problem, prompt_tried=True, examples=PEFT_MIN_EXAMPLES - 1))
    assert fewer.recommendation == "prompt" and fewer.plan[0].then == [Lever.lora]
    assert "few-examples-prompt" in fewer.plan[0].rules


def test_row3_rag_is_not_the_tool_for_format() -> None:
    result = decide(situation("format", prompt_tried=True, examples=5000))
    assert Lever.rag in result.plan[0].excluded


def test_row4_capability_with_lots_of_data_gets_full_fine_tune() -> None:
    assert decide(situation("capability", examples=FULL_MIN_EXAMPLES)).recommendation == "full"
    middle = decide(situation("capability", examples=FULL_MIN_EXAMPLES - 1))
    assert middle.recommendation == "lora" and middle.plan[0].then == [Lever.full]
    little = decide(situation("capability", examples=PEFT_MIN_EXAMPLES - 1))
    assert little.recommendation == "prompt" and little.plan[0].then == [Lever.lora, Lever.full]


def test_no_budget_rules_out_training() -> None:
    assert decide(situation("capability", examples=10**6, budget_per_hour=0)).recommendation == "prompt"
    result = decide(situation("format", prompt_tried=True, examples=5000, budget_per_hour=0))
    assert result.recommendation == "prompt" and result.plan[0].then == []


def test_hard_exercise_fresh_policy_docs_and_strict_json() -> None:
    # 6.5: fresh internal policy docs + a strict JSON schema -> RAG for the knowledge, prompt first and
    # PEFT if needed for the format.
    result = decide(situation("knowledge", "format", freshness="weekly", private=True))
    assert plan_of(result) == {"knowledge": "rag", "format": "prompt"}
    assert result.recommendation == "rag + prompt"
    format_step = result.plan[1]
    assert format_step.then == [Lever.lora]
    assert result.alternatives[0].lever is Lever.lora and result.alternatives[0].status == "next"


def test_problems_are_canonical_and_required() -> None:
    assert situation("format", "knowledge", "format").problems == (Problem.knowledge, Problem.format)
    # The CLI validates its input at the edge (records.validate); a dataclass built in code is not re-checked.
    with pytest.raises(ValidationError):
        validate(Situation, {"problems": ()})
    with pytest.raises(ValidationError):
        validate(Situation, {"problems": (Problem.format,), "examples": -1})


def test_every_rule_names_its_guide_section_and_a_reason() -> None:
    for rule in (*RULES, *HARDWARE_RULES):
        assert rule.section and rule.reason and rule.when
        assert rule.effect in {"recommend", "next", "exclude"}
    # Every problem has a catch-all recommendation, so evaluation always ends with a lever.
    for problem in Problem:
        assert any(r.effect == "recommend" and problem in r.problems and r.test(situation(problem.value))
                   for r in RULES)


# --- the hardware choice (6.1 rows 9-10, 6.4 scenario C), with hand-built estimates -------------------


def estimates(usable: int, **needs: int) -> list[MethodEstimate]:
    out = []
    for lever in FINETUNE_LEVERS:
        need = needs[lever.value]
        out.append(MethodEstimate(method=lever, trainable_params=1, zero=0, total_bytes=need, total_bytes_per_gpu=need,
                                  usable_bytes_per_gpu=usable, margin_bytes_per_gpu=usable - need,
                                  margin_ratio=(usable - need) / usable, fits=need <= usable))
    return out


@pytest.fixture
def hardware(registry: Registry) -> Hardware:
    return Hardware(model=registry.model("7b"), gpu=registry.gpu("a100-80"))


def test_lora_when_it_fits_with_room(hardware: Hardware) -> None:
    fake = estimates(100, full=200, lora=50, qlora=30)
    result = decide(situation("behavior", prompt_tried=True, examples=5000), hardware, lambda hw: fake)
    assert result.recommendation == "lora" and result.feasible
    assert result.feasibility is not None and result.feasibility.rules == ["lora-fits"]


def test_thin_lora_margin_prefers_qlora(hardware: Hardware) -> None:
    # LoRA leaves half the thin-margin share free: QLoRA, and LoRA is listed as fitting only thinly.
    usable = 1000
    fake = estimates(usable, full=2000, lora=round(usable * (1 - THIN_MARGIN_RATIO / 2)), qlora=400)
    result = decide(situation("behavior", prompt_tried=True, examples=5000), hardware, lambda hw: fake)
    assert result.recommendation == "qlora"
    lora_alt = next(a for a in result.alternatives if a.lever is Lever.lora)
    assert lora_alt.status == "possible" and f"under {THIN_MARGIN_RATIO:.0%}" in lora_alt.reason


def test_only_qlora_fits_gives_qlora_and_nothing_fits_is_infeasible(hardware: Hardware) -> None:
    fake = estimates(100, full=400, lora=130, qlora=60)
    result = decide(situation("capability", examples=10**6), hardware, lambda hw: fake)
    assert result.recommendation == "qlora" and result.feasible
    assert result.feasibility is not None and result.feasibility.wanted is Lever.full
    none_fit = estimates(100, full=400, lora=300, qlora=150)
    result = decide(situation("capability", examples=10**6), hardware, lambda hw: none_fit)
    assert not result.feasible and result.feasibility is not None and result.feasibility.chosen is None


def test_full_fits_keeps_full(hardware: Hardware) -> None:
    fake = estimates(100, full=90, lora=40, qlora=20)
    assert decide(situation("capability", examples=10**6), hardware, lambda hw: fake).recommendation == "full"


def test_lora_thin_but_alone_stays_lora(hardware: Hardware) -> None:
    fake = estimates(100, full=400, lora=97, qlora=101)
    result = decide(situation("format", prompt_tried=True, examples=5000), hardware, lambda hw: fake)
    assert result.recommendation == "lora" and result.feasibility is not None
    assert result.feasibility.rules == ["lora-thin"]


def test_no_training_means_no_estimate_is_run(hardware: Hardware) -> None:
    def boom(hw: Hardware) -> list[MethodEstimate]:
        raise AssertionError("estimated a fine-tune for a RAG plan")

    assert decide(situation("knowledge", private=True), hardware, boom).recommendation == "rag"


def test_budget_over_price_is_infeasible(registry: Registry) -> None:
    gpu = replace(registry.gpu("a100-80"), price_per_hour=2.0)
    hw = Hardware(model=registry.model("7b"), gpu=gpu, gpu_count=4)
    fake = estimates(100, full=90, lora=40, qlora=20)
    sit = situation("behavior", prompt_tried=True, examples=5000, budget_per_hour=7.5)
    result = decide(sit, hw, lambda h: fake)
    assert result.feasibility is not None and result.feasibility.budget is not None
    assert result.feasibility.budget.cost_per_hour == pytest.approx(8.0)  # 4 GPUs x $2/h
    assert not result.feasible
    ok = decide(replace(sit, budget_per_hour=8.0), hw, lambda h: fake)
    assert ok.feasible


def test_latency_lower_bound_for_rag_context(registry: Registry) -> None:
    # Prefill FLOPs = 2 x params x tokens; Llama-2-7B has 6,738,415,616 params (HF model card count).
    hw = Hardware(model=registry.model("7b"), gpu=registry.gpu("a100-80"))
    result = decide(situation("knowledge", private=True, latency_ms=1.0), hw)
    lat = result.feasibility.latency if result.feasibility else None
    assert lat is not None
    assert lat.flops == 2 * 6_738_415_616 * RAG_CONTEXT_TOKENS
    tflops = registry.gpu("a100-80").tflops["bf16"]
    assert lat.prefill_ms_lower_bound == pytest.approx(lat.flops / (tflops * 1e12) * 1000)
    assert not lat.meets and not result.feasible
    assert decide(situation("knowledge", private=True, latency_ms=1000.0), hw).feasible


# --- monotonic in model size: every method is planned under the same settings ----------------------------


def _llama_like(hidden: int) -> object:
    from llmfit.specs import ModelSpec

    # Llama-2 proportions: head_dim 128, layers = hidden / 128, SwiGLU width ~ 8/3 h rounded to 256.
    inter = (hidden * 8 // 3 + 255) // 256 * 256
    return ModelSpec(name=f"llama-like-{hidden}", source="test", architecture="LlamaForCausalLM", hidden_size=hidden,
                     num_hidden_layers=hidden // 128, num_attention_heads=hidden // 128, intermediate_size=inter,
                     vocab_size=32000, max_position_embeddings=4096)


_RANK = {None: -1, Lever.qlora: 0, Lever.lora: 1, Lever.full: 2}


@pytest.mark.parametrize("gpu", ["rtx-4090", "a100-80"])
def test_choice_is_monotonic_in_model_size(registry: Registry, gpu: str) -> None:
    """A larger model never gets a heavier method: full >= LoRA >= QLoRA >= nothing, as the model grows."""
    wanted_full = situation("capability", examples=FULL_MIN_EXAMPLES)
    ranks = []
    for hidden in range(1024, 8192 + 1, 512):
        hw = Hardware(model=_llama_like(hidden), gpu=registry.gpu(gpu))  # type: ignore[arg-type]
        result = decide(wanted_full, hw)
        assert result.feasibility is not None
        assert len({e.grad_checkpointing for e in result.feasibility.methods}) == 1  # same settings
        ranks.append(_RANK[result.feasibility.chosen])
    assert ranks == sorted(ranks, reverse=True), ranks
    assert ranks[0] > ranks[-1]  # the sweep crosses at least one boundary
