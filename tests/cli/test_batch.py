"""`llmfit batch` and the Python API: the same answers as the commands, one JSON line each."""

from __future__ import annotations

import doctest
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import llmfit
from llmfit.errors import LlmfitError

# (batch request, the same question as command-line arguments)
SAME_QUESTIONS: list[tuple[dict[str, Any], list[str]]] = [
    ({"command": "fit", "model": "70b", "gpu": "a100-80", "dtype": "int4"},
     ["fit", "70b", "--gpu", "a100-80", "--dtype", "int4"]),
    ({"command": "fit", "model": "llama-3.1-8b", "gpu": "h100-80x2", "dtype": "all", "context": 32768,
      "max-num-seqs": 64}, ["fit", "llama-3.1-8b", "--gpu", "h100-80x2", "--dtype", "all", "--context", "32768",
                            "--max-num-seqs", "64"]),
    ({"command": "fit", "model": "70b", "gpu": "rtx-4090", "dtype": "fp16"},
     ["fit", "70b", "--gpu", "rtx-4090", "--dtype", "fp16"]),
    ({"command": "kv", "model": "llama-3.1-8b", "context": "8k", "batch": 4, "kv_dtype": "fp8"},
     ["kv", "llama-3.1-8b", "--context", "8k", "--batch", "4", "--kv-dtype", "fp8"]),
    ({"command": "finetune", "model": "7b", "method": "qlora", "gpu": "rtx-4090", "grad_checkpointing": True,
      "lora-targets": "all-linear"}, ["finetune", "7b", "--method", "qlora", "--gpu", "rtx-4090",
                                      "--grad-checkpointing", "--lora-targets", "all-linear"]),
    ({"command": "plan", "model": "7b", "context": "4k", "concurrency": 8, "gpu-types": "a100-80,l4", "top": 3},
     ["plan", "7b", "--context", "4k", "--concurrency", "8", "--gpu-types", "a100-80,l4", "--top", "3"]),
    ({"command": "decide", "problem": ["knowledge", "format"], "freshness": "daily", "private": True},
     ["decide", "--problem", "knowledge", "--problem", "format", "--freshness", "daily", "--private"]),
]


def lines(text: str) -> list[Any]:
    return [json.loads(line) for line in text.splitlines()]


def test_each_answer_is_the_commands_json(cli: Any) -> None:
    expected = []
    for _, argv in SAME_QUESTIONS:
        run = cli(*argv, "--format", "json")
        expected.append((run.json(), run.exit_code))
    requests = "\n".join(json.dumps(request) for request, _ in SAME_QUESTIONS) + "\n"
    run = cli("batch", "-", input=requests)
    answers = lines(run.stdout)
    assert answers == [data for data, _ in expected]
    assert run.exit_code == max(code for _, code in expected) == 1  # the fp16 70b on a 4090 is a "no"


def test_bad_lines_are_rows_and_the_worst_code_wins(cli: Any, tmp_path: Path) -> None:
    source = tmp_path / "q.jsonl"
    source.write_text("\n".join([
        json.dumps({"command": "kv", "model": "7b"}),
        "",
        "not json",
        json.dumps(["fit"]),
        json.dumps({"model": "7b"}),
        json.dumps({"command": "serve", "model": "7b"}),
        json.dumps({"command": "fit", "model": "7b", "gpu": "a100-80", "colour": "red"}),
        json.dumps({"command": "fit", "model": "7b", "gpu": "a100-80", "tp": "two"}),
        json.dumps({"command": "fit", "model": "7b", "gpu": "a100-80", "tp": True}),
        json.dumps({"command": "fit", "model": "7b", "gpu": "a100-80", "format": "table"}),
        json.dumps({"command": "kv"}),
        json.dumps({"command": "fit", "model": "no-such-model", "gpu": "a100-80"}),
        json.dumps({"command": "kv", "model": "7b", "context": 4096}),
    ]) + "\n")
    run = cli("batch", str(source))
    rows = lines(run.stdout)
    assert len(rows) == 12  # the blank line is skipped
    assert "kv_bytes_per_token" in rows[0] and "kv_bytes_per_token" in rows[-1]
    errors = [row["error"] for row in rows[1:-1]]
    assert all(row["exit_code"] == 2 for row in rows[1:-1])
    for needle, error in zip(["not valid JSON", "JSON object", 'missing "command"', "unknown command 'serve'",
                              "unknown option 'colour'", "tp must be an integer", "tp must be an integer",
                              "always JSON", "missing MODEL", "unknown model"], errors, strict=True):
        assert needle in error, error
    assert run.exit_code == 2
    assert "line 3: error: not valid JSON" in run.stderr


