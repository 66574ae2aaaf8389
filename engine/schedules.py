"""Cron schedules (SPEC §1, §6): stored in Redis, fired by the scheduler loop in their time zone."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter

from . import keys
from .bounds import check_value
from .errors import Conflict, InvalidInput, NotFound
from .store import dumps

if TYPE_CHECKING:
    from .engine import Engine

#: Fire a due schedule only if its next time is still the one we read: one firing per slot
#: even when two scheduler loops race.
ADVANCE = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) ~= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
return 1
"""


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


class Schedules:
    def __init__(self, engine: Engine) -> None:
        self.e = engine
        self._advance = engine.r.register_script(ADVANCE)

    def create(self, task_id: str, cron: str, tz: str = "UTC", data: dict[str, Any] | None = None,
               schedule_id: str | None = None) -> dict[str, Any]:
        definition = self.e.store.get_definition(task_id)
        if not definition.active:
            raise Conflict(f"task {task_id!r} is inactive; an inactive task cannot get new schedules")
        check(cron, tz)
        check_value(data, "data")
        from .engine import new_id

        sid = schedule_id or new_id(4)
        nxt = next_time(cron, tz, self.e.now())
        schedule = {"id": sid, "task_id": task_id, "cron": cron, "timezone": tz, "data": data or {},
                    "enabled": True}
        with self.e.r.pipeline() as p:
            p.hset(keys.SCHEDULES, sid, dumps(schedule))
            p.zadd(keys.SCHEDULES_DUE, {sid: nxt})
            p.execute()
        return {**schedule, "next_run_at": nxt}

    def delete(self, schedule_id: str) -> None:
        with self.e.r.pipeline() as p:
            p.hdel(keys.SCHEDULES, schedule_id)
            p.zrem(keys.SCHEDULES_DUE, schedule_id)
            if not p.execute()[0]:
                raise NotFound("schedule", schedule_id)

    def all(self) -> list[dict[str, Any]]:
        raw = self.e.r.hgetall(keys.SCHEDULES)
        due = dict(self.e.r.zrange(keys.SCHEDULES_DUE, 0, -1, withscores=True))
        out = []
        for sid, value in raw.items():
            schedule = json.loads(value)
            schedule["next_run_at"] = due.get(sid)
            out.append(schedule)
        return sorted(out, key=lambda s: (s["task_id"], s["id"]))

    def fire_due(self) -> list[str]:
        """Trigger every schedule whose time has come; returns the run ids started.

        A schedule missed while every process was down fires once when they come back, not
        once per missed slot. An inactive task's schedule is kept but skips its slot.
        """
        now = self.e.now()
        started = []
        for raw_id, score in self.e.r.zrangebyscore(keys.SCHEDULES_DUE, "-inf", now, withscores=True):
            sid = raw_id.decode()
            raw = self.e.r.hget(keys.SCHEDULES, sid)
            if raw is None:
                self.e.r.zrem(keys.SCHEDULES_DUE, sid)
                continue
            schedule = json.loads(raw)
            nxt = next_time(schedule["cron"], schedule["timezone"], now)
            if not self._advance(keys=[keys.SCHEDULES_DUE], args=[sid, repr(score), nxt]):
                continue
            try:
                started.append(self.e.runs.trigger(schedule["task_id"], dict(schedule["data"]), kind="schedule",
                                                   by=f"schedule:{sid}"))
            except (NotFound, Conflict):
                continue
        return started
