"""A batch of chase checks (SPEC §4) in a few round trips, not several per sub-task.

The scheduler pass hands due checks to workers in batches (``CHASE_BATCH``). Checking them
one by one cost each sub-task its hash, its inbox, its run, its contact (twice: once more for
the reminder's text), a claim, and a transaction: some ten round trips, so 10,000 reminders
falling due at once were seconds late. Here a batch reads every sub-task's hash and inbox length
in one pipeline, the runs and contacts once, and writes the next checks of those that wait in one
more; a reminder costs two round trips of its own (its claim, then its record, around the send).
Each decision is still :func:`.chase.decide`'s, and the rare outcomes (an opening held for
working hours, a time-out, an escalation, an away participant) take the single-check path of
:class:`.subtasks.Subtasks`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from . import keys
from .chase import decide
from .errors import NotFound
from .inbox import inbox_of_subtask
from .ports import DeliveryFailed
from .store import decode_hash

#: The :class:`.subtasks.Subtasks` that runs the checks (typed loosely: it imports this module).
Subtasks = Any

log = logging.getLogger("taskbot.subtasks")


def chase_many(subtasks: Subtasks, sids: Sequence[str]) -> None:
    """Run the chase checks of ``sids``; one sub-task's failure never stops another's check."""
    s = subtasks
    r = s.r
    with r.pipeline(transaction=False) as p:
        for sid in sids:
            p.hgetall(keys.sub(sid))
            p.llen(keys.inbox(inbox_of_subtask(sid)))
        raw = p.execute()
    subs = {sid: decode_hash(raw[2 * i]) for i, sid in enumerate(sids)}
    waiting = {sid: int(raw[2 * i + 1]) for i, sid in enumerate(sids)}
    runs: dict[str, dict[str, str] | None] = {}
    for rid in {sub["run_id"] for sub in subs.values() if sub.get("status") == "running"}:
        try:
            runs[rid] = s.store.run_fields(rid)
        except NotFound:
            runs[rid] = None
    contacts = s.store.find_contacts(list({sub["participant_id"] for sub in subs.values() if sub}))
    now = s.clock.now()
    later: dict[str, float] = {}  # next checks
    gone: list[str] = []  # timers of sub-tasks that are final or missing
    retimed: dict[str, dict[str, str]] = {}
    reminders: list[tuple[str, dict[str, str], dict[str, str], int, Any, Any]] = []
    for sid in sids:
        sub = subs[sid]
        try:
            if not sub:
                gone.append(sid)
            elif sub["status"] == "pending":
                s._open_due(sid, sub)
            elif sub["status"] != "running":
                gone.append(sid)
            elif waiting[sid]:
                # they wrote, and it is not applied yet (a worker died on it): neither chase nor time out
                # someone who answered; look again once it has had time to be applied
                later[sid] = now + s.leases.lease_seconds
            else:
                run = runs.get(sub["run_id"])
                if run is None:
                    gone.append(sid)
                    continue
                step = int(sub["step"])
                spec = s.chase_spec(run, step)
                pid = sub["participant_id"]
                contact = contacts.get(pid) or s._stranger(pid)
                window = s.availability(contact, s.store.state_of(run, step))
                if (window.tz.key, window.hours.text) != (sub.get("tz"), sub.get("hours")):
                    retimed[sid] = {"tz": window.tz.key, "hours": window.hours.text}
                sent = int(sub["chases_sent"])
                decision = decide(open_=True, chases_sent=sent, last_activity_at=float(sub["last_activity_at"]),
                                  last_chase_at=float(sub.get("last_chase_at", 0)), spec=spec, now=now,
                                  window=window, escalated=bool(sub.get("escalated_at")))
                if decision.action == "wait":
                    later[sid] = decision.at
                elif decision.action == "chase" and not (window.away(now) and sub.get("kind") != "conversation"):
                    reminders.append((sid, sub, run, sent + 1, spec, window))
                else:  # away, time-out, escalation: the single check decides again and acts
                    s.chase(sid)
        except Exception:
            log.exception("chase check of %s failed; it comes due again after its lease", sid)
    with r.pipeline(transaction=False) as p:
        for sid, fields in retimed.items():
            p.hset(keys.sub(sid), mapping=fields)
        if later:
            p.zadd(keys.TIMERS, later)
        if gone:
            p.zrem(keys.TIMERS, *gone)
        p.execute()
    if reminders:
        _remind_many(s, reminders, contacts)


def _remind_many(s: Subtasks, reminders: list[tuple[str, dict[str, str], dict[str, str], int, Any, Any]],
                 contacts: dict[str, Any]) -> None:
    """Send the reminders, each at most once: claimed right before its send and recorded right after (one
    round trip each), since on a paced channel a batch takes longer than a claim or a taken check lives."""
    deferred: dict[str, float] = {}
    for sid, sub, run, n, spec, window in reminders:
        key = f"chase:{n}"
        if s.outbox.claim(sid, key) != 1:
            continue  # sent already, or being sent by another worker that sets the next check
        try:
            out = s.reminder(sid, sub, run, spec, n, contacts)
            delivery = s.outbox.send(out)
        except DeliveryFailed as exc:
            later = s.reminder_refused(sid, key, exc)
            if later is not None:
                deferred[sid] = later
            continue
        except Exception:
            log.exception("reminder to %s failed; it comes due again after its lease", sid)
            continue
        s.record_chase(sid, sub, n, spec, window, out.text, delivery)
    if deferred:
        s.r.zadd(keys.TIMERS, deferred)
