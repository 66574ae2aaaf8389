"""Cron schedules (SPEC §1, §6): stored in Redis, fired by the scheduler loop in their time zone."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from . import keys
from .bounds import check_value
from .cron import check, next_time
from .errors import Conflict, NotFound
from .ports import Clock
from .runs import Runs
from .store import Store, dumps, new_id
from .views import iso

#: Fire a due schedule only if its next time is still the one we read: one firing per slot
#: even when two scheduler loops race.
ADVANCE = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) ~= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
return 1
"""


class Schedules:
    """Create, list and fire cron schedules.

    Args:
        store: the records (definitions; schedules live beside them).
        clock: the time source.
        runs: starts the runs of schedules that are due.
    """

    def __init__(self, store: Store, clock: Clock, runs: Runs) -> None:
        self.store = store
        self.r = store.r
        self.clock = clock
        self.runs = runs
        self._advance = self.r.register_script(ADVANCE)

    def create(self, task_id: str, cron: str, tz: str = "UTC", data: dict[str, Any] | None = None,
               schedule_id: str | None = None) -> dict[str, Any]:
        definition = self.store.get_definition(task_id)
        if not definition.active:
            raise Conflict(f"task {task_id!r} is inactive; an inactive task cannot get new schedules")
        check(cron, tz)
        check_value(data, "data")
        sid = schedule_id or new_id(4)
        nxt = next_time(cron, tz, self.clock.now())
        schedule = {"id": sid, "task_id": task_id, "cron": cron, "timezone": tz, "data": data or {},
                    "enabled": True}
        with self.r.pipeline() as p:
            p.hset(keys.SCHEDULES, sid, dumps(schedule))
            p.zadd(keys.SCHEDULES_DUE, {sid: nxt})
            p.execute()
        return {**schedule, "next_run_at": nxt}

    def delete(self, schedule_id: str) -> None:
        with self.r.pipeline() as p:
            p.hdel(keys.SCHEDULES, schedule_id)
            p.zrem(keys.SCHEDULES_DUE, schedule_id)
            if not p.execute()[0]:
                raise NotFound("schedule", schedule_id)

    def all(self, task_id: str | None = None) -> list[dict[str, Any]]:
        """Every schedule (of one task, if given), with ``next_run_at`` as unix time, by task then id."""
        raw = self.r.hgetall(keys.SCHEDULES)
        due = dict(self.r.zrange(keys.SCHEDULES_DUE, 0, -1, withscores=True))
        out = []
        for sid, value in raw.items():
            schedule = json.loads(value)
            schedule["next_run_at"] = due.get(sid)
            out.append(schedule)
        return sorted((s for s in out if task_id is None or s["task_id"] == task_id),
                      key=lambda s: (s["task_id"], s["id"]))

    def get(self, schedule_id: str) -> dict[str, Any]:
        """One schedule, with ``next_run_at`` as unix time.

        Raises:
            NotFound: no such schedule.
        """
        with self.r.pipeline(transaction=False) as p:
            p.hget(keys.SCHEDULES, schedule_id)
            p.zscore(keys.SCHEDULES_DUE, schedule_id)
            raw, due = p.execute()
        if raw is None:
            raise NotFound("schedule", schedule_id)
        return {**json.loads(raw), "next_run_at": due}

    def owner(self, schedule_id: str) -> str | None:
        """Who owns a schedule: its task's owner (None when the task is gone: then it is the admin's).

        Raises:
            NotFound: no such schedule.
        """
        task_id = self.get(schedule_id)["task_id"]
        try:
            return self.store.get_definition(task_id).owner
        except NotFound:
            return None

    def views(self, task_id: str | None = None) -> list[dict[str, Any]]:
        """What the CLI, the API and the dashboard show: times as ISO 8601 (see :func:`schedule_view`)."""
        return [schedule_view(s) for s in self.all(task_id)]

    def set_enabled(self, schedule_id: str, enabled: bool) -> dict[str, Any]:
        """Switch a schedule on or off; off, it keeps its place (and its data) but starts no run.

        Switched on again, its next run is the next slot from now: slots it skipped are not made up.

        Raises:
            NotFound: no such schedule.
        """

        def switch(p: Any) -> dict[str, Any] | None:
            raw = p.hget(keys.SCHEDULES, schedule_id)
            if raw is None:
                return None
            schedule = {**json.loads(raw), "enabled": enabled}
            p.multi()
            p.hset(keys.SCHEDULES, schedule_id, dumps(schedule))
            if enabled:
                p.zadd(keys.SCHEDULES_DUE, {schedule_id: next_time(schedule["cron"], schedule["timezone"],
                                                                   self.clock.now())})
            return schedule

        if self.r.transaction(switch, keys.SCHEDULES, value_from_callable=True) is None:
            raise NotFound("schedule", schedule_id)
        return self.get(schedule_id)

    def fire_due(self) -> list[str]:
        """Trigger every schedule whose time has come; returns the run ids started.

        A schedule missed while every process was down fires once when they come back, not
        once per missed slot. A disabled schedule, and an inactive task's, is kept but skips its slot.
        """
        now = self.clock.now()
        started = []
        for raw_id, score in self.r.zrangebyscore(keys.SCHEDULES_DUE, "-inf", now, withscores=True):
            sid = raw_id.decode()
            raw = self.r.hget(keys.SCHEDULES, sid)
            if raw is None:
                self.r.zrem(keys.SCHEDULES_DUE, sid)
                continue
            schedule = json.loads(raw)
            nxt = next_time(schedule["cron"], schedule["timezone"], now)
            if not self._advance(keys=[keys.SCHEDULES_DUE], args=[sid, repr(score), nxt]):
                continue
            if not schedule.get("enabled", True):
                continue
            try:
                started.append(self.runs.trigger(schedule["task_id"], dict(schedule["data"]), kind="schedule",
                                                   by=f"schedule:{sid}"))
            except (NotFound, Conflict):
                continue
        return started


def schedule_view(schedule: dict[str, Any]) -> dict[str, Any]:
    """A schedule with ``next_run_at`` in UTC (``...Z``) and ``next_run_local`` in its own zone (with offset)."""
    nxt = schedule.get("next_run_at")
    local = (datetime.fromtimestamp(float(nxt), ZoneInfo(schedule["timezone"])).isoformat(timespec="seconds")
             if nxt is not None else None)
    return {**schedule, "enabled": bool(schedule.get("enabled", True)), "next_run_at": iso(nxt),
            "next_run_local": local}
