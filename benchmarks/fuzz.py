"""Process-level fuzzing of the installed `llmfit`: generated arguments and hostile files, each run a
real process under a wall-time and an address-space cap, each answer checked by an oracle.

    python benchmarks/fuzz.py [--runs 10000] [--jobs 2] [--seed 0] [--timeout 20] [--memory-mib 1024]

Campaigns (the run count is split between them): `arguments` (random argument lists over every
command and option, found by walking the Typer app), `one-bad-value` (a valid invocation with one
hostile value), `files` (hostile and valid config.json, GGUF, safetensors snapshots and indexes, .npy
matrices, presets), `valid` (generated valid invocations whose answers are checked for consistency).
Each run is under UTF-8 stdout or, for a share of them, a non-UTF-8 one (PYTHONIOENCODING=ascii, or
LC_ALL=C PYTHONUTF8=0).

The oracle (check()) fails a run on: exit 3 or a traceback (internal error), a kill by the timeout
(hang), a signal (crash), a MemoryError or a peak RSS over the cap (memory), exit 2 without exactly one
`error:` line, stdout that is not strict JSON (no NaN/Infinity) when JSON was asked for, a valid input
refused, a hostile input accepted, and figures that contradict each other (fits without the minimum
concurrency, more full-context requests than the KV budget holds, exit code not matching `fits`).

The same generator and oracle run in `make test` with a fixed small budget (tests/test_fuzz_process.py);
`make fuzz` runs the long form and prints the counts.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import resource
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "readers")]

ENCODINGS = {
    "utf-8": {"PYTHONIOENCODING": "utf-8"},
    "ascii": {"PYTHONIOENCODING": "ascii"},
    "c-locale": {"LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONIOENCODING": ""},
}
# Failure classes, in the order the report prints them.
CLASSES = ("internal error", "hang", "crash", "over memory", "bad error line", "bad json", "valid refused",
           "hostile accepted", "inconsistent answer")


@dataclass
class Case:
    campaign: str
    args: list[str]
    files: dict[str, bytes] = field(default_factory=dict)  # relative path -> content, in the run's folder
    expect: str = "any"  # "valid": exit 0/1 and a consistent answer; "invalid": exit 2; "any": 0/1/2
    encoding: str = "utf-8"
    note: str = ""
    owner: str = ""  # "" this branch; "D" / "E": the class another helper's branch fixes


@dataclass
class Outcome:
    case: Case
    code: int | None
    stdout: str
    stderr: str
    seconds: float
    max_rss_bytes: int
    killed: bool


def llmfit_command() -> list[str]:
    """The installed console script beside this interpreter (the venv's), else `python -m llmfit`."""
    script = Path(sys.executable).with_name("llmfit")
    if script.exists():
        return [str(script)]
    found = shutil.which("llmfit")
    return [found] if found else [sys.executable, "-m", "llmfit"]


# ------------------------------------------------------------------------------------------- running


def run_case(case: Case, *, command: list[str], timeout: float = 20.0, memory_bytes: int = 2**30,
             env: dict[str, str] | None = None) -> Outcome:
    """One process: its own scratch folder (the case's files written there), no user presets, the Hub
    offline with an empty cache, stdin empty; RLIMIT_AS capped; killed (process group) at `timeout`."""
    with tempfile.TemporaryDirectory(prefix="llmfit-fuzz-") as scratch:
        work = Path(scratch)
        for name, content in case.files.items():
            target = work / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        child = {k: v for k, v in os.environ.items() if not k.startswith(("LLMFIT_", "HF_", "PYTHONIO", "LC_"))}
        child |= {"HF_HUB_OFFLINE": "1", "HF_HOME": str(work / ".hf"), "LLMFIT_PRESETS": "", "HOME": str(work),
                  "NO_COLOR": "1", "COLUMNS": "120"}
        child |= ENCODINGS[case.encoding] | (env or {})  # an empty value removes the variable
        child = {k: v for k, v in child.items() if v != ""}

        def limit() -> None:
            resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

        out_path, err_path = work / ".stdout", work / ".stderr"
        start = time.perf_counter()
        with out_path.open("wb") as out, err_path.open("wb") as err:
            process = subprocess.Popen([*command, *case.args], cwd=work, env=child, stdin=subprocess.DEVNULL,
                                       stdout=out, stderr=err, preexec_fn=limit, start_new_session=True)
            killed = False
            status, usage = _wait(process.pid, timeout)
            if status is None:
                killed = True
                os.killpg(process.pid, signal.SIGKILL)
                _, status, usage = os.wait4(process.pid, 0)
            process.returncode = 0  # reaped here (wait4 gives the child's own peak RSS)
        seconds = time.perf_counter() - start
        code = os.waitstatus_to_exitcode(status)
        return Outcome(case, None if killed else code, out_path.read_bytes().decode("utf-8", "replace"),
                       err_path.read_bytes().decode("utf-8", "replace"), seconds, usage.ru_maxrss * 1024, killed)


def _wait(pid: int, timeout: float) -> tuple[int | None, Any]:
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            return status, usage
        if time.monotonic() > deadline:
            return None, None
        time.sleep(delay)
        delay = min(0.05, delay * 1.5)


# ------------------------------------------------------------------------------------------- oracle


def _strict_json(text: str) -> Any:
    def refuse(name: str) -> Any:
        raise ValueError(f"{name} in JSON output")

    return json.loads(text, parse_constant=refuse)


def json_requested(args: list[str]) -> bool:
    import test_fuzz_cli as inproc  # type: ignore[import-not-found,unused-ignore]

    return bool(inproc._json_requested(args))


def check(outcome: Outcome, *, memory_bytes: int = 2**30) -> list[tuple[str, str]]:
    """(failure class, detail) for everything wrong with one run; empty when the run is right."""
    case, code, out, err = outcome.case, outcome.code, outcome.stdout, outcome.stderr
    problems: list[tuple[str, str]] = []
    if outcome.killed:
        return [("hang", f"killed after {outcome.seconds:.1f} s")]
    if code is not None and code < 0:
        return [("crash", f"signal {-code}")]
    if "MemoryError" in err or outcome.max_rss_bytes > memory_bytes:
        problems.append(("over memory", f"peak RSS {outcome.max_rss_bytes / 2**20:.0f} MiB; {_last_line(err)}"))
    if code == 3 or "Traceback (most recent call last)" in out + err or code not in (0, 1, 2):
        problems.append(("internal error", f"exit {code}: {_last_line(err)}"))
        return problems
    if code == 2:
        messages = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("warning: ")]
        if len(messages) != 1 or not messages[0].startswith("error: "):
            problems.append(("bad error line", f"{len(messages)} lines: {err[:300]!r}"))
        if case.expect == "valid":
            problems.append(("valid refused", _last_line(err)))
        return problems
    if case.expect == "invalid":
        problems.append(("hostile accepted", f"exit {code} for {case.note}"))
    if json_requested(case.args):
        try:
            data = _strict_json(out)
        except ValueError as error:
            problems.append(("bad json", f"{error}: {out[:200]!r}"))
            return problems
        problems += [("inconsistent answer", p) for p in answer_problems(case.args, code, data)]
    return problems


