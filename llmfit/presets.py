"""Presets: loading and validating model and GPU YAML files into a registry.

Built-in presets ship inside the package (`llmfit/_configs`, mapped from the repository's `configs/`
by pyproject for wheels); user folders (`--presets DIR`, `LLMFIT_PRESETS`, several separated by the
OS path separator) override them by name. Files are read with `yaml.safe_load` only, refused over
1 MB unread, and every validation failure names the file and the field.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

from llmfit.errors import PresetError, UnknownPresetError
from llmfit.specs import GpuSpec, ModelSpec

MAX_PRESET_BYTES = 1_000_000
ENV_VAR = "LLMFIT_PRESETS"

T = TypeVar("T")


def builtin_dir() -> Path:
    """The built-in presets: package data in a wheel, the repository's configs/ in a checkout."""
    here = Path(__file__).resolve().parent
    packaged = here / "_configs"
    if packaged.is_dir():
        return packaged
    return here.parent / "configs"


def _key(name: str) -> str:
    return name.strip().lower()


_LOADER: list[Any] = []


def _loader() -> Any:
    """A SafeLoader that refuses a duplicated mapping key (PyYAML keeps the last value silently).

    libyaml's parser when PyYAML has it: the same SafeLoader constructors, ~10x faster, and it refuses
    nesting deeper than 1000 levels where the pure-Python composer would hit RecursionError."""
    if _LOADER:
        return _LOADER[0]
    import yaml

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class NoDuplicatesLoader(base):  # type: ignore[misc,valid-type]
        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            seen: set[Any] = set()
            for key_node, _value in node.value:
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                except TypeError:  # an unhashable key: the base constructor reports it
                    continue
                if duplicate:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping", node.start_mark, f"duplicate key {key!r}",
                        key_node.start_mark)
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    _LOADER.append(NoDuplicatesLoader)
    return NoDuplicatesLoader


