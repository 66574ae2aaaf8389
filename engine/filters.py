"""Row filters (`field op value` joined by and/or), parsed with a lark LALR grammar and never eval'd."""

from __future__ import annotations

import functools
import math
import operator
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias, cast

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedInput, UnexpectedToken

Scalar: TypeAlias = str | int | float | bool
Value: TypeAlias = Scalar | tuple[Scalar, ...]

# Keywords are excluded from FIELD so `and = 1` is reported as a misplaced keyword, not read as a field.
# OP deliberately over-matches runs like `==` or `=>` so they get a "use one of ..." message, not a lark dump.
_GRAMMAR = r"""
?start: or_
?or_: and_ (_OR and_)*
?and_: atom (_AND atom)*
?atom: comparison | "(" or_ ")"
comparison: FIELD (OP | IN) (scalar | list)
?scalar: STRING | NUMBER | BOOL
list: "[" "]" | "[" scalar ("," scalar)* "]"
_OR: /or(?![\w.-])/i
_AND: /and(?![\w.-])/i
IN: /in(?![\w.-])/i
BOOL: /(?:true|false)(?![\w.-])/i
FIELD: /(?!(?:and|or|in|true|false)(?![\w.-]))[^\W\d][\w.-]*/i
OP: /[=!<>]+/
STRING: /'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*"/
NUMBER: /-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/
%ignore /\s+/
"""
_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "=": operator.eq, "!=": operator.ne, "<": operator.lt,
    "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}
_EXPECTED = {  # lark terminal name -> what a person would call it, in the order we list them
    "FIELD": "a field name", "LPAR": "'('", "OP": "an operator", "IN": "an operator", "STRING": "a value",
    "NUMBER": "a value", "BOOL": "a value", "LSQB": "a value", "COMMA": "','",
    "RSQB": "']'", "_AND": "'and'", "_OR": "'or'", "RPAR": "')'", "$END": "end of filter",
}
_NUMERIC = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_TRUTHY, _FALSY = {"true", "yes", "1"}, {"false", "no", "0", ""}
_MISSING = object()
_QUOTES = "'\""
_OP_NAMES = "= != < <= > >= in"
#: Bounds that keep parsing cheap and the tree shallow: a filter is a line in a task file, not a program.
MAX_CHARS = 10_000
MAX_TERMS = 1_000
MAX_NESTING = 32
_STRINGS = re.compile(r"'(?:[^'\\\n]|\\.)*'|\"(?:[^\"\\\n]|\\.)*\"")


class FilterError(ValueError):
    """A filter that cannot be parsed; the message is one line a person can act on."""


class Filter(ABC):
    """A parsed filter: immutable, so it can be cached and shared between tasks safely."""

    @abstractmethod
    def matches(self, row: Mapping[str, object]) -> bool:
        """True when the row passes the filter."""


@dataclass(frozen=True)
class Comparison(Filter):
    """`field op value`; op is one of = != < <= > >= in (value is a tuple only for `in`)."""

    field: str
    op: str
    value: Value

    def matches(self, row: Mapping[str, object]) -> bool:
        actual = _lookup(row, self.field)
        if actual is _MISSING or actual is None:  # absent data never satisfies a filter, not even `!=`
            return False
        if isinstance(self.value, tuple):
            return any(_compare(actual, "=", v) for v in self.value)
        return _compare(actual, self.op, self.value)

    def __str__(self) -> str:
        if isinstance(self.value, tuple):
            return f"{self.field} {self.op} [{', '.join(map(_show, self.value))}]"
        return f"{self.field} {self.op} {_show(self.value)}"


@dataclass(frozen=True)
class And(Filter):
    """All items must match."""

    items: tuple[Filter, ...]

    def matches(self, row: Mapping[str, object]) -> bool:
        return all(item.matches(row) for item in self.items)

    def __str__(self) -> str:
        return " and ".join(f"({i})" if isinstance(i, Or) else str(i) for i in self.items)


@dataclass(frozen=True)
class Or(Filter):
    """Any item may match."""

    items: tuple[Filter, ...]

    def matches(self, row: Mapping[str, object]) -> bool:
        return any(item.matches(row) for item in self.items)

    def __str__(self) -> str:
        return " or ".join(map(str, self.items))


def _check_op(tok: Token) -> Token:
    """Lexer callback, so a bad operator like `==` is reported where it occurs, before later mistakes."""
    if tok.value not in _OPS:
        raise FilterError(f"filter: unknown operator '{tok}' at column {tok.column}; use one of {_OP_NAMES}")
    return tok


_PARSER = Lark(_GRAMMAR, parser="lalr", lexer_callbacks={"OP": _check_op})


@functools.lru_cache(maxsize=256)
def parse_filter(text: str) -> Filter:
    """Parse filter text into a Filter; raises FilterError with a one-line message on any mistake.

    Cached: a stored definition is validated again each time it is read, and filters are immutable.
    """
    if not text.strip():
        raise FilterError("filter: empty")
    _check_size(text)
    try:
        tree = _PARSER.parse(text)
    except UnexpectedInput as exc:
        raise FilterError(_describe(exc, text)) from None
    built = _build(tree)
    terms = _terms(built)
    if terms > MAX_TERMS:
        raise FilterError(f"filter: {terms:,} comparisons, more than {MAX_TERMS:,}; use a dataset column or 'in'")
    return built