def _last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "(no stderr)"


def answer_problems(args: list[str], code: int, data: Any) -> list[str]:
    """Figures that contradict each other in a fit / kv / finetune answer."""
    problems: list[str] = []
    objects = data if isinstance(data, list) else [data]
    for item in objects:
        if not isinstance(item, dict):
            continue
        for key, value in item.items():
            if isinstance(value, float) and not math.isfinite(value):
                problems.append(f"{key} = {value}")
            # A deployment that does not fit has a negative KV budget / margin: the shortfall.
            shortfall = item.get("fits") is False and ("budget" in key or "margin" in key or "free" in key)
            if key.endswith(("_bytes", "_tokens", "_params")) and isinstance(value, int) and value < 0 \
                    and not shortfall and not key.startswith(("margin", "free")):
                problems.append(f"{key} = {value} is negative")
        fits = item.get("fits")
        conc, minimum = item.get("max_concurrency"), item.get("min_concurrency")
        if fits is True and isinstance(conc, int) and isinstance(minimum, int) and conc < minimum:
            problems.append(f"fits with max_concurrency {conc} < min_concurrency {minimum}")
        per_request, budget = item.get("kv_bytes_per_request"), item.get("kv_budget_bytes")
        if isinstance(conc, int) and isinstance(per_request, int) and isinstance(budget, int) and per_request > 0 \
                and conc * per_request > budget and not item.get("capped_by_max_num_seqs"):
            problems.append(f"max_concurrency {conc} x kv_bytes_per_request {per_request} > kv_budget_bytes {budget}")
        if {"total_bytes", "kv_bytes_per_request", "batch"} <= item.keys() and "fits" not in item \
                and item["total_bytes"] != item["kv_bytes_per_request"] * item["batch"]:
            problems.append("kv total_bytes != kv_bytes_per_request x batch")
    if isinstance(data, dict) and isinstance(data.get("fits"), bool) and args and args[0] in ("fit", "finetune") \
            and not any(a.startswith("--solve") for a in args):
        expected = 0 if data["fits"] else 1
        if code != expected:
            problems.append(f"exit {code} but fits is {data['fits']}")
    return problems


# ------------------------------------------------------------------------------------------- files

