"""Sub-tasks (SPEC §4): opening on the selected channel, chasing, and the final transition.

The final transition is one Lua script: it changes the status only from an open state and
decrements the state's open counter; the caller that brings the counter to zero is the one
(and only one, whatever the number of workers) that queues fan-in, under a lease.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import keys
from .chase import decide, next_check, next_due
from .chasing import chase_many
from .conversation import Conversations
from .errors import NotFound
from .escalations import Escalations
from .events import Events
from .hours import Availability, availability
from .inbox import Inbox
from .lateness import accepts_late
from .leases import Leases
from .model import ChaseSpec, Contact, TaskState
from .opening import Opened, OpenMarks
from .outbox import Outbox
from .ports import Address, Clock, Delivery, DeliveryFailed, Jobs, Outbound
from .questions import widget
from .scripted import ask
from .selection import select_channel
from .store import Store, message

log = logging.getLogger("taskbot.subtasks")

# KEYS: 1 sub 2 open counter 3 leases 4 events 5 timers 6 sent marks 7 completed counter 8 quorum 9 closed
# 10 deadlines 11 run. ARGV: 1 status 2 now 3 reason 4 lease deadline 5 keep it routable ('1': a late answer may
# still come) 6 sid 7 active key prefix 8 fan-in lease member 9 event 10 run.closed event 11 deadline member.
# Returns -1: it was final already; 0: this call closed the state (fan-in is the caller's); 1: changed.
FINISH = """
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'pending' and status ~= 'running' then return -1 end
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'completed_at', ARGV[2])
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'reason', ARGV[3]) end
redis.call('ZREM', KEYS[5], ARGV[6])
redis.call('DEL', KEYS[6])
local channel = redis.call('HGET', KEYS[1], 'channel')
local address = redis.call('HGET', KEYS[1], 'address')
if channel and address and ARGV[5] ~= '1' then redis.call('ZREM', ARGV[7] .. channel .. ':' .. address, ARGV[6]) end
if ARGV[9] ~= '' then redis.call('RPUSH', KEYS[4], ARGV[9]) end
local left = redis.call('DECR', KEYS[2])
local why = false
local need = tonumber(redis.call('GET', KEYS[8]) or '0')
if ARGV[1] == 'completed' and need > 0 and redis.call('INCR', KEYS[7]) >= need then why = 'quorum' end
if left <= 0 then why = 'all' end
if why and redis.call('SET', KEYS[9], why, 'NX') then
  redis.call('ZADD', KEYS[3], ARGV[4], ARGV[8])
  redis.call('ZREM', KEYS[10], ARGV[11])
  redis.call('HSET', KEYS[11], 'closed_by', why, 'closed_at', ARGV[2])
  if why == 'quorum' and ARGV[10] ~= '' then redis.call('RPUSH', KEYS[4], ARGV[10]) end
  return 0
end
return 1
"""

TAKE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, sid in ipairs(due) do redis.call('ZADD', KEYS[1], ARGV[3], sid) end
return due
"""

@dataclass(frozen=True)
class _Opening:
    """An opening ready to hand to its channel."""

    sid: str
    sub: dict[str, str]
    step: int
    state: Any
    window: Availability
    out: Outbound


#: Chase checks handed to one job: a burst of due reminders costs a job per 200, not one each (a batch's
#: Redis work is a few pipelines, so RQ's own bookkeeping per job was a large share at 50).
CHASE_BATCH = 200


def left(refused_by: str | None, channel: str, moved_from: str) -> bool:
    """A refusal from a channel the sub-task has left already (a send in flight when it moved): not acted on."""
    return bool(refused_by) and (refused_by in moved_from.split(",") or channel not in ("", refused_by))


