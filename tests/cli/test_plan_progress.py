"""plan's progress bar: on stderr, only on a terminal, only for a sweep that runs past a second."""

from __future__ import annotations

import sys

import pytest

from llmfit.cli.plan import progress_bar


class FakeTerminal:
    def __init__(self) -> None:
        self.text: list[str] = []

    def isatty(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.text.append(text)
        return len(text)

    def flush(self) -> None:
        pass


def test_no_bar_when_stderr_is_not_a_terminal() -> None:
    with progress_bar("planning") as update:
        assert update is None


def test_bar_starts_only_after_the_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", fake)
    with progress_bar("planning", after_seconds=3600) as update:
        assert update is not None
        update(1, 4)
        update(4, 4)
    assert fake.text == []  # a quick sweep: nothing drawn
    with progress_bar("planning", after_seconds=0) as update:
        assert update is not None
        update(1, 4)
        update(2, 4)
    assert "planning" in "".join(fake.text)
