"""MODEL arguments that are not presets: config.json, snapshot folders, safetensors, .gguf, Hub repo ids.

`llmfit/cli/resolve.py` asks `looks_like_file_or_repo` first and, when true, `resolve_model_source`.
Precedence: a bare preset name or alias (`7b`, `llama-3.1-8b`, a preset's hf_id) stays a preset even if
a folder of that name exists (write `./7b` for the folder); an existing path is a file or folder; a
name ending in .json/.gguf/.safetensors is a path (so a typo says "no such file", not "unknown
preset"); `org/name` (optionally `@revision`) is a Hugging Face repo id.
"""

from __future__ import annotations

import re
from pathlib import Path

from llmfit.errors import LlmfitError, UnknownPresetError
from llmfit.presets import Registry
from llmfit.readers.config import ModelFileError
from llmfit.readers.safetensors_headers import INDEX_NAME
from llmfit.specs import ModelSpec

_FILE_SUFFIXES = (".json", ".gguf", ".safetensors")
_CACHE_SNAPSHOT = re.compile(r"models--([^/]+)--([^/]+)/snapshots/[^/]+/?$")


def _is_preset(name: str, registry: Registry) -> bool:
    try:
        registry.model(name)
    except UnknownPresetError:
        return False
    except LlmfitError:
        return True  # a preset file that fails validation: let the preset path report it
    return True


def _looks_like_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or "\\" in name or name.lower().endswith(_FILE_SUFFIXES)


def _exists(name: str) -> bool:
    """Path.exists() that answers no, not OSError, for names no file system takes (too long, NUL bytes)."""
    try:
        return Path(name).expanduser().exists()
    except (OSError, ValueError, RuntimeError):
        return False


def looks_like_file_or_repo(name: str, registry: Registry) -> bool:
    if not _looks_like_path(name) and _is_preset(name, registry):
        return False
    if _exists(name) or _looks_like_path(name):
        return True
    from llmfit.readers.hub import REPO_ID  # the Hub client (logging, sockets) only when a name may be a repo id

    return bool(REPO_ID.match(name))


def _folder_name(folder: Path) -> tuple[str, str | None]:
    """(model name, hf_id) of a folder; a Hugging Face cache snapshot names its repo."""
    match = _CACHE_SNAPSHOT.search(folder.resolve().as_posix())
    if match:
        return match.group(2).lower(), f"{match.group(1)}/{match.group(2)}"
    return folder.resolve().name.lower(), None


def _from_folder(folder: Path) -> ModelSpec:
    from llmfit.readers.snapshot import spec_from_snapshot

    config = folder / "config.json"
    if not config.is_file():
        ggufs = sorted(folder.glob("*.gguf"))
        if len(ggufs) == 1 or (ggufs and all("-of-" in g.name for g in ggufs)):
            from llmfit.readers.gguf_file import spec_from_gguf

            return spec_from_gguf(ggufs[0])
        raise ModelFileError(f"{folder}: no config.json in this folder (expected a Hugging Face snapshot: "
                             "config.json + *.safetensors, or a single .gguf)")
    name, hf_id = _folder_name(folder)
    return spec_from_snapshot(config, name=name, hf_id=hf_id, label=f"snapshot folder {folder}", folder=folder)


def resolve_model_source(name: str, registry: Registry) -> ModelSpec:
    """Read MODEL from a file, folder or Hub repo id into a ModelSpec carrying its checkpoint."""
    try:
        return _resolve_model_source(name, registry)
    except OSError as error:  # unreadable, too long a name, permission denied: bad input, one line
        shown = name if len(name) <= 80 else name[:77] + "..."
        raise ModelFileError(f"{shown}: cannot read ({error.strerror or type(error).__name__})") from None


def _resolve_model_source(name: str, registry: Registry) -> ModelSpec:
    path = Path(name).expanduser()
    if path.is_dir():
        return _from_folder(path)
    if path.is_file():
        lower = path.name.lower()
        if lower.endswith(".gguf"):
            from llmfit.readers.gguf_file import spec_from_gguf

            return spec_from_gguf(path)
        if lower.endswith(".safetensors") or path.name == INDEX_NAME:
            return _from_folder(path.parent)
        if lower.endswith(".json"):
            from llmfit.readers.snapshot import spec_from_snapshot

            # A config.json alone: the architecture, no stored tensors (point at the folder for those).
            return spec_from_snapshot(path, name=_folder_name(path.parent)[0] if path.name == "config.json"
                                      else path.stem.lower(), hf_id=_folder_name(path.parent)[1],
                                      label=f"config file {path}")
        raise ModelFileError(f"{path}: not a model file llmfit reads (config.json, a snapshot folder, "
                             "*.safetensors, *.gguf)")
    if _looks_like_path(name):
        raise ModelFileError(f"{name}: no such file or folder")
    from llmfit.readers.hub import REPO_ID, spec_from_repo

    if REPO_ID.match(name):
        return spec_from_repo(name)
    raise ModelFileError(f"{name}: not a preset, file, folder or Hugging Face repo id")
