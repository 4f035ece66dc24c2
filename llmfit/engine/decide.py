"""The lever advisor: prompt, RAG, LoRA, QLoRA or full fine-tune, from the field guide's rules.

The reasoning is the field guide's (5.6 decision table, 6.1 failure-fix chain, 6.4 scenario C, 6.5 hard
exercise): try the cheapest lever first; RAG for fresh or private knowledge, never fine-tuning for
freshness; PEFT for a stable format or behaviour with enough examples; a full fine-tune only for a deep
capability shift with lots of data and budget; QLoRA when the hardware allows nothing more.

The rules are data: `RULES` (what lever a problem calls for) and `HARDWARE_RULES` (which fine-tuning
method the hardware supports), each rule with the guide section it comes from, the condition in words,
the predicate, the lever and the reason. `decide()` evaluates them over a validated `Situation`; a
fine-tuning recommendation is checked against the memory the finetune engine computes for the model
and GPU (`estimate_methods`), never assumed. Pure: no I/O, no printing.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import Annotated, Generic, TypeVar

from llmfit.engine.records import FORBID_EXTRA, Check, record, replace
from llmfit.specs import GpuSpec, ModelSpec


class Problem(str, Enum):
    """What is wrong with the model's answers (guide 6.2: prompt, RAG and fine-tuning are different tools)."""

    knowledge = "knowledge"  # it does not know (or no longer knows) the facts
    format = "format"  # type: ignore[assignment]  # it knows, but the output shape/style is wrong (JSON schema, tone)
    behavior = "behavior"  # a domain behaviour that must repeat across many requests
    capability = "capability"  # a deep capability shift (a new domain, language, skill)


class Freshness(str, Enum):
    """How often the knowledge changes; anything but static is a freshness problem (guide 5.6 row 2)."""

    static = "static"
    monthly = "monthly"
    weekly = "weekly"
    daily = "daily"


class Lever(str, Enum):
    """The levers, cheapest first (guide 5.6: "try the cheapest lever first")."""

    prompt = "prompt"
    rag = "rag"
    lora = "lora"
    qlora = "qlora"
    full = "full"

    @property
    def cost_rank(self) -> int:
        return list(Lever).index(self)

    @property
    def trains(self) -> bool:
        return self in FINETUNE_LEVERS


FINETUNE_LEVERS = (Lever.lora, Lever.qlora, Lever.full)

LEVER_TITLES: dict[Lever, str] = {
    Lever.prompt: "better prompt",
    Lever.rag: "RAG (retrieval at inference)",
    Lever.lora: "LoRA / PEFT",
    Lever.qlora: "QLoRA",
    Lever.full: "full fine-tune",
}

# What each lever is for, in the guide's words (5.6 table, 6.2).
LEVER_PURPOSE: dict[Lever, str] = {
    Lever.prompt: "instruction framing when the model already knows enough (5.6 row 1: cheapest lever)",
    Lever.rag: "knowledge that is private or changes (5.6 row 2: retrieve it at inference)",
    Lever.lora: "a stable format/tone/behaviour across many requests, with data (5.6 row 3)",
    Lever.qlora: "fine-tuning on limited hardware: 4-bit frozen base + small adapters (5.6 row 5)",
    Lever.full: "a deep capability shift with lots of high-quality data and budget (5.6 row 4)",
}

# --- documented thresholds ---------------------------------------------------------------------------

# Labelled examples below which PEFT is not worth it: they go into a few-shot prompt instead.
# Source: LIMA (Zhou et al. 2023, "Less Is More for Alignment") taught a base model a response format
# and style from 1,000 curated examples; with fewer, the same examples serve better as few-shot
# demonstrations in the prompt, and a fine-tune has too few left over to hold out an eval set.
PEFT_MIN_EXAMPLES = 1000

