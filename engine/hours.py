"""Working hours, time zones and away (SPEC §11) as pure functions over ``zoneinfo``.

A window is written ``Mon-Fri 09:00-18:00`` (days: ``Mon``…``Sun``, ranges and commas, e.g.
``Mon,Wed-Thu``; an end at or before the start runs past midnight); several are a list or one
string split by ``;``; ``always`` means no window at all. Every instant is computed from the
person's wall clock in their own zone, so 09:00 stays 09:00 on the days the clocks change.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

ALWAYS = "always"
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
FULL_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
EXAMPLE = "use e.g. Mon-Fri 09:00-18:00, a list of such windows, or always"
_WINDOW = re.compile(r"^\s*(?P<days>[A-Za-z][A-Za-z,\s-]*?)\s+(?P<start>\d{1,2}:\d{2})\s*-\s*"
                     r"(?P<end>\d{1,2}:\d{2})\s*$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class Window:
    """Days of the week (0 = Monday) and a start and end time; ``end <= start`` ends the next day."""

    days: frozenset[int]
    start: time
    end: time  # 24:00 is time(0, 0): at or before the start, so it ends at the next midnight

    @property
    def overnight(self) -> bool:
        return self.end <= self.start


@dataclass(frozen=True)
class Hours:
    """A person's working windows; none at all means ``always``."""

    windows: tuple[Window, ...]
    text: str

    @property
    def always(self) -> bool:
        return not self.windows


def _day(name: str) -> int:
    word = name.strip().lower()
    for names in (DAY_NAMES, FULL_DAY_NAMES):
        if word in names:
            return names.index(word)
    raise ValueError(f"{name.strip()!r} is not a day (Mon, Tue, Wed, Thu, Fri, Sat, Sun)")


def _days(text: str) -> frozenset[int]:
    days: set[int] = set()
    for part in text.split(","):
        first, sep, last = part.partition("-")
        start = _day(first)
        end = _day(last) if sep else start
        days.update((start + i) % 7 for i in range((end - start) % 7 + 1))  # Fri-Mon wraps over the weekend
    return frozenset(days)


def _clock(text: str) -> time:
    hour, minute = (int(x) for x in text.split(":"))
    if hour == 24 and minute == 0:
        return time(0, 0)
    if not (0 <= hour < 24 and 0 <= minute < 60):
        raise ValueError(f"{text!r} is not a time of day (00:00 to 24:00)")
    return time(hour, minute)


def _window(text: str) -> Window:
    found = _WINDOW.match(text)
    if not found:
        raise ValueError(f"{text.strip()!r} is not a working-hours window ({EXAMPLE})")
    start, end = _clock(found["start"]), _clock(found["end"])
    if start == end and found["end"] != "24:00":
        raise ValueError(f"{text.strip()!r} is an empty window (its start and end are the same)")
    return Window(_days(found["days"]), start, end)


def _split(spec: str | Sequence[str]) -> list[str]:
    items = [spec] if isinstance(spec, str) else list(spec)
    return [part.strip() for item in items for part in str(item).split(";") if part.strip()]


@functools.lru_cache(maxsize=256)
def _parse(parts: tuple[str, ...]) -> Hours:
    if not parts or any(p.lower() == ALWAYS for p in parts):
        if len(parts) > 1:
            raise ValueError(f"'always' cannot be combined with windows ({EXAMPLE})")
        return Hours((), ALWAYS)
    return Hours(tuple(_window(p) for p in parts), "; ".join(parts))


def parse_hours(spec: str | Sequence[str] | None) -> Hours:
    """Working hours from a task file, a contact or the environment.

    Raises:
        ValueError: a window that cannot be read (the message says why and gives an example).
    """
    if spec is None:
        return Hours((), ALWAYS)
    return _parse(tuple(_split(spec)))


