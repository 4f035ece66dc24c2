"""`llmfit quantize-demo` through the real Typer app: guide numbers, JSON keys, files, errors."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from llmfit.cli.app import app

runner = CliRunner()


def run(*args: str) -> Any:
    return runner.invoke(app, ["quantize-demo", *args], catch_exceptions=False)


def run_json(*args: str) -> dict[str, Any]:
    result = run(*args, "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def scheme(example: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in example["schemes"] if s["scheme"] == name)


def test_default_run_reproduces_the_guide() -> None:
    data = run_json()
    assert data["schema_version"] == 1 and data["mode"] == "walkthrough"
    ex32, ex33, ex65 = data["examples"]
    t32 = scheme(ex32, "per-tensor")
    assert t32["scales"] == [[pytest.approx(0.42)]] and t32["codes"] == [[0, -2, 4, 7]]
    assert t32["dequantized"] == [[pytest.approx(0.0), pytest.approx(-0.84), pytest.approx(1.68), 2.94]]
    t33, c33 = scheme(ex33, "per-tensor"), scheme(ex33, "per-channel")
    assert t33["codes"] == [[0, 0, 1, -1], [4, -5, 6, -7]]
    assert c33["codes"][0] == [3, -4, 6, -7]
    assert round(c33["scales"][0][0], 4) == 0.0443 and c33["scales"][1][0] == pytest.approx(0.40)
    assert c33["metrics"]["mse"] < t33["metrics"]["mse"]
    assert scheme(ex65, "per-tensor")["codes"][0] == [0, 0, 0, 0]
    assert data["awq"][0]["awq_output_error"] < data["awq"][0]["rtn_output_error"]
    assert data["gptq"][0]["gptq_output_error"] < data["gptq"][0]["rtn_output_error"]
    storage = t33["storage"]
    assert storage["total_bytes"] == storage["weights_bytes"] + storage["scales_bytes"] == 6
    int4 = next(f for f in data["formats"] if f["name"] == "int4")
    assert [round(p, 2) for p in int4["points_near_one"]] == [0.57, 0.71, 0.86, 1.0, 1.14, 1.29, 1.43]


def test_default_table_shows_number_line_and_crushed_row() -> None:
    result = run()
    assert result.exit_code == 0
    out = result.stdout
    assert "field guide 3.2" in out and "0.4200" in out
    assert "rounded to 0" in out
    assert "o original value, * where it lands" in out
    assert "448" in out and "57,344" in out


def test_explain_and_markdown() -> None:
    explained = run("--explain")
    assert "s = max|w| / 7 = 2.94 / 7 = 0.42" in explained.stdout
    assert "Frantar et al. 2022" in explained.stdout and "Lin et al. 2023" in explained.stdout
    md = run("--format", "markdown")
    assert md.exit_code == 0 and md.stdout.startswith("## quantize-demo")
    assert "| w | s | w / s | q |" in md.stdout and "```" in md.stdout


def test_rows_per_channel_beats_per_tensor() -> None:
    data = run_json("--rows", "0.12,-0.18,0.25,-0.31; 1.6,-2.1,2.4,-2.8")
    (ex,) = data["examples"]
    t, c = scheme(ex, "per-tensor"), scheme(ex, "per-channel")
    assert c["metrics"]["mse"] < t["metrics"]["mse"]
    assert t["rows"][0]["zero_fraction"] == 0.5 and c["rows"][0]["zero_fraction"] == 0.0
    assert len(ex["number_lines"]) == 2


def test_values_bits_group_asymmetric() -> None:
    data = run_json("--values", "0.18 -0.91 1.62 2.94", "--bits", "8", "--scheme", "group", "--group-size", "2",
                    "--asymmetric")
    (s,) = data["examples"][0]["schemes"]
    assert s["qmin"] == 0 and s["qmax"] == 255 and s["group_size"] == 2
    assert s["storage"]["zero_points_bytes"] == 2 and s["metrics"]["max_abs_error"] < 0.01


def test_activations_awq_toy() -> None:
    data = run_json("--values", "0.20,1.20", "--activations", "20,0.5", "--scheme", "per-channel")
    (awq,) = data["awq"]
    assert awq["contributions"] == [[pytest.approx(4.0), pytest.approx(0.6)]]
    assert awq["awq_output_error"] < awq["rtn_output_error"]


def test_formats_only() -> None:
    data = run_json("--formats", "--scale", "1/7")
    assert data["mode"] == "formats" and data["examples"] == []
    by = {f["name"]: f for f in data["formats"]}
    assert by["fp16"]["largest"] == float(np.finfo(np.float16).max)
    assert by["fp8-e4m3"]["largest"] == 448.0 and by["fp8-e5m2"]["largest"] == 57344.0


def test_matrix_npy_with_gptq(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    w = rng.standard_normal((16, 64)) / 8
    w[3] *= 0.05  # a small channel
    path = tmp_path / "w.npy"
    np.save(path, w.astype(np.float32))
    data = run_json("--matrix", str(path), "--gptq", "--group-size", "32", "--samples", "128")
    (ex,) = data["examples"]
    assert ex["shape"] == [16, 64] and ex["weights"] is None  # too big for per-weight detail
    names = [s["scheme"] for s in ex["schemes"]]
    assert names == ["per-tensor", "per-channel", "group"]
    assert scheme(ex, "group")["n_scales"] == 32
    assert scheme(ex, "per-channel")["metrics"]["mse"] < scheme(ex, "per-tensor")["metrics"]["mse"]
    (g,) = data["gptq"]
    assert g["scheme"] == "group" and g["group_size"] == 32
    assert g["gptq_output_error"] < g["rtn_output_error"]


def _write_safetensors(path: Path, tensors: dict[str, tuple[str, list[int], bytes]]) -> None:
    """The documented layout: u64 little-endian header size, JSON header, raw little-endian data."""
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset, blobs = 0, []
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blobs.append(raw)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def test_matrix_safetensors_bf16_and_f32(tmp_path: Path) -> None:
    w = np.array([[0.12, -0.18, 0.25, -0.31], [1.6, -2.1, 2.4, -2.8]], dtype=np.float32)
    bf16 = (w.view(np.uint32) >> 16).astype("<u2")  # truncation: the top 16 bits of each float32
    expected = (bf16.astype(np.uint32) << 16).view(np.float32)
    path = tmp_path / "layer.safetensors"
    _write_safetensors(path, {
        "model.layers.0.mlp.up_proj.weight": ("BF16", [2, 4], bf16.tobytes()),
        "model.layers.0.mlp.down_proj.weight": ("F32", [2, 4], w.astype("<f4").tobytes()),
    })
    data = run_json("--matrix", f"{path}:model.layers.0.mlp.up_proj.weight")
    (ex,) = data["examples"]
    assert ex["weights"] == [pytest.approx(row, abs=1e-9) for row in expected.astype(float).tolist()]
    assert "BF16" in ex["source"]
    assert scheme(ex, "per-tensor")["codes"] == [[0, 0, 1, -1], [4, -5, 6, -7]]
    f32 = run_json("--matrix", f"{path}:model.layers.0.mlp.down_proj.weight")
    assert f32["examples"][0]["weights"][0] == pytest.approx([0.12, -0.18, 0.25, -0.31], abs=1e-7)


def test_matrix_safetensors_written_by_the_library(tmp_path: Path) -> None:
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    path = tmp_path / "one.safetensors"
    safetensors_numpy.save_file({"w": np.array([[0.18, -0.91, 1.62, 2.94]], dtype=np.float16)}, str(path))
    data = run_json("--matrix", str(path))  # a single tensor needs no name
    assert scheme(data["examples"][0], "per-tensor")["codes"] == [[0, -2, 4, 7]]


@pytest.mark.parametrize(("args", "message"), [
    (["--bits", "9"], "2..8"),
    (["--values", "0.1,abc"], "'abc' is not a number"),
    (["--rows", "1,2;3"], "different lengths"),
    (["--values", "1,2", "--rows", "1;2"], "one of --values"),
    (["--values", "1,2", "--scheme", "group"], "--group-size"),
    (["--values", "1,2", "--activations", "1"], "need 2 values"),
    (["--gptq"], "need weights"),
    (["--scale", "0"], "--scale"),
    (["--matrix", "/nonexistent/w.npy"], "no such file"),
])
def test_bad_input_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    result = run(*args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_safetensors_unknown_tensor_suggests(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    raw = np.zeros(4, dtype="<f4").tobytes()
    _write_safetensors(path, {"a.weight": ("F32", [1, 4], raw), "b.weight": ("F32", [1, 4], raw)})
    result = run("--matrix", f"{path}:a.weigth")
    assert result.exit_code == 2 and "did you mean a.weight" in result.stderr and str(path) in result.stderr
    result = run("--matrix", str(path))
    assert result.exit_code == 2 and "has 2 tensors" in result.stderr
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x05\x00\x00\x00\x00\x00\x00\x00{oops")
    result = run("--matrix", str(bad))
    assert result.exit_code == 2 and "not a safetensors file" in result.stderr
