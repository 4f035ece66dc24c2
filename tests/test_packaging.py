"""The built-in presets ship inside the wheel, so a non-editable install (`pip install .`) finds them."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_contains_every_preset(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(ROOT), "-w", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    if proc.returncode != 0 and "No matching distribution" in proc.stderr:
        pytest.skip("the build backend (hatchling) cannot be fetched here")
    assert proc.returncode == 0, proc.stderr
    wheel = next(tmp_path.glob("*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for kind in ("models", "gpus"):
        for preset in (ROOT / "configs" / kind).glob("*.yaml"):
            assert f"llmfit/_configs/{kind}/{preset.name}" in names


def test_registry_prefers_packaged_presets(tmp_path, monkeypatch):
    """In an installed wheel the presets sit in llmfit/_configs next to presets.py."""
    import llmfit.presets as presets

    packaged = tmp_path / "llmfit"
    (packaged / "_configs" / "gpus").mkdir(parents=True)
    (packaged / "_configs" / "gpus" / "only-gpu.yaml").write_text("memory: 1 GiB\nsource: test\n")
    monkeypatch.setattr(presets, "__file__", str(packaged / "presets.py"))
    assert presets.builtin_dir() == packaged / "_configs"
    assert presets.load_registry().gpu_names() == ["only-gpu"]