# Labelled examples from which a full fine-tune is worth its cost over LoRA for a capability shift.
# Source: Biderman et al. 2024, "LoRA Learns Less and Forgets Less": full fine-tuning beat LoRA clearly
# on instruction fine-tuning with ~100K-example sets (Magicoder-Evol-Instruct-110K, MetaMathQA-395K);
# with smaller sets LoRA at a higher rank closes most of the gap and forgets less of the base.
FULL_MIN_EXAMPLES = 100_000

# LoRA is preferred to QLoRA only when it leaves at least this share of usable memory free. The
# finetune estimate is for one fixed sequence length; real batches reach the longest sequence in the
# data, and the PyTorch caching allocator fragments memory, so a run that fits on paper by a few
# percent OOMs in practice. Below this margin QLoRA (the guide's "even safer on limited hardware", 6.4 C).
THIN_MARGIN_RATIO = 0.10

# Retrieved context that RAG adds to each request: LlamaIndex's defaults (chunk_size=1024,
# similarity_top_k=2) = 2,048 tokens. Used for the latency check only.
RAG_CONTEXT_TOKENS = 2048

# decide plans every fine-tuning method with gradient checkpointing on: the QLoRA paper's recipe
# (artidoro/qlora qlora.py gradient_checkpointing default True, "You want to use this") and PEFT's
# prepare_model_for_kbit_training default, applied to all methods alike so they are compared fairly.
COMPARE_WITH_CHECKPOINTING = True


# --- the situation ----------------------------------------------------------------------------------


@record
class Hardware:
    """The model to fine-tune and the GPUs to train it on (validated specs)."""

    __pydantic_config__ = FORBID_EXTRA

    model: ModelSpec
    gpu: GpuSpec
    gpu_count: Annotated[int, Check(ge=1, le=65536)] = 1


@record
class Situation:
    """Everything the rules look at. Validated: a bad combination is an error, not a silent guess."""

    __pydantic_config__ = FORBID_EXTRA

    problems: Annotated[tuple[Problem, ...], Check(min_length=1)]
    freshness: Freshness = Freshness.static
    private: bool = False
    # labelled examples; None = unknown
    examples: Annotated[int, Check(ge=0, le=10**12)] | None = None
    prompt_tried: bool = False
    # USD per hour for training
    budget_per_hour: Annotated[float, Check(ge=0, le=10**7)] | None = None
    # end-to-end latency target
    latency_ms: Annotated[float, Check(gt=0, le=10**7)] | None = None

    def __post_init__(self) -> None:
        # One step per problem, in a stable order, whatever order (and repeats) the flags came in.
        object.__setattr__(self, "problems", tuple(p for p in Problem if p in self.problems))

    @property
    def changing(self) -> bool:
        return self.freshness is not Freshness.static

    @property
    def example_count(self) -> int:
        """Unknown counts as none: the rules never assume data the user did not state."""
        return self.examples or 0

    @property
    def no_budget(self) -> bool:
        return self.budget_per_hour == 0


# --- the rule tables ----------------------------------------------------------------------------------

T = TypeVar("T")


@record(kw_only=False)
class Rule(Generic[T]):
    """One line of the guide's reasoning: when `test` holds, `effect` the `lever` because `reason`."""

    id: str
    section: str  # where in the field guide the rule comes from
    when: str  # the condition in words (shown to the user)
    test: Callable[[T], bool]
    lever: Lever | tuple[Lever, ...]
    effect: str  # "recommend" (first firing one wins), "next" (escalation if it is not enough), "exclude"
    reason: str
    problems: tuple[Problem, ...] = tuple(Problem)

    @property
    def levers(self) -> tuple[Lever, ...]:
        return self.lever if isinstance(self.lever, tuple) else (self.lever,)


K, F, B, C = Problem.knowledge, Problem.format, Problem.behavior, Problem.capability

