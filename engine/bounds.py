"""What input may be stored: bounded nesting, text Redis can encode, finite numbers (SPEC §10).

Redis holds UTF-8, so a lone surrogate (``"\\ud800"``, which JSON allows as an escape) cannot be
written; a value nested hundreds of levels deep can be written but not read back through the
API's serializer. Both are refused at the door, naming the place, so nothing stored can make a
later read fail. The walk is iterative: a hostile value cannot exhaust the call stack.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .errors import InvalidInput

#: Deepest nesting of objects and lists accepted anywhere (run data, datasets, definitions, bodies).
MAX_DEPTH = 32


def printable(text: str) -> str:
    """``text`` safe to print or encode: a lone surrogate shows as its escape (``\\ud800``)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def surrogate_at(text: str) -> int | None:
    """The index of the first lone surrogate in ``text``, or None when it encodes as UTF-8."""
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return exc.start
    return None


def check_text(text: str, field: str) -> None:
    """Refuse text that cannot be stored (a lone surrogate), naming ``field``."""
    at = surrogate_at(text)
    if at is not None:
        raise InvalidInput(field, f"contains a lone surrogate ({printable(text[at])}) at character {at + 1}; "
                                  "send text as valid UTF-8")


def _child(path: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    name = printable(str(key)) or '""'  # an empty key is still a place to name
    return f"{path}.{name}" if path else name


def check_value(value: Any, field: str = "", *, max_depth: int = MAX_DEPTH) -> None:
    """Refuse a JSON-like value that cannot be stored and read back, naming the first bad place.

    Args:
        value: what a request or file gave (dicts, lists, strings, numbers, booleans, None).
        field: where it came from (``data``, ``rows``), the prefix of every path named.
        max_depth: objects and lists nested deeper than this are refused.

    Raises:
        InvalidInput: a lone surrogate in a key or string (its path named), nesting deeper than
            ``max_depth`` (the top-level entry holding it named), or a number that is not finite.
    """
    # (value, its path, its depth, the path of the top-level entry it is in: what a too-deep error names)
    stack: list[tuple[Any, str, int, str]] = [(value, field, 0, field)]
    while stack:
        item, path, depth, top = stack.pop()
        if isinstance(item, str):
            check_text(item, path or "value")
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise InvalidInput(path or "value", f"{item} is not a finite number")
        elif isinstance(item, Mapping | list | tuple):
            if depth >= max_depth:
                raise InvalidInput(top or "value", f"nested deeper than {max_depth} levels")
            pairs = item.items() if isinstance(item, Mapping) else enumerate(item)
            children = []
            for key, child in pairs:
                place = _child(path, key)
                if isinstance(key, str):
                    check_text(key, place)
                children.append((child, place, depth + 1, place if depth == 0 else top))
            stack.extend(reversed(children))  # popped in order: the first bad place is the one named