MODELS = ["7b", "13b", "70b", "llama-3.1-8b", "qwen2.5-7b", "mistral-7b-v0.1", "qwen3-235b-a22b", "gpt-oss-120b"]
# Multi-GPU: x2 and x4 only, which divide every listed model's heads (qwen2.5-7b has 28).
GPUS = ["a100-80", "h100-80", "h100-80x4", "rtx-4090", "a100-40x2", "l4"]
DTYPES = ["fp16", "bf16", "int8", "int4", "fp8", "q4_k_m", "awq", "nf4"]
CONTEXTS = ["512", "2k", "4096", "8k", "32k"]


def tiny_config(rng: random.Random) -> dict[str, Any]:
    """A valid Llama config.json of random (small) shape."""
    from model_files import TINY_LLAMA  # type: ignore[import-not-found,unused-ignore]

    heads = rng.choice([1, 2, 4, 8])
    head_dim = rng.choice([8, 16, 32, 64])
    return {**TINY_LLAMA, "hidden_size": heads * head_dim, "num_attention_heads": heads,
            "num_key_value_heads": rng.choice([h for h in (1, 2, 4, 8) if heads % h == 0]),
            "num_hidden_layers": rng.randint(1, 40), "intermediate_size": rng.choice([64, 128, 1000, 11008]),
            "vocab_size": rng.choice([256, 32000, 128256]),
            "max_position_embeddings": rng.choice([512, 2048, 4096, 131072])}


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value).encode()


def hostile_configs(rng: random.Random) -> list[tuple[str, bytes, str]]:
    """(note, config.json bytes, expectation): each must be refused (exit 2) but the last, valid one."""
    base = tiny_config(rng)
    deep = "[" * 20_000 + "]" * 20_000
    cases: list[tuple[str, bytes, str]] = [
        (f"num_hidden_layers {v!r}", _json_bytes({**base, "num_hidden_layers": v}), "invalid")
        for v in (10**9, 10**12, True, "32", 32.5, 1e9, -1, 0, 10**30, None)
    ]
    cases += [
        ("gpt-oss with 1e9 layers", _json_bytes({**base, "model_type": "gpt_oss", "num_hidden_layers": 10**9,
                                                 "num_local_experts": 4, "num_experts_per_tok": 2}), "invalid"),
        ("qwen2-moe with 1e12 layers", _json_bytes({**base, "model_type": "qwen2_moe", "num_hidden_layers": 10**12,
                                                    "num_experts": 4, "num_experts_per_tok": 2,
                                                    "moe_intermediate_size": 64}), "invalid"),
        ("rope factor NaN", json.dumps({**base, "rope_scaling": {"type": "linear", "factor": 1.0}}).replace(
            '"factor": 1.0', '"factor": NaN').encode(), "invalid"),
        ("rope factor Infinity", json.dumps({**base, "rope_scaling": {"type": "linear", "factor": 1.0}}).replace(
            '"factor": 1.0', '"factor": Infinity').encode(), "invalid"),
        ("rope factor 1e308", _json_bytes({**base, "rope_scaling": {"type": "dynamic", "factor": 1e308}}), "invalid"),
        ("rope factor 1e400", json.dumps({**base, "rope_scaling": {"type": "linear", "factor": 1.0}}).replace(
            '"factor": 1.0', '"factor": 1e400').encode(), "invalid"),
        ("rope_scaling a list", _json_bytes({**base, "rope_scaling": [1, 2]}), "invalid"),
        ("text_config a number", _json_bytes({**base, "text_config": 7}), "invalid"),
        ("top-level list", _json_bytes([base]), "invalid"),
        ("top-level number", b"42", "invalid"),
        ("top-level string", b'"llama"', "invalid"),
        ("deeply nested", ('{"model_type": "llama", "x": ' + deep + "}").encode(), "invalid"),
        ("duplicate key", json.dumps(base)[:-1].encode() + b', "num_hidden_layers": 99999}', "invalid"),
        ("not UTF-8", b'{"model_type": "\xff\xfe"}', "invalid"),
        ("empty", b"", "invalid"),
        ("vocab 10**30", _json_bytes({**base, "vocab_size": 10**30}), "invalid"),
        ("hidden 2**50", _json_bytes({**base, "hidden_size": 2**50}), "invalid"),
        ("integer of 5000 digits", _json_bytes({**base, "bos_token_id": 0}).replace(
            b'"bos_token_id": 0', b'"bos_token_id": ' + b"9" * 5000), "invalid"),
        ("layer_types of 70,000 entries", _json_bytes({**base, "layer_types": ["full_attention"] * 70_000}),
         "invalid"),
        ("valid tiny llama", _json_bytes(base), "valid"),
    ]
    return cases


def _gguf_string(text: bytes) -> bytes:
    return struct.pack("<Q", len(text)) + text


