"""Answers per second: one process per answer, `llmfit batch`, and the Python API (issue 17).

The same mix of questions (fit, kv, finetune over a few presets and GPUs) is answered three ways:
  - one `llmfit fit ... --format json` process per answer (what a shell loop does),
  - one `llmfit batch -` process for all of them (JSON Lines in and out),
  - `llmfit.run(...)` in this process (after one warm-up answer).
Every answer of batch and the API is checked equal to the per-process one on the sampled questions.

    python benchmarks/batch.py [--answers 300] [--processes 20]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

MODELS = ("70b", "7b", "llama-3.1-8b", "qwen2.5-7b", "mixtral-8x7b-v0.1")
GPUS = ("a100-80", "h100-80", "rtx-4090", "l4", "h100-80x2")


def questions(n: int) -> list[dict[str, Any]]:
    mix = itertools.cycle(itertools.product(MODELS, GPUS, ("fit", "kv", "finetune")))
    out: list[dict[str, Any]] = []
    for model, gpu, command in itertools.islice(mix, n):
        if command == "fit":
            out.append({"command": "fit", "model": model, "gpu": gpu, "dtype": "int4", "context": 8192})
        elif command == "kv":
            out.append({"command": "kv", "model": model, "context": 8192, "batch": 8})
        else:
            out.append({"command": "finetune", "model": model, "method": "qlora", "gpu": gpu})
    return out


def argv_of(question: dict[str, Any]) -> list[str]:
    args = [question["command"], question["model"]]
    for key, value in question.items():
        if key not in ("command", "model"):
            args += [f"--{key}", str(value)]
    return [*args, "--format", "json"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers", type=int, default=300)
    parser.add_argument("--processes", type=int, default=20, help="answers timed one process each")
    args = parser.parse_args()
    llmfit = str(Path(sys.executable).with_name("llmfit"))
    env = {**os.environ, "NO_COLOR": "1"}
    qs = questions(args.answers)

    sample = qs[: args.processes]
    start = time.perf_counter()
    per_process = []
    for question in sample:
        done = subprocess.run([llmfit, *argv_of(question)], env=env, capture_output=True, text=True, timeout=120,
                              check=False)
        per_process.append(json.loads(done.stdout))
    process_rate = len(sample) / (time.perf_counter() - start)

    payload = "".join(json.dumps(q) + "\n" for q in qs)
    start = time.perf_counter()
    done = subprocess.run([llmfit, "batch", "-"], env=env, input=payload, capture_output=True, text=True,
                          timeout=600, check=False)
    batch_rate = len(qs) / (time.perf_counter() - start)
    batch_answers = [json.loads(line) for line in done.stdout.splitlines()]

    import llmfit as api

    api.run("kv", model="7b")  # warm-up: imports
    start = time.perf_counter()
    api_answers = [api.run(q["command"], **{k: v for k, v in q.items() if k != "command"}).data for q in qs]
    api_rate = len(qs) / (time.perf_counter() - start)

    same = batch_answers[: len(sample)] == per_process == api_answers[: len(sample)]
    print(f"answers per second ({len(qs)} questions: fit, kv, finetune over {len(MODELS)} models x {len(GPUS)} GPUs)")
    print(f"  one process per answer ({len(sample)} answers)   {process_rate:8.1f} /s")
    print(f"  llmfit batch (one process)                {batch_rate:8.1f} /s   {batch_rate / process_rate:5.1f}x")
    print(f"  Python API, llmfit.run(...)               {api_rate:8.1f} /s   {api_rate / process_rate:5.1f}x")
    print(f"  batch and API answers equal the per-process ones: {'yes' if same else 'NO'}")
    return 0 if same and done.returncode in (0, 1) else 1


if __name__ == "__main__":
    sys.exit(main())
