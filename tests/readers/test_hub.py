"""Hub look-ups without the network: a closed port, a server that accepts and never answers, and a fake
Hub on 127.0.0.1 answering as huggingface.co does (X-Error-Code headers, huggingface_hub's
utils/_http.py hf_raise_for_status) for a gated repo, a missing repo, a missing file and a huge file.
Every case is one line (a ModelFileError, exit 2 through the CLI), never a retry storm."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from llmfit.readers import hub
from llmfit.readers.config import ModelFileError

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def hub_env(monkeypatch: pytest.MonkeyPatch, tmp_path: os.PathLike[str]) -> Iterator[pytest.MonkeyPatch]:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("LLMFIT_HUB_TIMEOUT", "1")
    monkeypatch.setattr(hub, "_REACHABLE", {})
    yield monkeypatch


class FakeHub(BaseHTTPRequestHandler):
    """HEAD/GET /{org}/{name}/resolve/{rev}/{file}: the answer is chosen by the repo name."""

    def log_message(self, *args: object) -> None:  # keep test output clean
        pass

    def _answer(self, body: bool) -> None:
        name = self.path.strip("/").split("/")[1]
        headers = {"X-Repo-Commit": COMMIT, "ETag": '"abc"'}
        if name == "gated":
            status, headers = 401, {"X-Error-Code": "GatedRepo", "X-Error-Message": "Access to model is restricted"}
        elif name == "missing":
            status, headers = 404, {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"}
        elif name == "nofile":
            status, headers = 404, {**headers, "X-Error-Code": "EntryNotFound", "X-Error-Message": "Entry not found"}
        elif name == "huge":
            status, headers = 200, {**headers, "Content-Length": str(300 * 2**20)}
        else:
            status = 500
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        if "Content-Length" not in headers:
            self.send_header("Content-Length", "0")
        self.end_headers()
        if body and name == "huge":
            raise AssertionError("a file over the cap was downloaded")

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def do_GET(self) -> None:
        self._answer(body=True)


@pytest.fixture
def fake_hub(hub_env: pytest.MonkeyPatch) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    hub_env.setenv("HF_ENDPOINT", url)
    yield url
    server.shutdown()
    server.server_close()


def test_offline_without_a_cached_copy_is_one_error(hub_env: pytest.MonkeyPatch) -> None:
    hub_env.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelFileError, match="not in the local Hugging Face cache and HF_HUB_OFFLINE"):
        hub.spec_from_repo("org/model")


def test_a_refused_connection_is_detected_by_the_probe(hub_env: pytest.MonkeyPatch) -> None:
    hub_env.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_free_port()}")
    with pytest.raises(ModelFileError, match=r"cannot reach 127\.0\.0\.1 \(.*refused.*\): no network\?"):
        hub.spec_from_repo("org/model")


def test_a_server_that_never_answers_times_out(hub_env: pytest.MonkeyPatch) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)  # accepts connections (the probe passes) and never sends a byte
    try:
        hub_env.setenv("HF_ENDPOINT", f"http://127.0.0.1:{listener.getsockname()[1]}")
        with pytest.raises(ModelFileError, match=r"cannot reach 127\.0\.0\.1 \(timed out after 1 s\)"):
            hub.spec_from_repo("org/model")
    finally:
        listener.close()


@pytest.mark.parametrize(("repo", "message"), [
    ("org/gated", "a gated repo: accept its licence on the Hub"),
    ("org/missing", "no such Hugging Face repo"),
    ("org/nofile", "the repo has no config.json"),
    ("org/huge", "config.json is 314,572,800 bytes on the Hub, over the"),
    ("org/broken", "the Hub answered HTTP 500"),
])
def test_each_hub_failure_has_its_own_message(fake_hub: str, repo: str, message: str) -> None:
    with pytest.raises(ModelFileError, match=message):
        hub.spec_from_repo(repo)


def test_the_cli_prints_one_line_and_exits_2_when_offline(tmp_path: os.PathLike[str]) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "LLMFIT_PRESETS")}
    env.update(HF_ENDPOINT=f"http://127.0.0.1:{_free_port()}", HF_HUB_CACHE=str(tmp_path))
    done = subprocess.run([sys.executable, "-m", "llmfit", "fit", "Qwen/Qwen2.5-Coder-32B-Instruct", "--gpu",
                           "a100-80"], capture_output=True, text=True, env=env, timeout=60, check=False)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: cannot reach 127.0.0.1"), done.stderr


def test_the_probe_goes_to_the_proxy_when_one_is_set(hub_env: pytest.MonkeyPatch) -> None:
    """Behind a proxy the Hub itself is not reachable directly: the probe checks the proxy instead."""
    hub_env.setenv("HF_ENDPOINT", "https://huggingface.co")
    hub_env.setenv("HTTPS_PROXY", f"http://127.0.0.1:{_free_port()}")
    hub_env.delenv("NO_PROXY", raising=False)
    hub_env.delenv("no_proxy", raising=False)
    with pytest.raises(ModelFileError, match=r"cannot reach 127\.0\.0\.1"):
        hub.check_reachable()
