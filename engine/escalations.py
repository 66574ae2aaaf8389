"""Chase and escalation texts, and the one escalation of a silent participant (SPEC §11).

``chase.escalate_to: manager | owner``: after the last chase, half way to the time-out, the
participant's manager (their contact's ``manager``; the run's owner when they have none) or
the run's owner gets one message on their own channel (Slack, Telegram or email, as an
owner is told) naming the task and who is missing, and an in-app notification. It is sent
once however many workers race on the check: the send is claimed like any outbound message
and the sub-task is marked ``escalated_*`` in the transaction that records it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from . import keys
from .events import Events
from .messages import render, when
from .model import ChaseSpec, Contact
from .outbox import Outbox
from .ports import Address, Clock, DeliveryFailed, Outbound
from .selection import reaching, select_channel
from .store import Store, message

log = logging.getLogger("taskbot.escalations")

def time_out_at(sub: Mapping[str, str], spec: ChaseSpec, *, after_chase: int | None = None, now: float = 0.0) -> float:
    """When the sub-task times out if its participant stays silent (after chase ``after_chase`` goes at ``now``)."""
    if after_chase is not None:
        return now + spec.interval * (spec.max_chases - after_chase + 1)
    return max(float(sub.get("last_activity_at") or 0), float(sub.get("last_chase_at") or 0)) + spec.interval


class Escalations:
    """Render chase texts and send escalations.

    Args:
        store: the records.
        clock: the time source.
        outbox: sends the escalation once.
        events: records ``subtask.escalated``.
    """

    def __init__(self, store: Store, clock: Clock, outbox: Outbox, events: Events) -> None:
        self.store = store
        self.r = store.r
        self.clock = clock
        self.outbox = outbox
        self.events = events

    # -- texts ------------------------------------------------------------------------------------------
    def deadline(self, run: Mapping[str, str], time_out: float) -> float:
        """The earlier of the fan-out's deadline and the sub-task's own time-out."""
        close = float(run.get("deadline") or 0)
        return min(close, time_out) if close else time_out

    def missing_questions(self, sub: Mapping[str, str]) -> str:
        data = json.loads(sub.get("data") or "{}")
        fields = self.store.fields_of(sub["run_id"], int(sub["step"]))
        return "; ".join(f.prompt for f in fields if f.key not in data)

    def chase_text(self, sub: Mapping[str, str], run: Mapping[str, str], spec: ChaseSpec, n: int,
                   contacts: Mapping[str, Contact] | None = None) -> str:
        """Chase ``n``'s text: ``{name}`` the participant, ``{missing}`` the questions they still have to answer.

        ``contacts``: the participants' contacts read already (a batch of checks reads them at once).
        """
        if contacts is None:
            contacts = self.store.find_contacts([sub["participant_id"]])
        contact = contacts.get(sub["participant_id"])
        now = self.clock.now()
        return render(spec.message, {
            "name": sub.get("name") or sub["participant_id"], "task": self.store.definition_of(run).name,
            "missing": self.missing_questions(sub),
            "deadline": when(self.deadline(run, time_out_at(sub, spec, after_chase=n, now=now)),
                             contact.timezone if contact else "UTC")})

    # -- the escalation -----------------------------------------------------------------------------------
    def target(self, sub: Mapping[str, str], run: Mapping[str, str], spec: ChaseSpec) -> Contact:
        """Who is told: the participant's manager, or the run's owner (also when there is no manager)."""
        pid = sub["participant_id"]
        found = self.store.find_contacts([pid])
        manager = found[pid].manager if pid in found and spec.escalate_to == "manager" else None
        who = manager or run["owner"]
        return self.store.find_contacts([who]).get(who) or Contact(id=who, email=who if "@" in who else None)

    def escalate(self, sid: str, sub: Mapping[str, str], run: Mapping[str, str], spec: ChaseSpec) -> float | None:
        """Send the sub-task's one escalation.

        Returns:
            None when it is done (sent, or given up with the reason recorded); else when to try again.
        """
        key = "escalate"
        claim = self.outbox.claim(sid, key)
        if claim == 0:
            return None
        if claim < 0:  # another worker is sending it; look again once its claim could have lapsed
            return self.clock.now() + self.outbox.lease_seconds
        target = self.target(sub, run, spec)
        task = self.store.definition_of(run).name
        text = render(spec.escalation_message, {
            "name": target.name, "task": task, "missing": sub.get("name") or sub["participant_id"],
            "deadline": when(self.deadline(run, time_out_at(sub, spec)), target.timezone)})
        address = select_channel(target, reaching(), self.outbox.channels)  # a web link reaches nobody by itself
        error = address if isinstance(address, str) else ""
        if isinstance(address, Address):
            try:
                self.outbox.send(Outbound(address, text, key=f"{sid}:{key}", kind="escalation",
                                          subject=f"taskbot: {task}: {sub.get('name') or sub['participant_id']} "
                                                  "has not answered"))
            except DeliveryFailed as exc:
                self.outbox.unclaim(sid, key)
                if not exc.permanent and self.clock.now() < time_out_at(sub, spec):
                    log.warning("escalation of %s deferred: %s", sid, exc.reason)
                    return self.clock.now() + (exc.retry_after or self.outbox.lease_seconds)
                error = exc.reason  # given up: the in-app note still goes, and the reason is shown
        self._mark(sid, sub, run, target, address, text, error)
        return None

    def _mark(self, sid: str, sub: Mapping[str, str], run: Mapping[str, str], target: Contact,
              address: Address | str, text: str, error: str) -> None:
        now = self.clock.now()
        channel = address.channel if isinstance(address, Address) else ""

        def mark(p: Any) -> None:
            p.multi()
            p.hset(keys.sub(sid), mapping={"escalated_to": target.id, "escalated_name": target.name,
                                           "escalated_at": now, "escalated_channel": channel,
                                           "escalation_error": error})
            p.rpush(keys.sub_conv(sid), message("system", f"Escalated to {target.name}"
                                                + (f" on {channel}" if channel else "")
                                                + (f" (not delivered: {error})" if error else ""), now,
                                                kind="escalation"))
            self.store.notify(p, now, target.id, "escalation", run, text)
            self.outbox.mark_sent(p, sid, "escalate")
            self.events.emit(p, "subtask.escalated", run_id=run["id"], subtask_id=sid,
                             participant_id=sub["participant_id"], escalated_to=target.id, channel=channel or None,
                             error=error or None)

        self.r.transaction(mark, keys.sub(sid))
        if error:
            log.warning("escalation of %s to %s not delivered: %s", sid, target.id, error)