def read_yaml(path: Path) -> Any:
    """Read one YAML file safely: size-capped, safe_load only, alias bombs refused."""
    import yaml

    from llmfit import safe_io

    loader = _loader()
    try:
        # Regular files only (a named pipe blocks forever, /dev/zero never ends), size-capped before and while
        # reading: safe_io's bounded read, its refusal re-raised as a preset error.
        raw = safe_io.read_bytes(path, max_bytes=MAX_PRESET_BYTES, what="YAML file")
    except safe_io.UnsafeInputError as error:
        broken = " (broken symlink)" if path.is_symlink() and not path.exists() else ""
        raise PresetError(f"{error}{broken}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise PresetError(f"{path}: cannot read (not UTF-8: byte {error.start})") from None
    try:
        # A preset never needs YAML aliases; refusing them (before composing anything) stops a
        # "billion laughs" alias bomb outright, in time and memory bounded by the 1 MB file.
        for event in yaml.parse(text, Loader=loader):
            if isinstance(event, yaml.AliasEvent):
                raise PresetError(f"{path}: YAML aliases (*name) are not allowed in presets")
        return yaml.load(text, Loader=loader)  # a SafeLoader: plain data only, no Python tags
    except RecursionError:
        raise PresetError(f"{path}: invalid YAML: nested too deeply") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise PresetError(f"{path}: invalid YAML{where}: {problem}") from None


# pydantic's error types for a dataclass (keyword-only arguments) -> the words its models used.
_MESSAGES = {"extra_forbidden": "unknown field", "unexpected_keyword_argument": "unknown field",
             "missing_keyword_only_argument": "Field required", "missing_argument": "Field required"}


def validation_message(path: Path | str, error: Any) -> str:
    """A pydantic ValidationError as one line: the file, then each bad field and what is wrong with it."""
    parts = []
    for item in error.errors()[:3]:
        loc = ".".join(str(p) for p in item["loc"]) or "(top level)"
        msg = _MESSAGES.get(item["type"]) or item["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}")
    more = f" (+{len(error.errors()) - 3} more)" if len(error.errors()) > 3 else ""
    return f"{path}: " + "; ".join(parts) + more


def load_preset(path: Path, model: type[T], *, default_name: str | None = None, use_index: bool = True) -> T:
    """One preset file validated into `model`; a built-in one from the validated index when it is current
    (llmfit/presets_index.py: no yaml, no pydantic), unless `use_index` is False (`presets check`)."""
    if use_index:
        from llmfit.presets_index import lookup

        found = lookup(path, model)
        if found is not None:
            return found
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise PresetError(f"{path}: expected a mapping of fields, got {type(data).__name__}")
    if default_name and "name" not in data:
        data = {"name": default_name, **data}
    from pydantic_core import ValidationError  # pydantic's, re-exported

    from llmfit.validators import validate

    try:
        # context: a size read from a file must carry its unit (specs._bytes_value)
        return validate(model, data, context={"source": "file"})
    except ValidationError as error:
        raise PresetError(validation_message(path, error)) from None


# A preset's own look-up keys, read from its text without parsing or validating it (issue 17: a look-up
# among 1,000 user presets must not parse 1,000 files): `name:`, `hf_id:` and `aliases:` as a flow list
# (`[a, b]`) or a block list (`- a` lines), at the top level of the file.
_KEY_LINES = re.compile(rb"^(name|hf_id|aliases)[ \t]*:[ \t]*([^\r\n#]*)", re.M)
_ITEM_LINES = re.compile(rb"(?:[ \t]*(?:#[^\n]*)?\r?\n|[ \t]+-[ \t]+[^\r\n#]*[^\n]*\n?)+")
_ITEM = re.compile(rb"^[ \t]+-[ \t]+([^\r\n#]*)", re.M)
SCAN_BYTES = 64 * 1024


def _unquote(text: bytes) -> str:
    value = text.strip().decode("utf-8", errors="replace")
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def scan_keys(path: Path) -> list[str]:
    """The names a preset file answers to (name, hf_id, aliases), read with two regular expressions over its
    first 64 KiB: no YAML, no validation (~10 us a file)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(SCAN_BYTES)
    except OSError:
        return []
    keys: list[str] = []
    for match in _KEY_LINES.finditer(data):
        field_name, value = match.group(1), match.group(2).strip()
        if field_name != b"aliases":
            keys.append(_unquote(value))
        elif value.startswith(b"[") and value.endswith(b"]"):
            keys += [_unquote(part) for part in value[1:-1].split(b",")]
        elif not value:  # a block list: the indented `- item` lines that follow
            block = _ITEM_LINES.match(data, match.end() + 1)
            if block:
                keys += [_unquote(item) for item in _ITEM.findall(block.group(0))]
    return [key for key in keys if key]


@dataclass
class Registry:
    """Model and GPU presets by lowercase name and alias; files are parsed (and validated) lazily on first use.

    Look-up: the file name first (a directory listing), then an index of the `name:`, `hf_id:` and
    `aliases:` lines of every file (scan_keys: a text scan, ~20 us a file), so neither needs parsing
    every preset. `warnings` holds what a user should hear about the folders (YAML files in the wrong place)."""

    model_files: dict[str, Path] = field(default_factory=dict)
    gpu_files: dict[str, Path] = field(default_factory=dict)
    _models: dict[str, ModelSpec] = field(default_factory=dict)
    _gpus: dict[str, GpuSpec] = field(default_factory=dict)
    _aliases: dict[str, dict[str, Path]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def from_dirs(cls, dirs: Iterable[Path]) -> Registry:
        registry = cls()
        for directory in dirs:
            registry.add_dir(directory)
        return registry

    def add_dir(self, directory: Path) -> None:
        from llmfit.safe_io import check_path

        check_path(directory, what="preset folder")  # a name too long for any file system: one line, exit 2
        if not directory.exists():
            raise PresetError(f"{directory}: preset folder does not exist")
        if not directory.is_dir():
            raise PresetError(f"{directory}: expected a folder with models/ and gpus/ subfolders")
        stray = preset_paths(directory)
        if stray:
            names = ", ".join(p.name for p in stray[:3]) + (f" (+{len(stray) - 3} more)" if len(stray) > 3 else "")
            self.warnings.append(f"{directory}: {names} at the top of the folder: not read; presets belong in "
                                 f"{directory / 'models'}/ and {directory / 'gpus'}/")
        for sub, target in (("models", self.model_files), ("gpus", self.gpu_files)):
            for path in preset_paths(directory / sub):
                target[_key(path.stem)] = path
        self._aliases.clear()
        self._models.clear()
        self._gpus.clear()

    def model_names(self) -> list[str]:
        return sorted(self.model_files)

    def gpu_names(self) -> list[str]:
        return sorted(self.gpu_files)

    def model(self, name: str) -> ModelSpec:
        return self._get(name, "model", self.model_files, self._models, ModelSpec)

    def gpu(self, name: str) -> GpuSpec:
        return self._get(name, "gpu", self.gpu_files, self._gpus, GpuSpec)

    def all_models(self) -> list[ModelSpec]:
        return [self.model(n) for n in self.model_names()]

    def all_gpus(self) -> list[GpuSpec]:
        return [self.gpu(n) for n in self.gpu_names()]

    def _get(self, name: str, kind: str, files: dict[str, Path], cache: dict[str, Any], model: type[T]) -> T:
        key = _key(name)
        if key in cache:
            return cast(T, cache[key])
        path = files.get(key)
        if path is None:
            path = self._alias_map(kind, files).get(key)
        if path is None:
            pool = list(files) + list(self._alias_map(kind, files))
            suggestions = difflib.get_close_matches(key, pool, n=3, cutoff=0.5)
            raise UnknownPresetError(kind, name, suggestions)
        spec = load_preset(path, model, default_name=path.stem.lower())
        cache[key] = spec
        return spec

    def _alias_map(self, kind: str, files: dict[str, Path]) -> dict[str, Path]:
        """Every other key a file answers to -> the file (the first file wins, as file names do)."""
        if kind not in self._aliases:
            mapping: dict[str, Path] = {}
            for path in files.values():
                for alias in scan_keys(path):
                    mapping.setdefault(_key(alias), path)
            self._aliases[kind] = mapping
        return self._aliases[kind]


def preset_paths(folder: Path) -> list[Path]:
    """The .yaml/.yml files of a folder (not recursive); [] when it is not a folder."""
    try:
        names = sorted(entry.name for entry in os.scandir(folder)
                       if entry.name.endswith((".yaml", ".yml")) and not entry.name.startswith("."))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [folder / name for name in names]


@dataclass(frozen=True)
class CheckedFile:
    path: Path
    kind: str  # "model" or "gpu"
    error: str | None  # None: valid


def check_dir(directory: Path) -> tuple[list[CheckedFile], list[str]]:
    """Validate every preset of a folder (models/ and gpus/): each file with its error, and the warnings."""
    registry = Registry()
    registry.add_dir(directory)
    checked = []
    for kind, files, model in (("model", registry.model_files, ModelSpec), ("gpu", registry.gpu_files, GpuSpec)):
        for path in sorted(files.values()):
            try:
                load_preset(path, model, default_name=path.stem.lower(), use_index=False)
            except PresetError as error:
                checked.append(CheckedFile(path, kind, str(error)))
            else:
                checked.append(CheckedFile(path, kind, None))
    return checked, registry.warnings


def user_dirs(explicit: Path | None) -> list[Path]:
    dirs: list[Path] = []
    env = os.environ.get(ENV_VAR)
    if env:
        dirs += [Path(p) for p in env.split(os.pathsep) if p]
    if explicit is not None:
        dirs.append(explicit)
    return dirs


def load_registry(explicit: Path | None = None) -> Registry:
    """Built-ins first, then LLMFIT_PRESETS folders, then --presets: later folders override by name."""
    return Registry.from_dirs([builtin_dir(), *user_dirs(explicit)])


_GPU_COUNT_RE = re.compile(r"^(.*?)x([0-9]+)$")


def split_gpu_count(name: str) -> tuple[str, int]:
    """`h100-80x8` -> ('h100-80', 8); `a100-80` -> ('a100-80', 1)."""
    match = _GPU_COUNT_RE.match(name.strip().lower())
    if match and match.group(1):
        count = int(match.group(2))
        if count <= 0 or count > 4096:
            raise PresetError(f"GPU count in {name!r} must be between 1 and 4096")
        return match.group(1).rstrip("-"), count
    return name, 1
