"""units.py: parsing sizes and token counts, and labelled formatting."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmfit.errors import UnitError
from llmfit.units import DisplayUnits, format_bytes, parse_bytes, parse_count, parse_tokens


@pytest.mark.parametrize(("text", "value"), [("80GB", 80 * 10**9), ("80GiB", 80 * 2**30), ("81920MiB", 80 * 2**30),
                                             ("1.5 TB", 1_500_000_000_000), ("512 MiB", 2**29)])
def test_parse_bytes(text, value):
    assert parse_bytes(text) == value


def test_gb_and_gib_differ():
    assert parse_bytes("80 GiB") != parse_bytes("80 GB")


@pytest.mark.parametrize("text", ["80", "80 G", "80 parsecs", "", "-1GB", "0GB", "nanGB", "infGB", "1e30GB", "GB"])
def test_parse_bytes_rejects(text):
    with pytest.raises(UnitError):
        parse_bytes(text)


@pytest.mark.parametrize(("text", "value"), [("8192", 8192), ("8k", 8192), ("128K", 131072), ("1M", 2**20),
                                             ("32k", 32768)])
def test_parse_tokens(text, value):
    assert parse_tokens(text) == value


@pytest.mark.parametrize("text", ["8q", "-5", "0", "1.5", "", "8 kb", "1e999"])
def test_parse_tokens_rejects(text):
    with pytest.raises(UnitError):
        parse_tokens(text)


@pytest.mark.parametrize(("text", "value"), [("7e9", 7 * 10**9), ("70B", 70 * 10**9), ("6738415616", 6738415616),
                                             ("1.5T", 1_500_000_000_000)])
def test_parse_count(text, value):
    assert parse_count(text) == value


def test_format_is_always_labelled():
    assert format_bytes(int(2.5 * 2**30)) == "2.50 GiB"
    assert format_bytes(1_342_177_280, DisplayUnits.gb) == "1.34 GB"
    assert format_bytes(131072) == "128.00 KiB"


@given(st.integers(min_value=1, max_value=2**50))
def test_format_parse_round_trip_within_display_precision(n):
    text = format_bytes(n)
    if text.endswith(" B"):
        return
    back = parse_bytes(text.replace(",", ""))
    unit = parse_bytes("1 " + text.split()[-1])
    assert abs(back - n) <= 0.005 * unit + 1  # half of the last printed digit (2 decimals)
