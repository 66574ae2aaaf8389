"""Inbound messages (SPEC §4, §10): stored before acknowledging, applied in order, processed once.

``receive`` is what a channel's entry point calls before it acknowledges the provider: one
Lua script drops a duplicate delivery (same provider id), stores the message, routes it (the
thread or token it answers, else the sender's most recently active open sub-task) and
appends it to that conversation's *inbox*: a FIFO list per sub-task (messages that route to
none share one per sender and channel), the order its messages are applied in. ``drain``
applies an inbox from its head, one message at a time, under a lock only one worker holds; a
message leaves the inbox only once it is fully processed, so a worker that dies mid-message
leaves it at the head and whoever drains next applies it first: a later message never
overtakes an earlier one (an answer is never recorded under the next question). Each
message's processing (apply, reply, complete) is staged and idempotent, so a re-run after a
crash continues where the last one stopped. Different conversations drain in parallel.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import TYPE_CHECKING, Any

from . import keys
from .errors import NotFound
from .ports import Address, Delivery, DeliveryFailed, Inbound, Outbound
from .scripted import scripted_turn
from .store import decode_hash, dumps
from .subtasks import message

if TYPE_CHECKING:
    from .engine import Engine

log = logging.getLogger("taskbot.inbound")

MAX_TEXT = 20_000
SEEN_TTL = 7 * 86400

# Store and route in one step. KEYS: 1 seen, 2 inbound, 3 leases, 4 token:<reply_to>, 5 thread:<channel>:<reply_to>,
# 6 active:<channel>:<sender>. ARGV: 1 iid, 2 seen ttl, 3 lease deadline, 4 key prefix, 5 direct inbox id (for a
# message that routes to no sub-task), 6.. hash fields. Returns {0, id of the earlier delivery} | {1, inbox}:
# drain it | {2, inbox}: the worker draining that inbox takes it (its release is atomic with this push).
RECEIVE = """
local existing = redis.call('GET', KEYS[1])
if existing then return {0, existing} end
local sid = redis.call('GET', KEYS[4]) or redis.call('GET', KEYS[5])
if not sid then sid = redis.call('ZREVRANGE', KEYS[6], 0, 0)[1] end
local qid = ARGV[5]
if sid then qid = 's-' .. sid end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('HSET', KEYS[2], 'sid', sid or '', 'inbox', qid, unpack(ARGV, 6))
redis.call('RPUSH', ARGV[4] .. 'inbox:' .. qid, ARGV[1])
redis.call('ZADD', KEYS[3], 'NX', ARGV[3], 'inq:' .. qid)
if redis.call('EXISTS', ARGV[4] .. 'inbox:' .. qid .. ':lock') == 1 then return {2, qid} end
return {1, qid}
"""

# The drainer's lock, renewed (with the inbox's lease) after each message. KEYS: lock, leases, redrives.
# ARGV: token, ttl ms, lease deadline, lease member. 0: another worker holds it (this one stops).
RENEW = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
redis.call('HDEL', KEYS[3], ARGV[4])
return 1
"""

# A message fully processed leaves its inbox. KEYS: inbox, inbound. ARGV: iid.
DONE = """
if redis.call('LINDEX', KEYS[1], 0) == ARGV[1] then redis.call('LPOP', KEYS[1])
else redis.call('LREM', KEYS[1], 1, ARGV[1]) end
redis.call('DEL', KEYS[2])
"""

# Stop draining: only with the inbox empty (atomic with RECEIVE's push) unless ARGV[3] forces it (the head
# waits for a model slot; its wake drains again). KEYS: inbox, lock, leases, redrives. ARGV: token, member, force.
UNLOCK = """
if ARGV[3] ~= '1' and redis.call('LLEN', KEYS[1]) > 0 then return 0 end
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
if ARGV[3] ~= '1' then redis.call('ZREM', KEYS[3], ARGV[2]); redis.call('HDEL', KEYS[4], ARGV[2]) end
return 1
"""

CLOSED_TEXT = "Thanks! This task has already closed, so your message was kept but not recorded as an answer."
NOT_OPEN_TEXT = "This task has not started for you yet; your message was kept."
NO_TASK_TEXT = "Hi! You have no open task with me right now."


def inbox_of_subtask(sid: str) -> str:
    return f"s-{sid}"


