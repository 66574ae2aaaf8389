"""System events for webhooks (SPEC §4, §8): recorded inside the transition that causes them.

An event is pushed to ``taskbot:events`` in the same transaction (or Lua script) as the state
change, so a change is never without its event. The scheduler loop moves the list into one
delivery job per webhook URL; the list is trimmed only after the jobs are queued, so a crash
between the two delivers an event twice rather than never (receivers de-duplicate by ``id``).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

import redis

from . import keys
from .ports import Clock, Jobs
from .store import dumps


class Events:
    """Record events in transitions, and hand them to delivery jobs.

    Args:
        r: the Redis connection.
        clock: the time source (events carry their time).
        jobs: the job queue (one delivery job per event and URL).
        urls: the webhook URLs (none: nothing is recorded).
    """

    def __init__(self, r: redis.Redis, clock: Clock, jobs: Jobs, urls: Sequence[str]) -> None:
        self.r = r
        self.clock = clock
        self.jobs = jobs
        self.urls = [u for u in urls if u]

    @property
    def enabled(self) -> bool:
        return bool(self.urls)

    def body(self, event: str, **payload: Any) -> str:
        """The JSON body of one event; empty when no webhook is configured (nothing is stored)."""
        if not self.urls:
            return ""
        return dumps({"id": secrets.token_hex(8), "event": event, "at": self.clock.now(), **payload})

    def emit(self, pipe: Any, event: str, **payload: Any) -> None:
        """Record an event inside the caller's transaction."""
        if self.urls:
            pipe.rpush(keys.EVENTS, self.body(event, **payload))

    def flush(self, limit: int = 500) -> int:
        """Queue one delivery job per (event, URL); returns the number of events moved."""
        if not self.urls:
            return 0
        items = [i.decode() for i in self.r.lrange(keys.EVENTS, 0, limit - 1)]
        if not items:
            return 0
        self.jobs.enqueue_many([("deliver_webhook", (url, item)) for item in items for url in self.urls])
        self.r.ltrim(keys.EVENTS, len(items), -1)
        return len(items)
