"""Reading real-sized model files: GGUF metadata + tensor infos, safetensors headers (issue 17 targets).

Writes, in a temporary folder, files shaped like real ones while small on disk (tensor data is a sparse
hole; the readers never touch it): a Qwen2.5-32B GGUF with its 152,064-token vocabulary, token types
and merges (771 tensors), the same with 10,000 tensors, and a 10,000-tensor safetensors shard. Each
reading is timed in a fresh subprocess (the best of --runs readings after one warm-up) and the
subprocess's peak RSS is taken from resource.getrusage. Targets printed beside each measurement:

  - GGUF, 152k vocabulary, ~700 tensors: read < 100 ms, peak RSS < 64 MiB
  - GGUF, 152k vocabulary, 10k tensors: `llmfit fit FILE` within 2x `llmfit fit 70b` (a preset), wall time
  - safetensors header, 10k tensors: read < 50 ms (the JSON parse alone is printed beside it)

    python benchmarks/model_files.py [--runs 7] [--with-gguf-py]

--with-gguf-py also times gguf.GGUFReader on the first file (seconds). Exit 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROBE = r"""
import json, resource, sys, time
from pathlib import Path
kind, path, runs = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
if kind == "gguf":
    from llmfit.readers.gguf_reader import read_gguf as read
elif kind == "gguf-py":
    from gguf import GGUFReader
    read = lambda p: GGUFReader(str(p))
elif kind == "json":
    import struct
    def read(p):
        with open(p, "rb") as h:
            (n,) = struct.unpack("<Q", h.read(8))
            return json.loads(h.read(n))
else:
    from llmfit.readers.safetensors_headers import read_file_headers as read
read(path)
times = []
for _ in range(runs):
    t = time.perf_counter()
    read(path)
    times.append(time.perf_counter() - t)
print(json.dumps({"seconds": min(times),
                  "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                  "numpy": "numpy" in sys.modules}))
"""


WRITER = f"""
import sys
from pathlib import Path
sys.path.insert(0, {str(ROOT / "tests" / "readers")!r})
from gguf_files import write_qwen2_gguf
write_qwen2_gguf(Path(sys.argv[1]))
write_qwen2_gguf(Path(sys.argv[2]), extra_tensors=10_000 - 771)
"""


def probe(kind: str, path: Path, runs: int) -> dict[str, float]:
    done = subprocess.run([sys.executable, "-c", PROBE, kind, str(path), str(runs)], capture_output=True, text=True,
                          timeout=600, check=True)
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def write_safetensors(path: Path, tensors: int) -> Path:
    header: dict[str, dict[str, object]] = {"__metadata__": {"format": "pt"}}
    position = 0
    for i in range(tensors):  # an MoE shard: 10 experts x 1000 layers of [4096, 14336] bf16
        size = 4096 * 14336 * 2
        header[f"model.layers.{i // 10}.mlp.experts.{i % 10}.down_proj.weight"] = {
            "dtype": "BF16", "shape": [4096, 14336], "data_offsets": [position, position + size]}
        position += size
    text = json.dumps(header).encode()
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(text)) + text)
        handle.truncate(8 + len(text) + position)
    return path


def wall(argv: list[str], runs: int) -> float:
    env = {**os.environ, "NO_COLOR": "1"}
    subprocess.run(argv, env=env, capture_output=True, timeout=300, check=False)  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(argv, env=env, capture_output=True, timeout=300, check=False)
        times.append(time.perf_counter() - start)
        if done.returncode not in (0, 1):
            raise SystemExit(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.decode()[:400]}")
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--with-gguf-py", action="store_true", help="also time gguf.GGUFReader (slow)")
    args = parser.parse_args()
    llmfit = str(Path(sys.executable).with_name("llmfit"))
    ok = True

    def report(label: str, value: str, target: str, met: bool) -> None:
        nonlocal ok
        ok &= met
        print(f"  {label:<58} {value:>12}   target {target:<22} {'meets' if met else 'MISSES'}")

    with tempfile.TemporaryDirectory(prefix="llmfit-model-files-") as tmp:
        folder = Path(tmp)
        gguf, big = folder / "qwen2.5-32b.gguf", folder / "qwen2.5-32b-10k.gguf"
        # Written by a child process: this one stays small, so the probes' getrusage peaks are their own
        # (Linux carries a parent's resident size into a forked child's ru_maxrss).
        subprocess.run([sys.executable, "-c", WRITER, str(gguf), str(big)], check=True, timeout=600)
        shard = write_safetensors(folder / "moe-10k.safetensors", 10_000)
        print(f"model files (sparse; best of {args.runs} readings in a fresh process; load average "
              f"{os.getloadavg()[0]:.1f}; {sys.executable})")
        read = probe("gguf", gguf, args.runs)
        report("GGUF 152k vocab + merges, 771 tensors: read", f"{read['seconds'] * 1000:.1f} ms", "< 100 ms",
               read["seconds"] < 0.1)
        report("  peak RSS of that process", f"{read['peak_rss_bytes'] / 2**20:.1f} MiB", "< 64 MiB",
               read["peak_rss_bytes"] < 64 * 2**20)
        read_big = probe("gguf", big, args.runs)
        print(f"  {'GGUF 152k vocab, 10k tensors: read':<58} {read_big['seconds'] * 1000:>9.1f} ms")
        file_fit = wall([llmfit, "fit", str(big), "--gpu", "h100-80x2", "--format", "json"], args.runs)
        preset_fit = wall([llmfit, "fit", "70b", "--dtype", "int4", "--gpu", "a100-80", "--format", "json"], args.runs)
        report("`llmfit fit` 10k-tensor GGUF / `llmfit fit 70b` (wall)",
               f"{file_fit / preset_fit:.2f}x", "<= 2x", file_fit <= 2 * preset_fit)
        print(f"  {'    (fit FILE.gguf, fit 70b)':<58} {file_fit * 1000:>6.0f} / {preset_fit * 1000:.0f} ms")
        header = probe("safetensors", shard, args.runs)
        report("safetensors header, 10k tensors: read + validate", f"{header['seconds'] * 1000:.1f} ms", "< 50 ms",
               header["seconds"] < 0.05)
        alone = probe("json", shard, args.runs)
        print(f"  {'    (json.loads of the same header alone)':<58} {alone['seconds'] * 1000:>9.1f} ms")
        if header["numpy"]:
            ok = False
            print("  the safetensors reader imported numpy: MISSES")
        if args.with_gguf_py:
            ref = probe("gguf-py", gguf, 1)
            print(f"  {'gguf.GGUFReader on the first file (for comparison)':<58} {ref['seconds']:>10.2f} s   "
                  f"peak RSS {ref['peak_rss_bytes'] / 2**20:.0f} MiB")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
