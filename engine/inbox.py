"""Inboxes (SPEC §4, §10): every inbound message stored before it is acknowledged, in order, once.

``receive`` is what a channel's entry point calls before it acknowledges the provider: one
Lua script drops a duplicate delivery (same provider id), stores the message, routes it (the
thread or token it answers, else the sender's most recently active open sub-task) and
appends it to that conversation's *inbox*: a FIFO list per sub-task (messages that route to
none share one per sender and channel), the order its messages are applied in. ``drain``
applies an inbox from its head, one message at a time, under a lock only one worker holds; a
message leaves the inbox only once it is fully processed, so a worker that dies mid-message
leaves it at the head and whoever drains next applies it first: a later message never
overtakes an earlier one (an answer is never recorded under the next question). Different
conversations drain in parallel. What processing a message means is the caller's
(:mod:`.inbound`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import redis

from . import keys
from .bounds import check_value
from .errors import NotFound
from .leases import Leases
from .ports import Clock, Inbound, Jobs
from .store import decode_hash, dumps, new_id

SEEN_TTL = 7 * 86400

# Store and route in one step. KEYS: 1 seen, 2 inbound, 3 leases, 4 token:<reply_to>, 5 thread:<channel>:<reply_to>,
# 6 active:<channel>:<sender>. ARGV: 1 iid, 2 seen ttl, 3 lease deadline, 4 key prefix, 5 direct inbox id (for a
# message that routes to no sub-task), 6 '1' when it answers a ref (thread, token), 7.. hash fields.
# Returns {0, id of the earlier delivery} | {1, inbox}: drain it | {2, inbox}: the worker draining that inbox
# takes it (its release is atomic with this push).
RECEIVE = """
local existing = redis.call('GET', KEYS[1])
if existing then return {0, existing} end
local sid = false
if ARGV[6] == '1' then sid = redis.call('GET', KEYS[4]) or redis.call('GET', KEYS[5]) end
if not sid then sid = redis.call('ZREVRANGE', KEYS[6], 0, 0)[1] end
local qid = ARGV[5]
if sid then qid = 's-' .. sid end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('HSET', KEYS[2], 'sid', sid or '', 'inbox', qid, unpack(ARGV, 7))
redis.call('RPUSH', ARGV[4] .. 'inbox:' .. qid, ARGV[1])
redis.call('ZADD', KEYS[3], 'NX', ARGV[3], 'inq:' .. qid)
if redis.call('EXISTS', ARGV[4] .. 'inbox:' .. qid .. ':lock') == 1 then return {2, qid} end
return {1, qid}
"""

# Take (or keep) an inbox's lock and its lease, and read its head. KEYS: inbox, lock, leases, redrives.
# ARGV: token, lock ttl ms, lease deadline, lease member. {0}: another worker holds it | {1, head or nil}.
HOLD = """
local holder = redis.call('GET', KEYS[2])
if holder and holder ~= ARGV[1] then return {0} end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[4])
redis.call('HDEL', KEYS[4], ARGV[4])
return {1, redis.call('LINDEX', KEYS[1], 0)}
"""

# A message is fully processed: it leaves the inbox, and the lock moves on to the next one in the same
# step, or (the inbox empty) is let go with the lease, atomically with RECEIVE's push. KEYS: inbox, lock,
# leases, redrives, the done message's hash. ARGV: token, lock ttl ms, lease deadline, lease member, iid.
# {0}: the lock was lost (another worker goes on) | {1, next head} | {2}: empty, let go.
NEXT = """
if redis.call('LINDEX', KEYS[1], 0) == ARGV[5] then redis.call('LPOP', KEYS[1])
else redis.call('LREM', KEYS[1], 1, ARGV[5]) end
redis.call('DEL', KEYS[5])
local holder = redis.call('GET', KEYS[2])
if holder and holder ~= ARGV[1] then return {0} end
local head = redis.call('LINDEX', KEYS[1], 0)
if not head then
  redis.call('DEL', KEYS[2]); redis.call('ZREM', KEYS[3], ARGV[4]); redis.call('HDEL', KEYS[4], ARGV[4])
  return {2}
