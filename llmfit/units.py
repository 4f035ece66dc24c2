"""Byte and token quantities: parsing user input ("80GB", "8k") and formatting for display.

Inside llmfit every memory figure is an int of bytes and every size an int of parameters or tokens;
this module is the only place that converts to or from human units, and both directions read one
table, so a label can never meet the wrong divisor.
"""

from __future__ import annotations

import math
import re
from enum import Enum
from fractions import Fraction

from llmfit import limits
from llmfit.errors import UnitError

# One table for parsing and formatting (IEC binary vs SI decimal, as pint splits them).
BYTE_UNITS: dict[str, int] = {
    "B": 1,
    "kB": 10**3,
    "KB": 10**3,  # accepted on input only: "KB" is universally read as 1000 here
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KiB": 2**10,
    "MiB": 2**20,
    "GiB": 2**30,
    "TiB": 2**40,
}
_BYTE_UNITS_LOWER = {k.lower(): v for k, v in BYTE_UNITS.items()}

KIB = 2**10
MIB = 2**20
GIB = 2**30
GB = 10**9

# Largest quantity accepted anywhere: 1 EiB of memory / 2**40 tokens. Beyond this the input is a typo.
MAX_BYTES = limits.MAX_BYTES
MAX_TOKENS = limits.MAX_TOKENS
# A written exponent beyond this is no real quantity (and 10**(10**9) would take minutes to build).
_MAX_EXPONENT = 60


def _exact(number: str, text: str, what: str) -> Fraction:
    """The exact value of a decimal matched by the regexes below ("1.5", "7e9"): bounded length and
    exponent, so no float overflow (400 digits) and no giant power of ten (1e999999999)."""
    if len(number) > limits.MAX_NUMBER_CHARS:
        raise UnitError(f"{what}: {text[:24]!r}... has {len(number):,} characters; no real quantity has "
                        f"more than {limits.MAX_NUMBER_CHARS}")
    mantissa, _, exponent = number.lower().partition("e")
    power = int(exponent) if exponent else 0
    if abs(power) > _MAX_EXPONENT:
        raise UnitError(f"{what}: {text.strip()!r} is beyond any real quantity")
    return Fraction(mantissa) * Fraction(10) ** power

_SIZE_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)\s*$")


class DisplayUnits(str, Enum):
    """How memory is shown: binary GiB (default: what nvidia-smi and PyTorch report) or decimal GB."""

    gib = "gib"
    gb = "gb"

    @property
    def label(self) -> str:
        return "GiB" if self is DisplayUnits.gib else "GB"

    @property
    def divisor(self) -> int:
        return GIB if self is DisplayUnits.gib else GB


def parse_bytes(text: str, *, what: str = "size") -> int:
    """Parse "80GB", "80GiB", "81920MiB", "1.5 TB" into an int of bytes.

    A unit is required (a bare number is ambiguous). Decimal units (kB MB GB TB) are powers of 1000,
    binary units (KiB MiB GiB TiB) powers of 1024. Zero, negatives, NaN and absurd sizes are refused.
    """
    if not isinstance(text, str):
        raise UnitError(f"{what}: expected a size such as 80GB or 80GiB, got {text!r}")
    match = _SIZE_RE.match(text)
    if not match:
        raise UnitError(f"{what}: cannot read {text!r}; expected a number with a unit, e.g. 80GB, 80GiB, 81920MiB")
    number, unit = match.groups()
    if not unit:
        raise UnitError(
            f"{what}: {text!r} has no unit; write e.g. {text.strip()}GB (decimal) or {text.strip()}GiB (binary)"
        )
    factor = BYTE_UNITS.get(unit) or _BYTE_UNITS_LOWER.get(unit.lower())
    if factor is None:
        raise UnitError(f"{what}: unknown unit {unit!r} in {text!r}; allowed: B, kB, MB, GB, TB, KiB, MiB, GiB, TiB")
    value = _exact(number, text, what) * factor
    if value <= 0:
        raise UnitError(f"{what}: {text!r} must be a positive size")
    if value > MAX_BYTES:
        raise UnitError(f"{what}: {text!r} is larger than any device (limit 1 EiB)")
    if value < 1:
        raise UnitError(f"{what}: {text!r} is less than one byte")
    if factor == 1 and value.denominator != 1:
        raise UnitError(f"{what}: {text!r} is not a whole number of bytes")
    return round(value)  # a fraction of a byte from a decimal of a larger unit (0.3 MiB) rounds


_TOKENS_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([kKmM]?)\s*$")


