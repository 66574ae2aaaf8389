"""Processing inbound messages (SPEC §4, §5, §10): apply the turn, reply, complete, run the tools' effects.

The inbox (:mod:`.inbox`) stores messages and hands them here one at a time, in order. Each
message's processing is staged in its inbound hash (``stored`` → ``applied`` → ``replied``,
``done``, ``effects``), each stage idempotent, so a re-run after a crash continues where the
last one stopped: scripted turns are computed inside the applying transaction; a model's turn
goes through :class:`.conversation.Conversations`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from datetime import date, datetime
from typing import Any

from . import keys
from .bounds import check_value
from .conversation import CLOSED_TEXT, MAX_TEXT, NOT_OPEN_TEXT, Conversations
from .errors import InvalidInput, TaskbotError
from .hours import zone
from .inbox import Inbox
from .lateness import takes_answer
from .model import FieldSpec, TaskDefinition
from .outbox import Outbox
from .ports import Address, Clock, Delivery, DeliveryFailed, Outbound, Question, Settle
from .questions import merge, widget
from .revisions import Revisions
from .runs import Runs
from .schedules import Schedules
from .scripted import Turn, edit_turn, file_turn, scripted_turn
from .store import Store, decode_hash, dumps, message
from .subtasks import Subtasks

log = logging.getLogger("taskbot.inbound")

NO_TASK_TEXT = "Hi! You have no open task with me right now."


def local_date(at: float, tz: str | None) -> date:
    """The participant's own date at ``at`` (their sub-task keeps their time zone from its opening)."""
    return datetime.fromtimestamp(at, zone(tz)).date()


