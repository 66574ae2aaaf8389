"""Durations as task files write them (`30s`, `15m`, `24h`, `2d`), parsed strictly."""

from __future__ import annotations

import re

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
#: The longest duration taken (a year): longer ones are typos, and an infinite one would break the clock.
MAX_SECONDS = 366 * 86400
#: What a duration field takes, for the JSON schema (the API's /openapi.json): seconds, or ``24h``-style text.
JSON_SCHEMA = {"anyOf": [{"type": "number", "exclusiveMinimum": 0, "maximum": MAX_SECONDS},
                         {"type": "string", "pattern": _PATTERN.pattern, "examples": ["30s", "15m", "24h", "2d"]}],
               "description": "seconds, or a number and a unit: s, m, h or d (24h)"}


def parse_duration(text: object) -> float:
    """Return seconds for a duration such as ``24h``.

    A bare number is taken as seconds so that JSON callers may pass one; anything else
    that is not ``<number><s|m|h|d>`` is refused, because a typo in a chase interval
    silently becoming "0" would spam participants.

    Raises:
        ValueError: the text is not a positive duration.
    """
    if isinstance(text, bool) or not isinstance(text, str | int | float):
        raise ValueError(f"{text!r} is not a duration (use e.g. 30s, 15m, 24h, 2d)")
    if isinstance(text, int | float):
        seconds = float(text)
    else:
        match = _PATTERN.match(text)
        if not match:
            raise ValueError(f"{text!r} is not a duration (use e.g. 30s, 15m, 24h, 2d)")
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if not seconds > 0:  # also NaN
        raise ValueError(f"{text!r} is not a positive duration")
    if seconds > MAX_SECONDS:  # a reminder due in a million years is no reminder, and no date can hold it
        raise ValueError(f"{text!r} is longer than {MAX_SECONDS // 86400:.0f}d")
    return seconds


def format_duration(seconds: float) -> str:
    """Render seconds back in the largest whole unit, e.g. 86400 -> ``1d``."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
