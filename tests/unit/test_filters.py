"""What a user of row filters relies on: the spec's examples, coercion of CSV strings, and clear errors."""

import builtins
import dataclasses
import os

import pytest

from engine.filters import And, Comparison, Filter, FilterError, Or, parse_filter

# The same four people, once as a CSV import (every value a string) and once as JSON (typed values).
CSV_ROWS = [
    {"name": "Ada", "role": "engineer", "team": "core", "level": "10", "active": "true", "delta": "-2"},
    {"name": "Bob", "role": "engineer", "team": "web", "level": "2", "active": "no", "delta": "0.5"},
    {"name": "Cy", "role": "designer", "team": "web", "level": "3", "active": "1", "delta": "-1"},
    {"name": "Di", "role": "manager", "team": "ops", "level": "", "active": "", "delta": "x"},
]
JSON_ROWS: list[dict[str, object]] = [
    {
        "name": "Ada",
        "role": "engineer",
        "team": "core",
        "level": 10,
        "active": True,
        "address": {"city": "Oslo"},
    },
    {"name": "Bob", "role": "engineer", "team": "web", "level": 2, "active": False, "address": {}},
    {"name": "Cy", "role": "designer", "team": "web", "level": 3.5, "active": True},
    {"name": "Di", "role": "manager", "team": "ops", "active": None},  # no level at all
]


def names(text: str, rows: list[dict[str, object]] | list[dict[str, str]]) -> list[object]:
    flt = parse_filter(text)
    return [row["name"] for row in rows if flt.matches(row)]


# --- the spec's examples -------------------------------------------------------------------------------


def test_spec_example_role_and_active_on_csv_and_json() -> None:
    assert names("role = 'engineer' and active = true", CSV_ROWS) == ["Ada"]
    assert names("role = 'engineer' and active = true", JSON_ROWS) == ["Ada"]


def test_spec_example_team_in_list_and_level() -> None:
    assert names("team in ['core', 'web'] and level >= 3", CSV_ROWS) == ["Ada", "Cy"]
    assert names("team in ['core', 'web'] and level >= 3", JSON_ROWS) == ["Ada", "Cy"]


def test_parse_gives_a_plain_ast() -> None:
    assert parse_filter("team in ['core', 'web'] and level >= 3") == And(
        (Comparison("team", "in", ("core", "web")), Comparison("level", ">=", 3))
    )
    assert isinstance(parse_filter("a = 1"), Filter)


# --- structure: precedence and parentheses -------------------------------------------------------------


def test_and_binds_tighter_than_or() -> None:
    flt = parse_filter("team = 'web' or role = 'engineer' and active = true")
    assert isinstance(flt, Or)
    assert names("team = 'web' or role = 'engineer' and active = true", CSV_ROWS) == ["Ada", "Bob", "Cy"]


def test_parentheses_override_precedence() -> None:
    assert names("(team = 'web' or role = 'engineer') and active = true", CSV_ROWS) == ["Ada", "Cy"]
    assert names("((((role = 'manager'))))", CSV_ROWS) == ["Di"]


def test_chains_are_flattened() -> None:
    a, b, c = (Comparison(x, "=", 1) for x in "abc")
    assert parse_filter("a = 1 and (b = 1 and c = 1)") == And((a, b, c))
    assert parse_filter("(a = 1 or b = 1) or c = 1") == Or((a, b, c))


def test_keywords_are_case_insensitive_but_fields_and_strings_are_not() -> None:
    assert names("role = 'engineer' AND active = TRUE Or team IN ['ops']", CSV_ROWS) == ["Ada", "Di"]
    assert names("role = 'Engineer'", CSV_ROWS) == []
    assert names("Role = 'engineer'", CSV_ROWS) == []


def test_field_names_may_start_with_a_keyword() -> None:
    rows = [{"order": "1", "android": "yes", "index": "4", "true-ish": "x"}]
    assert parse_filter("order = 1 and android = true and index in [4] and true-ish = 'x'").matches(rows[0])


# --- matching semantics ---------------------------------------------------------------------------------


def test_numbers_compare_numerically_not_lexicographically() -> None:
    assert names("level >= 3", CSV_ROWS) == ["Ada", "Cy"]  # '10' >= 3, '2' is not; '' is not a number
    assert names("level < 3", CSV_ROWS) == ["Bob"]
    assert names("level > 3", JSON_ROWS) == ["Ada", "Cy"]  # Cy is 3.5
    assert names("level = 10.0", CSV_ROWS) == ["Ada"]


def test_negative_and_float_numbers() -> None:
    assert names("delta < -1.5", CSV_ROWS) == ["Ada"]
    assert names("delta >= -1", CSV_ROWS) == ["Bob", "Cy"]
    assert names("delta = 5e-1", CSV_ROWS) == ["Bob"]