def inbox_of_sender(channel: str, sender: str) -> str:
    """The inbox of a sender's messages that answer no sub-task (a digest: senders are free text,
    and lease members are split on ':')."""
    return "d-" + hashlib.sha1(f"{channel}\n{sender}".encode(), usedforsecurity=False).hexdigest()[:20]


class Inbox:
    def __init__(self, engine: Engine) -> None:
        self.e = engine
        self._receive = engine.r.register_script(RECEIVE)
        self._renew = engine.r.register_script(RENEW)
        self._done = engine.r.register_script(DONE)
        self._unlock = engine.r.register_script(UNLOCK)

    def receive(self, msg: Inbound) -> tuple[str, bool]:
        """Store ``msg`` at the end of its sender's inbox, unless the provider delivered it before.

        Returns:
            (inbound id, True when it is new). Only after this returns may the caller
            acknowledge the provider.
        """
        from .engine import new_id

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
            args=[iid, SEEN_TTL, self.e.now() + self.e.lease_seconds, keys.PREFIX,
                  inbox_of_sender(msg.channel, msg.sender), *flat])
        if status == 0:
            return ident.decode(), False
        if status == 1:
            self.e.jobs.enqueue("process_inbox", ident.decode())
        return iid, True

    def pending(self, sid: str) -> int:
        """Messages to this sub-task stored but not yet fully processed."""
        return int(self.e.r.llen(keys.inbox(inbox_of_subtask(sid))))

    # -- applying an inbox in order -------------------------------------------------------
    def drain(self, qid: str) -> None:
        """Process the inbox's messages oldest first, while this worker holds its lock.

        A worker that finds the lock taken returns at once: the holder sees every message
        pushed before it lets go. A holder that died lets the lock expire with the inbox's
        lease, and the sweeper's re-drive drains again from the message it left at the head.
        """
        from .engine import new_id

        member, token = f"inq:{qid}", new_id(8)
        if not self._hold(qid, token, member):
            return
        try:
            while True:
                head = self.e.r.lindex(keys.inbox(qid), 0)
                if head is None:
                    if self._unlock(keys=[keys.inbox(qid), keys.inbox_lock(qid), keys.LEASES, keys.REDRIVES],
                                    args=[token, member, "0"]):
                        return
                    continue
                iid = head.decode()
                if self.process(iid, member) == "wait":
                    # the head waits for a model slot; whoever frees one drains this inbox again
                    self._unlock(keys=[keys.inbox(qid), keys.inbox_lock(qid), keys.LEASES, keys.REDRIVES],
                                 args=[token, member, "1"])
                    return
                self._done(keys=[keys.inbox(qid), keys.inbound(iid)], args=[iid])
                if not self._hold(qid, token, member):
                    return  # this worker was too slow and lost the lock: its new holder goes on
        except BaseException:
            self._unlock(keys=[keys.inbox(qid), keys.inbox_lock(qid), keys.LEASES, keys.REDRIVES],
                         args=[token, member, "1"])
            raise

    def _hold(self, qid: str, token: str, member: str) -> bool:
        # the lock lapses a little before the lease, so a re-drive after a death finds it free
        ttl = max(1.0, self.e.lease_seconds * 0.9)
        return bool(self._renew(keys=[keys.inbox_lock(qid), keys.LEASES, keys.REDRIVES],
                                args=[token, int(ttl * 1000), self.e.now() + self.e.lease_seconds, member]))

    def park_head(self, qid: str) -> str | None:
        """Take the inbox's head message off and keep it in ``taskbot:dead`` (it failed every time),
        so the messages behind it are not held up forever. Returns its id."""
        head = self.e.r.lpop(keys.inbox(qid))
        if head is None:
            return None
        iid = str(head.decode())
        self.e.r.hset(keys.DEAD, f"in:{iid}", self.e.now())
        return iid

    def process_legacy(self, iid: str) -> None:
        """A message stored before inboxes existed (its lease is ``in:<iid>``): put it at the head of
        its sender's inbox, being older than anything queued there, and drain that."""
        msg = decode_hash(self.e.r.hgetall(keys.inbound(iid)))
        if msg:
            sid = self.route(msg)
            qid = inbox_of_subtask(sid) if sid else inbox_of_sender(msg["channel"], msg["sender"])
            self.e.r.hset(keys.inbound(iid), mapping={"sid": sid or "", "inbox": qid})
            if self.e.r.lpos(keys.inbox(qid), iid) is None:
                self.e.r.lpush(keys.inbox(qid), iid)
            self.e.r.zadd(keys.LEASES, {f"inq:{qid}": self.e.now() + self.e.lease_seconds}, nx=True)
            self.drain(qid)
        self.e.release(f"in:{iid}")

    def subtask_for_token(self, token: str) -> str:
        """The sub-task a reply token (web chat link) belongs to.

        Raises:
            NotFound: the token names no sub-task.
        """
        sid = self.e.r.get(keys.token(token))
        if sid is None:
            raise NotFound("chat", token[:6] + "…")
        return str(sid.decode())

    def post_web(self, token: str, text: str, message_id: str | None = None) -> tuple[str, bool]:
        """A web chat answer: stored (and queued) before the HTTP 202 goes back.

        ``message_id`` lets a page that retries a POST be processed once; without one each
        POST is a new message.
        """
        from .engine import new_id

        sid = self.subtask_for_token(token)
        address = self.e.r.hget(keys.sub(sid), "address")
        sender = address.decode() if address else sid
        return self.receive(Inbound("web", sender, text, f"{sid}/{message_id or new_id(8)}", reply_to=token))

    def route(self, msg: dict[str, str]) -> str | None:
        """The sub-task a message answers: its thread or token, else the sender's latest open one
        (``receive`` does the same inside its script; this reads it for messages stored before)."""
        channel, reply_to = msg["channel"], msg.get("reply_to")
        if reply_to:
            # tokens are lower-case hex: a mail system that lower-cases addresses still finds them
            for key in (keys.token(reply_to.lower()), keys.thread(channel, reply_to)):
                sid = self.e.r.get(key)
                if sid is not None:
                    return str(sid.decode())
        latest = self.e.r.zrevrange(keys.active(channel, msg["sender"]), 0, 0)
        return latest[0].decode() if latest else None

    def process(self, iid: str, member: str) -> str | None:
        """Route, apply, reply, complete: each stage recorded, so a re-run resumes after the last one.

        ``member`` is the inbox's lease, which a model turn's slot keeps alive while it runs.
        Returns ``"wait"`` when the message waits for a model slot (it stays at the inbox's head).
        """
        msg = decode_hash(self.e.r.hgetall(keys.inbound(iid)))
        if not msg:
            return None
        sid = msg.get("sid") or None  # routed when it was received
        if sid is None:
            self._direct(iid, msg)
        elif not self._from_participant(sid, msg):
            log.warning("message %s on %s for sub-task %s is not from its participant; not recorded",
                        iid, msg["channel"], sid)
        else:
            sub: dict[str, str] | None = None
            if msg["state"] == "stored":
                outcome = self.e.conversations.take_turn(iid, sid, msg, member)  # a model's turn; None: scripted
                if outcome == "wait":
                    return "wait"  # queued for a turn slot: the message stays at the head until it is woken
                sub = self._apply(iid, sid, msg) if outcome is None else None
                msg = decode_hash(self.e.r.hgetall(keys.inbound(iid))) if sub is None else msg
            if msg.get("effects"):
                self.e.conversations.run_effects(iid, sid, msg)
            if msg["state"] == "applied":
                self._reply(iid, sid, msg, sub)
            if msg.get("done") == "1":
                self.e.subtasks.finish(sid, "completed")
        return None

    def _from_participant(self, sid: str, msg: dict[str, str]) -> bool:
        """A message routed by thread or token must come from the sub-task's own address.

        A forwarded email or a leaked link must not let someone else answer for a participant.
        """
        channel, address = self.e.r.hmget(keys.sub(sid), ["channel", "address"])
        if channel is None or address is None or channel.decode() != msg["channel"]:
            return True  # not opened yet, or answered on another channel: nothing to compare
        return bool(address.decode().lower() == msg["sender"].lower())

    def _apply(self, iid: str, sid: str, msg: dict[str, str]) -> dict[str, str] | None:
        """Record the participant's message and the turn it causes, in one transaction.

        Updates ``msg`` in place to the applied state and returns the sub-task as read, or
        returns None when another run of this job applied it first.
        """
        text = msg["text"]
        cut = len(text) > MAX_TEXT
        text = text[:MAX_TEXT]
        at = float(msg["at"])
        meta = json.loads(msg.get("meta") or "{}")
        extra = {k: meta[k] for k in ("attachments",) if meta.get(k)}
        auto = bool(meta.get("auto_reply"))

        def apply(p: Any) -> dict[str, str] | None:
            sub = decode_hash(p.hgetall(keys.sub(sid)))
            if p.hget(keys.inbound(iid), "state") != b"stored":
                return None
            now = self.e.now()
            update: dict[str, str] = {"state": "applied", "sid": sid, "done": "0"}
            entries = [message("user", text, at, **extra)]
            if cut:
                entries.append(message("system", f"The message was cut to {MAX_TEXT:,} characters.", now))
            if auto:
                # An out-of-office or other automatic reply is kept, but it is no answer.
                p.multi()
                p.rpush(keys.sub_conv(sid), message("user", text, at, auto_reply=True, **extra))
                p.hset(keys.inbound(iid), mapping={"state": "replied", "sid": sid, "done": "0"})
                msg.update(state="replied", sid=sid, done="0")
                return sub
            if sub["status"] == "running":
                fields = self.e.fields_of(sub["run_id"], int(sub["step"]))
                turn = scripted_turn(fields, int(sub["cursor"]), text)
                data = json.loads(sub["data"])
                data.update(turn.record)
                sub_update: dict[str, Any] = {"data": dumps(data), "cursor": turn.cursor, "last_activity_at": now}
                reply = turn.reply
                update["done"] = "1" if turn.done else "0"
            else:
                entries[0] = message("user", text, at, late=True, **extra)
                sub_update = {}
                reply = NOT_OPEN_TEXT if sub["status"] == "pending" else CLOSED_TEXT
            entries.append(message("assistant", reply, now, kind="reply"))
            update["reply"] = reply
            p.multi()
            p.rpush(keys.sub_conv(sid), *entries)
            if sub_update:
                p.hset(keys.sub(sid), mapping=sub_update)
                p.zadd(keys.active(sub["channel"], sub["address"]), {sid: now}, xx=True)
            p.hset(keys.inbound(iid), mapping=update)
            msg.update(update)
            return sub

        result: dict[str, str] | None = self.e.r.transaction(apply, keys.sub(sid), keys.inbound(iid),
                                                             value_from_callable=True)
        return result

    def _reply(self, iid: str, sid: str, msg: dict[str, str], sub: dict[str, str] | None) -> None:
        """Send the turn's reply once; the inbound moves to ``replied`` with the sent mark."""
        key = f"reply:{iid}"
        if self.e.subtasks.claim(sid, key) == 1:
            sub = sub or self.e.store.sub_fields(sid)
            address = Address(sub.get("channel") or msg["channel"], sub.get("address") or msg["sender"])
            out = Outbound(address, msg["reply"], key=f"{sid}:{key}", kind="reply", thread=sub.get("thread"),
                           subtask_id=sid, reply_token=sub.get("token"),
                           subject=self.e.definition_of(sub["run_id"]).name if sub.get("run_id") else None)
            try:
                delivery = self.e.subtasks.send(out)
            except DeliveryFailed as exc:
                self.e.r.delete(keys.claim(sid, key))
                if not exc.permanent:
                    raise
                log.warning("reply to %s could not be delivered: %s", sid, exc.reason)
                delivery = Delivery()
        else:
            delivery = Delivery()
        with self.e.r.pipeline() as p:
            self.e.subtasks.mark_sent(p, sid, key)
            self.e.subtasks.remember_ref(p, msg["channel"], delivery.ref, sid)
            p.hset(keys.inbound(iid), "state", "replied")
            p.execute()

    def _direct(self, iid: str, msg: dict[str, str]) -> None:
        """No sub-task: a direct conversation with the assistant (the scripted one has no tasks to offer)."""
        channel = self.e.channels.get(msg["channel"])
        if channel is None or msg["channel"] == "web" or json.loads(msg.get("meta") or "{}").get("auto_reply"):
            return  # an automatic reply that routes nowhere gets no answer (two robots would loop)
        try:
            channel.send(Outbound(Address(msg["channel"], msg["sender"]), NO_TASK_TEXT, key=f"direct:{iid}",
                                  kind="direct", thread=msg.get("reply_to") or None))
        except DeliveryFailed as exc:
            log.warning("direct reply to %s failed: %s", msg["sender"], exc.reason)