class Subtasks:
    """Open, chase and finish sub-tasks.

    Args:
        store: the records.
        clock: the time source.
        jobs: the job queue (chase checks, fan-in).
        leases: the work leases (open batches, fan-in).
        outbox: sends openings and chases once.
        events: records sub-task events for webhooks.
        conversations: the opening text, and a free conversation's first turn.
        inbox: whether a participant's answer waits to be applied (no chase then).
        escalations: chase texts, and the escalation after the last chase.
        working_hours: the hours of participants whose contact and task give none (TASKBOT_WORKING_HOURS).
    """

    def __init__(self, store: Store, clock: Clock, jobs: Jobs, leases: Leases, outbox: Outbox, events: Events,
                 conversations: Conversations, inbox: Inbox, escalations: Escalations,
                 working_hours: str = "always") -> None:
        self.store = store
        self.r = store.r
        self.clock = clock
        self.jobs = jobs
        self.leases = leases
        self.outbox = outbox
        self.events = events
        self.conversations = conversations
        self.inbox = inbox
        self.escalations = escalations
        self.working_hours = working_hours
        self._finish = self.r.register_script(FINISH)
        self._take = self.r.register_script(TAKE)
        self.marks = OpenMarks(self.r, leases.lease_seconds)

    # -- opening ------------------------------------------------------------------
    def open_batch(self, rid: str, start: int, end: int) -> None:
        """Open sub-tasks ``start:end`` of the run; one participant's failure never stops another.

        The sub-tasks and contacts are read at once; each opening is claimed, handed to its channel
        and recorded right after by one Lua call (:mod:`.opening`), where a transaction (three round
        trips) and a ZADD did it before.
        """
        member = f"open:{rid}:{start}:{end}"
        try:
            run = self.store.run_fields(rid)
        except NotFound:
            self.leases.release(member)
            return
        sids = [s.decode() for s in self.r.lrange(keys.run_subs(rid), start, end - 1)]
        subs = [s for s in self.store.subs_fields(sids) if s.get("status") == "pending"]
        if run["status"] != "running":
            self.leases.release(member)
            return
        contacts = self.store.find_contacts([s["participant_id"] for s in subs])
        assistant = self.store.assistant_of(run)
        retry_at: float | None = None

        def failed(sid: str, exc: Exception) -> None:
            nonlocal retry_at
            if isinstance(exc, DeliveryFailed):
                if exc.permanent:
                    self.refused(sid, exc)
                    return
                log.warning("opening %s deferred: %s", sid, exc.reason)
                later = self.clock.now() + (exc.retry_after or self.leases.lease_seconds)
            else:
                log.error("opening %s failed; it will be retried", sid, exc_info=exc)
                later = self.clock.now() + self.leases.lease_seconds
            retry_at = max(retry_at or 0.0, later)

        ready: list[_Opening] = []
        for sub in subs:
            contact = contacts.get(sub["participant_id"]) or self._stranger(sub["participant_id"])
            try:
                prepared = self._prepare(run, sub, contact, assistant.channels)
            except Exception as exc:
                failed(sub["id"], exc)
                continue
            if prepared is not None:
                ready.append(prepared)
        # each opening is claimed right before its send and recorded right after, and the call that
        # records one claims the next (:mod:`.opening`), never more ahead: on a paced channel a batch
        # takes seconds, longer than a claim lives, and an answer that comes before its sub-task has its
        # channel and address would not be taken for the participant's
        claimed = self.outbox.claim(ready[0].sid, "open") if ready else 0
        for i, prepared in enumerate(ready):
            following = ready[i + 1].sid if i + 1 < len(ready) else None
            if claimed != 1:
                if claimed == -1:  # another worker sends it, or a dead one's claim lives on: look again after it
                    retry_at = max(retry_at or 0.0, self.clock.now() + self.leases.lease_seconds)
                claimed = self.outbox.claim(following, "open") if following else 0
                continue
            try:
                delivery = self.outbox.send(prepared.out)
            except Exception as exc:
                if isinstance(exc, DeliveryFailed) and not exc.permanent:
                    # ours to give back: the batch runs again when the provider allows, sooner than a claim lapses
                    self.outbox.unclaim(prepared.sid, "open")
                failed(prepared.sid, exc)
                claimed = self.outbox.claim(following, "open") if following else 0
                continue
            claimed = self._record(run, prepared, delivery, following)
        if retry_at is None:
            self.leases.release(member)
        else:  # the sweeper runs this batch again then; the ones opened by now are skipped
            self.leases.defer(member, retry_at)

    @staticmethod
    def _stranger(pid: str) -> Contact:
        """A participant not in the directory: reachable by email when the id is an address."""
        return Contact(id=pid, email=pid if "@" in pid else None)

    def open(self, run: dict[str, str], sub: dict[str, str], contact: Contact, enabled: Sequence[str]) -> None:
        """Send the opening, unless the participant is away (excused) or outside their working hours
        (it waits for their next window start, on a timer).

        Raises:
            DeliveryFailed: the channel refused it (the claim lapses after its lease).
        """
        prepared = self._prepare(run, sub, contact, enabled)
        if prepared is None or self.outbox.claim(prepared.sid, "open") != 1:
            return
        self._record(run, prepared, self.outbox.send(prepared.out))

    def _prepare(self, run: dict[str, str], sub: dict[str, str], contact: Contact,
                 enabled: Sequence[str]) -> _Opening | None:
        """The opening to send, or None: no channel (failed), away (excused) or held for working hours."""
        sid = sub["id"]
        selected = select_channel(contact, enabled, self.outbox.channels)
        if isinstance(selected, str):
            self.finish(sid, "failed", selected)
            return None
        step = int(sub["step"])
        state = self.store.state_of(run, step)
        window = self.availability(contact, state)
        if sub.get("kind") != "conversation" and self._held(sid, window, contact):
            return None  # an owner's own conversation opens when they asked for it
        text = self.conversations.opening(run, state)
        fields = getattr(state, "fields", None)
        question = widget(fields[0]) if fields else None
        out = Outbound(Address(selected.channel, selected.id), text, key=f"{sid}:open", kind="opening",
                       subtask_id=sid, reply_token=sub["token"], subject=self.store.definition_of(run).name,
                       question=question)
        return _Opening(sid, sub, step, state, window, out)

    def _record(self, run: dict[str, str], o: _Opening, delivery: Delivery, following: str | None = None) -> int:
        """Record a sent opening, claim ``following``'s (one call), then start a conversation that begins
        with a turn. Returns the claim on ``following`` as :meth:`.Outbox.claim` answers (-2: none)."""
        now = self.clock.now()
        fields: dict[str, Any] = {"status": "running", "channel": o.out.address.channel,
                                  "address": o.out.address.id, "opened_at": now, "last_activity_at": now,
                                  "tz": o.window.tz.key, "hours": o.window.hours.text}
        if delivery.ref:
            fields["thread"] = delivery.ref
        question = o.out.question
        opened = Opened(
            o.sid, o.out.address.channel, o.out.address.id, fields,
            message("assistant", o.out.text, now, kind="opening",
                    **({"question": question.to_dict()} if question else {})),
            next_check(self.chase_spec(run, o.step), 0, now, o.window),
            self.events.body("subtask.running", run_id=run["id"], subtask_id=o.sid, status="running",
                             participant_id=o.sub["participant_id"], channel=o.out.address.channel),
            delivery.ref)
        marked, claimed = self.marks.mark(opened, now, following)
        if marked:
            self.conversations.kickoff(run, o.sid, o.state)
        return claimed

    def availability(self, contact: Contact, state: Any) -> Availability:
        """When ``contact`` may be messaged in ``state``: their hours, else the task's, else the default."""
        return availability(contact.timezone, contact.working_hours, getattr(state, "working_hours", None),
                            self.working_hours, away_until=contact.away_until)

    def _held(self, sid: str, window: Availability, contact: Contact) -> bool:
        """True when the opening may not go out now: the participant is away (their sub-task is excused)
        or outside their working hours (a timer opens it at their next window start)."""
        now = self.clock.now()
        if window.away(now):
            self.finish(sid, "excused", f"away until {contact.away_until}")
            return True
        at = window.next_open(now)
        if at <= now:
            return False
        with self.r.pipeline() as p:
            p.hset(keys.sub(sid), mapping={"open_at": at, "tz": window.tz.key, "hours": window.hours.text})
            self.schedule_check(sid, at, p)
            p.execute()
        return True

    def _open_due(self, sid: str, sub: dict[str, str]) -> None:
        """A held opening's timer came due: open it now (or hold it again, if the hours changed)."""
        run = self.store.run_fields(sub["run_id"])
        if run["status"] != "running":
            self.r.zrem(keys.TIMERS, sid)
            return
        pid = sub["participant_id"]
        contact = self.store.find_contacts([pid]).get(pid) or self._stranger(pid)
        tried = (sub.get("rerouted_from") or "").split(",")  # channels it was moved away from (reroute)
        try:
            self.open(run, sub, contact, [c for c in self.store.assistant_of(run).channels if c not in tried])
            if sub.get("rerouted_from"):
                self._resume(sid)
        except DeliveryFailed as exc:
            if exc.permanent:
                self.refused(sid, exc)
            else:
                log.warning("opening %s deferred: %s", sid, exc.reason)
                self.schedule_check(sid, self.clock.now() + (exc.retry_after or self.leases.lease_seconds))

    def chase_spec(self, run: dict[str, str], step: int) -> ChaseSpec:
        state = self.store.state_of(run, step)
        return state.chase if isinstance(state, TaskState) else ChaseSpec()

    # -- chasing ------------------------------------------------------------------
    def schedule_check(self, sid: str, when: float, pipe: Any = None) -> None:
        """Set the sub-task's next chase check; the scheduler pass hands it to a worker when due."""
        if pipe is not None:
            pipe.zadd(keys.TIMERS, {sid: when})
        else:
            self.r.zadd(keys.TIMERS, {sid: when})

    def take_due(self, limit: int = 5000) -> int:
        """Hand the chase checks that are due to workers, ``CHASE_BATCH`` per job (scheduler pass).

        Taking a check pushes its timer a lease ahead instead of removing it: if the worker
        that got it dies, the check comes due again and is handed out again.
        """
        now = self.clock.now()
        sids = [s.decode() for s in self._take(keys=[keys.TIMERS], args=[now, limit, now + self.leases.lease_seconds])]
        self.jobs.enqueue_many([("chase_batch", tuple(sids[i:i + CHASE_BATCH]))
                                  for i in range(0, len(sids), CHASE_BATCH)])
        return len(sids)

    def chase_batch(self, sids: Sequence[str]) -> None:
        """Run a batch of chase checks, its reads and writes pipelined (:mod:`.chasing`)."""
        chase_many(self, sids)

    def chase(self, sid: str) -> None:
        """Run one chase check: remind, time out, or wait longer (SPEC §4)."""
        try:
            sub = self.store.sub_fields(sid)
        except NotFound:
            self.r.zrem(keys.TIMERS, sid)
            return
        if sub["status"] == "pending":
            self._open_due(sid, sub)
            return
        if sub["status"] != "running":
            self.r.zrem(keys.TIMERS, sid)
            return
        if self.inbox.pending(sid):
            # they wrote, and it is not applied yet (a worker died on it): neither chase nor time out
            # someone who answered; look again once it has had time to be applied
            self.schedule_check(sid, self.clock.now() + self.leases.lease_seconds)
            return
        run = self.store.run_fields(sub["run_id"])
        spec = self.chase_spec(run, int(sub["step"]))
        pid = sub["participant_id"]
        contact = self.store.find_contacts([pid]).get(pid) or self._stranger(pid)
        window = self.availability(contact, self.store.state_of(run, int(sub["step"])))
        if (window.tz.key, window.hours.text) != (sub.get("tz"), sub.get("hours")):
            self.r.hset(keys.sub(sid), mapping={"tz": window.tz.key, "hours": window.hours.text})
        sent = int(sub["chases_sent"])
        now = self.clock.now()
        decision = decide(open_=True, chases_sent=sent, last_activity_at=float(sub["last_activity_at"]),
                          last_chase_at=float(sub.get("last_chase_at", 0)), spec=spec, now=now, window=window,
                          escalated=bool(sub.get("escalated_at")))
        if decision.action == "wait":
            self.schedule_check(sid, decision.at)
        elif window.away(now) and sub.get("kind") != "conversation":
            self.finish(sid, "excused", f"away until {contact.away_until}")
        elif decision.action == "time_out":
            self.finish(sid, "timed_out", f"no answer after {sent} reminder{'s' if sent != 1 else ''}")
        elif decision.action == "chase":
            self._remind(sid, sub, run, sent + 1, spec, window)
        elif decision.action == "escalate":
            again = self.escalations.escalate(sid, sub, run, spec)
            self.schedule_check(sid, again if again is not None else self.clock.now())

    def _remind(self, sid: str, sub: dict[str, str], run: dict[str, str], n: int, spec: ChaseSpec,
                window: Availability) -> None:
        key = f"chase:{n}"
        if self.outbox.claim(sid, key) != 1:
            return  # sent already, or being sent by another worker that sets the next check
        out = self.reminder(sid, sub, run, spec, n)
        try:
            delivery = self.outbox.send(out)
        except DeliveryFailed as exc:
            later = self.reminder_refused(sid, key, exc)
            if later is not None:
                self.schedule_check(sid, later)
            return
        self.record_chase(sid, sub, n, spec, window, out.text, delivery)

    def reminder(self, sid: str, sub: Mapping[str, str], run: Mapping[str, str], spec: ChaseSpec, n: int,
                 contacts: Mapping[str, Contact] | None = None) -> Outbound:
        """Reminder ``n`` of the sub-task, in the opening's thread on its channel."""
        text = self.escalations.chase_text(sub, run, spec, n, contacts)
        return Outbound(Address(sub["channel"], sub["address"]), text, key=f"{sid}:chase:{n}", kind="chase",
                        thread=sub.get("thread"), subtask_id=sid, reply_token=sub.get("token"),
                        subject=self.store.definition_of(sub["run_id"]).name)

    def reminder_refused(self, sid: str, key: str, exc: DeliveryFailed) -> float | None:
        """A reminder's send was refused: its claim given back, then the sub-task moved or failed (permanent;
        None), or when its check comes due again, when the provider allows it (else after its lease)."""
        self.outbox.unclaim(sid, key)
        if exc.permanent:
            self.refused(sid, exc)
            return None
        log.warning("reminder to %s deferred: %s", sid, exc.reason)
        return self.clock.now() + (exc.retry_after or self.leases.lease_seconds)

    def record_chase(self, sid: str, sub: Mapping[str, str], n: int, spec: ChaseSpec, window: Availability,
                     text: str, delivery: Delivery) -> None:
        """Reminder ``n``, sent, recorded whole in one MULTI/EXEC (by the single and the batched check alike):
        the count, the conversation, the sent mark, the reply ref, the next check and the event."""
        now = self.clock.now()
        with self.r.pipeline() as p:
            p.hset(keys.sub(sid), mapping={"chases_sent": n, "last_chase_at": now})
            p.rpush(keys.sub_conv(sid), message("assistant", text, now, kind="chase"))
            self.outbox.mark_sent(p, sid, f"chase:{n}")
            self.outbox.remember_ref(p, sub["channel"], delivery.ref, sid)
            self.schedule_check(sid, next_due(chases_sent=n, last_activity_at=float(sub["last_activity_at"]),
                                              last_chase_at=now, spec=spec, window=window,
                                              escalated=bool(sub.get("escalated_at")))[1], p)
            self.events.emit(p, "subtask.chased", run_id=sub["run_id"], subtask_id=sid, chases_sent=n)
            p.execute()

    # -- moving to another channel ---------------------------------------------------
    def refused(self, sid: str, exc: DeliveryFailed) -> None:
        """A send of this sub-task's was refused for good: when the channel cannot reach the person any
        more (``exc.unreachable``: blocked, no such user or mailbox) it moves to their next channel
        (:meth:`reroute`), else it fails with the refusal's reason."""
        if not exc.unreachable:
            self.finish(sid, "failed", exc.reason)
            return
        self.reroute(sid, exc.reason, exc.channel)

    def reroute(self, sid: str, reason: str, refused_by: str | None = None) -> str | None:
        """The sub-task's channel can no longer reach its participant (a Telegram chat that blocked the
        bot, an email address that hard-bounced, a send refused as :meth:`refused` says): open it again
        on their next usable channel, in SPEC §4's order without the channels tried already
        (``refused_by``, the sub-task's own, the ones it moved from), or fail it with ``reason`` when there
        is none.

        The owner sees why in the sub-task's ``reason`` (and a ``subtask.rerouted`` event, a note in the
        conversation); answers recorded so far stay, and the questions go on from where they were.

        Returns:
            the channel it moved to, or None (failed, or final already).
        """
        try:
            sub = self.store.sub_fields(sid)
        except NotFound:
            return None
        if sub["status"] not in ("pending", "running") or left(refused_by, sub.get("channel") or "",
                                                               sub.get("rerouted_from") or ""):
            return None
        run = self.store.run_fields(sub["run_id"])
        pid = sub["participant_id"]
        contact = self.store.find_contacts([pid]).get(pid) or self._stranger(pid)
        tried = {c for c in (sub.get("rerouted_from") or "").split(",") if c} | {sub.get("channel") or "",
                                                                                 refused_by or ""}
        tried.discard("")
        enabled = [c for c in self.store.assistant_of(run).channels if c not in tried]
        selected = select_channel(contact, enabled, self.outbox.channels)
        if isinstance(selected, str):
            self.finish(sid, "failed", reason)
            return None
        now = self.clock.now()
        moved = f"{reason}; moved to {selected.channel}"
        old = (sub.get("channel"), sub.get("address"))

        def move(p: Any) -> bool:
            status, channel, moved_from = (v.decode() if v else "" for v in
                                           p.hmget(keys.sub(sid), "status", "channel", "rerouted_from"))
            if status not in ("pending", "running"):
                return False
            if left(refused_by, channel, moved_from):
                return False
            p.multi()
            p.delete(keys.claim(sid, "open"))  # a refused opening's claim: the move sends the opening again
            if old[0] and old[1]:
                p.zrem(keys.active(old[0], old[1]), sid)
            p.hdel(keys.sub(sid), "channel", "address", "thread", "open_at")
            p.hset(keys.sub(sid), mapping={"status": "pending", "rerouted_from": ",".join(sorted(tried)),
                                            "reason": moved, "chases_sent": 0, "last_chase_at": 0})
            p.srem(keys.sub_sent(sid), "open", *(f"chase:{n}" for n in range(1, int(sub.get("chases_sent") or 0) + 1)))
            p.rpush(keys.sub_conv(sid), message("system", moved, now, kind="reroute"))
            self.events.emit(p, "subtask.rerouted", run_id=run["id"], subtask_id=sid, reason=reason,
                             channel=selected.channel, participant_id=pid)
            return True

        if not self.r.transaction(move, keys.sub(sid), value_from_callable=True):
            return None
        try:
            self.open(run, self.store.sub_fields(sid), contact, enabled)
        except DeliveryFailed as exc:
            if exc.unreachable:  # on to the one after (each move adds a channel to those tried)
                return self.reroute(sid, f"{moved}, which refused it too: {exc.reason}", exc.channel)
            if exc.permanent:
                self.finish(sid, "failed", f"{moved}, which refused it too: {exc.reason}")
                return None
            log.warning("opening %s on %s deferred: %s", sid, selected.channel, exc.reason)
            self.schedule_check(sid, now + (exc.retry_after or self.leases.lease_seconds))
            return selected.channel
        except Exception:  # it is pending on no channel now: the chase check opens it later (_open_due)
            log.exception("opening %s on %s failed; it will be retried", sid, selected.channel)
            self.schedule_check(sid, now + self.leases.lease_seconds)
            return selected.channel
        self._resume(sid)
        return selected.channel

    def _resume(self, sid: str) -> None:
        """After a move, the opening asks the first question again: say which one is next, so an answer is not
        recorded under the wrong question (scripted fields; a model has the whole conversation)."""
        sub = self.store.sub_fields(sid)
        fields = self.store.fields_of(sub["run_id"], int(sub["step"])) if sub.get("kind") != "conversation" else []
        cursor = int(sub.get("cursor") or 0)
        channel = sub.get("channel") or ""
        if sub["status"] != "running" or not 0 < cursor < len(fields) or not channel:
            return
        key = f"resume:{channel}"
        if self.outbox.claim(sid, key) != 1:
            return
        text = f"Your earlier answers are kept; here is the next question.\n\n{ask(fields[cursor])}"
        question = widget(fields[cursor])
        try:
            delivery = self.outbox.send(Outbound(Address(channel, sub["address"]), text, key=f"{sid}:{key}",
                                                 kind="reply", thread=sub.get("thread"), subtask_id=sid,
                                                 reply_token=sub.get("token"), question=question,
                                                 subject=self.store.definition_of(sub["run_id"]).name))
        except DeliveryFailed as exc:
            self.outbox.unclaim(sid, key)
            log.warning("the next question after moving %s was not sent: %s", sid, exc.reason)
            return
        with self.r.pipeline() as p:
            p.rpush(keys.sub_conv(sid), message("assistant", text, self.clock.now(), kind="reply",
                                                **({"question": question.to_dict()} if question else {})))
            self.outbox.mark_sent(p, sid, key)
            self.outbox.remember_ref(p, channel, delivery.ref, sid)
            p.execute()

    # -- the final transition -------------------------------------------------------
    def finish(self, sid: str, status: str, reason: str = "") -> bool:
        """Make the sub-task final; the caller whose change closes the state runs fan-in.

        The state closes, once, when its last sub-task becomes final or when this completion
        makes its quorum (SPEC §11); the same script takes the fan-in lease and drops the
        state's deadline, so a quorum, a deadline and the last answers can race freely.

        Returns:
            True when this call changed the status (False: it was final already).
        """
        sub = self.r.hmget(keys.sub(sid), ["run_id", "step"])
        if sub[0] is None:
            raise NotFound("sub-task", sid)
        rid, step = sub[0].decode(), int(sub[1])
        now = self.clock.now()
        # a sub-task that may still get a late answer stays routable for a plain message (a DM not in its thread)
        keep = status == "timed_out" and accepts_late(self.store.state_of(rid, step))
        closed = self.events.body("run.closed", run_id=rid, step=step, closed_by="quorum", reason="closed at quorum")
        outcome = int(self._finish(
            keys=[keys.sub(sid), keys.run_open(rid, step), keys.LEASES, keys.EVENTS, keys.TIMERS, keys.sub_sent(sid),
                  keys.run_done(rid, step), keys.run_need(rid, step), keys.run_closed(rid, step), keys.DEADLINES,
                  keys.run(rid)],
            args=[status, now, reason, now + self.leases.lease_seconds, "1" if keep else "", sid, keys.ACTIVE_PREFIX,
                  f"fanin:{rid}:{step}", self.events.body(f"subtask.{status}", run_id=rid, subtask_id=sid,
                                                              status=status, reason=reason or None),
                  closed, f"{rid}:{step}"]))
        if outcome < 0:
            return False
        if outcome == 0:  # this change closed the state: fan-in, under the lease the script took
            self.jobs.enqueue("fan_in", rid, str(step))
        return True

    def data(self, sid: str) -> dict[str, Any]:
        raw = self.r.hget(keys.sub(sid), "data")
        return json.loads(raw) if raw else {}
