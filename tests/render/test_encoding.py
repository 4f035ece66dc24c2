"""Output in any encoding (issue 18): with a stdout that cannot encode UTF-8 (PYTHONIOENCODING=ascii, or the C
locale without UTF-8 mode) tables, bars, notes and messages fall back to ASCII, never an encoding error."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.render.examples import EXAMPLES

ENCODINGS = {"pythonioencoding-ascii": {"PYTHONIOENCODING": "ascii"},
             "c-locale": {"LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONIOENCODING": ""}}
CASES = {name: EXAMPLES[name] for name in ("fit", "fit-emit-vllm", "kv", "finetune", "decide", "quantize-demo",
                                           "presets-show-model")}


def run(args: list[str], extra: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if k not in ("LLMFIT_PRESETS", "PYTHONIOENCODING", "LC_ALL",
                                                             "LANG", "PYTHONUTF8", "NO_COLOR")}
    env.update(HF_HUB_OFFLINE="1", **{k: v for k, v in extra.items() if v})
    return subprocess.run([sys.executable, "-m", "llmfit", *args], capture_output=True, env=env, timeout=120,
                          stdin=subprocess.DEVNULL, check=False)


# Every command's table under both encodings, and Markdown for two of them (the same writer).
RUNS = [(name, encoding, "table") for name in sorted(CASES) for encoding in sorted(ENCODINGS)] + [
    (name, "c-locale", "markdown") for name in ("fit", "quantize-demo")]


@pytest.mark.parametrize(("name", "encoding", "fmt"), RUNS)
def test_a_non_utf8_stdout_gets_ascii(name: str, encoding: str, fmt: str) -> None:
    done = run([*CASES[name], "--format", fmt], ENCODINGS[encoding])
    assert done.returncode in (0, 1), done.stderr.decode(errors="replace")
    done.stdout.decode("ascii")  # raises if any byte is not ASCII
    done.stderr.decode("ascii")
    assert b"Traceback" not in done.stderr and b"internal error" not in done.stderr
    if fmt == "table" and name == "fit":
        assert b"+---" in done.stdout and b"[###" in done.stdout  # ASCII borders and bar


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_a_message_with_non_ascii_input_is_one_ascii_line(encoding: str) -> None:
    done = run(["fit", "7b", "--gpu", "ä100-80×8"], ENCODINGS[encoding])
    assert done.returncode == 2
    line = done.stderr.decode("ascii")
    assert line.count("\n") == 1 and line.startswith("error: unknown gpu")