class InboundProcessor:
    """Apply each stored message to its conversation.

    Args:
        store: the records.
        clock: the time source.
        inbox: where messages wait, in order (drained here).
        outbox: sends replies once.
        conversations: model turns, and notes posted into conversations.
        subtasks: completes a sub-task its last answer finished.
        runs: starts the runs a ``delegate`` tool asked for.
        schedules: creates the schedules a ``schedule_task`` tool asked for.
        revisions: completes a timed-out sub-task a late answer finished (``accept_late``).
    """

    def __init__(self, store: Store, clock: Clock, inbox: Inbox, outbox: Outbox, conversations: Conversations,
                 subtasks: Subtasks, runs: Runs, schedules: Schedules, revisions: Revisions) -> None:
        self.store = store
        self.r = store.r
        self.clock = clock
        self.inbox = inbox
        self.outbox = outbox
        self.conversations = conversations
        self.subtasks = subtasks
        self.runs = runs
        self.schedules = schedules
        self.revisions = revisions

    def drain(self, qid: str) -> None:
        """Apply an inbox's messages in the order they came (the ``process_inbox`` job)."""
        self.inbox.drain(qid, self.process)

    def process_legacy(self, iid: str) -> None:
        """A message stored by an earlier version (lease ``in:<iid>``): drained with its inbox."""
        qid = self.inbox.adopt(iid)
        if qid is not None:
            self.drain(qid)

    def process(self, iid: str, member: str) -> str | None:
        """Route, apply, reply, complete: each stage recorded, so a re-run resumes after the last one.

        ``member`` is the inbox's lease, which a model turn's slot keeps alive while it runs.
        Returns ``"wait"`` when the message waits for a model slot (it stays at the inbox's head).
        """
        msg = decode_hash(self.r.hgetall(keys.inbound(iid)))
        if not msg:
            return None
        if msg.get("state") == "stored" and '"pending"' in msg.get("meta", ""):
            msg = self._complete(iid, msg)
        sid = msg.get("sid") or None  # routed when it was received
        if sid is None:
            self._direct(iid, msg)
        elif self._bounced(sid, msg):
            pass
        elif not self._from_participant(sid, msg):
            log.warning("message %s on %s for sub-task %s is not from its participant; not recorded",
                        iid, msg["channel"], sid)
        else:
            sub: dict[str, str] | None = None
            if msg["state"] == "stored":
                # a model's turn (None: scripted); an edit of an answer is applied as written, whatever the model
                edit = bool(json.loads(msg.get("meta") or "{}").get("edit_of"))
                outcome = None if edit else self.conversations.take_turn(iid, sid, msg, member)
                if outcome == "wait":
                    return "wait"  # queued for a turn slot: the message stays at the head until it is woken
                sub = self._apply(iid, sid, msg) if outcome is None else None
                msg = decode_hash(self.r.hgetall(keys.inbound(iid))) if sub is None else msg
            if msg.get("effects"):
                self.run_effects(iid, sid, msg)
            if msg["state"] == "applied":
                self._reply(iid, sid, msg, sub)
            if msg.get("done") == "1" and not self.subtasks.finish(sid, "completed"):
                self.revisions.complete_late(sid)  # it had timed out: a late answer, when its task takes them
        return None

    def _complete(self, iid: str, msg: dict[str, str]) -> dict[str, str]:
        """What the adapter left for the worker (``meta.pending``: a name to look up, a file to download,
        which must not hold up the provider's ack) done by the adapter (:class:`.ports.Completes`), and
        kept: a re-run after a crash finds it done. Without the adapter the message stays as received."""
        meta = json.loads(msg.get("meta") or "{}")
        if "pending" not in meta:
            return msg
        adapter = self.outbox.channel(msg["channel"])
        finish = getattr(adapter, "complete_inbound", None)
        text, done = msg["text"], {k: v for k, v in meta.items() if k != "pending"}
        if finish is not None:
            try:
                text, done = finish(msg["text"], meta, msg.get("provider_id") or iid)
                check_value({"text": text, "meta": done})
            except InvalidInput as exc:  # the adapter's text cannot be stored: the message as received
                log.warning("message %s kept as received: %s", iid, exc)
                text, done = msg["text"], {k: v for k, v in meta.items() if k != "pending"}
        self.r.hset(keys.inbound(iid), mapping={"text": text, "meta": dumps(done)})
        return {**msg, "text": text, "meta": dumps(done)}

    def _bounced(self, sid: str, msg: dict[str, str]) -> bool:
        """A bounce is never an answer; a hard one moves the sub-task to the participant's next usable
        channel (:meth:`.subtasks.Subtasks.reroute`), or fails it with what the mail system said.

        The channel adapter puts ``bounce`` in the meta and routes it by the copy of the bot's own
        mail, so the sub-task is the one whose mail came back. A soft bounce (a delay) changes nothing.
        """
        bounce = json.loads(msg.get("meta") or "{}").get("bounce")
        if not bounce:
            return False
        channel, address = (v.decode() if v else "" for v in self.r.hmget(keys.sub(sid), ["channel", "address"]))
        if bounce.get("hard") and channel == msg["channel"]:
            status = f" ({bounce['status']})" if bounce.get("status") else ""
            # the person's next usable channel, else failed with what the mail system said
            self.subtasks.reroute(sid, f"{channel} to {bounce.get('recipient') or address} bounced"
                                       f"{status}: {bounce.get('reason') or 'no reason given'}")
        else:
            log.info("soft bounce for sub-task %s: %s", sid, bounce.get("reason"))
        return True

    def _from_participant(self, sid: str, msg: dict[str, str]) -> bool:
        """A message routed by thread or token must come from the sub-task's own address.

        A forwarded email or a leaked link must not let someone else answer for a participant.
        """
        channel, address = self.r.hmget(keys.sub(sid), ["channel", "address"])
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
        extra = {k: meta[k] for k in ("attachments", "album") if meta.get(k)}
        auto = bool(meta.get("auto_reply"))
        # the later files of an album (photos sent together) belong with its first message: kept, no answer
        more = bool(meta.get("file_only") and meta.get("album") and self._in_album(sid, str(meta["album"])))

        def apply(p: Any) -> dict[str, str] | None:
            sub = decode_hash(p.hgetall(keys.sub(sid)))
            if p.hget(keys.inbound(iid), "state") != b"stored":
                return None
            now = self.clock.now()
            update: dict[str, str] = {"state": "applied", "sid": sid, "done": "0"}
            entries = [message("user", text, at, **extra)]
            if cut:
                entries.append(message("system", f"The message was cut to {MAX_TEXT:,} characters.", now))
            if auto or more:
                # An out-of-office or other automatic reply is kept, but it is no answer; so is an album's later file.
                p.multi()
                p.rpush(keys.sub_conv(sid), message("user", text, at, **({"auto_reply": True} if auto else {}),
                                                    **extra))
                p.hset(keys.inbound(iid), mapping={"state": "replied", "sid": sid, "done": "0"})
                msg.update(state="replied", sid=sid, done="0")
                return sub
            question: Question | None = None
            ref = ""
            if takes_answer(self.store, sub):
                fields = self.store.fields_of(sub["run_id"], int(sub["step"]))
                late = {"late": True} if sub["status"] != "running" else {}  # a late answer the task accepts
                turn, entries[0] = self._turn(sid, sub, fields, text, at, meta, now, {**extra, **late})
                data = json.loads(sub["data"])
                history = json.loads(sub.get("data_history") or "{}")
                changes = merge(data, history, turn.record, now)
                sub_update: dict[str, Any] = {"data": dumps(data), "cursor": turn.cursor, "last_activity_at": now}
                if changes:
                    sub_update["data_history"] = dumps(history)
                if len(turn.record) == 1 and (meta.get("ref") or meta.get("edit_of")):
                    ref = meta.get("edit_of") or meta["ref"]  # an edit of this message changes this answer
                reply = turn.reply
                question = widget(fields[turn.asks]) if turn.asks is not None else None
                update["done"] = "1" if turn.done else "0"
            else:
                entries[0] = message("user", text, at, late=True, **extra)
                sub_update = {}
                reply = NOT_OPEN_TEXT if sub["status"] == "pending" else CLOSED_TEXT
            if reply:
                entries.append(message("assistant", reply, now, kind="reply",
                                       **({"question": question.to_dict()} if question else {})))
            elif not meta.get("settle"):
                update["state"] = "replied"  # nothing to say, and no clicked message to update
            update["reply"] = reply
            if question:
                update["question"] = dumps(question.to_dict())
            p.multi()
            p.rpush(keys.sub_conv(sid), *entries)
            if sub_update:
                p.hset(keys.sub(sid), mapping=sub_update)
                p.zadd(keys.active(sub["channel"], sub["address"]), {sid: now}, xx=True)
            if ref:
                self.outbox.remember_ref(p, msg["channel"], ref, sid)
            p.hset(keys.inbound(iid), mapping=update)
            msg.update(update)
            return sub

        result: dict[str, str] | None = self.r.transaction(apply, keys.sub(sid), keys.inbound(iid),
                                                             value_from_callable=True)
        return result

    def _turn(self, sid: str, sub: dict[str, str], fields: list[FieldSpec], text: str, at: float,
              meta: dict[str, Any], now: float, extra: dict[str, Any]) -> tuple[Turn, str]:
        """The scripted turn of a message (an edit's, whatever the assistant), and its conversation entry."""
        data = json.loads(sub["data"])
        cursor = int(sub["cursor"])
        today = local_date(now, sub.get("tz"))
        edit = meta.get("edit_of")
        if edit:
            live = not self.conversations.assistant_for(sub["run_id"]).scripted
            turn = edit_turn(fields, len(fields) if live else cursor, self._answered(sid, edit), text, data=data,
                             today=today)
            turn = replace(turn, cursor=cursor)
        else:
            names = [str(a.get("name")) for a in meta.get("attachments") or [] if isinstance(a, dict)]
            refused = file_turn(fields, cursor, names) if meta.get("file_only") else None
            turn = refused or scripted_turn(fields, cursor, text, data=data, today=today,
                                            answers=meta.get("answers"),
                                            about=self.store.definition_of(sub["run_id"]).name)
        marks: dict[str, Any] = {"edit_of": edit} if edit else {}
        if len(turn.record) == 1 and (meta.get("ref") or edit):
            marks.update(ref=edit or meta["ref"], field=next(iter(turn.record)))
        elif meta.get("answers") and turn.record:
            marks["field"] = next(iter(turn.record))
        return turn, message("user", text, at, **extra, **marks)

    def _in_album(self, sid: str, album: str) -> bool:
        """Whether a message of this album (Telegram's ``media_group_id``) is in the conversation already."""
        return any(json.loads(raw).get("album") == album for raw in self.r.lrange(keys.sub_conv(sid), -20, -1))

    def _answered(self, sid: str, ref: str) -> str | None:
        """The field the message ``ref`` (a channel's own id for it) last gave the answer to."""
        for raw in reversed(self.r.lrange(keys.sub_conv(sid), 0, -1)):
            entry = json.loads(raw)
            if entry.get("role") == "user" and entry.get("ref") == ref and entry.get("field"):
                return str(entry["field"])
        return None

    def _reply(self, iid: str, sid: str, msg: dict[str, str], sub: dict[str, str] | None) -> None:
        """Send the turn's reply once; the inbound moves to ``replied`` with the sent mark."""
        key = f"reply:{iid}"
        clicked = json.loads(msg.get("meta") or "{}").get("settle")
        if not msg["reply"] and not clicked:  # nothing to say (an edit that changed nothing)
            self.r.hset(keys.inbound(iid), "state", "replied")
            return
        if self.outbox.claim(sid, key) == 1:
            sub = sub or self.store.sub_fields(sid)
            address = Address(sub.get("channel") or msg["channel"], sub.get("address") or msg["sender"])
            settle = Settle(msg["text"], clicked) if clicked and address.channel == msg["channel"] else None
            question = Question.from_dict(json.loads(msg["question"])) if msg.get("question") else None
            out = Outbound(address, msg["reply"], key=f"{sid}:{key}", kind="reply", thread=sub.get("thread"),
                           subtask_id=sid, reply_token=sub.get("token"),
                           subject=self.store.definition_of(sub["run_id"]).name if sub.get("run_id") else None,
                           question=question, settle=settle)
            try:
                delivery = self.outbox.send(out) if out.text or out.settle else Delivery()
            except DeliveryFailed as exc:
                self.outbox.unclaim(sid, key)
                if not exc.permanent:
                    raise
                log.warning("reply to %s could not be delivered: %s", sid, exc.reason)
                delivery = Delivery()
        else:
            delivery = Delivery()
        with self.r.pipeline() as p:
            self.outbox.mark_sent(p, sid, key)
            self.outbox.remember_ref(p, msg["channel"], delivery.ref, sid)
            p.hset(keys.inbound(iid), "state", "replied")
            p.execute()

    def _direct(self, iid: str, msg: dict[str, str]) -> None:
        """No sub-task: a direct conversation with the assistant (the scripted one has no tasks to offer)."""
        channel = self.outbox.channel(msg["channel"])
        if channel is None or msg["channel"] == "web" or json.loads(msg.get("meta") or "{}").get("auto_reply"):
            return  # an automatic reply that routes nowhere gets no answer (two robots would loop)
        try:
            channel.send(Outbound(Address(msg["channel"], msg["sender"]), NO_TASK_TEXT, key=f"direct:{iid}",
                                  kind="direct", thread=msg.get("reply_to") or None))
        except DeliveryFailed as exc:
            log.warning("direct reply to %s failed: %s", msg["sender"], exc.reason)

    # -- what a model's tools asked for outside the sub-task ---------------------------------------
    def run_effects(self, iid: str, sid: str, msg: dict[str, str]) -> None:
        """Start what the turn's tools asked for outside the sub-task. Each effect's id was fixed
        when the turn was computed, so running this again after a crash does nothing twice."""
        for effect in json.loads(msg.get("effects") or "[]"):
            try:
                if effect["kind"] == "delegate":
                    self.delegate(effect["id"], effect["assistant"], effect["instructions"], sid)
                elif effect["kind"] == "schedule" and not self.r.hexists(keys.SCHEDULES, effect["id"]):
                    self.schedules.create(effect["task_id"], effect["cron"], effect["timezone"],
                                          schedule_id=effect["id"])
            except TaskbotError as exc:  # checked when the tool ran; changed since: say so, do not retry
                log.warning("effect %s of %s refused: %s", effect, iid, exc)
                self.r.rpush(keys.sub_conv(sid), message("system", f"{effect['kind']} failed: {exc}",
                                                         self.clock.now(), kind="fault"))
        self.r.hdel(keys.inbound(iid), "effects")

    def delegate(self, rid: str, assistant_id: str, instructions: str, parent_sid: str) -> None:
        """Start the delegated run (its id was fixed when the tool ran, so this happens once); its
        result comes back to the conversation that asked when it ends."""
        if self.r.exists(keys.run(rid)):
            return
        parent = self.store.run_fields(self.store.sub_fields(parent_sid)["run_id"])
        definition = TaskDefinition(id="delegation", name=f"Delegated to {assistant_id}", output_type="freeform",
                                    description=instructions, assistant=assistant_id, owner=parent["owner"])
        self.runs.start(definition, {}, kind="delegation", by=parent_sid, rid=rid, extra={"parent_sub": parent_sid})
