"""The dashboard's form bodies: read with a bound, and their fields checked as the API checks its JSON.

Forms post ``application/x-www-form-urlencoded`` (a few short fields need no multipart parser).
A refused field raises :class:`~engine.errors.InvalidInput` naming it, as the API's 422 does,
and the page shows the refusal next to the form, keeping what was typed.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qs

from fastapi import HTTPException, Request

from engine.bounds import check_value
from engine.errors import InvalidInput

MAX_FORM_BYTES = 256 * 1024
MAX_FIELDS = 64
#: "every N <unit>" as a cron; only steps that divide the next unit evenly, so the gaps are all equal.
EVERY_STEPS = {"minutes": (60, "*/{n} * * * *"), "hours": (24, "{m} */{n} * * *")}
TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


async def read_form(request: Request) -> dict[str, str]:
    """The urlencoded body as ``{field: first value}``; over :data:`MAX_FORM_BYTES` it is a 413, unread past that."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise HTTPException(413, "form too large")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput("form", "the form is not UTF-8") from None
    try:
        parsed = parse_qs(text, keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except ValueError:  # more fields than any of the dashboard's forms has
        raise InvalidInput("form", f"more than {MAX_FIELDS} fields") from None
    return {key: values[0] for key, values in parsed.items()}


def data_field(text: str | None, field: str = "data") -> dict[str, Any]:
    """The JSON object a run starts with (the API's ``data``); empty text is ``{}``."""
    text = (text or "").strip()
    if not text:
        return {}
    try:
        data = json.loads(text)
    except RecursionError:
        raise InvalidInput(field, "is nested too deeply") from None
    except ValueError as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        where = f" (line {exc.lineno}, column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else ""
        raise InvalidInput(field, f"is not JSON: {reason}{where}") from None
    if not isinstance(data, dict):
        raise InvalidInput(field, 'must be a JSON object, like {"week": "23"}')
    check_value(data, field)
    return data


def every_cron(number: str | None, unit: str | None, at: str | None = None) -> str:
    """``every 15 minutes`` → ``*/15 * * * *``; ``every 2 hours`` → ``0 */2 * * *``; ``every 1 days`` at 09:30
    → ``30 9 * * *``. Anything else (every 7 minutes, every 3 days) is refused: write a cron for it."""
    unit = (unit or "").strip()
    try:
        n = int((number or "").strip())
    except ValueError:
        raise InvalidInput("every", "must be a whole number") from None
    if unit == "days":
        if n != 1:
            raise InvalidInput("every", "days: only every 1 day (write a cron for other patterns)")
        match = TIME.match((at or "09:00").strip())
        if match is None:
            raise InvalidInput("at", "must be a time of day as HH:MM, e.g. 09:30")
        return f"{int(match.group(2))} {int(match.group(1))} * * *"
    if unit not in EVERY_STEPS:
        raise InvalidInput("unit", "must be minutes, hours or days")
    whole, pattern = EVERY_STEPS[unit]
    if n < 1 or n >= whole or whole % n:
        steps = ", ".join(str(d) for d in range(1, whole) if whole % d == 0)
        raise InvalidInput("every", f"{unit}: must divide {whole} evenly ({steps}), or write a cron")
    minute = TIME.match((at or "").strip())
    return pattern.format(n=n, m=int(minute.group(2)) if minute else 0)
