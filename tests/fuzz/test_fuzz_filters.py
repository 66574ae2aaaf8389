"""Filters: parsed into a tree that prints back to itself and matches any row without raising, or refused
with one line starting ``filter:``; never evaluated, never a traceback."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from engine.filters import Filter, FilterError, parse_filter
from tests.fuzz.conftest import FUZZ
from tests.fuzz.strategies import FILTER, JSON, TEXT

ROW = st.dictionaries(st.sampled_from(["role", "level", "team", "a", "a.b"]), JSON, max_size=4)


def parsed_or_refused(text: str) -> Filter | None:
    """The filter, or None when refused with one line that starts ``filter:``."""
    try:
        return parse_filter(text)
    except FilterError as exc:
        message = str(exc)
    assert message.startswith("filter: ")
    assert "\n" not in message
    return None


@FUZZ
@given(FILTER, st.lists(ROW, max_size=3))
def test_any_filter_text_parses_and_matches_or_is_refused_in_one_line(text: str, rows: list[dict]) -> None:
    flt = parsed_or_refused(text)
    if flt is None:
        return
    assert isinstance(flt, Filter)
    assert parse_filter(str(flt)) == flt
    for row in rows:
        assert flt.matches(row) in (True, False)


@FUZZ
@given(TEXT)
def test_any_text_at_all(text: str) -> None:
    flt = parsed_or_refused(text)
    assert flt is None or parse_filter(str(flt)) == flt
