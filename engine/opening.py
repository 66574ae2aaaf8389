"""A sent opening recorded: one Lua call per sub-task (several may share a pipeline).

Opening a sub-task used to cost a transaction of its own after the send (WATCH, HGET, MULTI,
five writes, EXEC) and a separate ZADD for its first chase check: three round trips and ten
commands for each of thousands of sub-tasks. The script below does the same writes, only
while the sub-task is still ``pending`` (a cancel or a reroute in between wins, as the
transaction's WATCH made it), in one round trip; an open batch records each opening right
after its send (an answer may follow it at once).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis

from . import keys
from .outbox import REF_TTL

# KEYS: 1 sub 2 conversation 3 active (channel, address) 4 sent marks 5 claim 6 timers 7 events [8 thread ref].
# ARGV: 1 sid 2 opening message 3 now 4 next check 5 event body ('' none) 6 sent key 7 ref TTL, 8.. field pairs.
# Returns 1: marked; 0: no longer pending (nothing written).
MARK = """
if redis.call('HGET', KEYS[1], 'status') ~= 'pending' then return 0 end
local fields = {}
for i = 8, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('RPUSH', KEYS[2], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
redis.call('SADD', KEYS[4], ARGV[6])
redis.call('DEL', KEYS[5])
if KEYS[8] then redis.call('SET', KEYS[8], ARGV[1], 'EX', ARGV[7]) end
if ARGV[5] ~= '' then redis.call('RPUSH', KEYS[7], ARGV[5]) end
redis.call('ZADD', KEYS[6], ARGV[4], ARGV[1])
return 1
"""


@dataclass(frozen=True)
class Opened:
    """One opening handed to its channel, to be recorded."""

    sid: str
    channel: str
    address: str
    fields: dict[str, Any]
    message: str
    next_check: float
    event: str
    ref: str | None


class OpenMarks:
    """Records of sent openings: one Lua call each, several in one pipeline."""

    def __init__(self, r: redis.Redis, lease_seconds: float) -> None:
        self.r = r
        self.lease_seconds = lease_seconds
        self._mark = r.register_script(MARK)

    def mark(self, opened: Sequence[Opened], now: float, key: str = "open") -> list[bool]:
        """Record each sent opening while its sub-task is pending; True where it was recorded."""
        calls = []
        for o in opened:
            ks = [keys.sub(o.sid), keys.sub_conv(o.sid), keys.active(o.channel, o.address), keys.sub_sent(o.sid),
                  keys.claim(o.sid, key), keys.TIMERS, keys.EVENTS]
            if o.ref:
                ks.append(keys.thread(o.channel, o.ref))
            pairs = [x for k, v in o.fields.items() for x in (k, v)]
            calls.append((ks, [o.sid, o.message, now, o.next_check, o.event, key, REF_TTL, *pairs]))
        if not calls:
            return []
        if len(calls) == 1:  # one round trip (a pipeline with a script checks it is loaded first)
            return [int(self._mark(keys=calls[0][0], args=calls[0][1])) == 1]
        with self.r.pipeline(transaction=False) as p:
            for ks, args in calls:
                self._mark(keys=ks, args=args, client=p)
            return [int(x) == 1 for x in p.execute()]


# The sub-tasks of a fan-out, created inside the fan-out's transaction by one call instead of two
# commands each (for 10,000 people the client packed 10,000 HSETs of twelve fields: seconds of one
# worker's time while every other waited for the first open batch). The keys are built from
# prefixes in ARGV, as FINISH builds the active-conversation key; taskbot uses one Redis, not a cluster.
# KEYS: 1 the run's sub-task list. ARGV: 1 sub key prefix 2 token key prefix 3 JSON object of the fields
# every sub-task shares 4 JSON array of [sid, participant id, name, token].
CREATE = """
local common = cjson.decode(ARGV[3])
local shared = {}
for k, v in pairs(common) do shared[#shared + 1] = k; shared[#shared + 1] = v end
local sids = {}
for _, s in ipairs(cjson.decode(ARGV[4])) do
  local fields = {'id', s[1], 'participant_id', s[2], 'name', s[3], 'token', s[4]}
  for i = 1, #shared do fields[#fields + 1] = shared[i] end
  redis.call('HSET', ARGV[1] .. s[1], unpack(fields))
  redis.call('SET', ARGV[2] .. s[4], s[1])
  sids[#sids + 1] = s[1]
  if #sids == 1000 then redis.call('RPUSH', KEYS[1], unpack(sids)); sids = {} end
end
if #sids > 0 then redis.call('RPUSH', KEYS[1], unpack(sids)) end
return 1
"""


def create_script(r: redis.Redis) -> Any:
    """The registered :data:`CREATE` script (call it with ``client=`` the fan-out's pipeline)."""
    return r.register_script(CREATE)


def create_args(common: dict[str, Any], subs: Sequence[tuple[str, str, str, str]]) -> list[str]:
    """:data:`CREATE`'s ARGV: every value a string as redis-py would write it (floats by ``repr``)."""
    import json

    shared = {k: repr(v) if isinstance(v, float) else str(v) for k, v in common.items()}
    return [keys.sub(""), keys.token(""), json.dumps(shared), json.dumps(subs)]
