"""Work leases: every job's promise to be done by a time, kept in ``taskbot:leases`` until it is.

A job removes its lease when it finishes; the sweeper re-enqueues any lease that expired (its
worker died, Redis lost the queued job, the scheduler was killed). Every job is idempotent,
so running one twice is harmless. A member is ``kind:arg1:arg2...``; :data:`LEASE_JOBS` says
which job each kind re-drives.
"""

from __future__ import annotations

from typing import Any

import redis

from . import keys
from .ports import Clock

#: Lease kinds and the job that re-drives each.
LEASE_JOBS = {"step": "advance", "open": "open_batch", "fanin": "fan_in", "inq": "process_inbox",
              "in": "process_inbound", "notify": "notify_owner", "revise": "revise", "revised": "announce_revision",
              "report": "post_report", "callback": "deliver_callback"}


def job_for(member: str) -> tuple[str, tuple[str, ...]] | None:
    """The job (name, string arguments) that runs a lease's work again, or None for an unknown kind."""
    kind, *args = member.split(":")
    func = LEASE_JOBS.get(kind)
    return (func, tuple(args)) if func else None


class Leases:
    """Take and drop leases.

    Args:
        r: the Redis connection.
        clock: the time source.
        lease_seconds: how long a job may take before the sweeper runs it again.
    """

    def __init__(self, r: redis.Redis, clock: Clock, lease_seconds: float) -> None:
        self.r = r
        self.clock = clock
        self.lease_seconds = lease_seconds

    def deadline(self) -> float:
        return self.clock.now() + self.lease_seconds

    def lease(self, pipe: Any, member: str, deadline: float | None = None) -> None:
        """Promise ``member``'s work (inside the caller's transaction)."""
        pipe.zadd(keys.LEASES, {member: deadline if deadline is not None else self.deadline()})

    def release(self, member: str, pipe: Any = None) -> None:
        """The work is done: drop its lease (and its re-drive count, if it ever had one)."""
        p = pipe if pipe is not None else self.r.pipeline(transaction=False)
        p.zrem(keys.LEASES, member)
        p.hdel(keys.REDRIVES, member)
        if pipe is None:
            p.execute()

    def defer(self, member: str, when: float) -> None:
        """Run the work again at ``when``: a planned deferral, never counted as a failed re-drive."""
        with self.r.pipeline(transaction=False) as p:
            p.zadd(keys.LEASES, {member: when})
            p.hdel(keys.REDRIVES, member)
            p.execute()

    def forgive(self, member: str) -> None:
        """Forget the re-drives of work that was only waiting (for a slot): waiting is no failure."""
        self.r.hdel(keys.REDRIVES, member)