end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[4])
redis.call('HDEL', KEYS[4], ARGV[4])
return {1, head}
"""

# Stop draining: only with the inbox empty (atomic with RECEIVE's push) unless ARGV[3] forces it (the head
# waits for a model slot; its wake drains again). KEYS: inbox, lock, leases, redrives. ARGV: token, member, force.
UNLOCK = """
if ARGV[3] ~= '1' and redis.call('LLEN', KEYS[1]) > 0 then return 0 end
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
if ARGV[3] ~= '1' then redis.call('ZREM', KEYS[3], ARGV[2]); redis.call('HDEL', KEYS[4], ARGV[2]) end
return 1
"""


def inbox_of_subtask(sid: str) -> str:
    return f"s-{sid}"


def inbox_of_sender(channel: str, sender: str) -> str:
    """The inbox of a sender's messages that answer no sub-task (a digest: senders are free text,
    and lease members are split on ':')."""
    return "d-" + hashlib.sha1(f"{channel}\n{sender}".encode(), usedforsecurity=False).hexdigest()[:20]

class Inbox:
    """Store, route and order inbound messages.

    Args:
        r: the Redis connection.
        clock: the time source.
        jobs: the job queue (a new message queues the draining of its inbox).
        leases: the work leases (each inbox with messages holds one until it is empty).
    """

    def __init__(self, r: redis.Redis, clock: Clock, jobs: Jobs, leases: Leases) -> None:
        self.r = r
        self.clock = clock
        self.jobs = jobs
        self.leases = leases
        self._receive = r.register_script(RECEIVE)
        self._hold = r.register_script(HOLD)
        self._next = r.register_script(NEXT)
        self._unlock = r.register_script(UNLOCK)

    def receive(self, msg: Inbound) -> tuple[str, bool]:
        """Store ``msg`` at the end of its sender's inbox, unless the provider delivered it before.

        Returns:
            (inbound id, True when it is new). Only after this returns may the caller
            acknowledge the provider.

        Raises:
            InvalidInput: text (or an id) that cannot be stored, e.g. a lone surrogate; nothing is stored.
        """
        check_value({"text": msg.text, "sender": msg.sender, "provider_id": msg.provider_id,
                     "reply_to": msg.reply_to, "meta": msg.meta})  # Redis takes UTF-8 only
        iid = new_id(8)
        reply_to = msg.reply_to or ""
        fields = {"id": iid, "channel": msg.channel, "sender": msg.sender, "text": msg.text,
                  "provider_id": msg.provider_id, "reply_to": reply_to, "at": msg.at,
                  "meta": dumps(msg.meta), "state": "stored"}
        flat = [x for pair in fields.items() for x in pair]
        # tokens are lower-case hex: a mail system that lower-cases addresses still finds them
        no_ref = keys.PREFIX + "none"
        status, ident = self._receive(
            keys=[keys.seen(msg.channel, msg.provider_id), keys.inbound(iid), keys.LEASES,
                  keys.token(reply_to.lower()) if reply_to else no_ref,
                  keys.thread(msg.channel, reply_to) if reply_to else no_ref, keys.active(msg.channel, msg.sender)],
            args=[iid, SEEN_TTL, self.leases.deadline(), keys.PREFIX,
                  inbox_of_sender(msg.channel, msg.sender), "1" if reply_to else "0", *flat])
        if status == 0:
            return ident.decode(), False
        if status == 1:
            self.jobs.enqueue("process_inbox", ident.decode())
        return iid, True

    def pending(self, sid: str) -> int:
        """Messages to this sub-task stored but not yet fully processed."""
        return int(self.r.llen(keys.inbox(inbox_of_subtask(sid))))

    # -- applying an inbox in order -------------------------------------------------------
    def drain(self, qid: str, process: Callable[[str, str], str | None]) -> None:
        """Process the inbox's messages oldest first, while this worker holds its lock.

        ``process(iid, lease member)`` handles one message, idempotently; it returns ``"wait"``
        when the message must wait (for a model slot): it then stays at the head.

        A worker that finds the lock taken returns at once: the holder sees every message
        pushed before it lets go. A holder that died lets the lock expire with the inbox's
        lease, and the sweeper's re-drive drains again from the message it left at the head.
        """
        member, token = f"inq:{qid}", new_id(8)
        # the lock lapses a little before the lease, so a re-drive after a death finds it free
        ttl_ms = int(max(1.0, self.leases.lease_seconds * 0.9) * 1000)
        names = [keys.inbox(qid), keys.inbox_lock(qid), keys.LEASES, keys.REDRIVES]
        try:
            while True:
                held = self._hold(keys=names, args=[token, ttl_ms, self.leases.deadline(), member])
                if held[0] == 0:
                    return  # another worker drains it, and sees every message pushed before it lets go
                head = held[1]
                if head is None:
                    if self._unlock(keys=names, args=[token, member, "0"]):
                        return
                    continue  # a message came in just now
                while head is not None:
                    iid = head.decode()
                    if process(iid, member) == "wait":
                        # the head waits for a model slot; whoever frees one drains this inbox again
                        self._unlock(keys=names, args=[token, member, "1"])
                        return
                    moved = self._next(keys=[*names, keys.inbound(iid)],
                                       args=[token, ttl_ms, self.leases.deadline(), member, iid])
                    if moved[0] != 1:
                        return  # let go with the inbox empty, or lost to a new holder (this one was too slow)
                    head = moved[1]
        except BaseException:
            self._unlock(keys=names, args=[token, member, "1"])
            raise

    def park_head(self, qid: str) -> str | None:
        """Take the inbox's head message off and keep it in ``taskbot:dead`` (it failed every time),
        so the messages behind it are not held up forever. Returns its id."""
        head = self.r.lpop(keys.inbox(qid))
        if head is None:
            return None
        iid = str(head.decode())
        self.r.hset(keys.DEAD, f"in:{iid}", self.clock.now())
        return iid

    def adopt(self, iid: str) -> str | None:
        """A message stored before inboxes existed (its lease is ``in:<iid>``): put it at the head of
        its conversation's inbox, being older than anything queued there. Returns that inbox."""
        msg = decode_hash(self.r.hgetall(keys.inbound(iid)))
        self.leases.release(f"in:{iid}")
        if not msg:
            return None
        sid = self.route(msg)
        qid = inbox_of_subtask(sid) if sid else inbox_of_sender(msg["channel"], msg["sender"])
        self.r.hset(keys.inbound(iid), mapping={"sid": sid or "", "inbox": qid})
        if self.r.lpos(keys.inbox(qid), iid) is None:
            self.r.lpush(keys.inbox(qid), iid)
        self.r.zadd(keys.LEASES, {f"inq:{qid}": self.leases.deadline()}, nx=True)
        return qid

    def subtask_for_token(self, token: str) -> str:
        """The sub-task a reply token (web chat link) belongs to.

        Raises:
            NotFound: the token names no sub-task.
        """
        sid = self.r.get(keys.token(token))
        if sid is None:
            raise NotFound("chat", token[:6] + "…")
        return str(sid.decode())

    def post_web(self, token: str, text: str, message_id: str | None = None,
                 answers: str | None = None) -> tuple[str, bool]:
        """A web chat answer: stored (and queued) before the HTTP 202 goes back.

        ``message_id`` lets a page that retries a POST be processed once; without one each
        POST is a new message. ``answers`` is the field a button pressed on the page belongs to.
        """
        sid = self.subtask_for_token(token)
        address = self.r.hget(keys.sub(sid), "address")
        sender = address.decode() if address else sid
        return self.receive(Inbound("web", sender, text, f"{sid}/{message_id or new_id(8)}", reply_to=token,
                                    meta={"answers": answers} if answers else {}))

    def route(self, msg: dict[str, str]) -> str | None:
        """The sub-task a message answers: its thread or token, else the sender's latest open one
        (``receive`` does the same inside its script; this reads it for messages stored before)."""
        channel, reply_to = msg["channel"], msg.get("reply_to")
        if reply_to:
            # tokens are lower-case hex: a mail system that lower-cases addresses still finds them
            for key in (keys.token(reply_to.lower()), keys.thread(channel, reply_to)):
                sid = self.r.get(key)
                if sid is not None:
                    return str(sid.decode())
        latest = self.r.zrevrange(keys.active(channel, msg["sender"]), 0, 0)
        return latest[0].decode() if latest else None