@pytest.mark.parametrize("cell", ["true", "TRUE", "Yes", "1", " true "])
def test_csv_truthy_strings(cell: str) -> None:
    assert parse_filter("active = true").matches({"active": cell})
    assert not parse_filter("active = false").matches({"active": cell})


@pytest.mark.parametrize("cell", ["false", "False", "NO", "0", ""])
def test_csv_falsy_strings(cell: str) -> None:
    assert parse_filter("active = false").matches({"active": cell})
    assert not parse_filter("active = true").matches({"active": cell})


def test_bool_filters_on_both_row_kinds() -> None:
    assert names("active = true", CSV_ROWS) == ["Ada", "Cy"]
    assert names("active = false", CSV_ROWS) == ["Bob", "Di"]
    assert names("active = true", JSON_ROWS) == ["Ada", "Cy"]
    assert names("active != true", JSON_ROWS) == ["Bob"]  # Di's null is no value, so never matches
    assert not parse_filter("active = true").matches({"active": "maybe"})
    assert not parse_filter("active = true").matches({"active": 1})  # a JSON number is not a bool


def test_missing_field_never_matches_any_operator() -> None:
    for op in ["=", "!=", "<", "<=", ">", ">="]:
        assert names(f"salary {op} 5", CSV_ROWS) == []
    assert names("salary in [1, 'x', true]", JSON_ROWS) == []
    assert names("level != 3", JSON_ROWS) == ["Ada", "Bob", "Cy"]  # Di has no level


def test_incomparable_types_are_false_not_errors() -> None:
    assert names("name > 3", CSV_ROWS) == []
    assert names("level > 'a'", JSON_ROWS) == []
    assert names("active < 3", JSON_ROWS) == []
    assert names("name != 3", CSV_ROWS) == ["Ada", "Bob", "Cy", "Di"]  # different kinds are simply unequal
    assert not parse_filter("tags = 'a'").matches({"tags": ["a", "b"]})


def test_strings_compare_as_strings() -> None:
    assert names("name < 'C'", CSV_ROWS) == ["Ada", "Bob"]
    assert names("level = '10'", CSV_ROWS) == ["Ada"]
    assert names("level = '10'", JSON_ROWS) == []  # a quoted filter value wants a string


def test_in_uses_the_same_coercion() -> None:
    assert names("team in ['core', 'ops']", CSV_ROWS) == ["Ada", "Di"]
    assert names("level in [2, 3]", CSV_ROWS) == ["Bob", "Cy"]
    assert names("level in [2, 3]", JSON_ROWS) == ["Bob"]
    assert names("active in [false]", CSV_ROWS) == ["Bob", "Di"]
    assert names("team in []", CSV_ROWS) == []


def test_quotes_and_escapes() -> None:
    row = {"name": "O'Brien", "path": 'C:\\tmp "x"'}
    assert parse_filter('name = "O\'Brien"').matches(row)
    assert parse_filter(r"name = 'O\'Brien'").matches(row)
    assert parse_filter(r"path = 'C:\\tmp \"x\"'").matches(row)


def test_dotted_and_dashed_field_names() -> None:
    assert names("address.city = 'Oslo'", JSON_ROWS) == ["Ada"]
    assert parse_filter("address.city = 'Oslo'").matches({"address.city": "Oslo"})  # CSV header with a dot
    assert parse_filter("start-date >= '2024-01-01'").matches({"start-date": "2024-03-01"})


# --- the AST as a value ---------------------------------------------------------------------------------


def test_str_is_normalised() -> None:
    flt = parse_filter("  role='engineer'   AND (level>=3 OR team IN [\"web\",'ops'])  ")
    assert str(flt) == "role = 'engineer' and (level >= 3 or team in ['web', 'ops'])"


@pytest.mark.parametrize(
    "text",
    [
        "role = 'engineer' and active = true",
        "team in ['core', 'web'] and level >= 3",
        "a = 1 or b = 2 and c = 3",
        "(a = 1 or b = 2) and (c = -3.25 or d != false)",
        r"name = 'it\'s \\ \"quoted\"\n'",
        "big = 123456789012345678901234567890 and small = 1e-07",
    ],
)
def test_str_round_trips(text: str) -> None:
    flt = parse_filter(text)
    assert parse_filter(str(flt)) == flt