def _check_size(text: str) -> None:
    """Refuse a filter too long or nested too deep before lark sees it (its tree is walked recursively)."""
    if len(text) > MAX_CHARS:
        raise FilterError(f"filter: {len(text):,} characters, more than {MAX_CHARS:,}")
    depth = 0
    for found in re.finditer(r"[()]", _STRINGS.sub(lambda m: " " * len(m[0]), text)):
        depth += 1 if found[0] == "(" else -1
        if depth > MAX_NESTING:
            raise FilterError(f"filter: parentheses nested deeper than {MAX_NESTING} levels at column "
                              f"{found.start() + 1}")


def _terms(node: Filter) -> int:
    """Comparisons in a filter (the tree is at most MAX_NESTING deep, so recursion is safe)."""
    return sum(_terms(item) for item in node.items) if isinstance(node, And | Or) else 1


def _build(node: Tree[Token]) -> Filter:
    """Turn lark's tree into our AST, flattening `a and (b and c)` and checking what the grammar can't."""
    if node.data in ("and_", "or_"):
        kind = And if node.data == "and_" else Or
        parts: list[Filter] = []
        for child in cast(list[Tree[Token]], node.children):
            built = _build(child)
            parts.extend(built.items if isinstance(built, kind) else [built])
        return kind(tuple(parts))
    field, op_tok, value = cast(tuple[Token, Token, "Token | Tree[Token]"], tuple(node.children))
    op, where = op_tok.value.lower(), f"at column {op_tok.column}"
    if isinstance(value, Tree):
        if op != "in":
            raise FilterError(f"filter: '{op}' cannot take a [list] {where}; use 'in'")
        return Comparison(str(field), op, tuple(_scalar(t) for t in value.children if isinstance(t, Token)))
    if op == "in":
        raise FilterError(f"filter: 'in' needs a [list] {where}")
    return Comparison(str(field), op, _scalar(value))


def _scalar(tok: Token) -> Scalar:
    """Decode a value token by hand: strings unescape `\\x` to `x` (plus \\n, \\t); nothing is evaluated."""
    if tok.type == "STRING":
        return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m[1], m[1]), tok.value[1:-1])
    if tok.type == "BOOL":
        return tok.lower() == "true"
    number = _number(tok.value)
    if isinstance(number, float) and not math.isfinite(number):
        raise FilterError(f"filter: number {tok.value} is too large at column {tok.column}")
    return number


def _number(text: str) -> int | float:
    """Ints stay exact (large ids compare correctly); anything with a point or exponent is a float."""
    return float(text) if any(c in text for c in ".eE") else int(text)


def _describe(exc: UnexpectedInput, text: str) -> str:
    """Reword lark's exception as `filter: <what> at column N; expected <what>`."""
    if isinstance(exc, UnexpectedToken):  # accepts is exact; LALR's `expected` includes merged-state noise
        names: set[str] = exc.accepts or exc.expected
    else:  # the lexer's `allowed` has the same noise, so replay the good prefix to see what fits here
        replay = _PARSER.parse_interactive(text[: exc.pos_in_stream])
        replay.exhaust_lexer()
        names = replay.accepts()  # type: ignore[no-untyped-call]  # lark leaves this one unannotated
    wanted = list(dict.fromkeys(_EXPECTED[n] for n in _EXPECTED if n in names))
    expected = " or ".join([", ".join(wanted[:-1]), wanted[-1]] if len(wanted) > 1 else wanted)
    tail = f"; expected {expected}" if expected else ""
    if isinstance(exc, UnexpectedToken):
        if exc.token.type == "$END":
            return f"filter: unexpected end of filter{tail}"
        if exc.token.type == "RPAR" and "$END" in names:
            return f"filter: unmatched ')' at column {exc.column}"
        found = exc.token.value if len(exc.token.value) <= 20 else exc.token.value[:17] + "..."
        found = found if found[0] in _QUOTES else repr(found)
        return f"filter: unexpected {found} at column {exc.column}{tail}"
    char = text[exc.pos_in_stream or 0]
    if char in _QUOTES:
        return f"filter: unterminated string starting at column {exc.column}"
    return f"filter: unexpected character {char!r} at column {exc.column}{tail}"


def _lookup(row: Mapping[str, object], field: str) -> object:
    """Exact key first (CSV headers may contain dots), then dotted paths into nested JSON objects."""
    if field in row:
        return row[field]
    current: object = row
    for part in field.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return _MISSING
        current = current[part]
    return current


def _coerce(actual: object, wanted: Scalar) -> object:
    """Bring a row value to the filter value's type (CSV gives strings) or return _MISSING if it can't be."""
    if isinstance(wanted, bool):
        if isinstance(actual, str) and actual.strip().lower() in _TRUTHY | _FALSY:
            return actual.strip().lower() in _TRUTHY
        return actual if isinstance(actual, bool) else _MISSING
    if isinstance(wanted, int | float):
        if isinstance(actual, str) and _NUMERIC.fullmatch(actual.strip()):
            return _number(actual.strip())
        return actual if isinstance(actual, int | float) and not isinstance(actual, bool) else _MISSING
    return actual if isinstance(actual, str) else _MISSING


def _compare(actual: object, op: str, wanted: Scalar) -> bool:
    """Compare after coercion; values of different kinds are simply unequal and never ordered."""
    got = _coerce(actual, wanted)
    if got is _MISSING:
        return op == "!="
    return bool(_OPS[op](got, wanted))


def _show(value: Scalar) -> str:
    """Render a value so that parse_filter(str(f)) == f."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n").replace("\t", "\\t")
        return f"'{escaped}'"
    return repr(value)
