"""The dashboard's form fields: "every N units" as a cron, and the data a run starts with, refused naming the field."""

from __future__ import annotations

import pytest

from bot.forms import data_field, every_cron
from engine.errors import InvalidInput


@pytest.mark.parametrize(("number", "unit", "at", "cron"), [
    ("15", "minutes", "", "*/15 * * * *"),
    ("1", "minutes", None, "*/1 * * * *"),
    ("30", "minutes", "", "*/30 * * * *"),
    ("2", "hours", "", "0 */2 * * *"),
    ("6", "hours", "07:45", "45 */6 * * *"),
    ("1", "days", "", "0 9 * * *"),
    ("1", "days", "08:05", "5 8 * * *"),
    (" 1 ", "days", "23:59", "59 23 * * *"),
])
def test_every_becomes_the_cron_that_fires_at_even_gaps(number, unit, at, cron):
    assert every_cron(number, unit, at) == cron


@pytest.mark.parametrize(("number", "unit", "at", "field", "words"), [
    ("7", "minutes", "", "every", "must divide 60 evenly (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30)"),
    ("60", "minutes", "", "every", "must divide 60"),
    ("0", "hours", "", "every", "must divide 24"),
    ("5", "hours", "", "every", "must divide 24"),
    ("2", "days", "", "every", "only every 1 day"),
    ("1", "days", "25:00", "at", "HH:MM"),
    ("x", "minutes", "", "every", "whole number"),
    ("1", "weeks", "", "unit", "minutes, hours or days"),
])
def test_an_every_that_cron_cannot_say_evenly_is_refused_naming_the_field(number, unit, at, field, words):
    with pytest.raises(InvalidInput) as refused:
        every_cron(number, unit, at)
    assert refused.value.field == field
    assert words in refused.value.reason


def test_data_is_a_json_object_or_empty():
    assert data_field("") == {}
    assert data_field("  \n") == {}
    assert data_field('{"week": "23", "n": [1, 2]}') == {"week": "23", "n": [1, 2]}
    for text, words in (('{"a": ', "is not JSON"), ("[1]", "must be a JSON object"), ('"x"', "must be a JSON object"),
                        ("[" * 50_000 + "]" * 50_000, "")):
        with pytest.raises(InvalidInput) as refused:
            data_field(text)
        assert refused.value.field == "data"
        assert words in refused.value.reason
    with pytest.raises(InvalidInput) as deep:
        data_field('{"a": ' * 40 + "1" + "}" * 40)  # parses, but deeper than Redis records may nest
    assert deep.value.field.startswith("data")