def hostile_ggufs(rng: random.Random, valid: bytes) -> list[tuple[str, bytes, str]]:
    """GGUF files: the 90-byte array of 2**60 elements, metadata as strings, truncations, byte flips."""
    header = b"GGUF" + struct.pack("<I", 3)
    huge_array = header + struct.pack("<QQ", 0, 1) + _gguf_string(b"llama.block_count") + struct.pack(
        "<IIQ", 9, 4, 2**60)
    huge_string = header + struct.pack("<QQ", 0, 1) + _gguf_string(b"general.name") + struct.pack("<IQ", 8, 2**62)
    huge_counts = header + struct.pack("<QQ", 2**62, 2**62)
    cases = [("array of 2**60 elements", huge_array, "invalid"), ("string of 2**62 bytes", huge_string, "invalid"),
             ("2**62 tensors and keys", huge_counts, "invalid"), ("magic only", b"GGUF", "invalid"),
             ("valid tiny llama", valid, "valid")]
    for _ in range(3):
        cut = rng.randint(8, max(9, len(valid) - 1))
        cases.append((f"truncated at {cut}", valid[:cut], "invalid"))
    flipped = bytearray(valid)
    for _ in range(8):
        flipped[rng.randrange(8, min(len(flipped), 2048))] = rng.randrange(256)
    cases.append(("bytes flipped in the metadata", bytes(flipped), "any"))
    return cases


def _safetensors(header: Any, data: bytes = b"") -> bytes:
    raw = (header if isinstance(header, bytes) else json.dumps(header).encode())
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + data


def hostile_snapshots(rng: random.Random) -> list[tuple[str, dict[str, bytes], str]]:
    """Snapshot folders (config.json + shards / index) with hostile safetensors headers and indexes."""
    from model_files import TINY_LLAMA  # type: ignore[import-not-found,unused-ignore]

    config = _json_bytes(TINY_LLAMA)
    one = {"model.embed_tokens.weight": {"dtype": "BF16", "shape": [256, 64], "data_offsets": [0, 256 * 64 * 2]}}
    good = _safetensors(one, bytes(256 * 64 * 2))
    cases: list[tuple[str, dict[str, bytes], str]] = [
        ("header length 2**63", {"config.json": config, "model.safetensors": struct.pack("<Q", 2**63) + b"{}"},
         "invalid"),
        ("header deeply nested", {"config.json": config,
                                  "model.safetensors": _safetensors(b'{"a":' + b"[" * 20_000 + b"]" * 20_000 + b"}")},
         "invalid"),
        ("negative shape", {"config.json": config, "model.safetensors": _safetensors(
            {"w": {"dtype": "BF16", "shape": [-1, 64], "data_offsets": [0, 128]}}, bytes(128))}, "invalid"),
        ("overflowing shape", {"config.json": config, "model.safetensors": _safetensors(
            {"w": {"dtype": "BF16", "shape": [2**62, 2**62], "data_offsets": [0, 128]}}, bytes(128))}, "invalid"),
        ("header a list", {"config.json": config, "model.safetensors": _safetensors([1, 2, 3])}, "invalid"),
        ("index outside the folder", {"config.json": config, "model.safetensors.index.json": _json_bytes(
            {"weight_map": {"model.embed_tokens.weight": "../../../../etc/passwd.safetensors"}}),
            "model.safetensors": good}, "invalid"),
        ("index absolute path", {"config.json": config, "model.safetensors.index.json": _json_bytes(
            {"weight_map": {"w": "/dev/zero"}})}, "invalid"),
        ("index a list", {"config.json": config, "model.safetensors.index.json": b"[1, 2]"}, "invalid"),
        ("index deeply nested", {"config.json": config, "model.safetensors.index.json":
                                 b'{"weight_map": {}, "x": ' + b"[" * 20_000 + b"]" * 20_000 + b"}"}, "invalid"),
    ]
    return cases


