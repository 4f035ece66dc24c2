"""Hugging Face repo ids -> the files llmfit reads, through `huggingface_hub`: config and headers only.

Order: the local cache first (what `hf download` or transformers left there); then, unless
HF_HUB_OFFLINE is set, the Hub: config.json and the index are small files, and the safetensors headers
come from `get_safetensors_metadata` (HTTP range requests for the first bytes of each shard), never
the weights. Gated repos use the token huggingface_hub already reads (HF_TOKEN, `hf auth login`).
The cache folder and the offline switch are read from the environment at call time (HF_HUB_CACHE,
HF_HOME, HF_HUB_OFFLINE), so a variable set after import still counts.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from llmfit.limits import MAX_CONFIG_BYTES
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
DEFAULT_ENDPOINT = "https://huggingface.co"
# Seconds to connect and to wait for each answer (LLMFIT_HUB_TIMEOUT overrides). huggingface_hub's own
# defaults are 10 s per request with 5 retries on network errors (utils/_http.py _http_backoff_base:
# 1+2+4+8+8 s of sleep), which is how an unplugged laptop waited 24 s for a wrong error: here one HEAD
# request without retries comes first, after a TCP probe of the endpoint.
DEFAULT_TIMEOUT_SECONDS = 5.0
PROBE_TIMEOUT_SECONDS = 1.0
# Largest file fetched, checked against the size the Hub's HEAD answer reports before any download.
# An index of the largest published checkpoints (DeepSeek-V3: ~91k tensors) is ~9 MB.
MAX_FILE_BYTES = {"config.json": MAX_CONFIG_BYTES, INDEX_NAME: 64 * 2**20}
# Safetensors headers through get_safetensors_metadata are capped by huggingface_hub itself
# (constants.SAFETENSORS_MAX_HEADER_LENGTH, 25 MB) and read with the same timeout.

_REACHABLE: dict[str, str | None] = {}  # endpoint -> None (reached) or why not, once per process


def split_repo(text: str) -> tuple[str, str | None]:
    """'org/name@rev' -> ('org/name', 'rev')."""
    repo, _, revision = text.partition("@")
    return repo, revision or None


def is_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE


def endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def _absent(refusal: ModelFileError | None, missing: ModelFileError, required: bool) -> None:
    """A failed Hub call: its own refusal, else the file is absent (an error only when it is required)."""
    if refusal is not None:
        raise refusal from None
    if required:
        raise missing from None


def timeout_seconds() -> float:
    text = os.environ.get("LLMFIT_HUB_TIMEOUT", "").strip()
    try:
        value = float(text) if text else DEFAULT_TIMEOUT_SECONDS
    except ValueError:
        value = DEFAULT_TIMEOUT_SECONDS
    return value if 0 < value <= 600 else DEFAULT_TIMEOUT_SECONDS


def cache_dir() -> str | None:
    """huggingface_hub's own precedence: HF_HUB_CACHE, HUGGINGFACE_HUB_CACHE, HF_HOME/hub."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return os.environ[var]
    if os.environ.get("HF_HOME"):
        return str(Path(os.environ["HF_HOME"]) / "hub")
    return None


def _maybe_cached(repo: str) -> bool:
    """False when the cache certainly has no copy of repo (no models--org--name folder): then the
    offline answer comes without importing huggingface_hub (~0.3 s of httpx and friends)."""
    root = cache_dir()
    if root is None:  # huggingface_hub's default: $XDG_CACHE_HOME or ~/.cache, then huggingface/hub
        root = str(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "huggingface" / "hub")
    try:
        return (Path(root).expanduser() / f"models--{repo.replace('/', '--')}").is_dir()
    except OSError:
        return True


def _unreachable(host: str, why: str) -> ModelFileError:
    return ModelFileError(f"cannot reach {host} ({why}): no network? Pass a local config.json or snapshot "
                          "folder, or set HF_HUB_OFFLINE=1 to use the local Hugging Face cache only")


def _resolve(host: str, port: int, timeout: float) -> list[Any]:
    """getaddrinfo with a deadline (it has none of its own: a dead resolver can stall for many seconds)."""
    out: dict[str, Any] = {}

    def work() -> None:
        try:
            out["addresses"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as error:
            out["error"] = error

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"name lookup timed out after {timeout:g} s")
    if "error" in out:
        raise out["error"]
    return list(out["addresses"])


def _first_hop(url: str) -> str:
    """The address a request to url connects to first: its proxy when one is set for it (HTTPS_PROXY...)."""
    import urllib.request

    parts = urlsplit(url)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(parts.hostname or ""):
        return proxy if "://" in proxy else f"http://{proxy}"
    return url


def check_reachable(url: str | None = None) -> None:
    """A TCP connection to the Hub endpoint (or its proxy) within PROBE_TIMEOUT_SECONDS, else one clear error."""
    url = _first_hop(url or endpoint())
    if url not in _REACHABLE:
        parts = urlsplit(url)
        host = parts.hostname or url
        try:
            port = parts.port or (80 if parts.scheme == "http" else 443)
        except ValueError:
            raise ModelFileError(f"HF_ENDPOINT {url!r} is not a URL") from None
        why: str | None = None
        try:
            family, kind, proto, _name, address = _resolve(host, port, PROBE_TIMEOUT_SECONDS)[0]
            with socket.socket(family, kind, proto) as probe:
                probe.settimeout(PROBE_TIMEOUT_SECONDS)
                probe.connect(address)
        except socket.gaierror:
            why = "name lookup failed"
        except TimeoutError:
            why = f"no answer within {PROBE_TIMEOUT_SECONDS:g} s"
        except OSError as error:
            why = error.strerror or type(error).__name__
        _REACHABLE[url] = why
    reason = _REACHABLE[url]
    if reason is not None:
        raise _unreachable(urlsplit(url).hostname or url, reason)