# Problem -> lever. Order matters among "recommend" rules of one problem: the first that fires wins.
RULES: tuple[Rule[Situation], ...] = (
    # Knowledge (5.6 row 2, 6.1 last row, 6.2 "RAG changes knowledge access").
    Rule("private-knowledge-rag", "5.6 row 2; 6.1 'fresh proprietary knowledge'", "the knowledge is private",
         lambda s: s.private, Lever.rag, "recommend",
         "The model has never seen private data: retrieve it at inference instead of baking it into weights.",
         (K,)),
    Rule("fresh-knowledge-rag", "5.6 row 2", "the knowledge changes (freshness monthly, weekly or daily)",
         lambda s: s.changing, Lever.rag, "recommend",
         "Do not bake fresh knowledge into weights: retrieval serves today's documents with no retraining.", (K,)),
    Rule("known-knowledge-prompt", "5.6 row 1", "static public knowledge and no better prompt tried yet",
         lambda s: not s.prompt_tried, Lever.prompt, "recommend",
         "The model may already know static public facts; a better prompt is the cheapest lever.", (K,)),
    Rule("missing-knowledge-rag", "6.2 'RAG changes knowledge access'; 6.7",
         "static public knowledge the model still gets wrong after a better prompt",
         lambda s: True, Lever.rag, "recommend",
         "The model does not know it: retrieval gives it the facts at inference; fine-tuning changes behaviour, "
         "not knowledge access.", (K,)),
    Rule("known-knowledge-then-rag", "5.6 rows 1-2", "a prompt is tried first",
         lambda s: not s.prompt_tried and not s.private and not s.changing, Lever.rag, "next",
         "If the better prompt shows the model does not know the facts, retrieve them (RAG).", (K,)),
    Rule("no-finetune-for-freshness", "5.6 'Do not use fine-tuning to solve a freshness problem'",
         "the knowledge changes", lambda s: s.changing, FINETUNE_LEVERS, "exclude",
         "Do not use fine-tuning to solve a freshness problem: every change would need a new training run, "
         "and the weights are stale in between.", (K,)),
    Rule("no-finetune-for-knowledge", "6.2 'Fine-tune changes behavior. RAG changes knowledge access.'",
         "a knowledge problem", lambda s: True, FINETUNE_LEVERS, "exclude",
         "Fine-tuning changes behaviour, not knowledge access: facts trained into weights cannot be updated, "
         "cited or access-controlled.", (K,)),
    # Format and behaviour (5.6 rows 1 and 3).
    Rule("prompt-first", "5.6 row 1; 5.6 'do not fine-tune before checking whether a stronger prompt "
         "already solves it'", "no better prompt tried yet", lambda s: not s.prompt_tried, Lever.prompt, "recommend",
         "Cheapest lever first: a stronger prompt (instructions, a schema, few-shot examples) may already "
         "solve it.", (F, B)),
    Rule("stable-behaviour-peft", "5.6 row 3", f"a better prompt was tried and >= {PEFT_MIN_EXAMPLES:,} labelled "
         "examples", lambda s: s.prompt_tried and s.example_count >= PEFT_MIN_EXAMPLES, Lever.lora, "recommend",
         "Behaviour change repeats across many requests and the data is stable: PEFT (LoRA) trains it in.",
         (F, B)),
    Rule("few-examples-prompt", "5.6 row 3 'if you have enough examples'",
         f"a better prompt was tried but fewer than {PEFT_MIN_EXAMPLES:,} labelled examples",
         lambda s: s.prompt_tried and s.example_count < PEFT_MIN_EXAMPLES, Lever.prompt, "recommend",
         f"Too few examples for PEFT to be worth it (threshold {PEFT_MIN_EXAMPLES:,}, after LIMA's 1,000 curated "
         "examples): use the best as few-shot demonstrations and collect more.", (F, B)),
    Rule("peft-if-prompt-fails", "5.6 row 3; 6.5 hard exercise 'PEFT if needed'",
         "the prompt is not enough", lambda s: s.example_count < PEFT_MIN_EXAMPLES or not s.prompt_tried,
         Lever.lora, "next",
         f"If the prompt does not hold the format on every request, PEFT with >= {PEFT_MIN_EXAMPLES:,} "
         "labelled examples.", (F, B)),
    Rule("best-prompt-without-training", "5.6 row 1", "training is ruled out", lambda s: True, Lever.prompt,
         "recommend", "With training ruled out, the strongest prompt (schema, few-shot examples, constrained "
         "decoding where the server offers it) is the lever left.", (F, B)),
    Rule("no-rag-for-format", "5.6 'Do not use RAG to solve a stable behavior-formatting problem'",
         "a format or behaviour problem", lambda s: True, Lever.rag, "exclude",
         "Retrieval adds knowledge, not a consistent output shape.", (F, B)),
    # Capability (5.6 row 4).
    Rule("capability-full", "5.6 row 4", f"a capability shift with >= {FULL_MIN_EXAMPLES:,} labelled examples and "
         "a training budget", lambda s: s.example_count >= FULL_MIN_EXAMPLES and not s.no_budget, Lever.full,
         "recommend", "A deep capability shift with lots of high-quality data and budget: maximum capacity, "
         "maximum cost.", (C,)),
    Rule("capability-peft", "5.6 rows 3-4; Biderman et al. 2024",
         f"a capability shift with {PEFT_MIN_EXAMPLES:,} to {FULL_MIN_EXAMPLES - 1:,} labelled examples",
         lambda s: s.example_count >= PEFT_MIN_EXAMPLES, Lever.lora, "recommend",
         f"Below {FULL_MIN_EXAMPLES:,} examples a full fine-tune rarely beats LoRA (which also forgets less of "
         "the base); LoRA at a higher rank on all linear layers.", (C,)),
    Rule("capability-little-data", "5.6 'try the cheapest lever first'",
         f"a capability shift with fewer than {PEFT_MIN_EXAMPLES:,} labelled examples",
         lambda s: True, Lever.prompt, "recommend",
         "Too little data to shift a capability by training: a stronger prompt (or a larger model) first.", (C,)),
    Rule("capability-then-train", "5.6 rows 3-4", "more data is collected",
         lambda s: s.example_count < FULL_MIN_EXAMPLES, (Lever.lora, Lever.full), "next",
         f"With >= {PEFT_MIN_EXAMPLES:,} examples LoRA, with >= {FULL_MIN_EXAMPLES:,} and budget a full "
         "fine-tune.", (C,)),
    # Budget.
    Rule("no-training-budget", "5.6 row 4 'budget'", "--budget-per-hour 0 (no money for training)",
         lambda s: s.no_budget, FINETUNE_LEVERS, "exclude",
         "With no training budget, only the levers that need no training run remain.", (F, B, C)),
)


