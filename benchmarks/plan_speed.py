"""How many deployment configurations `plan` evaluates per second: a full sweep over every preset.

Run: python benchmarks/plan_speed.py [--max-gpus 16]
Every model preset x every GPU preset x 1..max_gpus GPUs x every valid TP/PP/DP split x weight formats x
KV dtypes, at 32k context and 64 requests. Prints configurations, seconds and configurations per second
(target: 10^5 configurations in under a second). Presets that fail to load are skipped and named.
"""

from __future__ import annotations

import argparse
import time

from llmfit.engine.formats import get_format
from llmfit.engine.plan import PlanTarget, sweep
from llmfit.engine.serving import ServingOptions
from llmfit.errors import LlmfitError
from llmfit.presets import load_registry

FORMATS = ("fp32", "bf16", "fp8", "int8", "awq", "gptq", "nf4")
KV_DTYPES = ("auto", "fp16", "fp8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-gpus", type=int, default=16)
    parser.add_argument("--engine", default="vllm")
    args = parser.parse_args()
    registry = load_registry()
    gpus = []
    for name in registry.gpu_names():
        try:
            gpus.append(registry.gpu(name))
        except LlmfitError as error:
            print(f"skipped GPU preset {name}: {error}")
    formats = [get_format(name) for name in FORMATS]
    target = PlanTarget(context_tokens=32768, concurrency=64, max_gpus=args.max_gpus, engine=args.engine)
    base = ServingOptions(context_tokens=32768)
    total = serving = 0
    start = time.perf_counter()
    for name in registry.model_names():
        try:
            spec = registry.model(name)
        except LlmfitError as error:
            print(f"skipped model preset {name}: {error}")
            continue
        t0 = time.perf_counter()
        result = sweep(spec, gpus, formats, list(KV_DTYPES), target, base)
        n = result.size
        total += n
        serving += int(result.fits.sum())
        print(f"{name:28s} {n:>9,} configurations in {time.perf_counter() - t0:6.3f} s")
    elapsed = time.perf_counter() - start
    print(f"total: {total:,} configurations ({serving:,} serve 64 x 32k) in {elapsed:.3f} s "
          f"= {total / elapsed:,.0f} configurations/s")


if __name__ == "__main__":
    main()
