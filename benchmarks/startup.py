"""Start-up speed: median wall time of llmfit commands against the floor of `python -c "import typer"`.

A CI gate runs llmfit many times; most of its wall time is Python importing things. The floor is what
any Typer CLI pays before doing anything (the interpreter plus `import typer`). Targets (issue 17):
`fit`, `kv`, `finetune` with `--format json` <= 1.5x the floor, table output <= 2x, `--version` <= 0.5x.

Every process runs with the same environment: bytecode cached in a private temporary folder
(PYTHONPYCACHEPREFIX, so a PYTHONDONTWRITEBYTECODE shell does not make every run recompile llmfit, and
nothing is written into the source tree), one untimed warm-up run each, then --runs timed runs
interleaved so that machine noise hits every command alike. The breakdown after the table is one
`python -X importtime` run of the headline: what its imports cost, by package. (What makes the targets:
docs/hardening.md, "Start-up speed"; tests/test_startup_imports.py keeps pydantic, yaml, numpy and Rich
off the JSON commands' path.)

    python benchmarks/startup.py [--runs 15]

Exit code 0 when every target is met, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEADLINE = ["fit", "70b", "--dtype", "int4", "--gpu", "a100-80", "--format", "json"]
# label -> (argv after `llmfit`, allowed ratio to the floor)
COMMANDS: dict[str, tuple[list[str], float]] = {
    "llmfit " + " ".join(HEADLINE): (HEADLINE, 1.5),
    "llmfit kv 70b --format json": (["kv", "70b", "--format", "json"], 1.5),
    "llmfit finetune 7b --method qlora --gpu rtx-4090 --format json": (
        ["finetune", "7b", "--method", "qlora", "--gpu", "rtx-4090", "--format", "json"], 1.5),
    "llmfit fit ... (table, piped)": (["fit", "70b", "--dtype", "int4", "--gpu", "a100-80"], 2.0),
    "llmfit --version": (["--version"], 0.5),
    "llmfit --help": (["--help"], 2.0),
}
FLOOR = 'python -c "import typer" (floor)'
# Import groups reported by the breakdown: top-level package -> label.
GROUPS = ("typer", "rich", "pydantic", "pydantic_core", "yaml", "numpy", "llmfit")


def llmfit_command() -> list[str]:
    """The installed console script next to this interpreter, else `python -m llmfit`."""
    script = Path(sys.executable).with_name("llmfit")
    if script.exists():
        return [str(script)]
    found = shutil.which("llmfit")
    return [found] if found else [sys.executable, "-m", "llmfit"]


def timed_run(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.decode()[:500]}")
    return elapsed


def breakdown(env: dict[str, str]) -> dict[str, float]:
    """Self time (ms) of every module imported by the headline, summed by top-level package."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "llmfit", *HEADLINE], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    totals: dict[str, float] = {}
    for line in done.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+\d+ \|\s*(\S+)", line)
        if not match:
            continue
        top = match.group(2).split(".")[0]
        key = top if top in GROUPS else "stdlib and others"
        if top == "llmfit":
            key = "llmfit." + [*match.group(2).split("."), ""][1]
        totals[key] = totals.get(key, 0.0) + int(match.group(1)) / 1000
    return totals


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="timed runs per command (median reported)")
    args = parser.parse_args()

    cache = tempfile.mkdtemp(prefix="llmfit-startup-pyc-")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPROFILEIMPORTTIME")}
    env.update(PYTHONPYCACHEPREFIX=cache, NO_COLOR="1")
    llmfit = llmfit_command()
    commands: dict[str, list[str]] = {
        'python -c "pass" (the interpreter)': [sys.executable, "-c", "pass"],
        FLOOR: [sys.executable, "-c", "import typer"],
        **{label: llmfit + argv for label, (argv, _) in COMMANDS.items()},
    }
    try:
        for argv in commands.values():  # warm-up: fills the bytecode cache, not timed
            timed_run(argv, env)
        times: dict[str, list[float]] = {label: [] for label in commands}
        for _ in range(args.runs):
            for label, argv in commands.items():
                times[label].append(timed_run(argv, env))
        parts = breakdown(env)
    finally:
        shutil.rmtree(cache, ignore_errors=True)

    medians = {label: statistics.median(values) for label, values in times.items()}
    floor = medians[FLOOR]
    width = max(len(label) for label in medians)
    import typer

    print(f"median wall time over {args.runs} runs ({sys.executable}, Python {sys.version.split()[0]}, "
          f"typer {typer.__version__}, load average {os.getloadavg()[0]:.1f})")
    ok = True
    for label, median in medians.items():
        line = f"  {label:<{width}}  {median * 1000:7.1f} ms  {median / floor:5.2f}x floor"
        if label in COMMANDS:
            target = COMMANDS[label][1]
            met = median / floor <= target
            ok &= met
            line += f"   target <= {target}x  {'meets' if met else 'MISSES'}"
        print(line)
    print("where the headline's imports go (self time of each module, one -X importtime run, ms):")
    for key, ms in sorted(parts.items(), key=lambda kv: -kv[1]):
        if ms >= 1:
            print(f"  {key:<28} {ms:7.1f}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