def parse_tokens(text: str | int, *, what: str = "context") -> int:
    """Parse a token count: "8192", "8k", "128K", "1M" (k = 1024 and M = 1024**2, as context windows are quoted)."""
    if isinstance(text, int):
        value = text
    else:
        match = _TOKENS_RE.match(str(text))
        if not match:
            raise UnitError(f"{what}: cannot read {text!r}; expected a token count such as 8192, 8k or 128K")
        number, suffix = match.groups()
        scale = {"": 1, "k": 1024, "m": 1024**2}[suffix.lower()]
        exact = _exact(number, str(text), what) * scale
        if exact.denominator != 1:
            raise UnitError(f"{what}: {text!r} is not a whole number of tokens")
        value = int(exact)
    if isinstance(value, bool):
        raise UnitError(f"{what}: expected a token count, got {text!r}")
    if value <= 0:
        raise UnitError(f"{what}: {text!r} must be a positive number of tokens")
    if value > MAX_TOKENS:
        raise UnitError(f"{what}: {text!r} is beyond any model's context (limit 2**40 tokens)")
    return value


_COUNT_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)\s*([kKmMbBtT]?)\s*$")


def parse_count(text: str | int | float, *, what: str = "parameters") -> int:
    """Parse a parameter count: "7e9", "7B", "70b", "6738415616", "405B", "1.5T"."""
    if isinstance(text, bool):
        raise UnitError(f"{what}: expected a count, got {text!r}")
    if isinstance(text, int | float):
        if not math.isfinite(text):
            raise UnitError(f"{what}: {text!r} must be a positive count")
        value = Fraction(text)
    else:
        match = _COUNT_RE.match(text)
        if not match:
            raise UnitError(f"{what}: cannot read {text!r}; expected a count such as 7e9, 7B or 6738415616")
        number, suffix = match.groups()
        scale = {"": 1, "k": 10**3, "m": 10**6, "b": 10**9, "t": 10**12}[suffix.lower()]
        value = _exact(number, text, what) * scale
    if value <= 0:
        raise UnitError(f"{what}: {text!r} must be a positive count")
    if value > limits.MAX_PARAMS:
        raise UnitError(f"{what}: {text!r} is beyond any model (limit 1e15)")
    if value.denominator != 1:
        raise UnitError(f"{what}: {text!r} is not a whole number")
    return int(value)


def parse_fraction(text: str | float, *, what: str, low: float = 0.0, high: float = 1.0) -> float:
    """Parse a ratio in (low, high], e.g. --gpu-util 0.9."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise UnitError(f"{what}: cannot read {text!r}; expected a number in ({low}, {high}]") from None
    if not math.isfinite(value) or not (low < value <= high):
        raise UnitError(f"{what}: {text!r} must be a number in ({low}, {high}]")
    return value


def format_bytes(n_bytes: int, units: DisplayUnits = DisplayUnits.gib, *, digits: int = 2) -> str:
    """Format bytes in the chosen display unit, always labelled: '12.34 GiB' or '13.25 GB'.

    Small figures switch to MiB / MB so a 64 KiB per-token cost does not print as 0.00 GiB.
    """
    sign = "-" if n_bytes < 0 else ""
    magnitude = abs(n_bytes)
    if units is DisplayUnits.gib:
        steps = [(GIB, "GiB"), (MIB, "MiB"), (KIB, "KiB")]
    else:
        steps = [(GB, "GB"), (10**6, "MB"), (10**3, "kB")]
    big, mid, small = steps
    # The display unit (GiB / GB) from 1 % of it up, so a column reads in one unit; smaller figures
    # (a per-token KV cost) switch to MiB/KiB rather than printing 0.00 GiB.
    for divisor, label in (big, mid, small):
        if magnitude >= divisor // 100 if divisor == big[0] else magnitude >= divisor:
            return f"{sign}{magnitude / divisor:,.{digits}f} {label}"
    if magnitude < 1000:
        return f"{sign}{magnitude} B"
    return f"{sign}{magnitude} B"  # pragma: no cover


def format_in(n_bytes: int, units: DisplayUnits, *, digits: int = 2) -> str:
    """Format bytes in exactly the display unit (GiB or GB), no auto-scaling: for tables whose header names the unit."""
    return f"{n_bytes / units.divisor:,.{digits}f}"


def format_count(n: int) -> str:
    """A parameter or token count, human-scaled: 6.74B, 131.1M, 8,192."""
    if n >= 10**9:
        return f"{n / 10**9:,.2f}B"
    if n >= 10**6:
        return f"{n / 10**6:,.1f}M"
    return f"{n:,}"


def format_tokens(n: int) -> str:
    """A token count with thousands separators, e.g. 476,016."""
    return f"{n:,}"


def ceil_div(numerator: int, denominator: int) -> int:
    """Integer ceiling division (no floats: exact for any size)."""
    return -(-numerator // denominator)
