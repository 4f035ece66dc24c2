"""`llmfit decide` through the CLI: every row of the field guide's 5.6 table, the 6.5 hard exercise,
scenario C (6.4), exit codes, JSON/Markdown, and the questionnaire under a pseudo-terminal."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from typing import Any

import pytest

from llmfit.engine.decide import FULL_MIN_EXAMPLES, PEFT_MIN_EXAMPLES


def decide_json(cli: Any, *args: str, code: int = 0) -> Any:
    run = cli("decide", *args, "--format", "json")
    assert run.exit_code == code, run.stderr
    return run.json()


def plan_of(data: Any) -> dict[str, str]:
    return {step["problem"]: step["lever"] for step in data["plan"]}


# --- guide 5.6, one test per row --------------------------------------------------------------------------


def test_row1_model_knows_it_style_is_the_problem_better_prompt(cli: Any) -> None:
    data = decide_json(cli, "--problem", "format")
    assert data["recommendation"] == "prompt"
    assert data["plan"][0]["then"] == ["lora"]
    assert any(r["rule"] == "prompt-first" and "Cheapest" in r["reason"] for r in data["reasons"])


@pytest.mark.parametrize("flags", [["--private"], ["--freshness", "weekly"], ["--public", "--freshness", "daily"]])
def test_row2_private_or_weekly_knowledge_rag(cli: Any, flags: list[str]) -> None:
    data = decide_json(cli, "--problem", "knowledge", *flags, "--examples", str(FULL_MIN_EXAMPLES),
                       "--prompt-tried")
    assert data["recommendation"] == "rag"
    excluded = {a["lever"] for a in data["alternatives"] if a["status"] == "excluded"}
    assert {"lora", "qlora", "full"} <= excluded


def test_row2_freshness_alone_implies_a_knowledge_problem(cli: Any) -> None:
    assert decide_json(cli, "--freshness", "weekly")["recommendation"] == "rag"


def test_row3_stable_format_with_examples_peft(cli: Any) -> None:
    for problem in ("format", "behavior"):
        data = decide_json(cli, "-p", problem, "--prompt-tried", "--examples", str(PEFT_MIN_EXAMPLES))
        assert data["recommendation"] == "lora"
    few = decide_json(cli, "-p", "format", "--prompt-tried", "--examples", str(PEFT_MIN_EXAMPLES - 1))
    assert few["recommendation"] == "prompt"


def test_row4_capability_shift_with_data_and_budget_full(cli: Any) -> None:
    data = decide_json(cli, "-p", "capability", "--examples", str(FULL_MIN_EXAMPLES), "--budget-per-hour", "100")
    assert data["recommendation"] == "full"
    assert data["situation"]["budget_per_hour"] == 100
    no_budget = decide_json(cli, "-p", "capability", "--examples", str(FULL_MIN_EXAMPLES), "--budget-per-hour", "0")
    assert no_budget["recommendation"] == "prompt"


def test_hard_exercise_policy_docs_and_json_schema(cli: Any) -> None:
    # 6.5: fresh internal policy docs + strict JSON schema -> RAG for the knowledge, prompt first and
    # PEFT if needed for the format.
    data = decide_json(cli, "-p", "knowledge", "-p", "format", "--freshness", "weekly", "--private")
    assert data["recommendation"] == "rag + prompt"
    assert plan_of(data) == {"knowledge": "rag", "format": "prompt"}
    assert data["plan"][1]["then"] == ["lora"]
    assert data["feasible"] is True
    table = cli("decide", "-p", "knowledge,format", "--freshness", "weekly", "--private")
    assert table.exit_code == 0
    assert "RAG (retrieval at inference) for the knowledge; better prompt for the format (then LoRA / PEFT if " \
           "needed)" in " ".join(table.stdout.split())


# --- bad input and output formats ---------------------------------------------------------------------------


@pytest.mark.parametrize("args, fragment", [
    ((), "--problem"),
    (("--problem", "speed"), "unknown --problem 'speed'"),
    (("--freshness", "hourly"), "unknown --freshness"),
    (("-p", "format", "--examples", "-3"), "--examples"),
    (("-p", "format", "--examples", str(10**15)), "--examples"),
    (("-p", "format", "--model", "7b"), "--model and --gpu go together"),
    (("-p", "format", "--model", "7b", "--gpu", "nope-9000"), "unknown gpu"),
    (("-p", "format", "--latency-ms", "0"), "--latency-ms"),
    (("-p", "format", "--budget-per-hour", "-1"), "--budget-per-hour"),
])
def test_bad_input_is_one_line_and_exit_2(cli: Any, args: tuple[str, ...], fragment: str) -> None:
    run = cli("decide", *args)
    assert run.exit_code == 2
    assert fragment in run.stderr and len(run.stderr.strip().splitlines()) == 1 and "Traceback" not in run.stderr


def test_markdown_has_the_plan_and_the_rules(cli: Any) -> None:
    run = cli("decide", "-p", "knowledge", "--private", "--format", "markdown")
    assert run.exit_code == 0
    assert "### Plan" in run.stdout and "| knowledge | RAG" in run.stdout
    assert "private-knowledge-rag" in run.stdout and "**Verdict:** RECOMMENDATION" in run.stdout


def test_json_keys(cli: Any) -> None:
    data = decide_json(cli, "-p", "format")
    assert {"schema_version", "recommendation", "alternatives", "reasons", "feasibility", "plan", "feasible",
            "thresholds"} <= set(data)
    assert data["feasibility"] is None  # no --model/--gpu: nothing to check
    assert [a["rank"] for a in data["alternatives"]] == list(range(1, len(data["alternatives"]) + 1))


def test_latency_target_checks_rag_context(cli: Any) -> None:
    tight = decide_json(cli, "-p", "knowledge", "--private", "--model", "7b", "--gpu", "a100-80",
                        "--latency-ms", "1", code=1)
    assert tight["feasibility"]["latency"]["meets"] is False
    loose = decide_json(cli, "-p", "knowledge", "--private", "--model", "7b", "--gpu", "a100-80",
                        "--latency-ms", "2000")
    assert loose["feasibility"]["latency"]["meets"] is True
    assert loose["feasibility"]["methods"] == []  # a RAG plan trains nothing


# --- the questionnaire under a pseudo-terminal ------------------------------------------------------------


def _converse(answers: list[tuple[str, str]], timeout: float = 20.0) -> tuple[int, str]:
    """Run `python -m llmfit decide` on a pty; answer each prompt once its text has appeared."""
    pty = pytest.importorskip("pty")
    master, slave = pty.openpty()
    env = dict(os.environ, NO_COLOR="1", COLUMNS="200", TERM="xterm")
    proc = subprocess.Popen([sys.executable, "-m", "llmfit", "decide"], stdin=slave, stdout=slave, stderr=slave,
                            env=env, close_fds=True)
    os.close(slave)
    seen = ""
    searched_from = 0
    pending = list(answers)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the child closed the pty (Linux raises EIO)
                    break
                if not chunk:
                    break
                seen += chunk.decode(errors="replace")
            if pending:
                found = seen.find(pending[0][0], searched_from)
                if found >= 0 and seen.rstrip().endswith(":"):
                    os.write(master, pending[0][1].encode() + b"\r")
                    searched_from = found + len(pending[0][0])
                    pending.pop(0)
            elif proc.poll() is not None and not ready:
                break
        else:
            proc.kill()
            pytest.fail(f"questionnaire timed out; output so far:\n{seen}")
        return proc.wait(timeout=5), seen
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()


def test_questionnaire_hard_exercise_on_a_terminal() -> None:
    code, output = _converse([
        ("(knowledge)", "y"), ("(format)", "y"), ("(behavior)", "n"), ("(capability)", "n"),
        ("How often", "weekly"), ("private", "y"), ("better prompt", "n"), ("labelled examples", "0"),
        ("Model to fine-tune", ""),
    ])
    assert code == 0, output
    flat = " ".join(output.split())
    assert "RECOMMENDATION: RAG (retrieval at inference) for the knowledge; better prompt for the format" in flat


def test_no_terminal_and_no_flags_names_the_flags() -> None:
    proc = subprocess.run([sys.executable, "-m", "llmfit", "decide"], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert "--problem" in proc.stderr and "--prompt-tried" in proc.stderr and proc.stdout == ""


# --- feasibility through the finetune engine (6.1 rows 9-10, 6.4 scenario C, 5.6 row 5) -------------------


def _finetune_json(cli: Any, model: str, gpu: str, method: str) -> Any:
    # decide plans every method under the same settings: gradient checkpointing on for all (QLoRA's recipe).
    run = cli("finetune", model, "--method", method, "--gpu", gpu, "--grad-checkpointing", "--format", "json")
    assert run.exit_code in (0, 1), run.stderr
    return run.json()


@pytest.mark.parametrize("problem_flags", [
    ["-p", "behavior", "--prompt-tried", "--examples", "5000"],  # 5.6 row 5: limited-hardware fine-tuning
    ["-p", "capability", "--examples", str(FULL_MIN_EXAMPLES)],  # 6.4 C: "not full fine-tune because it is strongest"
])
def test_scenario_c_13b_on_a_24gb_gpu_gets_qlora(cli: Any, problem_flags: list[str]) -> None:
    # Every method under the same settings (checkpointing on): 13B LoRA needs its 26 GB bf16 base, more than
    # the card; QLoRA is the method this hardware supports (guide 6.1 'Even LoRA ... too heavy' -> QLoRA).
    data = decide_json(cli, *problem_flags, "--model", "13b", "--gpu", "rtx-4090")
    assert data["recommendation"] == "qlora" and data["feasible"] is True
    methods = {m["method"]: m for m in data["feasibility"]["methods"]}
    # The memory figures are the finetune command's own, method by method (same settings).
    for method in ("full", "lora", "qlora"):
        own = _finetune_json(cli, "13b", "rtx-4090", method)
        assert methods[method]["total_bytes_per_gpu"] == own["total_bytes_per_gpu"]
        assert methods[method]["fits"] == own["fits"]
    assert methods["full"]["fits"] is False  # full fine-tune does not fit 24 GB
    assert methods["qlora"]["fits"] is True
    # LoRA on the bf16 base: either it does not fit or it leaves less than the thin margin free.
    thin = data["thresholds"]["thin_margin_ratio"]
    assert not methods["lora"]["fits"] or methods["lora"]["margin_ratio"] < thin
    assert "qlora-limited-hardware" in data["feasibility"]["rules"]
    table = cli("decide", *problem_flags, "--model", "13b", "--gpu", "rtx-4090")
    assert table.exit_code == 0 and "Fine-tuning memory: 13b on rtx-4090" in table.stdout
    assert "QLoRA needs" in " ".join(table.stdout.split())


def test_scenario_c_7b_on_a_24gb_gpu_lora_fits_with_checkpointing(cli: Any) -> None:
    # Guide 6.4 C: "LoRA on fp16 might work with careful settings": with gradient checkpointing (the same
    # settings QLoRA is planned with) 7B LoRA fits a 24 GB card with room; QLoRA fits with more.
    data = decide_json(cli, "-p", "behavior", "--prompt-tried", "--examples", "5000", "--model", "7b",
                       "--gpu", "rtx-4090")
    methods = {m["method"]: m for m in data["feasibility"]["methods"]}
    assert data["recommendation"] == "lora" and methods["qlora"]["fits"] and not methods["full"]["fits"]
    assert all(m["grad_checkpointing"] for m in methods.values())


def test_lora_when_it_fits_with_room(cli: Any) -> None:
    data = decide_json(cli, "-p", "format", "--prompt-tried", "--examples", "5000", "--model", "7b",
                       "--gpu", "a100-80")
    methods = {m["method"]: m for m in data["feasibility"]["methods"]}
    assert methods["lora"]["margin_ratio"] >= data["thresholds"]["thin_margin_ratio"]
    assert data["recommendation"] == "lora"


def test_no_method_fits_exit_1(cli: Any) -> None:
    data = decide_json(cli, "-p", "behavior", "--prompt-tried", "--examples", "5000", "--model", "70b",
                       "--gpu", "rtx-4090", code=1)
    assert data["feasible"] is False and data["feasibility"]["chosen"] is None
    assert not any(m["fits"] for m in data["feasibility"]["methods"])
    run = cli("decide", "-p", "behavior", "--prompt-tried", "--examples", "5000", "--model", "70b", "--gpu", "rtx-4090")
    assert run.exit_code == 1 and "NOT FEASIBLE: no fine-tuning method fits 70b on rtx-4090" in run.stdout


def test_several_gpus_shard_with_zero3(cli: Any) -> None:
    data = decide_json(cli, "-p", "behavior", "--prompt-tried", "--examples", "5000", "--model", "70b",
                       "--gpu", "a100-80", "--gpus", "8")
    assert data["feasibility"]["gpu_count"] == 8
    assert {m["zero"] for m in data["feasibility"]["methods"]} == {3}
    own = cli("finetune", "70b", "--method", data["recommendation"], "--gpu", "a100-80", "--gpus", "8", "--zero", "3",
              "--grad-checkpointing", "--format", "json").json()
    chosen = next(m for m in data["feasibility"]["methods"] if m["method"] == data["recommendation"])
    assert chosen["total_bytes_per_gpu"] == own["total_bytes_per_gpu"] and chosen["fits"]


def test_questionnaire_scenario_c_asks_for_model_and_gpu() -> None:
    code, output = _converse([
        ("(knowledge)", "n"), ("(format)", "n"), ("(behavior)", "y"), ("(capability)", "n"),
        ("better prompt", "y"), ("labelled examples", "5000"), ("Model to fine-tune", "13b"),
        ("GPU to train on", "rtx-4090"),
    ])
    assert code == 0, output
    flat = " ".join(output.split())
    assert "RECOMMENDATION: QLoRA for the behavior" in flat and "Fine-tuning memory: 13b on rtx-4090" in flat


def test_hard_exercise_escalation_is_held_to_the_hardware(cli: Any) -> None:
    # Same plan now (RAG + prompt); "PEFT if needed" becomes QLoRA on a 24 GB card, stays LoRA on 80 GB.
    flags = ["-p", "knowledge", "-p", "format", "--freshness", "weekly", "--private", "--model", "13b"]
    small = decide_json(cli, *flags, "--gpu", "rtx-4090")
    assert small["recommendation"] == "rag + prompt" and small["plan"][1]["then"] == ["qlora"]
    big = decide_json(cli, *flags, "--gpu", "a100-80")
    assert big["recommendation"] == "rag + prompt" and big["plan"][1]["then"] == ["lora"]


def test_qlora_70b_on_one_a100_fits_with_gradient_checkpointing(cli) -> None:
    """QLoRA's recipe (65B on one 48 GB GPU) recomputes activations; decide tries that remedy before
    answering that no method fits, and says it did."""
    run = cli("decide", "--problem", "behavior", "--prompt-tried", "--examples", "5000", "--model", "70b",
              "--gpu", "a100-80", "--format", "json")
    assert run.exit_code == 0, run.stderr
    methods = {m["method"]: m for m in run.json()["feasibility"]["methods"]}
    assert methods["qlora"]["fits"] and methods["qlora"]["grad_checkpointing"]
    assert not methods["full"]["fits"] and methods["full"]["grad_checkpointing"]  # same settings for all
