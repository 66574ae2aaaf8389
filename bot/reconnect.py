"""Riding out a Redis restart: the retry policy of every connection, and waiting until Redis answers again.

Two layers. Each command retries a dropped connection a few times within about a second and a
half (:func:`command_retry`), which covers a quick restart and the dead pooled connections it
leaves behind. A longer outage reaches the caller: the web app answers 503, and the loops that
must go on (the RQ worker, the scheduler, the Telegram poller) wait with backoff until Redis
answers a PING (:func:`wait_for_redis`), then carry on. Whatever a worker was doing when Redis
went away is re-driven by the engine's leases once it is back.
"""

from __future__ import annotations

import logging
import threading
import time

import redis
from redis.backoff import EqualJitterBackoff
from redis.retry import Retry

log = logging.getLogger("taskbot.redis")

#: What a restart looks like from the client: refused or reset connections, time-outs, and
#: ``LOADING`` while the server reads its append-only file (``BusyLoadingError``, a ConnectionError).
GONE = (redis.ConnectionError, redis.TimeoutError)
#: The longest pause between two attempts to reach Redis while it is away. A PING is cheap and
#: work should resume within seconds of Redis being back, so this stays short.
MAX_WAIT = 5.0
#: What a request that needs Redis gets while it is away (with 503 and ``Retry-After: 1``).
UNAVAILABLE = "Redis is not answering; try again shortly"


def command_retry() -> Retry:
    """Up to four retries of a command whose connection dropped, 0.05 s to 0.8 s apart (1.5 s at most).

    Short on purpose: a request waiting longer than that is better answered 503 at once, and
    the worker loops have their own, unbounded wait. A command that reached Redis just before
    the connection dropped may run twice; every job and inbound message is idempotent for that.
    """
    return Retry(EqualJitterBackoff(cap=0.8, base=0.05), 4, supported_errors=GONE)


def backoff() -> EqualJitterBackoff:
    """Pauses of 0.25-0.5 s, then twice as long each time, up to ``MAX_WAIT`` (jittered, so that
    many processes that lost Redis together do not all knock at the same instant)."""
    return EqualJitterBackoff(cap=MAX_WAIT, base=0.25)


def answers(r: redis.Redis) -> bool:
    return why_not(r) is None


def why_not(r: redis.Redis) -> str | None:
    """None when Redis answers a PING, else the reason (refused, loading, a wrong password ...)."""
    try:
        r.ping()
    except GONE as exc:
        return str(exc) or type(exc).__name__
    return None


def wait_for_redis(r: redis.Redis, stop: threading.Event | None = None, *, what: str = "taskbot",
                   timeout: float | None = None) -> bool:
    """Block until Redis answers a PING, pausing with backoff between attempts.

    Args:
        r: the connection to try.
        stop: set by a shutdown request; the wait ends early (returning False).
        what: who waits, for the log line.
        timeout: give up after this many seconds (None: wait as long as it takes).

    Returns:
        True once Redis answers; False when stopped or timed out first.
    """
    pauses = backoff()
    deadline = None if timeout is None else time.monotonic() + timeout
    failures = 0
    while (reason := why_not(r)) is not None:
        failures += 1
        pause = pauses.compute(failures)
        if deadline is not None:
            pause = min(pause, deadline - time.monotonic())
            if pause <= 0:
                return False
        if failures == 1:
            log.warning("%s: Redis is not answering (%s); trying again every %.0f s at most until it does",
                        what, reason, MAX_WAIT)
        if stop is not None:
            if stop.wait(pause):
                return False
        else:
            time.sleep(pause)
    if failures:
        log.warning("%s: Redis answers again (after %d attempts); going on", what, failures)
    return True
