"""Deadlines of fan-outs (SPEC §11 ``template.close``): a timer in Redis per state, closed once.

A fan-out with ``close.at`` or ``close.after`` puts ``<rid>:<step>`` in ``taskbot:deadlines``
with its time, in the transaction that creates its sub-tasks, so no restart loses it. The
scheduler pass takes the due ones the way it takes chase checks: taking one pushes its time a
lease ahead instead of removing it, so if the worker that got it dies, it comes due again.
The close itself is one script that sets the state's ``closed`` mark only if nothing set it
first (the last answer, the quorum), takes the fan-in lease and drops the timer: whichever
of them comes first closes the state, and only that one.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import redis

from . import keys
from .events import Events
from .leases import Leases
from .model import CloseSpec
from .ports import Clock, Jobs

log = logging.getLogger("taskbot.deadlines")

# Hand out the due deadlines, pushing each a lease ahead. KEYS: deadlines. ARGV: now, limit, lease end.
TAKE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, m in ipairs(due) do redis.call('ZADD', KEYS[1], ARGV[3], m) end
return due
"""

# KEYS: 1 deadlines 2 closed mark 3 leases 4 run 5 events. ARGV: 1 member 2 step 3 now 4 lease end 5 fan-in
# lease member 6 run.closed event. 1: closed now (fan-in is the caller's); 0: closed already or moved on.
CLOSE = """
local status = redis.call('HGET', KEYS[4], 'status')
local step = redis.call('HGET', KEYS[4], 'step')
if status ~= 'running' or step ~= ARGV[2] or not redis.call('SET', KEYS[2], 'deadline', 'NX') then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 0
end
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[5])
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[4], 'closed_by', 'deadline', 'closed_at', ARGV[3])
if ARGV[6] ~= '' then redis.call('RPUSH', KEYS[5], ARGV[6]) end
return 1
"""


def deadline_of(close: CloseSpec | None, run: Mapping[str, str]) -> float | None:
    """When a fan-out closes at the latest: ``at``, or ``after`` counted from the run's start."""
    if close is None:
        return None
    if close.at is not None:
        return close.at.timestamp()
    if close.after is not None:
        return float(run.get("started_at") or run["created_at"]) + close.after
    return None


class Deadlines:
    """Set, hand out and close fan-out deadlines.

    Args:
        r: the Redis connection.
        clock: the time source.
        jobs: the job queue (``close_state`` when due, ``fan_in`` once closed).
        leases: the work leases (fan-in's).
        events: records ``run.closed``.
    """

    def __init__(self, r: redis.Redis, clock: Clock, jobs: Jobs, leases: Leases, events: Events) -> None:
        self.r = r
        self.clock = clock
        self.jobs = jobs
        self.leases = leases
        self.events = events
        self._take = r.register_script(TAKE)
        self._close = r.register_script(CLOSE)

    def set(self, pipe: Any, rid: str, step: int, when: float) -> None:
        """Schedule the state's close inside the caller's transaction (the fan-out's)."""
        pipe.zadd(keys.DEADLINES, {f"{rid}:{step}": when})
        pipe.hset(keys.run(rid), "deadline", when)

    def take_due(self, limit: int = 1000) -> int:
        """Queue a ``close_state`` job per due deadline (scheduler pass); returns how many."""
        now = self.clock.now()
        taken = self._take(keys=[keys.DEADLINES], args=[now, limit, now + self.leases.lease_seconds])
        due = [m.decode() for m in taken]
        self.jobs.enqueue_many([("close_state", tuple(m.rsplit(":", 1))) for m in due])
        return len(due)

    def close(self, rid: str, step: int) -> bool:
        """Close the state at its deadline unless it closed already; True when this call closed it."""
        now = self.clock.now()
        event = self.events.body("run.closed", run_id=rid, step=step, closed_by="deadline", reason="closed at deadline")
        closed = int(self._close(keys=[keys.DEADLINES, keys.run_closed(rid, step), keys.LEASES, keys.run(rid),
                                       keys.EVENTS],
                                 args=[f"{rid}:{step}", str(step), now, now + self.leases.lease_seconds,
                                       f"fanin:{rid}:{step}", event]))
        if closed:
            log.info("run %s: state %d closed at its deadline", rid, step)
            self.jobs.enqueue("fan_in", rid, str(step))
        return bool(closed)
