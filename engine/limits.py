"""Concurrency slots (SPEC §4): at most N assistant turns at once across every worker, at most
``max_concurrent_tasks`` per assistant, one at a time per conversation; the rest wait in order.

A slot is held only while a turn calls the model (people being silent hold none). Work that
finds no free slot joins a FIFO queue in Redis and its job returns at once (no worker sleeps
waiting); whoever frees a slot wakes the waiters that may go now, by queueing their jobs
again. A slot has an expiry that its holder's heartbeat pushes forward, so a slot held by a
worker that died is taken back; the scheduler pass does that and wakes whoever can go.

Items are lease members (``in:<iid>``, ``step:<rid>:<step>``): the sweeper already knows how
to run each again, and a waiting item's lease makes the sweeper retry it should a wake be lost.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import redis

from . import keys
from .leases import Leases, job_for
from .ports import Clock, Jobs

log = logging.getLogger("taskbot.limits")

# KEYS: 1 holders (zset item -> expiry) 2 waiting (zset item -> arrival number) 3 meta (hash item ->
# "assistant|limit|group") 4 arrival counter 5 waiting expiry (zset) 6 holder tokens (hash) 7 woken (zset)
COMMON = """
local function expire(now)
  for _, d in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)) do
    redis.call('ZREM', KEYS[1], d); redis.call('HDEL', KEYS[3], d); redis.call('HDEL', KEYS[6], d)
  end
  for _, d in ipairs(redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', now)) do
    redis.call('ZREM', KEYS[5], d); redis.call('ZREM', KEYS[2], d); redis.call('ZREM', KEYS[7], d)
    if not redis.call('ZSCORE', KEYS[1], d) then redis.call('HDEL', KEYS[3], d) end
  end
end
local function split(m)
  local a, l, g = string.match(m, '^(.-)|(%d+)|(.*)$')
  return a, tonumber(l), g
end
-- The waiters that may start now, in arrival order: a free slot overall, under their
-- assistant's limit, and their conversation not in a turn already.
local function walk(G)
  local held = redis.call('ZRANGE', KEYS[1], 0, -1)
  local g, per, busy, go = #held, {}, {}, {}
  for _, h in ipairs(held) do
    local m = redis.call('HGET', KEYS[3], h)
    if m then local a, _, grp = split(m); per[a] = (per[a] or 0) + 1; busy[grp] = true end
  end
  for _, w in ipairs(redis.call('ZRANGE', KEYS[2], 0, 999)) do
    if g >= G then break end
    local m = redis.call('HGET', KEYS[3], w)
    if m then
      local a, l, grp = split(m)
      if (l == 0 or (per[a] or 0) < l) and not busy[grp] then
        table.insert(go, w); g = g + 1; per[a] = (per[a] or 0) + 1; busy[grp] = true
      end
    end
  end
  return go
end
"""

# ARGV: now, item, meta, global limit, slot ttl, waiting ttl, token. 1: taken; 0: wait; -1: another job has it.
ACQUIRE = COMMON + """
local now, item = tonumber(ARGV[1]), ARGV[2]
expire(now)
if redis.call('ZSCORE', KEYS[1], item) then
  if redis.call('HGET', KEYS[6], item) ~= ARGV[7] then return -1 end
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[5]), item)
  return 1
end
redis.call('HSET', KEYS[3], item, ARGV[3])
if not redis.call('ZSCORE', KEYS[2], item) then redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[4]), item) end
redis.call('ZADD', KEYS[5], now + tonumber(ARGV[6]), item)
for _, w in ipairs(walk(tonumber(ARGV[4]))) do
  if w == item then
    redis.call('ZREM', KEYS[2], item); redis.call('ZREM', KEYS[5], item); redis.call('ZREM', KEYS[7], item)
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[5]), item)
    redis.call('HSET', KEYS[6], item, ARGV[7])
    return 1
  end
end
return 0
"""

# ARGV: now, item ('' for none), global limit, token, re-wake after. Returns the waiters to wake.
RELEASE = COMMON + """
local now, item = tonumber(ARGV[1]), ARGV[2]
if item ~= '' and redis.call('HGET', KEYS[6], item) == ARGV[4] then
  redis.call('ZREM', KEYS[1], item); redis.call('HDEL', KEYS[3], item); redis.call('HDEL', KEYS[6], item)