@record(kw_only=False)
class MethodFacts:
    """What the hardware rules look at: which lever the problem wants and how each method fits."""

    wanted: Lever
    fits: dict[Lever, bool]
    margin_ratio: dict[Lever, float]

    def comfortable(self, lever: Lever) -> bool:
        return self.fits[lever] and self.margin_ratio[lever] >= THIN_MARGIN_RATIO


# Fine-tuning lever -> method the hardware supports, first firing rule wins (6.1 rows 9-10, 6.4 C).
HARDWARE_RULES: tuple[Rule[MethodFacts], ...] = (
    Rule("full-fits", "5.6 row 4", "a full fine-tune is wanted and fits",
         lambda f: f.wanted is Lever.full and f.fits[Lever.full], Lever.full, "recommend",
         "The full fine-tune fits this hardware."),
    Rule("lora-fits", "6.1 'Full fine-tuning is too expensive' -> LoRA; 6.4 C",
         f"LoRA fits with >= {THIN_MARGIN_RATIO:.0%} of usable memory to spare",
         lambda f: f.comfortable(Lever.lora), Lever.lora, "recommend",
         "LoRA on the full-precision base fits with room: faster than QLoRA and no quantization loss."),
    Rule("qlora-limited-hardware", "5.6 row 5; 6.1 'Even LoRA on full-precision base is too heavy'; 6.4 C",
         f"QLoRA fits and LoRA does not (or leaves under {THIN_MARGIN_RATIO:.0%} free)",
         lambda f: f.fits[Lever.qlora], Lever.qlora, "recommend",
         "Limited hardware: a frozen 4-bit base + small adapters is the method this GPU can actually support."),
    Rule("lora-thin", "6.4 C 'LoRA on fp16 might work with careful settings'",
         "only LoRA fits, with a thin margin", lambda f: f.fits[Lever.lora], Lever.lora, "recommend",
         "LoRA fits only with a thin margin and nothing leaner fits: use a shorter sequence or a smaller "
         "micro-batch to gain room."),
)