def _npy(shape: tuple[int, ...], dtype: str, data: bytes, *, fortran: bool = False) -> bytes:
    header = repr({"descr": dtype, "fortran_order": fortran, "shape": shape}).encode()
    header += b" " * (-(len(header) + 11) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + data


def hostile_matrices(rng: random.Random) -> list[tuple[str, bytes, str]]:
    """.npy files for quantize-demo --matrix: shape claims, extreme floats, pickles, valid ones."""
    rows, cols = rng.randint(1, 48), rng.randint(1, 300)
    values = [rng.gauss(0, 0.05) for _ in range(rows * cols)]
    valid = _npy((rows, cols), "<f4", struct.pack(f"<{rows * cols}f", *values))
    return [
        ("shape claims 2**40 x 2**40", _npy((2**40, 2**40), "<f4", bytes(64)), "invalid"),
        ("shape claims 2**20 x 2**12 in 64 bytes", _npy((2**20, 2**12), "<f4", bytes(64)), "invalid"),
        ("1e300 in float64", _npy((1, 2), "<f8", struct.pack("<2d", 1e300, 1.0)), "invalid"),
        ("inf", _npy((1, 2), "<f8", struct.pack("<2d", math.inf, 1.0)), "invalid"),
        ("nan", _npy((1, 2), "<f8", struct.pack("<2d", math.nan, 1.0)), "invalid"),
        ("subnormals", _npy((1, 4), "<f8", struct.pack("<4d", 5e-324, 1e-310, 0.0, -5e-324)), "valid"),
        ("object dtype (pickle)", _npy((1,), "|O", b"\x80\x04N."), "invalid"),
        ("empty", _npy((0, 4), "<f4", b""), "invalid"),
        ("fortran order", _npy((rows, cols), "<f4", struct.pack(f"<{rows * cols}f", *values), fortran=True), "valid"),
        ("header garbage", b"\x93NUMPY\x01\x00" + struct.pack("<H", 16) + b"{'descr': ]}   \n", "invalid"),
        (f"valid {rows}x{cols}", valid, "valid"),
    ]


def hostile_presets(rng: random.Random) -> list[tuple[str, str, bytes, str, str]]:
    """(note, kind, YAML bytes, expectation, owner) for a preset folder's bad.yaml."""
    from llmfit.presets import builtin_dir

    model = (builtin_dir() / "models" / "7b.yaml").read_text(encoding="utf-8")
    gpu = (builtin_dir() / "gpus" / "a100-80.yaml").read_text(encoding="utf-8")

    def swap(text: str, key: str, line: str) -> bytes:
        kept = [ln for ln in text.splitlines() if not ln.startswith(f"{key}:")]
        return ("\n".join(kept) + "\n" + line + "\n").encode()

    return [
        ("tflops NaN", "gpus", swap(gpu, "tflops", "tflops: {bf16: .nan}"), "invalid", ""),
        ("tflops inf", "gpus", swap(gpu, "tflops", "tflops: {bf16: .inf}"), "invalid", ""),
        ("tflops negative", "gpus", swap(gpu, "tflops", "tflops: {bf16: -312}"), "invalid", ""),
        ("price inf", "gpus", swap(gpu, "price_per_hour", "price_per_hour: .inf"), "invalid", ""),
        ("bandwidth 10**400", "gpus", swap(gpu, "memory_bandwidth_bytes_per_s",
                                           f"memory_bandwidth_bytes_per_s: {10**400}"), "invalid", ""),
        ("memory 0.4 B", "gpus", swap(gpu, "memory", "memory: 0.4 B"), "invalid", ""),
        ("memory 0 GiB", "gpus", swap(gpu, "memory", "memory: 0 GiB"), "invalid", ""),
        ("layers true", "models", swap(model, "num_hidden_layers", "num_hidden_layers: true"), "invalid", ""),
        ("layers '32'", "models", swap(model, "num_hidden_layers", "num_hidden_layers: '32'"), "invalid", ""),
        ("layers 1e9", "models", swap(model, "num_hidden_layers", "num_hidden_layers: 1000000000"), "invalid", ""),
        ("duplicate key", "models", (model + "hidden_size: 8192\n").encode(), "invalid", ""),
        ("valid copy", "models", model.encode(), "valid", ""),
    ]


# ------------------------------------------------------------------------------------------- cases


def _argument_case(rng: random.Random) -> list[str]:
    """A random argument list for a random command: plausible values with hostile ones mixed in."""
    import test_fuzz_cli as inproc  # type: ignore[import-not-found,unused-ignore]

    paths = list(inproc.COMMANDS)
    path = rng.choice(paths)
    command = inproc.COMMANDS[path]
    params = [p for p in command.params if not set(getattr(p, "opts", [])) & inproc.UNSAFE_TOKENS]
    chaos = rng.random() < 0.2
    hostile = 1.0 if chaos else rng.choice([0.0, 0.1, 0.1, 0.2])

    def value(param: Any) -> str:
        if rng.random() < hostile:
            return rng.choice(HOSTILE)
        return str(rng.choice(inproc.plausible_values(param)))

    args = list(path)
    for param in params:
        opts = list(getattr(param, "opts", []))
        if not opts or not opts[0].startswith("-"):
            if rng.random() < 0.9:
                args.append(value(param))
            continue
        wanted = 0.7 if inproc._long_name(param) == "gpu" else 0.2
        if rng.random() >= wanted:
            continue
        name = rng.choice(opts + list(getattr(param, "secondary_opts", []) or []))
        if getattr(param, "is_flag", False):
            args.append(name)
        else:
            args += [name, value(param)]
    if rng.random() < 0.5:
        args += ["--format", "json"]
    if chaos:
        for _ in range(rng.randint(0, 3)):
            args.insert(rng.randint(len(path), len(args)), rng.choice([*HOSTILE, "--help", "--no-such", "-f"]))
    return [a for a in args if a not in inproc.UNSAFE_TOKENS and "\x00" not in a]


def _hostile_values() -> list[str]:
    import test_fuzz_cli as inproc  # type: ignore[import-not-found,unused-ignore]

    return [v for v in inproc.HOSTILE_VALUES if "\x00" not in v] + [
        "9" * 400, "0.4B", "0.5", str(2**63), str(2**63 + 1), "-1", "1e999999999", "1e-999999999",
        "/" + "a" * 300, "a" * 300 + ".npy", "x/" * 3000, "0.4 B", "1e400", "-0.0",
    ]


HOSTILE: list[str] = []

BASES: list[list[str]] = [
    ["fit", "7b", "--gpu", "a100-80", "--format", "json"],
    ["fit", "llama-3.1-8b", "--gpu", "h100-80", "--dtype", "int4", "--context", "8k", "--format", "json"],
    ["kv", "7b", "--context", "4k", "--batch", "2", "--format", "json"],
    ["finetune", "7b", "--gpu", "a100-80", "--format", "json"],
    ["quantize-demo", "--values", "0.18,-0.91,1.62,2.94", "--format", "json"],
    ["quantize-demo", "--rows", "0.1,-0.2,0.3;1.5,-2.5,0.7", "--gptq", "--format", "json"],
    ["decide", "7b", "--gpu", "a100-80", "--format", "json"],
    ["plan", "7b", "--format", "json"],
]
# Options a bad value goes into, per command (each must refuse it with exit 2 or take it as valid).
BAD_VALUE_OPTIONS = {
    "fit": ["--context", "--gpu-util", "--tp", "--pp", "--weights", "--gpu-memory", "--overhead", "--params",
            "--min-concurrency", "--block-size", "--max-num-seqs", "--presets", "--dtype", "--kv-dtype", "--gpu"],
    "kv": ["--context", "--batch", "--typical-tokens", "--kv-dtype"],
    "finetune": ["--seq", "--dataset-tokens", "--batch", "--grad-accum", "--lora-rank", "--overhead", "--mfu"],
    "quantize-demo": ["--samples", "--seed", "--bits", "--group-size", "--damp", "--matrix", "--calibration",
                      "--scale", "--values"],
    "decide": ["--gpu", "--context"],
    "plan": ["--context", "--gpu-util", "--max-gpus"],
}


def _one_bad_value(rng: random.Random) -> list[str]:
    base = list(rng.choice(BASES))
    options = BAD_VALUE_OPTIONS.get(base[0], [])
    option = rng.choice(options) if options else "--format"
    bad = rng.choice(HOSTILE)
    if option in base:
        base[base.index(option) + 1] = bad
    else:
        base += [option, bad]
    return base


def _valid_case(rng: random.Random) -> Case:
    """A valid invocation: its answer must be 0/1 and consistent."""
    kind = rng.random()
    if kind < 0.55:
        args = ["fit", rng.choice(MODELS), "--gpu", rng.choice(GPUS), "--dtype", rng.choice(DTYPES),
                "--context", rng.choice(CONTEXTS), "--format", "json"]
        if rng.random() < 0.3:
            args += ["--min-concurrency", str(rng.choice([1, 2, 8, 64]))]
    elif kind < 0.75:
        args = ["kv", rng.choice(MODELS), "--context", rng.choice(CONTEXTS), "--batch", str(rng.randint(1, 64)),
                "--kv-dtype", rng.choice(["auto", "fp16", "fp8", "fp32"]), "--format", "json"]
    elif kind < 0.9:
        args = ["finetune", rng.choice(MODELS[:5]), "--gpu", rng.choice(GPUS),
                "--method", rng.choice(["lora", "qlora", "full"]), "--format", "json"]
    else:
        n = rng.randint(1, 12)
        args = ["quantize-demo", "--values", ",".join(f"{rng.uniform(-3, 3):.3f}" for _ in range(n)),
                "--bits", str(rng.randint(2, 8)), "--format", "json"]
    return Case("valid", args, expect="valid", note="generated valid invocation")


def file_cases(rng: random.Random) -> list[Case]:
    """One of each hostile file (and its valid control) for this seed."""
    from model_files import TINY_LLAMA  # type: ignore[import-not-found,unused-ignore]

    cases: list[Case] = []
    for note, content, expect in hostile_configs(rng):
        cases.append(Case("files", ["fit", "config.json", "--gpu", "a100-80", "--format", "json"],
                          {"config.json": content}, expect, note=f"config.json: {note}"))
    for note, files, expect in hostile_snapshots(rng):
        cases.append(Case("files", ["fit", "./snap", "--gpu", "a100-80", "--format", "json"],
                          {f"snap/{k}": v for k, v in files.items()}, expect, note=f"snapshot: {note}"))
    for note, content, expect in hostile_ggufs(rng, _valid_gguf(TINY_LLAMA)):
        cases.append(Case("files", ["fit", "model.gguf", "--gpu", "a100-80", "--format", "json"],
                          {"model.gguf": content}, expect, note=f"gguf: {note}"))
    split = Case("files", ["fit", "m-00001-of-00000.gguf", "--gpu", "a100-80", "--format", "json"],
                 {"m-00001-of-00000.gguf": _valid_gguf(TINY_LLAMA)}, "invalid", note="gguf: -00001-of-00000")
    cases.append(split)
    for note, content, expect in hostile_matrices(rng):
        extra = rng.choice([[], ["--gptq"], ["--awq"], ["--scheme", "group", "--group-size", "32"]])
        cases.append(Case("files", ["quantize-demo", "--matrix", "w.npy", *extra, "--format", "json"],
                          {"w.npy": content}, expect, note=f".npy: {note}"))
    cases += log_cases(rng)
    for note, kind, content, expect, owner in hostile_presets(rng):
        model, gpu = ("bad", "a100-80") if kind == "models" else ("7b", "bad")
        cases.append(Case("files", ["fit", model, "--gpu", gpu, "--presets", "p", "--format", "json"],
                          {f"p/{kind}/bad.yaml": content}, expect, note=f"preset: {note}", owner=owner))
    return cases


def hostile_logs(rng: random.Random) -> list[tuple[str, bytes]]:
    """Engine start-up logs for any command that reads one (an option or argument named *log*)."""
    line = b"INFO 01-01 00:00:00 gpu_worker.py:1] "
    return [
        ("not UTF-8", b"\xff\xfe\x00garbage\x80" * 100),
        ("NUL bytes", b"\x00" * 10_000),
        ("one 2 MB line", b"GPU KV cache size: " + b"9" * 2_000_000),
        ("absurd figures", line + b"GPU KV cache size: 99999999999999999999999999999 tokens\n" + line
         + b"Maximum concurrency for 8192 tokens per request: inf\n" + line
         + b"Maximum concurrency for 8192 tokens per request: nan\n" + line + b"Model loading took -1e400 GiB\n"),
        ("ANSI escapes", b"\x1b[31m\x1b[2J\x1b]0;title\x07" * 1000),
        ("empty", b""),
        ("random bytes", bytes(rng.randrange(256) for _ in range(4096))),
    ]


def log_cases(rng: random.Random) -> list[Case]:
    """Every command option (or argument) whose name says it takes a log, given each hostile log."""
    import test_fuzz_cli as inproc  # type: ignore[import-not-found,unused-ignore]

    cases = []
    for path, command in inproc.COMMANDS.items():
        for param in getattr(command, "params", []):
            if "log" not in inproc._long_name(param):
                continue
            opts = [o for o in getattr(param, "opts", []) if o.startswith("-")]
            for note, content in hostile_logs(rng):
                args = [*path, *(opts[:1] or []), "engine.log", "--format", "json"]
                cases.append(Case("files", args, {"engine.log": content}, "any", note=f"log: {note}"))
    return cases


_GGUF_CACHE: dict[str, bytes] = {}


def _valid_gguf(config: dict[str, Any]) -> bytes:
    if "tiny" not in _GGUF_CACHE:
        from model_files import write_gguf  # type: ignore[import-not-found,unused-ignore]

        with tempfile.TemporaryDirectory() as scratch:
            path = Path(scratch) / "tiny.gguf"
            write_gguf(path, config=config)
            _GGUF_CACHE["tiny"] = path.read_bytes()
    return _GGUF_CACHE["tiny"]


def generate(runs: int, *, seed: int = 0, non_utf8_share: float = 0.25) -> list[Case]:
    """`runs` cases, the same for the same seed: a quarter each of arguments, one bad value, files and
    valid invocations (the files campaign cycles through every hostile file class with fresh shapes)."""
    HOSTILE[:] = _hostile_values()
    rng = random.Random(seed)
    cases: list[Case] = []
    quarter = max(1, runs // 4)
    files: list[Case] = []
    while len(files) < quarter:
        batch = file_cases(random.Random(rng.random()))
        # Round-robin over the file kinds (config.json, snapshot, gguf, .npy, preset), so that even a
        # short budget holds some of each.
        kinds: dict[str, list[Case]] = {}
        for case in sorted(batch, key=lambda c: c.expect != "valid"):  # the valid control of each kind first
            kinds.setdefault(case.note.split(":")[0], []).append(case)
        while any(kinds.values()):
            files += [group.pop(0) for group in kinds.values() if group]
    cases += files[:quarter]
    cases += [Case("arguments", _argument_case(rng)) for _ in range(quarter)]
    cases += [Case("one-bad-value", _one_bad_value(rng)) for _ in range(quarter)]
    cases += [_valid_case(rng) for _ in range(runs - len(cases))]
    for case in cases:
        if rng.random() < non_utf8_share:
            case.encoding = rng.choice(["ascii", "c-locale"])
    return cases


# ------------------------------------------------------------------------------------------- report


@dataclass
class Tally:
    runs: int = 0
    by_class: Counter[str] = field(default_factory=Counter)
    by_campaign: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    seconds: float = 0.0
    peak_rss: int = 0
    peak_case: str = ""

    def add(self, outcome: Outcome, problems: list[tuple[str, str]]) -> None:
        self.runs += 1
        self.by_campaign[outcome.case.campaign] += 1
        self.seconds += outcome.seconds
        if outcome.max_rss_bytes > self.peak_rss:
            self.peak_rss = outcome.max_rss_bytes
            self.peak_case = " ".join(_quote(a) for a in outcome.case.args) + f"  # {outcome.case.note}"
        for kind, detail in dict(problems).items():
            tag = kind + (f" [{outcome.case.encoding}]" if outcome.case.encoding != "utf-8" else "")
            self.by_class[tag] += 1
            shown = self.examples.setdefault(tag, [])
            if len(shown) < 3:
                owner = f" (helper {outcome.case.owner})" if outcome.case.owner else ""
                shown.append(f"llmfit {' '.join(_quote(a) for a in outcome.case.args)}  # {outcome.case.note}"
                             f"{owner} -> {detail}")


def _quote(arg: str) -> str:
    text = arg if len(arg) <= 60 else arg[:57] + "..."
    return text if text and all(c.isalnum() or c in "-_./:,=" for c in text) else repr(text)


def run_all(cases: list[Case], *, jobs: int, timeout: float,
            memory_bytes: int) -> Iterator[tuple[Outcome, list[tuple[str, str]]]]:
    """Each case's outcome and problems, in order, `jobs` processes at a time."""
    command = llmfit_command()

    def one(case: Case) -> tuple[Outcome, list[tuple[str, str]]]:
        outcome = run_case(case, command=command, timeout=timeout, memory_bytes=memory_bytes)
        return outcome, check(outcome, memory_bytes=memory_bytes)

    pool = ThreadPoolExecutor(max_workers=jobs)
    try:
        yield from pool.map(one, cases)
    finally:  # stopped early (SIGTERM, Ctrl-C): the runs under way finish, the rest are dropped
        pool.shutdown(wait=True, cancel_futures=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=20.0)
    parser.add_argument("--memory-mib", type=int, default=1024)
    options = parser.parse_args(argv)
    memory = options.memory_mib * 2**20
    cases = generate(options.runs, seed=options.seed)
    start = time.perf_counter()
    tally = Tally()
    # SIGTERM (or Ctrl-C) stops the campaign and prints the counts of the runs done so far.
    signal.signal(signal.SIGTERM, _stop)
    try:
        for outcome, problems in run_all(cases, jobs=options.jobs, timeout=options.timeout, memory_bytes=memory):
            tally.add(outcome, problems)
            if tally.runs % 500 == 0:
                sys.stderr.write(f"  {tally.runs:,} / {len(cases):,} runs, {time.perf_counter() - start:.0f} s: "
                                 + ", ".join(f"{k} {v}" for k, v in sorted(tally.by_class.items())) + "\n")
    except KeyboardInterrupt:
        print(f"(stopped after {tally.runs:,} of {len(cases):,} runs)")
    report(tally, options, time.perf_counter() - start)
    return 0 if not tally.by_class else 1


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def report(tally: Tally, options: argparse.Namespace, wall: float) -> None:
    print(f"llmfit process fuzz: {tally.runs:,} invocations (seed {options.seed}, {options.jobs} jobs, "
          f"{wall:.0f} s wall, timeout {options.timeout:g} s, RLIMIT_AS {options.memory_mib} MiB)")
    print("campaigns: " + ", ".join(f"{k} {v:,}" for k, v in sorted(tally.by_campaign.items())))
    print(f"peak RSS of any run: {tally.peak_rss / 2**20:.0f} MiB (llmfit {tally.peak_case})")
    headline = {"internal errors": "internal error", "hangs": "hang", "crashes": "crash",
                "runs over 1 GiB": "over memory"}
    for label, kind in headline.items():
        utf8 = tally.by_class[kind]
        other = sum(v for k, v in tally.by_class.items() if k.startswith(kind + " ["))
        print(f"{label:>22}: {utf8}" + (f"  (+{other} under a non-UTF-8 stdout)" if other else ""))
    for kind in CLASSES[4:]:
        total = sum(v for k, v in tally.by_class.items() if k.split(" [")[0] == kind)
        print(f"{kind:>22}: {total}")
    for tag, shown in sorted(tally.examples.items()):
        print(f"\n{tag}:")
        for line in shown:
            print("  " + line)
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