end
expire(now)
local wake = {}
for _, w in ipairs(walk(tonumber(ARGV[3]))) do
  local at = redis.call('ZSCORE', KEYS[7], w)
  if not at or tonumber(at) < now - tonumber(ARGV[5]) then
    redis.call('ZADD', KEYS[7], now, w); table.insert(wake, w)
  end
end
return wake
"""

EXTEND = """
if redis.call('HGET', KEYS[3], ARGV[1]) ~= ARGV[3] then return 0 end
redis.call('ZADD', KEYS[1], 'XX', ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[2], 'XX', ARGV[2], ARGV[1])
return 1
"""


class Slots:
    """Take, hold and free turn slots.

    Args:
        r: the Redis connection.
        clock: the time source.
        jobs: the job queue (a freed slot queues the jobs of the waiters it lets go).
        leases: the work leases (a slot's heartbeat keeps its item's lease; waiting is forgiven).
        limit: most turns at once across every worker (TASKBOT_MAX_CONCURRENT_TASKS).
        ttl: seconds a slot lives without a heartbeat (a dead worker's slot frees after this).
    """

    def __init__(self, r: redis.Redis, clock: Clock, jobs: Jobs, leases: Leases, limit: int, ttl: float) -> None:
        self.r = r
        self.clock = clock
        self.jobs = jobs
        self.leases = leases
        self.limit = max(1, limit)
        self.ttl = ttl
        self._acquire = r.register_script(ACQUIRE)
        self._release = r.register_script(RELEASE)
        self._extend = r.register_script(EXTEND)
        self._keys = [keys.SLOTS, keys.SLOTS_WAITING, keys.SLOTS_META, keys.SLOTS_SEQ, keys.SLOTS_WAITING_TTL,
                      keys.SLOTS_TOKENS, keys.SLOTS_WOKEN]

    def acquire(self, item: str, assistant: str, per_assistant: int | None, group: str, token: str) -> int:
        """1: the slot is yours; 0: wait (you are queued and will be woken); -1: another job holds it."""
        meta = f"{assistant}|{per_assistant or 0}|{group}"
        now = self.clock.now()
        return int(self._acquire(keys=self._keys, args=[now, item, meta, self.limit, self.ttl,
                                                        3 * self.leases.lease_seconds + self.ttl, token]))

    def release(self, item: str = "", token: str = "") -> list[str]:
        """Free ``item``'s slot (if ``token`` holds it) and wake the waiters that may go now."""
        woken = [w.decode() for w in self._release(keys=self._keys, args=[
            self.clock.now(), item, self.limit, token, self.leases.lease_seconds])]
        if woken:
            self.jobs.enqueue_many([call for call in map(job_for, woken) if call is not None])
        return woken

    def sweep(self) -> list[str]:
        """Take back slots whose holder stopped beating, and wake whoever can go (scheduler pass)."""
        return self.release()

    def in_use(self) -> int:
        return int(self.r.zcard(keys.SLOTS))

    @contextmanager
    def hold(self, item: str, assistant: str, per_assistant: int | None, group: str) -> Iterator[int]:
        """Yield 1 holding a slot for ``item`` (its heartbeat also keeps the job's lease), 0 when
        queued to wait, -1 when another job is working on it; the slot is freed on leaving."""
        token = secrets.token_hex(8)
        got = self.acquire(item, assistant, per_assistant, group, token)
        if got != 1:
            if got == 0:  # waiting is no failure: the sweeper's re-drives of it must never give it up
                self.leases.forgive(item)
            yield got
            return
        stop = threading.Event()
        beat = threading.Thread(target=self._beat, args=(item, token, stop), name="taskbot-slot", daemon=True)
        beat.start()
        try:
            yield 1
        finally:
            stop.set()
            beat.join()
            self.release(item, token)

    def _beat(self, item: str, token: str, stop: threading.Event) -> None:
        interval = max(0.05, min(self.ttl, self.leases.lease_seconds) / 3)
        failing = False
        while not stop.wait(interval):
            try:
                self._extend(keys=[keys.SLOTS, keys.LEASES, keys.SLOTS_TOKENS],
                             args=[item, self.clock.now() + max(self.ttl, self.leases.lease_seconds), token])
                failing = False
            except Exception as exc:  # a Redis hiccup: the next beat tries again; said once, not every beat
                if not failing:
                    log.warning("heartbeat of %s failed (%s); retrying", item, exc)
                failing = True