# --- fine-tuning feasibility (the adapter to the finetune engine) ---------------------------------------


@record
class MethodEstimate:
    """One fine-tuning method's memory on the given hardware, as the finetune engine computes it."""

    __pydantic_config__ = FORBID_EXTRA

    method: Lever
    trainable_params: int
    # ZeRO stage the estimate shards model states with (0 on one GPU)
    zero: int
    # whole deployment, all GPUs
    total_bytes: int
    total_bytes_per_gpu: int
    # memory a training process may use on one GPU
    usable_bytes_per_gpu: int
    # usable - total per GPU; negative when it does not fit
    margin_bytes_per_gpu: int
    # margin / usable
    margin_ratio: float
    fits: bool
    # planned with gradient checkpointing (all methods alike)
    grad_checkpointing: bool = True


def estimate_methods(hardware: Hardware) -> list[MethodEstimate]:
    """Full, LoRA and QLoRA memory from the finetune engine on `hardware`, under the same settings.

    This is the one place decide depends on the finetune engine. Every method is planned with the same
    settings, so the comparison is between methods, never between configurations: sequence 2048, micro-batch 1,
    the plain HF Trainer + PEFT recipe (AdamW, bf16), LoRA/QLoRA on PEFT's default targets, and gradient
    checkpointing on for all three (the QLoRA paper's recipe, and what prepare_model_for_kbit_training turns
    on). Since each method's memory then grows with the model, the choice is monotonic in model size: a
    larger model never gets a heavier method. On several GPUs the model states are sharded with ZeRO-3
    (FSDP), which is how a multi-GPU fine-tune is run; on one GPU there is nothing to shard.
    """
    from llmfit.engine.finetune import FinetuneOptions, finetune

    zero = 3 if hardware.gpu_count > 1 else 0
    estimates = []
    for lever in FINETUNE_LEVERS:
        options = FinetuneOptions(method=lever.value, gpus=hardware.gpu_count, zero=zero,  # type: ignore[arg-type]
                                  grad_checkpointing=COMPARE_WITH_CHECKPOINTING)
        result = finetune(hardware.model, hardware.gpu, options)
        usable = result.gpu_memory_bytes_per_gpu or hardware.gpu.usable_memory_bytes
        margin = usable - result.total_bytes_per_gpu
        estimates.append(MethodEstimate(
            method=lever, trainable_params=result.trainable_params, zero=zero, total_bytes=result.total_bytes,
            total_bytes_per_gpu=result.total_bytes_per_gpu, usable_bytes_per_gpu=usable,
            margin_bytes_per_gpu=margin, margin_ratio=margin / usable, fits=margin >= 0,
            grad_checkpointing=result.grad_checkpointing,
        ))
    return estimates


# --- latency and budget checks ------------------------------------------------------------------------


@record
class LatencyCheck:
    """The prefill time RAG's retrieved context adds, at best (peak tensor FLOPS): a lower bound."""

    __pydantic_config__ = FORBID_EXTRA

    context_tokens: int
    # 2 x active params x context tokens (one forward pass)
    flops: float
    # peak dense bf16/fp16 TFLOPS of all GPUs
    tflops: float
    prefill_ms_lower_bound: float
    latency_ms: float
    meets: bool


@record
class BudgetCheck:
    """Training hardware cost per hour against --budget-per-hour (needs a GPU price)."""

    __pydantic_config__ = FORBID_EXTRA

    budget_per_hour: float
    # per GPU, from the GPU preset; None when it has none
    price_per_hour: float | None
    # gpu_count x price_per_hour
    cost_per_hour: float | None
    # None when the price is unknown
    meets: bool | None


