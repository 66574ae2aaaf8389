"""Question types (SPEC §11): what fits a field, read from a reply or a model's value; edits and manners.

One place for the scripted conversation and the ``record_data`` tool alike. "Today" is given
(the participant's own date, in their time zone), so a date like ``tomorrow`` is a pure
function of it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from .hours import DAY_NAMES, FULL_DAY_NAMES
from .model import FieldSpec
from .ports import Question

#: Past this many options a channel shows no buttons (Slack's select holds 100, Telegram's keyboard 100).
MAX_OPTIONS = 100
_LIST_SPLIT = re.compile(r"[,;\n]+")
_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")
_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")
_CHANGE = re.compile(r"^\s*change\s+(?P<target>[^:\n]{1,120}?)\s*:\s*(?P<value>.*)$", re.IGNORECASE | re.DOTALL)
# longest first, so "hi there" is taken whole before "hi"
_GREETINGS = tuple(sorted(("hi", "hello", "hey", "hiya", "howdy", "yo", "hallo", "hola", "good morning",
                           "good afternoon", "good evening", "morning", "hi there", "hello there", "hey there"),
                          key=len, reverse=True))
_ASKS = frozenset({"", "help", "what is this", "whats this", "what is this about", "whats this about",
                   "what is it", "what", "who are you", "what are you", "what do you want", "what now", "huh",
                   "what is going on", "what should i do", "what do i do", "how does this work", "info"})
_WORD_STOP = frozenset({"the", "my", "answer", "to", "for", "a", "an", "of", "question", "field"})


def bounds(spec: FieldSpec) -> tuple[float | None, float | None]:
    """The range a number or scale must be in (a scale is 1–5 unless it says otherwise)."""
    if spec.type == "scale":
        return (spec.min if spec.min is not None else 1, spec.max if spec.max is not None else 5)
    return spec.min, spec.max


def _num(value: float | None) -> str:
    return "" if value is None else (f"{int(value)}" if float(value).is_integer() else f"{value:g}")


def what_fits(spec: FieldSpec) -> str:
    """What an answer to ``spec`` must be, as the person (or the model) is told."""
    low, high = bounds(spec)
    if spec.type == "choice":
        return "one of: " + ", ".join(spec.choices or []) + " (or its number)"
    if spec.type == "scale":
        return f"a whole number from {_num(low)} to {_num(high)}"
    if spec.type == "number":
        if low is not None and high is not None:
            return f"a number from {_num(low)} to {_num(high)}"
        if low is not None:
            return f"a number of at least {_num(low)}"
        return f"a number of at most {_num(high)}" if high is not None else "a number"
    if spec.type == "date":
        return "a date such as 2027-01-10, today, tomorrow or a weekday"
    if spec.type == "list":
        return "one or more items, separated by commas"
    return "some text"


def hint(spec: FieldSpec) -> str:
    """The line under a typed question saying how to answer ("" for text and choice: the list says it)."""
    if spec.type in ("scale", "number", "date", "list"):
        return f"({what_fits(spec)})"
    return ""


def shown(value: Any) -> str:
    """A recorded value as a person reads it."""
    if value is None or value == "":
        return "(nothing)"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _unfit(spec: FieldSpec) -> tuple[None, str]:
    return None, f"Sorry, that does not fit here: the answer should be {what_fits(spec)}."


def _number(text: str) -> float | None:
    cleaned = text.strip().replace(" ", "").replace("\u00a0", "")
    cleaned = cleaned.replace(",", "") if _THOUSANDS.match(cleaned) else cleaned.replace(",", ".")
    try:
        number = float(cleaned)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _in_range(spec: FieldSpec, number: float) -> bool:
    low, high = bounds(spec)
    return (low is None or number >= low) and (high is None or number <= high)


def _date(text: str, today: date) -> date | None:
    word = text.strip().lower().rstrip(".!")
    if word == "today":
        return today
    if word == "tomorrow":
        return today + timedelta(days=1)
    if word == "yesterday":
        return today - timedelta(days=1)
    for names in (FULL_DAY_NAMES, DAY_NAMES):
        if word in names:  # the nearest such day, today included
            return today + timedelta(days=(names.index(word) - today.weekday()) % 7)
    try:
        return date.fromisoformat(word)
    except ValueError:
        return None


def _fold(text: str) -> str:
    """Lower case, apostrophes dropped ("what's" is "whats"), other punctuation as spaces."""
    return " ".join(re.sub(r"[^\w\s]", " ", re.sub(r"['’]", "", text.casefold())).split())


def parse_answer(spec: FieldSpec, text: str, today: date) -> tuple[Any, str | None]:
    """Read a person's reply as ``spec``'s type.

    Args:
        spec: the field asked.
        text: the reply, as written.
        today: the participant's own date (``today``, ``tomorrow`` and weekdays count from it).

    Returns:
        (the value to store, None), or (None, a polite sentence saying what fits).
    """
    text = text.strip()
    if spec.type in ("number", "scale"):
        number = _number(text)
        if number is None or not _in_range(spec, number) or (spec.type == "scale" and not number.is_integer()):
            return _unfit(spec)
        return (int(number) if number.is_integer() else number), None
    if spec.type == "choice" and spec.choices:
        folded = {_fold(c): c for c in spec.choices}
        if _fold(text) in folded:
            return folded[_fold(text)], None
        if text.rstrip(".").isdigit() and 1 <= int(text.rstrip(".")) <= len(spec.choices):
            return spec.choices[int(text.rstrip(".")) - 1], None
        return _unfit(spec)
    if spec.type == "date":
        day = _date(text, today)
        return (day.isoformat(), None) if day else _unfit(spec)
    if spec.type == "list":
        items = [_BULLET.sub("", i).strip() for i in _LIST_SPLIT.split(text)]
        items = [i for i in items if i]
        return (items, None) if items else _unfit(spec)
    return (text, None) if text else _unfit(spec)


def accept(spec: FieldSpec, value: Any, today: date) -> tuple[Any, str | None]:
    """A value a model gave ``record_data`` (text, a JSON number or a list), checked like a reply."""
    if isinstance(value, bool) or value is None or isinstance(value, dict):
        return _unfit(spec)
    if isinstance(value, int | float) and not isinstance(value, bool):
        if spec.type in ("number", "scale"):
            return parse_answer(spec, repr(value), today)
        value = _num(value) if spec.type != "text" else str(value)
    if isinstance(value, list):
        if spec.type != "list":
            return _unfit(spec)
        items = [str(v).strip() for v in value if not isinstance(v, dict | list) and str(v).strip()]
        return (items, None) if items else _unfit(spec)
    return parse_answer(spec, str(value), today)


def widget(spec: FieldSpec) -> Question | None:
    """What a channel may show for ``spec`` besides the text: buttons or a menu, or a date picker."""
    if spec.type == "choice" and spec.choices and len(spec.choices) <= MAX_OPTIONS:
        return Question(spec.key, "choice", tuple(spec.choices))
    if spec.type == "scale":
        low, high = bounds(spec)
        assert low is not None
        assert high is not None
        if float(low).is_integer() and float(high).is_integer() and high - low < MAX_OPTIONS:
            return Question(spec.key, "scale", tuple(str(n) for n in range(int(low), int(high) + 1)))
    if spec.type == "date":
        return Question(spec.key, "date")
    return None


def small_talk(text: str) -> bool:
    """A greeting or a question to the bot ("hi", "what is this?", "help", "?"): not an answer."""
    if text.strip() and not text.strip().strip("?!. ").strip():
        return True  # "?", "??", "..."
    words = _fold(text)
    for greeting in _GREETINGS:
        if words == greeting or words.startswith(greeting + " "):
            words = words[len(greeting):].strip()
            break
    words = re.sub(r"^(?:taskbot|bot)\b\s*", "", words)
    return words in _ASKS and (words != "" or bool(text.strip()))


def find_field(target: str, fields: Sequence[FieldSpec]) -> FieldSpec | None:
    """The field ``target`` names: its key, or words of its prompt (one field only)."""
    folded = _fold(target)
    for f in fields:
        if folded in (f.key.lower(), f.key.lower().replace("_", " ")):
            return f
    words = set(folded.split()) - _WORD_STOP
    if not words:
        return None
    hits = [f for f in fields if f.key.lower() in words or words <= set(_fold(f.prompt).split())]
    return hits[0] if len(hits) == 1 else None


def find_change(text: str, fields: Sequence[FieldSpec]) -> tuple[FieldSpec, str] | None:
    """``change <field key or prompt words>: <new value>`` -> (the field, the new value's text);
    None when the message is not such a command (or names no field: then it is just an answer)."""
    found = _CHANGE.match(text)
    if not found:
        return None
    spec = find_field(found["target"], fields)
    return (spec, found["value"].strip()) if spec else None


@dataclass(frozen=True)
class Change:
    key: str
    old: Any
    new: Any


def merge(data: dict[str, Any], history: dict[str, list[dict[str, Any]]], record: dict[str, Any],
          at: float) -> list[Change]:
    """Put ``record`` into ``data`` (in place); each value replaced goes to ``history[key]`` with when it
    was replaced. Returns what changed (a value recorded again unchanged is no change)."""
    changes = []
    for key, value in record.items():
        if key in data and data[key] != value:
            history.setdefault(key, []).append({"value": data[key], "replaced_at": round(at, 3)})
            changes.append(Change(key, data[key], value))
        data[key] = value
    return changes


def said(changes: Sequence[Change], fields: Sequence[FieldSpec]) -> str:
    """What a participant is told about their changed answers."""
    prompts = {f.key: f.prompt for f in fields}
    return " ".join(f"Changed your answer to “{prompts.get(c.key, c.key)}” from {shown(c.old)} to {shown(c.new)}."
                    for c in changes)
