"""A sent opening recorded, and the next one claimed, in one Lua call.

Opening a sub-task used to cost a transaction of its own after the send (WATCH, HGET, MULTI,
five writes, EXEC) and a separate ZADD for its first chase check: three round trips and ten
commands for each of thousands of sub-tasks. The script below does the same writes, only
while the sub-task is still ``pending`` (a cancel or a reroute in between wins, as the
transaction's WATCH made it), in one round trip; each opening is recorded right after its
send (an answer may follow it at once).

The same call claims the batch's next opening (``claim:<sid>:open``, as
:meth:`.Outbox.claim` does), which is sent straight after: a claim, a send and a record cost
two round trips instead of three. Only one claim is ever taken ahead: claiming a whole batch
up front let claims lapse on a paced channel (a batch takes seconds there) while their sends
still waited, and another worker sent them again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis

from . import keys
from .outbox import CLAIM_FUNCTION, REF_TTL

# KEYS: 1 sub 2 conversation 3 active (channel, address) 4 sent marks 5 claim 6 timers 7 events
# 8 thread ref ('' none), [9 next's sent marks 10 next's claim].
# ARGV: 1 sid 2 opening message 3 now 4 next check 5 event body ('' none) 6 sent key 7 ref TTL
# 8 next's claim lifetime (ms), 9.. field pairs.
# Returns {marked, next}: marked 1 recorded, 0 no longer pending (nothing written); next as
# Outbox.claim (1 claimed, 0 sent already, -1 another is sending it), -2 when no next was asked.
MARK = CLAIM_FUNCTION + """
local marked = 0
if redis.call('HGET', KEYS[1], 'status') == 'pending' then
  local fields = {}
  for i = 9, #ARGV do fields[#fields + 1] = ARGV[i] end
  redis.call('HSET', KEYS[1], unpack(fields))
  redis.call('RPUSH', KEYS[2], ARGV[2])
  redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
  redis.call('SADD', KEYS[4], ARGV[6])
  redis.call('DEL', KEYS[5])
  if KEYS[8] ~= '' then redis.call('SET', KEYS[8], ARGV[1], 'EX', ARGV[7]) end
  if ARGV[5] ~= '' then redis.call('RPUSH', KEYS[7], ARGV[5]) end
  redis.call('ZADD', KEYS[6], ARGV[4], ARGV[1])
  marked = 1
end
local next_claim = -2
if KEYS[10] then next_claim = claim(KEYS[9], KEYS[10], ARGV[6], ARGV[8]) end
return {marked, next_claim}
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
    """Records of sent openings, each in one Lua call that may claim the next opening too."""

    def __init__(self, r: redis.Redis, lease_seconds: float) -> None:
        self.r = r
        self.lease_seconds = lease_seconds
        self._mark = r.register_script(MARK)

    def mark(self, o: Opened, now: float, next_sid: str | None = None, key: str = "open") -> tuple[bool, int]:
        """Record a sent opening while its sub-task is pending, and claim ``next_sid``'s.

        Returns:
            (whether it was recorded, the next claim as :meth:`.Outbox.claim` answers, -2 if none asked).
        """
        ks = [keys.sub(o.sid), keys.sub_conv(o.sid), keys.active(o.channel, o.address), keys.sub_sent(o.sid),
              keys.claim(o.sid, key), keys.TIMERS, keys.EVENTS, keys.thread(o.channel, o.ref) if o.ref else ""]
        if next_sid is not None:
            ks += [keys.sub_sent(next_sid), keys.claim(next_sid, key)]
        pairs = [x for k, v in o.fields.items() for x in (k, v)]
        marked, claimed = self._mark(keys=ks, args=[o.sid, o.message, now, o.next_check, o.event, key, REF_TTL,
                                                    int(self.lease_seconds * 1000), *pairs])
        return int(marked) == 1, int(claimed)


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