def test_all_good_lines_exit_0_and_warnings_go_to_stderr(cli: Any) -> None:
    run = cli("batch", "-", input=json.dumps({"command": "kv", "model": "7b", "context": "8k"}) + "\n")
    assert run.exit_code == 0
    assert lines(run.stdout)[0]["context_tokens"] == 8192
    assert "line 1: warning: context 8,192 exceeds 7b's maximum" in run.stderr


def test_unreadable_file_is_bad_input(cli: Any, tmp_path: Path) -> None:
    run = cli("batch", str(tmp_path / "missing.jsonl"))
    assert run.exit_code == 2 and run.stdout == ""
    assert run.stderr.strip().startswith("error:") and len(run.stderr.strip().splitlines()) == 1


def test_batch_through_the_console_script() -> None:
    request = json.dumps({"command": "fit", "model": "70b", "gpu": "a100-80", "dtype": "int4"})
    done = subprocess.run([sys.executable, "-m", "llmfit", "batch", "-"], input=request + "\n",
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["fits"] is True


# ------------------------------------------------------------------------------------------ the API


def test_api_answers_match_the_cli(cli: Any) -> None:
    answer = llmfit.fit("70b", gpu="a100-80", dtype="int4")
    assert answer.ok and answer.exit_code == 0
    assert answer.data == cli("fit", "70b", "--gpu", "a100-80", "--dtype", "int4", "--format", "json").json()
    assert answer["max_concurrency"] == answer.data["max_concurrency"]
    no = llmfit.fit("70b", gpu="rtx-4090", dtype="fp16", max_num_seqs=8)
    assert no.exit_code == 1 and not no.ok and no["fits"] is False
    assert llmfit.kv("70b", context=4096, batch=8)["total_bytes"] == 10 * 2**30  # 2.5 MiB/token (seed) x 4k x 8
    assert llmfit.run("kv", model="70b", context="4k")["kv_bytes_per_request"] == 1280 * 2**20


def test_api_bad_input_raises_with_the_cli_message() -> None:
    with pytest.raises(LlmfitError, match="unknown model 'nope'"):
        llmfit.fit("nope", gpu="a100-80")
    with pytest.raises(LlmfitError, match="unknown option 'colour'"):
        llmfit.kv("7b", colour="red")
    with pytest.raises(LlmfitError, match="batch must be an integer"):
        llmfit.kv("7b", batch=1.5)


def test_api_keeps_warnings_off_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    answer = llmfit.kv("7b", context="8k")
    assert any("exceeds 7b's maximum" in w for w in answer.warnings)
    assert capsys.readouterr().err == ""


def test_api_batch_never_raises() -> None:
    out = list(llmfit.batch([{"command": "kv", "model": "7b"}, '{"command": "fit", "model": "?"}', "nope"]))
    assert [code for _, code in out] == [0, 2, 2]
    assert out[1][0]["error"].startswith("unknown model")


def test_api_docstring_examples() -> None:
    import llmfit.api

    failures, tried = doctest.testmod(llmfit.api)
    assert tried >= 8 and failures == 0


def test_import_llmfit_stays_light() -> None:
    code = "import sys, llmfit; assert 'typer' not in sys.modules and 'pydantic' not in sys.modules; llmfit.fit"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