def test_filters_are_immutable_and_hashable() -> None:
    flt = parse_filter("team in ['core'] and level > 1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        flt.items = ()  # type: ignore[attr-defined]
    assert hash(flt) == hash(parse_filter("team in ['core'] and level > 1"))


# --- errors ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "filter: empty"),
        ("   ", "filter: empty"),
        ("name = 'Ada", "filter: unterminated string starting at column 8"),
        ('role = "engineer', "filter: unterminated string starting at column 8"),
        ("role =", "filter: unexpected end of filter; expected a value"),
        ("role = and active = true", "filter: unexpected 'and' at column 8; expected a value"),
        ("level == 3", "filter: unknown operator '==' at column 7; use one of = != < <= > >= in"),
        ("level => 3", "filter: unknown operator '=>' at column 7"),
        ("role = 'x' and", "filter: unexpected end of filter; expected a field name or '('"),
        ("role = 'x' and and b = 1", "filter: unexpected 'and' at column 16; expected a field name or '('"),
        ("role = 'x' or", "filter: unexpected end of filter; expected a field name or '('"),
        ("(role = 'x' or level = 1", "filter: unexpected end of filter; expected ')'"),
        ("role = 'x')", "filter: unmatched ')' at column 11"),
        ("team in 'core'", "filter: 'in' needs a [list] at column 6"),
        ("team in 3", "filter: 'in' needs a [list]"),
        ("team = ['core']", "filter: '=' cannot take a [list] at column 6; use 'in'"),
        ("team in ['core', 'web'", "filter: unexpected end of filter; expected ',' or ']'"),
        ("team in ['core',]", "filter: unexpected ']' at column 17; expected a value"),
        ("role 'engineer'", "filter: unexpected 'engineer' at column 6; expected an operator"),
        ("role = 'x' b = 1", "filter: unexpected 'b' at column 12; expected 'and', 'or' or end of filter"),
        ("role = @x", "filter: unexpected character '@' at column 8; expected a value"),
        ("level = 1e999", "filter: number 1e999 is too large at column 9"),
        ("and = 1", "filter: unexpected 'and' at column 1; expected a field name or '('"),
    ],
)
def test_syntax_errors_say_what_and_where(text: str, message: str) -> None:
    with pytest.raises(FilterError) as caught:
        parse_filter(text)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_filter_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="filter: empty"):
        parse_filter("")


# --- it is parsed, never evaluated ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os').system('x')",
        "name = __import__('os').system('x')",
        "level >= 3 or __import__('os')",
        "name = 'a' + 'b'",
        "1 = 1",
        "name = lambda: 1",
        "name = open('/etc/passwd').read()",
        "name = `id`",
        "level >= 3; import os",
    ],
)
def test_code_is_a_syntax_error_not_executed(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(os, "system", calls.append)
    with pytest.raises(FilterError, match=r"^filter: "):
        parse_filter(text)
    assert calls == []


def test_parsing_and_matching_never_call_eval_or_exec(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("eval/exec must not be used")

    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    flt = parse_filter(r"name = 'x\'y' or team in ['core', 'web'] and level >= 3 and active = true")
    assert [row["name"] for row in CSV_ROWS if flt.matches(row)] == ["Ada", "Cy"]


# --- bounded: a filter is a line in a task file, not a program --------------------------------------------


def test_parentheses_nested_deeper_than_32_are_refused_naming_the_column() -> None:
    parse_filter("(" * 32 + "level = 1" + ")" * 32)
    with pytest.raises(FilterError, match=r"^filter: parentheses nested deeper than 32 levels at column 33$"):
        parse_filter("(" * 33 + "level = 1" + ")" * 33)
    with pytest.raises(FilterError, match="nested deeper than 32"):
        parse_filter("(" * 1000 + "level = 1" + ")" * 1000)
    chain = "".join("(a=1 and " for _ in range(900)) + "a=1" + ")" * 900
    with pytest.raises(FilterError, match="nested deeper than 32"):  # this one used to end in a RecursionError
        parse_filter(chain)


def test_parentheses_inside_quoted_values_are_text_not_nesting() -> None:
    flt = parse_filter("name = '" + "(" * 40 + "' or name = \"" + ")(" * 40 + "\"")
    assert not flt.matches({"name": "Ada"})
    assert flt.matches({"name": "(" * 40})


def test_a_filter_too_long_or_with_too_many_comparisons_is_refused() -> None:
    huge = " and ".join(f"f{i} = {i}" for i in range(100_000))
    with pytest.raises(FilterError, match=r"^filter: 1,877,775 characters, more than 10,000$"):
        parse_filter(huge)
    many = " or ".join("a = 1" for _ in range(1_001))
    assert len(many) < 10_000
    with pytest.raises(FilterError, match=r"^filter: 1,001 comparisons, more than 1,000"):
        parse_filter(many)
    assert len(parse_filter(" or ".join("a = 1" for _ in range(1_000))).items) == 1_000  # type: ignore[attr-defined]
