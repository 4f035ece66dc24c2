"""The Python API: the CLI's answers without a process per question.

Each function runs the command of the same name with the same options (keyword arguments named as the
long options, dashes as underscores: `max_num_seqs=64` is `--max-num-seqs 64`) and returns an
`Answer`: `answer.data` is exactly the object `--format json` prints (keys as docs/ define them),
`answer.exit_code` the CLI's verdict (0 yes, 1 no), `answer.warnings` what the CLI writes to stderr.
Bad input raises `llmfit.errors.LlmfitError` (the CLI's exit 2) with the CLI's one-line message.

    >>> from llmfit import fit
    >>> answer = fit("70b", gpu="a100-80", dtype="int4", context="4k")
    >>> answer.ok, answer["max_concurrency"] > 0
    (True, True)

Numbers may be given as numbers or as the CLI's text (`context=8192` or `context="8k"`). Built-in
presets and user preset folders (`presets=...` or LLMFIT_PRESETS) are resolved as on the command line.
See docs/api.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from llmfit.cli.batch import Answer, run_command, run_line

__all__ = ["Answer", "batch", "decide", "finetune", "fit", "kv", "plan", "run"]


def run(command: str, **options: Any) -> Answer:
    """Run `command` ("fit", "kv", "finetune", "plan" or "decide") with its options.

    >>> run("kv", model="llama-3.1-8b", context=8192)["kv_bytes_per_token"]
    131072
    """
    return run_command(command, {key: value for key, value in options.items() if value is not None})


def fit(model: str | None = None, *, gpu: str | None = None, dtype: str | None = None,
        context: int | str | None = None, **options: Any) -> Answer:
    """Does `model` load on `gpu`, and how many full-context requests does it serve? (`llmfit fit`)

    `model`: a preset, config.json, snapshot folder or .gguf; `gpu`: a preset, `h100-80x8` for eight.
    Other options as `llmfit fit --help` lists them: tp, pp, kv_dtype, gpu_util, max_num_seqs, engine,
    min_concurrency, params, weights, gpu_memory, ...

    >>> a = fit("llama-3.1-8b", gpu="rtx-4090", dtype="fp16", context=8192)
    >>> a["fits"], a["weights_bytes"]
    (True, 16060522496)
    """
    return run("fit", model=model, gpu=gpu, dtype=dtype, context=context, **options)


def kv(model: str, *, context: int | str | None = None, batch: int | None = None, **options: Any) -> Answer:
    """The KV cache of `model`: per token, per request of `context` tokens, per `batch`. (`llmfit kv`)

    >>> kv("70b", context=4096, batch=8)["total_bytes"]
    10737418240
    """
    return run("kv", model=model, context=context, batch=batch, **options)


def finetune(model: str | None = None, *, method: str | None = None, gpu: str | None = None,
             **options: Any) -> Answer:
    """What fine-tuning `model` with `method` (full, lora, qlora, ...) costs, and whether it fits on `gpu`.
    (`llmfit finetune`; options: seq, batch, optimizer, precision, lora_rank, zero, gpus, ...)

    >>> finetune("7b", method="qlora", gpu="rtx-4090").ok
    True
    """
    return run("finetune", model=model, method=method, gpu=gpu, **options)


def plan(model: str, *, context: int | str | None = None, concurrency: int | None = None,
         **options: Any) -> Answer:
    """Every deployment of `model` serving `concurrency` requests of `context` tokens, and the Pareto front
    of price, GPUs and speed. (`llmfit plan`; options: gpu_types, max_gpus, dtypes, kv_dtypes, engine, top)

    >>> plan("7b", context="4k", concurrency=4, gpu_types="a100-80")["rows"][0]["gpu"]
    'a100-80'
    """
    return run("plan", model=model, context=context, concurrency=concurrency, **options)


def decide(**options: Any) -> Answer:
    """Which lever - prompt, RAG, LoRA, QLoRA, full fine-tune - fixes the problem. (`llmfit decide`)

    >>> decide(problem=["knowledge"], freshness="daily")["recommendation"]
    'rag'
    """
    return run("decide", **options)


def batch(requests: Iterable[Mapping[str, Any] | str]) -> Iterator[tuple[Any, int]]:
    """Answer many requests as `llmfit batch` does: each a mapping (or a JSON line) with "command" and
    options; yields (the output object, its exit code) per request, bad input included as
    ({"error": ..., "exit_code": 2}, 2), never raising.

    >>> [code for _, code in batch([{"command": "kv", "model": "7b"}, {"command": "fit", "model": "?"}])]
    [0, 2]
    """
    import json

    for request in requests:
        line = request if isinstance(request, str) else json.dumps(dict(request))
        data, code, _ = run_line(line)
        yield data, code
