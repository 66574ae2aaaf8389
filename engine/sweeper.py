"""The sweeper: work whose lease expired (its worker died, a job was lost) is queued again.

Called by the scheduler pass about once a second. The lease is pushed forward before the job
is enqueued, so a busy queue does not get the same item over and over; work that fails every
time is given up after :data:`MAX_REDRIVES` and parked in ``taskbot:dead`` for an operator.
"""

from __future__ import annotations

import logging

import redis

from . import keys
from .inbox import Inbox
from .leases import Leases, job_for
from .limits import Slots
from .ports import Clock, Jobs

log = logging.getLogger("taskbot.engine")

#: A lease re-driven this many times is given up (its job fails every time).
MAX_REDRIVES = 10


class Sweeper:
    """Re-drive expired leases.

    Args:
        r: the Redis connection.
        clock: the time source.
        jobs: the job queue the re-driven work goes to.
        leases: the work leases.
        slots: model slots (a dead worker's slot comes back in the same pass).
        inbox: an inbox's message that fails every time is parked so the rest go on.
    """

    def __init__(self, r: redis.Redis, clock: Clock, jobs: Jobs, leases: Leases, slots: Slots, inbox: Inbox) -> None:
        self.r = r
        self.clock = clock
        self.jobs = jobs
        self.leases = leases
        self.slots = slots
        self.inbox = inbox

    def sweep(self, limit: int = 500) -> int:
        """Re-enqueue work whose lease expired; returns how many items were re-driven."""
        self.slots.sweep()  # slots of dead workers back, waiters that may go woken
        now = self.clock.now()
        members = [m.decode() for m in self.r.zrangebyscore(keys.LEASES, "-inf", now, start=0, num=limit)]
        if not members:
            return 0
        with self.r.pipeline(transaction=False) as p:
            for m in members:
                p.zadd(keys.LEASES, {m: now + self.leases.lease_seconds}, xx=True)
                p.hincrby(keys.REDRIVES, m, 1)
            counts = p.execute()[1::2]
        calls = []
        for m, count in zip(members, counts, strict=True):
            if count > MAX_REDRIVES and m.startswith("inq:"):
                # an inbox must not stop for good behind one message that fails every time:
                # that message is parked, and the ones behind it go on
                parked = self.inbox.park_head(m.split(":", 1)[1])
                log.error("giving up on message %s after %d re-drives; see taskbot:dead", parked, count - 1)
                self.r.hdel(keys.REDRIVES, m)
            elif count > MAX_REDRIVES:
                # A job that fails every time must not be retried forever: park it where an
                # operator sees it (`taskbot:dead`), with the time it was given up.
                log.error("giving up on %s after %d re-drives; see taskbot:dead", m, count - 1)
                with self.r.pipeline() as p:
                    self.leases.release(m, p)
                    p.hset(keys.DEAD, m, now)
                    p.execute()
                continue
            call = job_for(m)
            if call is None:
                log.warning("unknown lease %s dropped", m)
                self.leases.release(m)
                continue
            log.info("re-driving %s (lease expired)", m)
            calls.append(call)  # jobs take strings and convert
        self.jobs.enqueue_many(calls)
        return len(calls)