def _quiet_hub() -> None:
    """huggingface_hub logs each retry as a warning line and draws progress bars: one line is ours to print."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    logging.getLogger("huggingface_hub").setLevel(logging.ERROR)


def _is_network_error(error: BaseException) -> bool:
    return isinstance(error, (OSError, TimeoutError)) or type(error).__module__.split(".")[0].startswith("httpx")


def _hub_error(repo: str, revision: str | None, filename: str, error: BaseException) -> ModelFileError | None:
    """The one line for a Hub failure; None when the file does not exist (the caller decides)."""
    from huggingface_hub import errors

    if isinstance(error, errors.GatedRepoError):
        return ModelFileError(f"{repo}: a gated repo: accept its licence on the Hub, then log in (HF_TOKEN or "
                              "`hf auth login`) with an account that has access")
    if isinstance(error, errors.RevisionNotFoundError):
        return ModelFileError(f"{repo}: no revision {revision!r} in this repo")
    if isinstance(error, errors.RepositoryNotFoundError):
        return ModelFileError(f"{repo}: no such Hugging Face repo (or a private one your token cannot see; "
                              "log in with HF_TOKEN or `hf auth login`)")
    if isinstance(error, errors.EntryNotFoundError):
        return None
    if isinstance(error, errors.HfHubHTTPError):
        status = getattr(getattr(error, "response", None), "status_code", None)
        return ModelFileError(f"{repo}: the Hub answered HTTP {status} for {filename}; try again later, or set "
                              "HF_HUB_OFFLINE=1 to use the local cache only")
    if _is_network_error(error):
        host = urlsplit(endpoint()).hostname or endpoint()
        why = "timed out" if "timeout" in type(error).__name__.lower() or isinstance(error, TimeoutError) \
            else (str(error).splitlines() or [type(error).__name__])[0][:120]
        return _unreachable(host, f"{why} after {timeout_seconds():g} s" if why == "timed out" else why)
    return ModelFileError(f"{repo}: cannot fetch {filename} from the Hub ({type(error).__name__})")


def _cap(filename: str) -> int:
    return MAX_FILE_BYTES.get(filename, MAX_CONFIG_BYTES)


def _download(repo: str, revision: str | None, filename: str, *, required: bool) -> Path | None:
    """A small file of the repo: from the cache, else (online) from the Hub; None if it does not exist.

    Online: a TCP probe, then one HEAD request (no retries, a timeout) whose answer gives the file's size,
    checked against its cap before the download."""
    _quiet_hub()
    if _maybe_cached(repo):
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

        try:
            local = Path(hf_hub_download(repo, filename, revision=revision, cache_dir=cache_dir(),
                                         local_files_only=True))
        except (LocalEntryNotFoundError, EntryNotFoundError, FileNotFoundError, OSError, ValueError):
            pass
        else:
            _check_size(local, filename)
            return local
    if is_offline():
        if required:
            raise ModelFileError(f"{repo}: {filename} is not in the local Hugging Face cache and HF_HUB_OFFLINE "
                                 "is set (download it once online, or point at a local folder)") from None
        return None
    check_reachable()  # before importing huggingface_hub: no network is known in milliseconds
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_download, hf_hub_url

    constants.HF_HUB_OFFLINE = False  # it read the variable at import; ours is read now (is_offline)
    timeout = timeout_seconds()
    missing = ModelFileError(f"{repo}: the repo has no {filename} (a GGUF repo? pass the .gguf file's path)")
    try:
        url = hf_hub_url(repo, filename, revision=revision, endpoint=endpoint())
        meta = get_hf_file_metadata(url, timeout=timeout, retry_on_errors=False)
    except Exception as error:
        _absent(_hub_error(repo, revision, filename, error), missing, required)
        return None
    if meta.size is not None and meta.size > _cap(filename):
        raise ModelFileError(f"{repo}: {filename} is {meta.size:,} bytes on the Hub, over the {_cap(filename):,}-byte "
                             "limit for it: refused before download")
    constants.HF_HUB_DOWNLOAD_TIMEOUT = int(max(1, timeout))  # read at call time by http_get
    try:
        path = Path(hf_hub_download(repo, filename, revision=revision, cache_dir=cache_dir(),
                                    etag_timeout=timeout, endpoint=endpoint()))
    except Exception as error:
        _absent(_hub_error(repo, revision, filename, error), missing, required)
        return None
    _check_size(path, filename)
    return path


def _check_size(path: Path, filename: str) -> None:
    try:
        size = path.stat().st_size
    except OSError:
        return
    if size > _cap(filename):
        raise ModelFileError(f"{path}: {size:,} bytes, over the {_cap(filename):,}-byte limit for {filename}")


def _remote_headers(repo: str, revision: str | None) -> list[TensorInfo] | None:
    """Safetensors headers over HTTP range requests (no weights downloaded); None if unavailable."""
    from huggingface_hub import HfApi

    try:
        meta = HfApi(endpoint=endpoint()).get_safetensors_metadata(repo, revision=revision, timeout=timeout_seconds())
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