@record
class Feasibility:
    """Does the plan fit the hardware: the fine-tuning methods' memory, budget and latency."""

    __pydantic_config__ = FORBID_EXTRA

    model: str
    gpu: str
    gpu_count: int
    # the fine-tuning lever the problem calls for, if any
    wanted: Lever | None
    # the method the hardware supports; None when none fits
    chosen: Lever | None
    methods: list[MethodEstimate]
    thin_margin_ratio: float
    # ids of the hardware rules that fired
    rules: list[str]
    budget: BudgetCheck | None
    latency: LatencyCheck | None
    feasible: bool


# --- the result -------------------------------------------------------------------------------------------


@record
class Reason:
    """A rule that fired: where it comes from, its condition and why."""

    __pydantic_config__ = FORBID_EXTRA

    rule: str
    section: str
    problem: Problem | None
    effect: str
    levers: list[Lever]
    when: str
    reason: str


@record
class PlanStep:
    """What to do about one problem: the lever now, and the next one if it is not enough."""

    __pydantic_config__ = FORBID_EXTRA

    problem: Problem
    lever: Lever
    # escalation if this lever is not enough
    then: list[Lever]
    excluded: list[Lever]
    rules: list[str]
    reason: str


@record
class Alternative:
    """A lever not recommended, ranked: 'next' (escalation), 'possible', or 'excluded' (with the reason)."""

    __pydantic_config__ = FORBID_EXTRA

    rank: int
    lever: Lever
    status: str
    reason: str


@record
class DecideResult:
    """The recommendation: a plan (one step per problem), ranked alternatives, reasons and feasibility."""

    __pydantic_config__ = FORBID_EXTRA

    # the plan's levers now, in plan order, joined by ' + '
    recommendation: str
    levers: list[Lever]
    plan: list[PlanStep]
    alternatives: list[Alternative]
    reasons: list[Reason]
    feasibility: Feasibility | None
    feasible: bool
    situation: Situation
    thresholds: dict[str, float]
    notes: list[str]


# --- evaluation ------------------------------------------------------------------------------------------


def _reason(rule: Rule[T], problem: Problem | None) -> Reason:
    return Reason(rule=rule.id, section=rule.section, problem=problem, effect=rule.effect,
                  levers=list(rule.levers), when=rule.when, reason=rule.reason)


def _plan_step(situation: Situation, problem: Problem) -> tuple[PlanStep, list[Reason]]:
    fired = [r for r in RULES if problem in r.problems and r.test(situation)]
    excluded = sorted({lever for r in fired if r.effect == "exclude" for lever in r.levers},
                      key=lambda lever: lever.cost_rank)
    chosen = next(r for r in fired if r.effect == "recommend" and r.levers[0] not in excluded)
    escalation = [r for r in fired if r.effect == "next"]
    lever = chosen.levers[0]
    then = [t for r in escalation[:1] for t in r.levers if t not in excluded and t is not lever]
    used = [chosen, *(escalation[:1] if then else []), *(r for r in fired if r.effect == "exclude")]
    step = PlanStep(problem=problem, lever=lever, then=then, excluded=excluded,
                    rules=[r.id for r in used], reason=chosen.reason)
    return step, [_reason(r, problem) for r in used]


def _hardware_choice(wanted: Lever, estimates: list[MethodEstimate]) -> tuple[Lever | None, list[Rule[MethodFacts]]]:
    facts = MethodFacts(wanted=wanted, fits={e.method: e.fits for e in estimates},
                        margin_ratio={e.method: e.margin_ratio for e in estimates})
    for rule in HARDWARE_RULES:
        if rule.test(facts):
            return rule.levers[0], [rule]
    return None, []


