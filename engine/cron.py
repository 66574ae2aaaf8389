"""Cron expressions (SPEC §6, §12): validated, and their next firing computed in their own time zone."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter

from .bounds import check_value
from .errors import InvalidInput


def next_time(cron: str, tz: str, after: float) -> float:
    """The next firing after ``after`` (unix time), computed in the schedule's own zone (DST-safe)."""
    zone = ZoneInfo(tz)
    start = datetime.fromtimestamp(after, UTC).astimezone(zone)
    nxt: datetime = croniter(cron, start).get_next(datetime)
    return nxt.timestamp()


def check(cron: str, tz: str) -> None:
    """Refuse a cron that is not five fields, cannot be read or never fires, and an unknown zone.

    croniter also reads a sixth (seconds) and seventh (year) field; a schedule of taskbot's is
    minutes at the finest, so anything but five fields is refused rather than run every second.
    """
    check_value(cron, "cron")
    fields = cron.split()
    if len(fields) != 5:
        raise InvalidInput("cron", f"{cron!r} has {len(fields)} fields; a cron has exactly five: "
                                   "minute hour day-of-month month day-of-week (e.g. \"0 9 * * MON\")")
    if not croniter.is_valid(cron):
        raise InvalidInput("cron", f"{cron!r} is not a cron expression (e.g. \"0 9 * * MON\")")
    check_value(tz, "timezone")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput("timezone", f"unknown time zone {tz!r} (e.g. Europe/Paris)") from None
    try:
        next_time(cron, tz, time.time())
    except CroniterError:  # croniter searches some decades ahead, then gives up
        raise InvalidInput("cron", f"{cron!r} never fires (a date that does not exist, such as 31 February)"
                           ) from None
