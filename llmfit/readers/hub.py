"""Hugging Face repo ids -> the files llmfit reads, through `huggingface_hub`: config and headers only.

Order: the local cache first (what `hf download` or transformers left there); then, unless
HF_HUB_OFFLINE is set, the Hub: config.json and the index are small files, and the safetensors headers
come from `get_safetensors_metadata` (HTTP range requests for the first bytes of each shard), never
the weights. Gated repos use the token huggingface_hub already reads (HF_TOKEN, `hf auth login`).
The cache folder and the offline switch are read from the environment at call time (HF_HUB_CACHE,
HF_HOME, HF_HUB_OFFLINE), so a variable set after import still counts.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from llmfit.readers.config import ModelFileError
from llmfit.readers.safetensors_headers import (
    INDEX_NAME,
    TensorInfo,
    _tensor,
    folder_headers,
    read_index,
)
from llmfit.readers.snapshot import spec_from_snapshot
from llmfit.specs import ModelSpec

REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}(@[A-Za-z0-9._/-]{1,100})?$")
_TRUE = {"1", "on", "yes", "true"}


def split_repo(text: str) -> tuple[str, str | None]:
    """'org/name@rev' -> ('org/name', 'rev')."""
    repo, _, revision = text.partition("@")
    return repo, revision or None


def is_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE


def cache_dir() -> str | None:
    """huggingface_hub's own precedence: HF_HUB_CACHE, HUGGINGFACE_HUB_CACHE, HF_HOME/hub."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return os.environ[var]
    if os.environ.get("HF_HOME"):
        return str(Path(os.environ["HF_HOME"]) / "hub")
    return None


def _download(repo: str, revision: str | None, filename: str, *, required: bool) -> Path | None:
    """A small file of the repo: from the cache, else (online) from the Hub; None if it does not exist."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError

    try:
        from huggingface_hub.errors import RepositoryNotFoundError
    except ImportError:  # pragma: no cover - older huggingface_hub
        RepositoryNotFoundError = HfHubHTTPError  # type: ignore[misc,assignment]

    kwargs = {"revision": revision, "cache_dir": cache_dir()}
    try:
        return Path(hf_hub_download(repo, filename, local_files_only=True, **kwargs))  # type: ignore[arg-type]
    except (LocalEntryNotFoundError, EntryNotFoundError, FileNotFoundError, OSError):
        pass
    if is_offline():
        if required:
            raise ModelFileError(f"{repo}: {filename} is not in the local Hugging Face cache and HF_HUB_OFFLINE "
                                 "is set (download it once online, or point at a local folder)") from None
        return None
    try:
        return Path(hf_hub_download(repo, filename, **kwargs))  # type: ignore[arg-type]
    except EntryNotFoundError:
        if required:
            raise ModelFileError(f"{repo}: the repo has no {filename} (a GGUF repo? pass the .gguf file's "
                                 "path)") from None
        return None
    except RepositoryNotFoundError:
        raise ModelFileError(f"{repo}: no such Hugging Face repo, or it is gated/private and no token grants "
                             "access (HF_TOKEN or `hf auth login`)") from None
    except (HfHubHTTPError, OSError, ValueError) as error:
        if not required:
            return None
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ModelFileError(f"{repo}: cannot fetch {filename} from the Hub ({first}); set HF_HUB_OFFLINE=1 "
                             "to use the local cache only") from None


def _remote_headers(repo: str, revision: str | None) -> list[TensorInfo] | None:
    """Safetensors headers over HTTP range requests (no weights downloaded); None if unavailable."""
    from huggingface_hub import get_safetensors_metadata

    try:
        meta = get_safetensors_metadata(repo, revision=revision)
    except Exception:
        return None
    out = []
    for filename, file_meta in meta.files_metadata.items():
        for tensor_name, info in file_meta.tensors.items():
            out.append(_tensor(tensor_name, info.dtype, list(info.shape), f"{repo}/{filename}"))
    return out


def spec_from_repo(text: str) -> ModelSpec:
    repo, revision = split_repo(text)
    config = _download(repo, revision, "config.json", required=True)
    assert config is not None
    folder = config.parent
    _download(repo, revision, INDEX_NAME, required=False)
    try:
        tensors, index_total, how = folder_headers(folder)
    except ModelFileError:  # some shards cached, others not: use the index (or the Hub's headers)
        index = folder / INDEX_NAME
        tensors, how = None, f"{INDEX_NAME} (total_size only: some shards not cached)"
        index_total = read_index(index)[1] if index.is_file() else None
    if tensors is None and not is_offline():
        remote = _remote_headers(repo, revision)
        if remote:
            tensors, how = remote, "safetensors headers read from the Hub (range requests, no weights)"
    label = f"Hugging Face repo {repo}" + (f"@{revision}" if revision else "") + (
        " (local cache)" if is_offline() else "")
    return spec_from_snapshot(config, name=repo.split("/")[-1].lower(), hf_id=repo, label=label, folder=None,
                              tensors=tensors, index_total=index_total, how=how)