def _latency(hardware: Hardware, latency_ms: float) -> LatencyCheck:
    from llmfit.engine.params import count_params

    active = count_params(hardware.model).active_params
    # Prefill of n tokens costs 2 x active params x n FLOPs (Kaplan et al. 2020, forward pass); at the
    # GPUs' peak dense tensor throughput that is the least time it can take.
    flops = 2.0 * active * RAG_CONTEXT_TOKENS
    per_gpu = hardware.gpu.tflops.get("bf16") or hardware.gpu.tflops.get("fp16") or 0.0
    tflops = per_gpu * hardware.gpu_count
    prefill_ms = flops / (tflops * 1e12) * 1000 if tflops > 0 else 0.0
    return LatencyCheck(context_tokens=RAG_CONTEXT_TOKENS, flops=flops, tflops=tflops,
                        prefill_ms_lower_bound=prefill_ms, latency_ms=latency_ms, meets=prefill_ms <= latency_ms)


def _budget(hardware: Hardware, budget_per_hour: float) -> BudgetCheck:
    price = hardware.gpu.price_per_hour
    cost = None if price is None else price * hardware.gpu_count
    return BudgetCheck(budget_per_hour=budget_per_hour, price_per_hour=price, cost_per_hour=cost,
                       meets=None if cost is None else cost <= budget_per_hour)


def decide(
    situation: Situation,
    hardware: Hardware | None = None,
    estimate: Callable[[Hardware], list[MethodEstimate]] = estimate_methods,
) -> DecideResult:
    """Evaluate the rule tables over `situation`; check a fine-tuning plan against `hardware`."""
    plan: list[PlanStep] = []
    reasons: list[Reason] = []
    for problem in situation.problems:
        step, step_reasons = _plan_step(situation, problem)
        plan.append(step)
        reasons += step_reasons
    notes: list[str] = []
    if situation.examples is None and any(p is not K for p in situation.problems):
        notes.append("--examples not given: counted as none, so no rule recommends training yet")

    wanted = max((s.lever for s in plan if s.lever.trains), key=lambda lever: lever.cost_rank, default=None)
    feasibility: Feasibility | None = None
    if hardware is not None:
        feasibility, hw_reasons = _feasibility(situation, hardware, wanted, plan, estimate)
        reasons += hw_reasons
        if feasibility.chosen is not None and feasibility.chosen is not wanted:
            hw_reason = " ".join(r.reason for r in hw_reasons if r.rule in feasibility.rules)
            plan = [replace(s, lever=feasibility.chosen, rules=s.rules + feasibility.rules,
                            reason=f"{s.reason} {hw_reason}")
                    if s.lever.trains else s for s in plan]
        plan, then_notes = _hardware_escalation(plan, feasibility.methods)
        notes += then_notes
        if feasibility.budget is not None and feasibility.budget.meets is None:
            notes.append(f"--budget-per-hour not checked: the {hardware.gpu.name} preset has no price_per_hour")
    elif wanted is not None:
        notes.append("give --model and --gpu to check that the fine-tune fits (it is not assumed)")
    if situation.latency_ms is not None and not any(s.lever is Lever.rag for s in plan):
        notes.append("--latency-ms is checked against RAG's retrieved context; this plan has no RAG step")
    elif situation.latency_ms is not None and hardware is None:
        notes.append("give --model and --gpu to check RAG's retrieved context against --latency-ms")

    levers = list(dict.fromkeys(s.lever for s in plan))  # plan order (knowledge, format, ...), once each
    feasible = feasibility.feasible if feasibility is not None else True
    return DecideResult(
        recommendation=" + ".join(lever.value for lever in levers),
        levers=levers,
        plan=plan,
        alternatives=_alternatives(plan, feasibility),
        reasons=reasons,
        feasibility=feasibility,
        feasible=feasible,
        situation=situation,
        thresholds={"peft_min_examples": PEFT_MIN_EXAMPLES, "full_min_examples": FULL_MIN_EXAMPLES,
                    "thin_margin_ratio": THIN_MARGIN_RATIO, "rag_context_tokens": RAG_CONTEXT_TOKENS},
        notes=notes,
    )


