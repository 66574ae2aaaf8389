"""Sliding-window send limits in Redis, shared by every worker process: at most N calls in any W ms.

Telegram and Slack count a limit this way (Telegram: about 30 messages in any second and 1 per
chat; Slack: a method's calls per minute, chat.postMessage about 1 a second per channel), so a
process that takes a slot here before each call keeps under them however many processes call.
Each limit is a sorted set of the times of the calls it let through. One script checks every
limit of a call and records the call in all of them at once, on Redis's clock: a send needs
both the bot-wide and the per-chat slot, and taking one while failing the other would waste it
(why this is not the ``limits`` library, which checks one limit per call).

A call is counted from when it took its slot until it finished, then from when it finished
(:meth:`Limiter.slot`): the provider received it somewhere in between, and how long after the
slot varies from call to call (a worker's first request, a busy machine), so counting from the
slot alone would let two calls reach the provider closer together than their slots were. With
the finish time, a later call's slot is never less than a window after an earlier call arrived.
``MARGIN_MS`` more per window covers the clocks' resolution.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import redis

#: Added to every window, for the clocks' resolution.
MARGIN_MS = 10.0

#: KEYS: the limits' sorted sets, then their hold keys (a provider's own Retry-After); ARGV: limit and
#: window (ms) per key, then this call's member. Returns 0 when the slot is taken, else the ms to wait.
TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local n = #KEYS / 2
local wait = 0
for i = 1, n do
  local held = redis.call('PTTL', KEYS[n + i])
  if held > wait then wait = held end
  local limit, window = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - window)
  local count = redis.call('ZCARD', KEYS[i])
  if count >= limit then
    local oldest = redis.call('ZRANGE', KEYS[i], count - limit, count - limit, 'WITHSCORES')
    local free = tonumber(oldest[2]) + window - now
    if free > wait then wait = free end
  end
end
if wait > 0 then return math.max(1, math.ceil(wait)) end
for i = 1, n do
  redis.call('ZADD', KEYS[i], now, ARGV[2 * n + 1])
  redis.call('PEXPIRE', KEYS[i], math.ceil(tonumber(ARGV[2 * i])))
end
return 0
"""

#: The call of member ARGV[1] finished: count it from now (KEYS: its limits; ARGV[2..]: their windows, ms).
FINISH = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
for i = 1, #KEYS do
  if redis.call('ZADD', KEYS[i], 'XX', 'CH', now, ARGV[1]) == 1 then
    redis.call('PEXPIRE', KEYS[i], math.ceil(tonumber(ARGV[i + 1])))
  end
end
return 0
"""

#: Record a call that already happened (KEYS[1], ARGV: window ms, member), e.g. under a second name.
RECORD = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
redis.call('ZADD', KEYS[1], now, ARGV[2])
redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[1])))
return 0
"""


@dataclass(frozen=True)
class Rule:
    """At most ``limit`` calls in any ``window_ms``."""

    limit: int
    window_ms: float

    @classmethod
    def per(cls, limit: int, seconds: float) -> Rule:
        return cls(limit, seconds * 1000 + MARGIN_MS)

    @classmethod
    def rate(cls, per_second: float) -> Rule:
        """``per_second`` calls a second as whole calls in a window: 30/s is 30 a second, 0.5/s one in 2 s."""
        limit = max(1, math.floor(per_second))
        return cls.per(limit, limit / per_second)


class Wait(Exception):  # noqa: N818 - it tells the caller to wait
    """No slot within the caller's patience: try again in ``seconds``."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"wait {seconds:.1f}s")
        self.seconds = seconds


class Limiter:
    """Slots under one or more :class:`Rule` at once, each kept under its own Redis key."""

    def __init__(self, r: redis.Redis) -> None:
        self.r = r
        self._take = r.register_script(TAKE)
        self._finish = r.register_script(FINISH)
        self._record = r.register_script(RECORD)

    def try_take(self, limits: Sequence[tuple[str, Rule]], member: str | None = None) -> float:
        """Take a slot of every limit, or none: 0.0 when taken, else the seconds until one may free up."""
        args: list[float | str] = [x for _, rule in limits for x in (rule.limit, rule.window_ms)]
        waited = int(self._take(keys=[k for k, _ in limits] + [f"{k}:hold" for k, _ in limits],
                                args=[*args, member or secrets.token_hex(8)]))
        return waited / 1000

    def take(self, limits: Sequence[tuple[str, Rule]], max_wait: float) -> str:
        """Wait (in this thread) until every limit has a slot, and take them; the call's name in the limits.

        Raises:
            Wait: the slot is further away than ``max_wait`` seconds; nothing was taken.
        """
        member = secrets.token_hex(8)
        deadline = time.monotonic() + max_wait
        while (wait := self.try_take(limits, member)) > 0:
            if time.monotonic() + wait > deadline:
                raise Wait(wait)
            # a few ms of jitter, so that processes waiting for the same slot do not all ask at once
            time.sleep(wait + secrets.randbelow(4) / 1000)
        return member

    def finish(self, limits: Sequence[tuple[str, Rule]], member: str) -> None:
        """The call ``member`` is over: it counts from now (the provider has had it by now)."""
        self._finish(keys=[k for k, _ in limits], args=[member, *(rule.window_ms for _, rule in limits)])

    @contextmanager
    def slot(self, limits: Sequence[tuple[str, Rule]], max_wait: float) -> Iterator[None]:
        """Take a slot (see :meth:`take`) for the call made inside the block, which counts until it ends."""
        member = self.take(limits, max_wait)
        try:
            yield
        finally:
            self.finish(limits, member)

    def record(self, key: str, rule: Rule) -> None:
        """Count a call that went out under another name (a Slack DM posted to by user id) under ``key`` too."""
        self._record(keys=[key], args=[rule.window_ms, secrets.token_hex(8)])

    def hold(self, key: str, seconds: float) -> None:
        """Nothing takes ``key``'s slots for ``seconds``: the provider said so (a 429's Retry-After)."""
        self.r.set(f"{key}:hold", "1", px=max(1, int(seconds * 1000)))
