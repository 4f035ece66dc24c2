"""Emitted launch commands paste into a shell: each block set off by blank lines, comments on their own
`#` lines above the command (never between continued lines), arguments quoted, and every block passes
`bash -n`."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from llmfit.render.shell import command_block, comment_lines, shell_lines
from tests.conftest import run_cli

EMITTING = {
    "fit-vllm-awq": ["fit", "mixtral-8x7b-v0.1", "--gpu", "a100-40x2", "--dtype", "awq", "--emit", "vllm"],
    "fit-sglang": ["fit", "llama-3.1-8b", "--gpu", "h100-80", "--emit", "sglang"],
    "fit-llamacpp": ["fit", "llama-3.1-70b", "--engine", "llama.cpp", "--dtype", "q4_k_m", "--gpu", "rtx-4090",
                     "--ram", "64GB", "--emit", "llama.cpp"],
    "plan": ["plan", "llama-3.1-70b", "--context", "32k", "--concurrency", "64", "--top", "3"],
}
BASH = shutil.which("bash")


def table_blocks(text: str) -> list[str]:
    """The shell blocks of a table rendering: runs of lines that are comments or indented commands."""
    blocks, current = [], []
    for line in text.splitlines():
        if line.startswith(("# ", "  ")) and not line.startswith(("│", "┃")):
            current.append(line)
        else:
            if current:
                blocks.append("\n".join(current))
            current = []
    if current:
        blocks.append("\n".join(current))
    return [b for b in blocks if any(not line.startswith("#") for line in b.splitlines())]


def markdown_blocks(text: str) -> list[str]:
    return [part.split("\n", 1)[1] for part in text.split("```")[1::2] if "\\\n" in part]


def bash_n(script: str) -> subprocess.CompletedProcess[str]:
    assert BASH is not None
    return subprocess.run([BASH, "-n"], input=script, capture_output=True, text=True, timeout=30, check=False)


def check_shape(block: str) -> None:
    lines = block.splitlines()
    command_start = next(i for i, line in enumerate(lines) if not line.startswith("#"))
    assert all(line.startswith("#") for line in lines[:command_start]), block  # comments above only
    command = lines[command_start:]
    assert all(line.endswith(" \\") for line in command[:-1]), block  # continued lines, nothing between
    assert not command[-1].endswith("\\") and not any(line.lstrip().startswith("#") for line in command), block


@pytest.mark.skipif(BASH is None, reason="needs bash")
@pytest.mark.parametrize("fmt", ["80", "120", "markdown"])
@pytest.mark.parametrize("name", sorted(EMITTING))
def test_every_emitted_block_passes_bash_n(name: str, fmt: str) -> None:
    extra = ["--format", "markdown"] if fmt == "markdown" else ["--width", fmt]
    done = run_cli(*EMITTING[name], *extra)
    assert done.exit_code in (0, 1), done.stderr
    blocks = markdown_blocks(done.stdout) if fmt == "markdown" else table_blocks(done.stdout)
    assert blocks, done.stdout
    for block in blocks:
        check_shape(block)
        checked = bash_n(block)
        assert checked.returncode == 0, (block, checked.stderr)
    if fmt != "markdown":  # set off by blank lines
        lines = done.stdout.splitlines()
        for block in blocks:
            first = lines.index(block.splitlines()[0])
            assert lines[first - 1] == "", block


def test_a_long_comment_wraps_onto_comment_lines() -> None:
    lines = comment_lines("awq: the engine cannot quantize to it while loading; unless org/model is already "
                          "quantized offline with AWQ, point at such a checkpoint of it", width=40)
    assert len(lines) > 1 and all(line.startswith("# ") and len(line) <= 40 for line in lines)


@pytest.mark.skipif(BASH is None, reason="needs bash")
def test_arguments_are_quoted() -> None:
    block = command_block("title", ["vllm", "serve", "org/model; rm -rf ~", "--served-model-name", "it's $HOME"],
                          ["note with `backticks` and $(subshell)"])
    assert "'org/model; rm -rf ~'" in shell_lines(["vllm", "serve", "org/model; rm -rf ~"])
    checked = bash_n(block)
    assert checked.returncode == 0, checked.stderr
    echoed = subprocess.run([BASH, "-c", block.replace("vllm", "printf '%s\\n'", 1)], capture_output=True,
                            text=True, timeout=30, check=False)
    assert echoed.stdout.splitlines() == ["serve", "org/model; rm -rf ~", "--served-model-name", "it's $HOME"]
