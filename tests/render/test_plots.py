"""`--plot FILE.svg|png` on fit, plan, finetune and kv: the file exists and holds a chart (the SVG parses and
carries the chart's titles and axis labels as text; the PNG decodes and is not one flat colour)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.conftest import run_cli

CASES = {
    "fit": (["fit", "llama-3.1-8b", "--gpu", "h100-80"], ["Memory per GPU", "Concurrency and KV pool"]),
    "fit-dtype-all": (["fit", "mixtral-8x7b-v0.1", "--gpu", "a100-40x2", "--dtype", "all"], ["awq", "int4"]),
    "plan": (["plan", "llama-3.1-8b", "-k", "16", "--gpu-types", "h100-80,a100-80,l40s", "--top", "4"],
             ["Pareto front", "USD per hour"]),
    "finetune": (["finetune", "7b", "--gpu", "rtx-4090", "--grad-checkpointing"], ["qlora", "optimizer"]),
    "kv": (["kv", "gemma-2-9b", "--context", "8k"], ["sliding_attention", "full_attention"]),
}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _svg_text(path: Path) -> str:
    root = ET.parse(path).getroot()  # raises on malformed XML
    assert root.tag.endswith("svg")
    return " ".join(t for element in root.iter() for t in (element.text,) if t)


@pytest.mark.parametrize("name", sorted(CASES))
def test_svg_chart(name: str, tmp_path: Path) -> None:
    args, expected = CASES[name]
    path = tmp_path / f"{name}.svg"
    done = run_cli(*args, "--plot", str(path), "--format", "json")
    assert done.exit_code in (0, 1), done.stderr
    assert f"chart written to {path}" in done.stderr
    text = _svg_text(path)
    for word in expected:
        assert word in text, (word, text[:300])


@pytest.mark.parametrize("name", ["fit", "plan", "finetune", "kv"])
def test_png_chart(name: str, tmp_path: Path) -> None:
    import matplotlib.image

    args, _ = CASES[name]
    path = tmp_path / f"{name}.png"
    done = run_cli(*args, "--plot", str(path), "--format", "json")
    assert done.exit_code in (0, 1), done.stderr
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    pixels = matplotlib.image.imread(path)
    assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.shape[1] > 100
    assert float(pixels.std()) > 0.01  # not blank
    assert len({tuple(p) for p in pixels.reshape(-1, pixels.shape[2])[::97]}) > 5  # several colours


@pytest.mark.parametrize("bad", ["chart.pdf", "no/such/folder/chart.svg"])
def test_a_bad_plot_path_is_bad_input(bad: str, tmp_path: Path) -> None:
    done = run_cli("kv", "7b", "--plot", str(tmp_path / bad))
    assert done.exit_code == 2
    assert done.stderr.startswith("error: --plot")


def test_matplotlib_is_imported_only_for_a_chart() -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "llmfit", "fit", "7b", "--gpu", "a100-80",
                           "--format", "json"], capture_output=True, text=True, env=env, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-500:]
    assert "matplotlib" not in done.stderr
