"""Message templates (SPEC §11): the placeholders a chase or an escalation text may use, checked and filled.

A template is Python's ``str.format`` syntax restricted to four names: ``{name}``, ``{task}``,
``{missing}``, ``{deadline}`` (``{{`` and ``}}`` write a brace). Anything else (an unknown name,
``{0}``, ``{name.attr}``, ``{name!r}``, a format spec) is refused when the task file is applied,
so a typo is caught then and not when the first reminder goes out.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

PLACEHOLDERS = ("name", "task", "missing", "deadline")
_FORMATTER = string.Formatter()


def template_problem(text: str) -> str | None:
    """Why ``text`` is not a valid message template, or None when it is."""
    allowed = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
    try:
        parts = list(_FORMATTER.parse(text))
    except ValueError as exc:  # a lone "{" or "}"
        return f"{exc} (write {{{{ and }}}} for a brace; placeholders: {allowed})"
    for _, field, spec, conversion in parts:
        if field is None:
            continue
        if field not in PLACEHOLDERS or spec or conversion:
            shown = "{" + field + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            return f"unknown placeholder {shown}; use {allowed}"
    return None


def render(text: str, values: Mapping[str, str]) -> str:
    """Fill a template that :func:`template_problem` accepted (missing values read as empty)."""
    return text.format_map({p: values.get(p, "") for p in PLACEHOLDERS})


def when(ts: float, timezone: str = "UTC") -> str:
    """A time as a person reads it in their zone: ``Fri 17 May 17:00 CEST``."""
    try:
        zone: ZoneInfo | None = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = None
    moment = datetime.fromtimestamp(ts, zone or UTC)
    return moment.strftime("%a %d %b %H:%M ") + (moment.tzname() or "UTC")