def _hardware_escalation(plan: list[PlanStep], estimates: list[MethodEstimate]) -> tuple[list[PlanStep], list[str]]:
    """The escalation after a prompt is also held to the hardware: LoRA there may have to be QLoRA."""
    notes: list[str] = []
    out = []
    for step in plan:
        then: list[Lever] = []
        for lever in step.then:
            if not lever.trains:
                then.append(lever)
                continue
            chosen, _ = _hardware_choice(lever, estimates)
            if chosen is None:
                notes.append(f"the {step.problem.value} escalation ({lever.value}) fits no fine-tuning method on "
                             "this hardware")
                then.append(lever)
            elif chosen not in then:
                then.append(chosen)
        out.append(replace(step, then=then))
    return out, notes


def _feasibility(
    situation: Situation,
    hardware: Hardware,
    wanted: Lever | None,
    plan: list[PlanStep],
    estimate: Callable[[Hardware], list[MethodEstimate]],
) -> tuple[Feasibility, list[Reason]]:
    reasons: list[Reason] = []
    # Methods are shown whenever training is on the table: wanted now, or the escalation after a prompt.
    trains_later = any(lever.trains for s in plan for lever in s.then)
    estimates = estimate(hardware) if wanted is not None or trains_later else []
    chosen: Lever | None = None
    feasible = True
    rules: list[str] = []
    if wanted is not None:
        chosen, fired = _hardware_choice(wanted, estimates)
        rules = [r.id for r in fired]
        reasons += [_reason(r, None) for r in fired]
        feasible = chosen is not None
    budget = None
    if situation.budget_per_hour is not None and wanted is not None:
        budget = _budget(hardware, situation.budget_per_hour)
        feasible = feasible and budget.meets is not False
    latency = None
    if situation.latency_ms is not None and any(s.lever is Lever.rag for s in plan):
        latency = _latency(hardware, situation.latency_ms)
        feasible = feasible and latency.meets
    return Feasibility(
        model=hardware.model.name, gpu=hardware.gpu.name, gpu_count=hardware.gpu_count, wanted=wanted,
        chosen=chosen, methods=estimates, thin_margin_ratio=THIN_MARGIN_RATIO, rules=rules, budget=budget,
        latency=latency, feasible=feasible,
    ), reasons


def _alternatives(plan: list[PlanStep], feasibility: Feasibility | None) -> list[Alternative]:
    now = {s.lever for s in plan}
    estimates = {e.method: e for e in feasibility.methods} if feasibility is not None else {}
    entries: list[tuple[int, Lever, str, str]] = []
    for lever in Lever:
        if lever in now:
            continue
        next_for = [s.problem.value for s in plan if lever in s.then]
        excluded_for = [s for s in plan if lever in s.excluded]
        estimate = estimates.get(lever)
        if estimate is not None and not estimate.fits:
            status, why = "excluded", "does not fit this hardware (see feasibility)"
        elif excluded_for and len(excluded_for) == len(plan):
            rule = next(r for r in RULES if r.id in excluded_for[0].rules and r.effect == "exclude"
                        and lever in r.levers)
            status, why = "excluded", rule.reason
        elif estimate is not None and estimate.margin_ratio < THIN_MARGIN_RATIO and feasibility is not None \
                and feasibility.wanted is not None:
            status, why = "possible", f"fits, but leaves under {THIN_MARGIN_RATIO:.0%} of usable memory free"
        elif next_for:
            status, why = "next", f"if the {' and '.join(next_for)} step is not enough"
        else:
            status, why = "possible", f"for {LEVER_PURPOSE[lever]}; not what this situation calls for"
        order = {"next": 0, "possible": 1, "excluded": 2}[status]
        entries.append((order, lever, status, why))
    entries.sort(key=lambda e: (e[0], e[1].cost_rank))
    return [Alternative(rank=i + 1, lever=lever, status=status, reason=why)
            for i, (_, lever, status, why) in enumerate(entries)]
