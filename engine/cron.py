"""Cron expressions (SPEC §6, §12): validated, and their next firing computed in their own time zone."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from .errors import InvalidInput


def next_time(cron: str, tz: str, after: float) -> float:
    """The next firing after ``after`` (unix time), computed in the schedule's own zone (DST-safe)."""
    zone = ZoneInfo(tz)
    start = datetime.fromtimestamp(after, UTC).astimezone(zone)
    nxt: datetime = croniter(cron, start).get_next(datetime)
    return nxt.timestamp()


def check(cron: str, tz: str) -> None:
    if not croniter.is_valid(cron):
        raise InvalidInput("cron", f"{cron!r} is not a cron expression (e.g. \"0 9 * * MON\")")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput("timezone", f"unknown time zone {tz!r} (e.g. Europe/Paris)") from None