def check_hours(spec: str | Sequence[str] | None) -> str | list[str] | None:
    """Validate working hours as written, keeping the form they were given in (a pydantic validator)."""
    if spec is None:
        return None
    if not isinstance(spec, str) and not (isinstance(spec, Sequence) and all(isinstance(s, str) for s in spec)):
        raise ValueError(f"expected a window such as Mon-Fri 09:00-18:00 or a list of them ({EXAMPLE})")
    parse_hours(spec)
    return spec if isinstance(spec, str) else list(spec)


@functools.lru_cache(maxsize=512)
def zone(name: str | None) -> ZoneInfo:
    """The IANA zone ``name``; UTC for none or one this machine does not know (validated on input)."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def check_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (an IANA name such as Europe/Paris)") from None
    return name


def _at(day: date, clock: time, tz: ZoneInfo) -> float:
    """The instant ``clock`` on ``day`` on the wall clock of ``tz`` (a time the clocks skip is read in the
    offset before the change: 02:30 on a spring-forward night is 03:30)."""
    return datetime.combine(day, clock, tzinfo=tz).timestamp()


def next_open(hours: Hours, tz: ZoneInfo, at: float) -> float:
    """The first instant at or after ``at`` inside one of the windows (``at`` itself when it is inside)."""
    if hours.always:
        return at
    today = datetime.fromtimestamp(at, tz).date()
    best: float | None = None
    for offset in range(-1, 9):  # yesterday: an overnight window may still be open
        day = today + timedelta(days=offset)
        for w in hours.windows:
            if day.weekday() not in w.days:
                continue
            start = _at(day, w.start, tz)
            end = _at(day + timedelta(days=1) if w.overnight else day, w.end, tz)
            if end <= start:  # the whole window fell into a clock change's gap (01:30-02:30 that night)
                continue
            if start <= at < end:
                return at
            if start > at and (best is None or start < best):
                best = start
        if best is not None and offset >= 0:  # a later day's windows all start later
            return best
    assert best is not None  # every window has a day: one starts within the week
    return best


def later(start: float, seconds: float, tz: ZoneInfo) -> float:
    """``start`` plus a duration, whole days counted on the wall clock of ``tz``: a ``24h`` chase after
    an opening at 10:00 is due at 10:00 the next day, also across a daylight-saving change."""
    days, rest = divmod(seconds, 86400.0)
    if not days:
        return start + seconds
    local = datetime.fromtimestamp(start, tz).replace(tzinfo=None) + timedelta(days=days)
    return local.replace(tzinfo=tz).timestamp() + rest


def back_at(away_until: str | None, tz: ZoneInfo) -> float | None:
    """When someone away until ``away_until`` (an ISO date: back from its start, or a date-time;
    without an offset, on their own wall clock) may be messaged again."""
    if not away_until:
        return None
    text = away_until.strip()
    if _DATE.match(text):
        return _at(date.fromisoformat(text), time(0, 0), tz)
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (moment if moment.tzinfo else moment.replace(tzinfo=tz)).timestamp()


def check_away(value: str) -> str:
    text = value.strip()
    try:
        if not _DATE.match(text):
            datetime.fromisoformat(text.replace("Z", "+00:00"))
        else:
            date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{value!r} is not an ISO date or date-time (e.g. 2027-01-10 or 2027-01-10T09:00)") from None
    return text


@dataclass(frozen=True)
class Availability:
    """When one person may be messaged: their zone, their working hours, and when they are back."""

    tz: ZoneInfo
    hours: Hours
    back: float | None = None

    def next_open(self, at: float) -> float:
        return next_open(self.hours, self.tz, at)

    def away(self, at: float) -> bool:
        return self.back is not None and at < self.back

    def local_date(self, at: float) -> date:
        return datetime.fromtimestamp(at, self.tz).date()


def availability(tz: str | None, *hours: str | Sequence[str] | None, away_until: str | None = None) -> Availability:
    """A person's availability: the first working hours given wins (contact, task, default)."""
    zone_ = zone(tz)
    chosen = next((h for h in hours if h), None)
    return Availability(zone_, parse_hours(chosen), back_at(away_until, zone_))
