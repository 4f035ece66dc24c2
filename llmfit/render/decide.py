"""DecideResult -> Document: the plan, the alternatives, the rules that fired, feasibility (formatting only)."""

from __future__ import annotations

from llmfit.engine.decide import LEVER_TITLES, DecideResult, Feasibility, Lever, PlanStep
from llmfit.render.document import Document, Section
from llmfit.units import DisplayUnits, format_bytes


def _lever(lever: Lever) -> str:
    return LEVER_TITLES[lever]


def _step_text(step: PlanStep) -> str:
    text = f"{_lever(step.lever)} for the {step.problem.value}"
    if step.then:
        text += f" (then {' / '.join(_lever(t) for t in step.then)} if needed)"
    return text


def _feasibility_sections(feasibility: Feasibility, units: DisplayUnits) -> list[Section]:
    sections = []
    where = f"{feasibility.model} on {feasibility.gpu}" + (f" x{feasibility.gpu_count}"
                                                            if feasibility.gpu_count > 1 else "")
    if feasibility.methods:
        rows = []
        for e in feasibility.methods:
            chosen = " <- chosen" if e.method is feasibility.chosen else ""
            rows.append([_lever(e.method), format_bytes(e.total_bytes_per_gpu, units),
                         format_bytes(e.usable_bytes_per_gpu, units),
                         ("+" if e.margin_bytes_per_gpu >= 0 else "-")
                         + format_bytes(abs(e.margin_bytes_per_gpu), units), f"{e.margin_ratio:+.0%}",
                         ("yes" if e.fits else "no")
                         + (" (gradient checkpointing)" if e.grad_checkpointing else "") + chosen])
        sections.append(Section(title=f"Fine-tuning memory: {where} (every method under the same settings: "
                                      "gradient checkpointing on, as QLoRA's recipe)",
                                columns=["method", "needs per GPU", "usable per GPU", "margin", "margin %", "fits"],
                                rows=rows, numeric=(1, 2, 3, 4)))
    checks = []
    if feasibility.budget is not None:
        b = feasibility.budget
        cost = "unknown (no price_per_hour in the GPU preset)" if b.cost_per_hour is None else \
            f"${b.cost_per_hour:,.2f}/h ({feasibility.gpu_count} x ${b.price_per_hour:,.2f})"
        checks.append(["budget", f"${b.budget_per_hour:,.2f}/h", cost,
                       "not checked" if b.meets is None else "ok" if b.meets else "OVER BUDGET"])
    if feasibility.latency is not None:
        lat = feasibility.latency
        checks.append(["latency", f"{lat.latency_ms:,.0f} ms",
                       f">= {lat.prefill_ms_lower_bound:,.1f} ms to prefill {lat.context_tokens:,} retrieved tokens "
                       f"at {lat.tflops:,.0f} TFLOPS peak", "ok" if lat.meets else "MISSED"])
    if checks:
        sections.append(Section(title="Requirements", columns=["", "stated", "computed", "verdict"], rows=checks))
    return sections


def decide_document(result: DecideResult, units: DisplayUnits) -> Document:
    plan_rows = [[step.problem.value, _lever(step.lever),
                  ", ".join(_lever(t) for t in step.then) or "-", step.reason] for step in result.plan]
    sections = [Section(title="Plan", columns=["problem", "lever now", "then, if not enough", "why"],
                        rows=plan_rows)]
    sections.append(Section(title="Alternatives (ranked)", columns=["#", "lever", "status", "why"],
                            rows=[[str(a.rank), _lever(a.lever), a.status, a.reason] for a in result.alternatives],
                            numeric=(0,)))
    sections.append(Section(title="Rules that fired", columns=["rule", "guide", "when", "effect"],
                            rows=[[r.rule, r.section, r.when,
                                   f"{r.effect} {', '.join(lever.value for lever in r.levers)}"]
                                  for r in result.reasons]))
    feasibility = result.feasibility
    if feasibility is not None:
        sections += _feasibility_sections(feasibility, units)

    plan_text = "; ".join(_step_text(step) for step in result.plan)
    if feasibility is not None and feasibility.methods and feasibility.wanted is not None:
        plan_text += " - " + ", ".join(
            f"{_lever(e.method)} needs {format_bytes(e.total_bytes_per_gpu, units)} of "
            f"{format_bytes(e.usable_bytes_per_gpu, units)}{'' if e.fits else ' (does not fit)'}"
            f"{' with gradient checkpointing' if e.grad_checkpointing else ''}"
            for e in feasibility.methods) + " per GPU"
    if result.feasible:
        verdict = f"RECOMMENDATION: {plan_text}"
    elif feasibility is not None and feasibility.wanted is not None and feasibility.chosen is None:
        verdict = (f"NOT FEASIBLE: no fine-tuning method fits {feasibility.model} on {feasibility.gpu}"
                   + (f" x{feasibility.gpu_count}" if feasibility.gpu_count > 1 else "") + f": {plan_text}")
    else:
        verdict = f"NOT FEASIBLE: {plan_text} - a stated requirement is not met"
    t = result.thresholds
    notes = [f"PEFT needs >= {int(t['peft_min_examples']):,} labelled examples; a full fine-tune >= "
             f"{int(t['full_min_examples']):,} (see docs/decide.md for the sources)"]
    if feasibility is not None and feasibility.methods:
        notes.append(f"LoRA is preferred to QLoRA when it leaves >= {t['thin_margin_ratio']:.0%} of usable memory "
                     "free; memory in " + ("binary GiB (2^30 bytes)" if units is DisplayUnits.gib
                                           else "decimal GB (10^9 bytes)"))
    notes += result.notes
    explain = [f"{r.rule} [{r.section}]: {r.reason}" for r in result.reasons]
    return Document(title="Which lever: prompt, RAG, LoRA, QLoRA or full fine-tune", sections=sections,
                    verdict=verdict, verdict_ok=result.feasible, notes=notes, explain=explain)
