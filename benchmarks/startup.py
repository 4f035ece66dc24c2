"""Start-up speed: median wall time of llmfit commands against the floor of `python -c "import typer"`.

A CI gate runs llmfit many times; most of its wall time is Python importing things. The floor is
what any Typer CLI pays before doing anything (the interpreter plus `import typer`); importing typer,
rich, pydantic and yaml together costs ~2.7x that floor, so a command that stays within 2.5x imports
only what it needs (issue 10).

Every process runs with the same environment: bytecode cached in a private temporary folder
(PYTHONPYCACHEPREFIX, so a PYTHONDONTWRITEBYTECODE shell does not make every run recompile llmfit,
and nothing is written into the source tree), one untimed warm-up run each, then --runs timed runs
interleaved so that machine noise hits every command alike.

    python benchmarks/startup.py [--runs 15] [--target 2.5]

Exit code 0 when the headline command is within the target ratio, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEADLINE = ["fit", "70b", "--dtype", "int4", "--gpu", "a100-80", "--format", "json"]
OTHERS = {
    "llmfit --version": ["--version"],
    "llmfit --help": ["--help"],
    "llmfit fit ... (table, piped)": ["fit", "70b", "--dtype", "int4", "--gpu", "a100-80"],
}


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="timed runs per command (median reported)")
    parser.add_argument("--target", type=float, default=2.5, help="allowed ratio headline / floor")
    args = parser.parse_args()

    cache = tempfile.mkdtemp(prefix="llmfit-startup-pyc-")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPROFILEIMPORTTIME")}
    env.update(PYTHONPYCACHEPREFIX=cache, NO_COLOR="1")
    llmfit = llmfit_command()
    commands: dict[str, list[str]] = {
        'python -c "import typer" (floor)': [sys.executable, "-c", "import typer"],
        "llmfit " + " ".join(HEADLINE): llmfit + HEADLINE,
        **{label: llmfit + argv for label, argv in OTHERS.items()},
    }
    try:
        for argv in commands.values():  # warm-up: fills the bytecode cache, not timed
            timed_run(argv, env)
        times: dict[str, list[float]] = {label: [] for label in commands}
        for _ in range(args.runs):
            for label, argv in commands.items():
                times[label].append(timed_run(argv, env))
    finally:
        shutil.rmtree(cache, ignore_errors=True)

    medians = {label: statistics.median(values) for label, values in times.items()}
    floor = next(iter(medians.values()))
    width = max(len(label) for label in medians)
    print(f"median wall time over {args.runs} runs ({sys.executable}, Python {sys.version.split()[0]})")
    for label, median in medians.items():
        print(f"  {label:<{width}}  {median * 1000:7.1f} ms  {median / floor:5.2f}x floor")
    headline = medians["llmfit " + " ".join(HEADLINE)] / floor
    verdict = "meets" if headline <= args.target else "MISSES"
    print(f"headline ratio {headline:.2f}x the import-typer floor: {verdict} the {args.target}x target")
    return 0 if headline <= args.target else 1


if __name__ == "__main__":
    sys.exit(main())
