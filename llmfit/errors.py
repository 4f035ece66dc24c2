"""The error hierarchy: every bad input is an LlmfitError, caught once by the CLI (exit 2)."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes (design.md): a verdict is never confused with a crash."""

    OK = 0  # the answer is yes: it fits / the requirement is met
    NO = 1  # the answer is no: it does not fit, or a stated requirement is not met
    USAGE = 2  # bad input: unknown preset, malformed number, invalid YAML, impossible combination
    INTERNAL = 3  # an unexpected exception


class LlmfitError(Exception):
    """Base of every error that is the user's input, not a bug. Its message is one line."""


class UnitError(ValueError, LlmfitError):
    """A size, token count or number that cannot be parsed or is out of range."""


class PresetError(ValueError, LlmfitError):
    """A preset file that cannot be read or fails validation (names the file and the field)."""


class UnknownPresetError(LookupError, LlmfitError):
    """A model or GPU name that is not a preset; carries did-you-mean suggestions."""

    def __init__(self, kind: str, name: str, suggestions: list[str]) -> None:
        hint = f"; did you mean {', '.join(repr(s) for s in suggestions)}?" if suggestions else ""
        super().__init__(f"unknown {kind} {name!r}{hint} (`llmfit presets list --kind {kind}s` lists them)")
        self.kind = kind
        self.name = name
        self.suggestions = suggestions


class SpecError(ValueError, LlmfitError):
    """An impossible combination: a TP degree that does not divide the heads, a dtype the model cannot take."""
