"""User preset folders: sizes need a unit, duplicate keys are refused, `presets check` names every bad file,
stray YAML at a folder's top level is reported, and look-ups go through a name index built without
parsing every file (issue 17)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmfit.cli.app import app
from llmfit.errors import PresetError
from llmfit.presets import Registry, read_yaml, scan_keys

GOOD_GPU = """display_name: Test GPU
aliases: [tg, test-gpu]
vendor: nvidia
memory: 24 GiB
memory_bandwidth_bytes_per_s: 1000000000000
tflops: {bf16: 100, fp16: 100}
source: "a test"
"""


def _folder(tmp_path: Path, **gpus: str) -> Path:
    (tmp_path / "gpus").mkdir()
    (tmp_path / "models").mkdir()
    for name, text in gpus.items():
        (tmp_path / "gpus" / f"{name}.yaml").write_text(text, encoding="utf-8")
    return tmp_path


def test_a_size_without_a_unit_is_bad_input_naming_file_and_field(tmp_path: Path) -> None:
    folder = _folder(tmp_path, bad=GOOD_GPU.replace("memory: 24 GiB", "memory: 96"))
    done = CliRunner().invoke(app, ["fit", "7b", "--presets", str(folder), "--gpu", "bad"])
    assert done.exit_code == 2, done.output
    assert "bad.yaml: memory: 96 has no unit" in done.output


def test_a_duplicated_key_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text("name: x\nmemory: 24 GiB\nmemory: 80 GiB\n", encoding="utf-8")
    with pytest.raises(PresetError, match=r"dup\.yaml: invalid YAML at line 3, column 1: duplicate key 'memory'"):
        read_yaml(path)


def test_a_duplicated_nested_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text("tflops:\n  bf16: 1\n  bf16: 2\n", encoding="utf-8")
    with pytest.raises(PresetError, match="duplicate key 'bf16'"):
        read_yaml(path)


def test_presets_check_names_each_bad_file_and_exits_2(tmp_path: Path) -> None:
    folder = _folder(tmp_path, good=GOOD_GPU, nounit=GOOD_GPU.replace("24 GiB", "24"),
                     typo=GOOD_GPU + "memroy: 1 GiB\n")
    done = CliRunner().invoke(app, ["presets", "check", str(folder), "--format", "json"])
    assert done.exit_code == 2
    payload = json.loads(done.stdout)
    assert payload["files_checked"] == 3 and payload["files_bad"] == 2
    bad = {Path(f["path"]).name for f in payload["files"] if not f["valid"]}
    assert bad == {"nounit.yaml", "typo.yaml"}
    assert "nounit.yaml: memory" in done.stderr and "typo.yaml: memroy: unknown field" in done.stderr


def test_presets_check_of_a_valid_folder_exits_0(tmp_path: Path) -> None:
    done = CliRunner().invoke(app, ["presets", "check", str(_folder(tmp_path, good=GOOD_GPU))])
    assert done.exit_code == 0, done.output
    assert "1 of 1 preset files valid" in done.stdout


def test_yaml_at_the_top_of_a_folder_gets_a_warning_saying_where_presets_belong(tmp_path: Path) -> None:
    (tmp_path / "mygpu.yaml").write_text(GOOD_GPU, encoding="utf-8")
    done = CliRunner().invoke(app, ["presets", "list", "--presets", str(tmp_path), "--kind", "gpus",
                                    "--format", "json"])
    assert done.exit_code == 0
    assert "mygpu.yaml at the top of the folder: not read; presets belong in" in done.stderr
    assert str(tmp_path / "gpus") in done.stderr


def test_the_name_index_reads_flow_and_block_lists_without_yaml(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("name: Big-GPU\nhf_id: 'org/thing'\naliases:\n  - one  # comment\n\n  - \"two\"\nvendor: v\n",
                    encoding="utf-8")
    assert scan_keys(path) == ["Big-GPU", "org/thing", "one", "two"]
    path.write_text("aliases: [a, 'b', c]\n", encoding="utf-8")
    assert scan_keys(path) == ["a", "b", "c"]


def test_an_alias_look_up_validates_only_the_file_it_finds(tmp_path: Path) -> None:
    """A broken preset elsewhere in the folder does not stop (or slow) a look-up of another one."""
    folder = _folder(tmp_path, good=GOOD_GPU, broken="memory: [1, 2\n")
    registry = Registry.from_dirs([folder])
    assert registry.gpu("test-gpu").display_name == "Test GPU"
    assert list(registry._gpus) == ["test-gpu"]  # only the file that was used was parsed
    with pytest.raises(PresetError, match=r"broken\.yaml: invalid YAML"):
        registry.gpu("broken")
