"""Inbound messages (SPEC §4, §10): stored before acknowledging, routed, processed once.

``receive`` is what a channel's entry point calls before it acknowledges the provider: one
Lua script drops a duplicate delivery (same provider id) and stores the message with a lease.
``process`` then routes it, applies the conversation turn, replies and completes the sub-task,
each stage idempotent so a re-run after a crash continues where the last one stopped.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from . import keys
from .bounds import check_value
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

RECEIVE = """
local existing = redis.call('GET', KEYS[1])
if existing then return existing end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('HSET', KEYS[2], unpack(ARGV, 5))
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[4])
return false
"""

CLOSED_TEXT = "Thanks! This task has already closed, so your message was kept but not recorded as an answer."
NOT_OPEN_TEXT = "This task has not started for you yet; your message was kept."
NO_TASK_TEXT = "Hi! You have no open task with me right now."


class Inbox:
    def __init__(self, engine: Engine) -> None:
        self.e = engine
        self._receive = engine.r.register_script(RECEIVE)

    def receive(self, msg: Inbound) -> tuple[str, bool]:
        """Store ``msg`` and queue its processing, unless the provider delivered it before.

        Returns:
            (inbound id, True when it is new). Only after this returns may the caller
            acknowledge the provider.

        Raises:
            InvalidInput: text (or an id) that cannot be stored, e.g. a lone surrogate; nothing is stored.
        """
        from .engine import new_id

        check_value({"text": msg.text, "sender": msg.sender, "provider_id": msg.provider_id,
                     "reply_to": msg.reply_to, "meta": msg.meta})  # Redis takes UTF-8 only
        iid = new_id(8)
        fields = {"id": iid, "channel": msg.channel, "sender": msg.sender, "text": msg.text,
                  "provider_id": msg.provider_id, "reply_to": msg.reply_to or "", "at": msg.at,
                  "meta": dumps(msg.meta), "state": "stored"}
        flat = [x for pair in fields.items() for x in pair]
        existing = self._receive(
            keys=[keys.seen(msg.channel, msg.provider_id), keys.inbound(iid), keys.LEASES],
            args=[iid, SEEN_TTL, self.e.now() + self.e.lease_seconds, f"in:{iid}", *flat])
        if existing is not None:
            return existing.decode(), False
        self.e.jobs.enqueue("process_inbound", iid)
        return iid, True

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
        """The sub-task a message answers: its thread or token, else the sender's latest open one."""
        channel, reply_to = msg["channel"], msg.get("reply_to")
        if reply_to:
            # tokens are lower-case hex: a mail system that lower-cases addresses still finds them
            for key in (keys.token(reply_to.lower()), keys.thread(channel, reply_to)):
                sid = self.e.r.get(key)
                if sid is not None:
                    return str(sid.decode())
        latest = self.e.r.zrevrange(keys.active(channel, msg["sender"]), 0, 0)
        return latest[0].decode() if latest else None

    def process(self, iid: str) -> None:
        """Route, apply, reply, complete: each stage recorded, so a re-run resumes after the last one."""
        member = f"in:{iid}"
        msg = decode_hash(self.e.r.hgetall(keys.inbound(iid)))
        if not msg:
            self.e.release(member)
            return
        sid = msg.get("sid") or self.route(msg)
        if sid is None:
            self._direct(iid, msg)
        elif not self._from_participant(sid, msg):
            log.warning("message %s on %s for sub-task %s is not from its participant; not recorded",
                        iid, msg["channel"], sid)
        else:
            sub: dict[str, str] | None = None
            if msg["state"] == "stored":
                outcome = self.e.conversations.take_turn(iid, sid, msg)  # a model's turn; None: scripted
                if outcome == "wait":
                    return  # queued for a turn slot: the message and its lease stay until it is woken
                sub = self._apply(iid, sid, msg) if outcome is None else None
                msg = decode_hash(self.e.r.hgetall(keys.inbound(iid))) if sub is None else msg
            if msg.get("effects"):
                self.e.conversations.run_effects(iid, sid, msg)
            if msg["state"] == "applied":
                self._reply(iid, sid, msg, sub)
            if msg.get("done") == "1":
                self.e.subtasks.finish(sid, "completed")
        with self.e.r.pipeline() as p:
            p.delete(keys.inbound(iid))
            self.e.release(member, p)
            p.execute()

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
