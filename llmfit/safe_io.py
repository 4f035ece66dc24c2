"""Bounded reading of what users point llmfit at: paths, text files, JSON.

Everything a reader takes from a file passes here first, so a hostile file costs bounded time and
memory and fails as one line (exit 2): paths too long for any file system, pipes and devices, files
over their cap (refused before reading), non-UTF-8 text, JSON nested deeper than
`limits.MAX_JSON_DEPTH`, NaN / Infinity / 1e400, integers of more digits than any real figure,
duplicate keys, and a list or a number where an object is expected.
"""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path
from typing import Any

from llmfit import limits
from llmfit.errors import LlmfitError


class UnsafeInputError(ValueError, LlmfitError):
    """A file or path that cannot be read within llmfit's bounds; the message names it."""


def shown(path: str | os.PathLike[str], width: int = 80) -> str:
    """A path for a one-line message: long ones shortened in the middle."""
    text = os.fspath(path)
    return text if len(text) <= width else text[: width // 2 - 2] + "..." + text[-(width // 2 - 2):]


def check_path(path: str | os.PathLike[str], *, what: str = "path") -> Path:
    """The path as a Path, or one line when no file system could hold it (NUL byte, a component over
    255 bytes, over 4096 bytes in all) - asked before the OS is, which would raise ENAMETOOLONG."""
    text = os.fspath(path)
    if "\x00" in text:
        raise UnsafeInputError(f"{what} {shown(text)!r}: contains a NUL byte, which no file name can")
    encoded = os.fsencode(text)
    if len(encoded) > limits.MAX_PATH_BYTES:
        raise UnsafeInputError(f"{what} {shown(text)}: {len(encoded):,} bytes, longer than any path "
                               f"(limit {limits.MAX_PATH_BYTES})")
    for part in encoded.split(b"/"):
        if len(part) > limits.MAX_PATH_COMPONENT_BYTES:
            raise UnsafeInputError(f"{what} {shown(text)}: a name of {len(part):,} bytes, longer than a file "
                                   f"system allows (limit {limits.MAX_PATH_COMPONENT_BYTES} bytes per name)")
    return Path(text)


def read_bytes(path: Path, *, max_bytes: int, what: str = "file") -> bytes:
    """A regular file's bytes, refused unread over `max_bytes` (a pipe or a device never ends)."""
    check_path(path, what=what)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise UnsafeInputError(f"{shown(path)}: no such file") from None
    except OSError as error:
        raise UnsafeInputError(f"{shown(path)}: cannot read ({error.strerror or type(error).__name__})") from None
    if stat.S_ISDIR(info.st_mode):
        raise UnsafeInputError(f"{shown(path)}: is a directory, expected a {what}")
    if not stat.S_ISREG(info.st_mode):
        raise UnsafeInputError(f"{shown(path)}: not a regular file (a pipe or a device), expected a {what}")
    if info.st_size > max_bytes:
        raise UnsafeInputError(f"{shown(path)}: {info.st_size:,} bytes is too large for a {what} "
                               f"(limit {max_bytes:,}); refused unread")
    try:
        with path.open("rb") as handle:
            raw = handle.read(max_bytes + 1)  # capped even if the file grew after stat
    except OSError as error:
        raise UnsafeInputError(f"{shown(path)}: cannot read ({error.strerror or type(error).__name__})") from None
    if len(raw) > max_bytes:
        raise UnsafeInputError(f"{shown(path)}: over {max_bytes:,} bytes, too large for a {what}")
    return raw


def read_text(path: Path, *, max_bytes: int = limits.MAX_TEXT_BYTES, what: str = "text file") -> str:
    """A regular UTF-8 text file, size-capped."""
    raw = read_bytes(path, max_bytes=max_bytes, what=what)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise UnsafeInputError(f"{shown(path)}: not UTF-8 text (byte {error.start})") from None


class _JsonRefusal(ValueError):
    """Raised inside the decoder's hooks; turned into one UnsafeInputError line by parse_json, which
    names the key the refused literal belongs to."""

    def __init__(self, message: str, literal: str = "") -> None:
        super().__init__(message)
        self.literal = literal


def _refuse_constant(name: str) -> Any:
    raise _JsonRefusal(f"{name} is not a number llmfit takes (JSON has no NaN or Infinity)", name)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _JsonRefusal(f"{text} overflows a float", text)
    return value


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > limits.MAX_NUMBER_CHARS:
        raise _JsonRefusal(f"an integer of {len(text):,} digits is no real figure "
                           f"(limit {limits.MAX_NUMBER_CHARS})", text)
    return int(text)


def _key_of(text: str, literal: str) -> str | None:
    """The key whose value is `literal` (its first occurrence), for the message."""
    import re

    if not literal:
        return None
    match = re.search(r'"((?:[^"\\]|\\.){1,200})"\s*:\s*' + re.escape(literal[:100]), text)
    return match.group(1) if match else None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _JsonRefusal(f"duplicate key {key!r} (which value counts would be a guess)")
        out[key] = value
    return out


def json_depth(value: Any) -> int:
    """Nesting depth of decoded JSON (a scalar is 0, {} or [] is 1), without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        depth += 1
        deepest = max(deepest, depth)
        if deepest > limits.MAX_JSON_DEPTH:
            return deepest
        stack.extend((child, depth) for child in children)
    return deepest


def parse_json(text: str | bytes, *, where: str, expect: type | None = dict,
               max_depth: int = limits.MAX_JSON_DEPTH) -> Any:
    """Strict JSON: no NaN / Infinity / overflowing floats, integers of at most MAX_NUMBER_CHARS digits,
    no duplicate keys, nesting at most `max_depth`, and (by default) an object at the top."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as error:
            raise UnsafeInputError(f"{where}: not UTF-8 JSON (byte {error.start})") from None
    # Decoded JSON costs ~60 bytes per item whatever the text: a 100 MB header of "[],[],..." would be
    # 33 million lists (2 GB). Counted in C before decoding; real headers have ~6 items per tensor.
    items = text.count(",") + text.count(":") + text.count("[") + text.count("{")
    if items > limits.MAX_JSON_ITEMS:
        raise UnsafeInputError(f"{where}: {items:,} JSON items, more than any real file holds "
                               f"(limit {limits.MAX_JSON_ITEMS:,})")
    try:
        data = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float,
                          parse_int=_bounded_int, object_pairs_hook=_unique_keys)
    except _JsonRefusal as error:
        key = _key_of(text, error.literal)
        raise UnsafeInputError(f"{where}: {key + ': ' if key else ''}{error}") from None
    except RecursionError:  # the decoder (C or Python) stops at the interpreter's recursion limit
        raise UnsafeInputError(f"{where}: JSON nested too deeply (limit {max_depth} levels)") from None
    except json.JSONDecodeError as error:
        raise UnsafeInputError(f"{where}: not valid JSON ({error.msg} at line {error.lineno}, "
                               f"column {error.colno})") from None
    except ValueError as error:  # int() digit limit, and anything else the decoder refuses
        raise UnsafeInputError(f"{where}: not valid JSON ({error})") from None
    if json_depth(data) > max_depth:
        raise UnsafeInputError(f"{where}: JSON nested too deeply (limit {max_depth} levels)")
    if expect is not None and not isinstance(data, expect):
        wanted = "a JSON object" if expect is dict else "a JSON array" if expect is list else expect.__name__
        raise UnsafeInputError(f"{where}: expected {wanted}, got {_json_kind(data)}")
    return data


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def read_json(path: Path, *, max_bytes: int, what: str = "JSON file", expect: type | None = dict) -> Any:
    """A JSON file read within its size cap and parsed strictly (see parse_json)."""
    raw = read_bytes(path, max_bytes=max_bytes, what=what)
    return parse_json(raw, where=shown(path), expect=expect)
