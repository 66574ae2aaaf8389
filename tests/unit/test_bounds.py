"""What may be stored: nesting up to 32 levels, text Redis can encode, finite numbers; the place named."""

import pytest

from engine.bounds import MAX_DEPTH, check_text, check_value, printable
from engine.errors import InvalidInput


def nested(levels: int) -> object:
    value: object = "leaf"
    for i in range(levels):
        value = {"a": value} if i % 2 else [value]
    return value


def test_32_levels_are_stored_33_are_refused_naming_the_field() -> None:
    check_value(nested(MAX_DEPTH), "data")
    with pytest.raises(InvalidInput) as refused:
        check_value(nested(MAX_DEPTH + 1), "data")
    assert (refused.value.field, refused.value.reason) == ("data[0]", "nested deeper than 32 levels")
    with pytest.raises(InvalidInput) as refused:
        check_value({"fine": 1, "config": nested(MAX_DEPTH)}, "data")
    assert refused.value.field == "data.config"  # the entry holding it, not a path 32 steps long


def test_a_value_deeper_than_the_call_stack_is_refused_not_a_recursion_error() -> None:
    with pytest.raises(InvalidInput, match="nested deeper than 32 levels"):
        check_value(nested(100_000), "rows")


@pytest.mark.parametrize(("value", "field"), [
    ({"note": "ok\ud800"}, "data.note"),
    ({"list": ["fine", {"deep": "\udfff"}]}, "data.list[1].deep"),
    ({"key\ud83d": 1}, "data.key\\ud83d"),
    (["x\udc80"], "data[0]"),
])
def test_a_lone_surrogate_is_refused_where_it_is_and_the_message_can_be_printed(value: object, field: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        check_value(value, "data")
    assert refused.value.field == field
    assert "lone surrogate" in refused.value.reason
    str(refused.value).encode("utf-8")  # the refusal itself is sendable


def test_a_surrogate_pair_written_properly_is_text() -> None:
    check_value({"emoji": "😀", "json escape decoded": "\U0001f600"}, "data")
    check_text("naïve café", "text")


@pytest.mark.parametrize("number", [float("nan"), float("inf"), float("-inf")])
def test_numbers_that_are_not_finite_are_refused(number: float) -> None:
    with pytest.raises(InvalidInput, match="not a finite number") as refused:
        check_value({"score": number}, "data")
    assert refused.value.field == "data.score"


def test_printable_shows_a_surrogate_as_its_escape() -> None:
    assert printable("a\ud800b") == "a\\ud800b"
    assert printable("plain") == "plain"
