"""A run's timeline (the dashboard's run page): what happened when, read from what the engine records.

Nothing extra is written for it. The run's hash has its created, started, closed and completed
times; each sub-task's hash its opening, escalation, late answer and end; its conversation one
entry per chase (``kind: chase``) and per late message. A timeline is rebuilt from those on
every view, so it can never disagree with the run it describes.
"""

from __future__ import annotations

import json
from typing import Any

from . import keys
from .store import Store
from .views import iso

#: What a final sub-task status reads as (a completed one: answered, or answered late).
SUB_ENDS = {"timed_out": "timed out", "excused": "excused", "failed": "failed", "cancelled": "cancelled"}
#: Kinds of entry, in the order a reader expects them when two share a second.
ORDER = ("created", "started", "opened", "chased", "escalated", "answered", "late", "timed_out", "excused",
         "failed", "closed", "report", "completed", "awaiting_review", "cancelled")
MAX_ENTRIES = 500


def _at(value: str | float | None) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def run_timeline(store: Store, rid: str, limit: int = MAX_ENTRIES) -> list[dict[str, Any]]:
    """The run's events, oldest first: ``{at, event, who, text}`` (``at`` ISO 8601 UTC, ``who`` a participant or None).

    Events: created, started, opened, chased, escalated, answered, late (an answer after the run
    closed), timed_out, excused, failed, closed (answers closed early, by deadline or quorum),
    report (each deliverable version), and the run's end: completed, cancelled or failed. A
    cancelled run's open sub-tasks are not listed one by one. Only the ``limit`` newest are kept.

    Raises:
        NotFound: no such run.
    """
    run = store.run_fields(rid)
    out: list[tuple[float, str, str | None, str]] = []

    def add(at: str | float | None, event: str, text: str, who: str | None = None) -> None:
        when = _at(at)
        if when is not None:
            out.append((when, event, who, text))

    trigger = json.loads(run.get("trigger") or "{}")
    by = f" by {trigger['by']}" if trigger.get("by") else ""
    add(run.get("created_at"), "created", f"Run created ({trigger.get('kind') or 'manual'}{by}).")
    add(run.get("started_at"), "started", "Run started.")
    subs = [s for s in store.subs_fields(store.sub_ids(rid)) if s]
    with store.r.pipeline(transaction=False) as p:
        for sub in subs:
            p.lrange(keys.sub_conv(sub["id"]), 0, -1)
        conversations = p.execute()
    for sub, conversation in zip(subs, conversations, strict=True):
        name = sub.get("name") or sub.get("participant_id") or sub["id"]
        channel = sub.get("channel") or "their channel"
        add(sub.get("opened_at"), "opened", f"Asked {name} on {channel}.", name)
        chases = 0
        for raw in conversation:
            entry = json.loads(raw)
            if entry.get("kind") == "chase":
                chases += 1
                add(entry.get("at"), "chased", f"Reminded {name} (reminder {chases}).", name)
        if sub.get("escalated_at"):
            target = sub.get("escalated_name") or sub.get("escalated_to")
            to = f" to {target}" if target else ""
            on = f" on {sub['escalated_channel']}" if sub.get("escalated_channel") else ""
            failed = f" (not delivered: {sub['escalation_error']})" if sub.get("escalation_error") else ""
            add(sub["escalated_at"], "escalated", f"{name}'s silence escalated{to}{on}{failed}.", name)
        status = sub.get("status")
        if status == "completed" and sub.get("late") == "1":
            add(sub.get("late_at") or sub.get("completed_at"), "late", f"{name} answered after the run closed.", name)
        elif status == "completed":
            add(sub.get("completed_at"), "answered", f"{name} answered.", name)
        elif status in SUB_ENDS and not (status == "cancelled" and run.get("status") == "cancelled"):
            reason = f": {sub['reason']}" if sub.get("reason") else ""
            add(sub.get("completed_at"), status, f"{name} {SUB_ENDS[status]}{reason}.", name)
    if run.get("closed_at"):
        add(run["closed_at"], "closed", f"Answers closed ({run.get('closed_by') or 'early'}).")
    versions: dict[str, int] = {}
    for d in store.deliverables(rid):
        title = d.get("title") or "deliverable"
        versions[title] = versions.get(title, 0) + 1
        version = f", version {versions[title]}" if versions[title] > 1 else ""
        add(d.get("created_at"), "report", f"{title} delivered ({d.get('output_type', 'report')}{version}).")
    status = run.get("status", "")
    if status in ("completed", "cancelled", "failed"):
        error = f": {run['error_message']}" if status == "failed" and run.get("error_message") else ""
        add(run.get("completed_at"), status, f"Run {status}{error}.")
    rank = {event: i for i, event in enumerate(ORDER)}
    out.sort(key=lambda e: (e[0], rank.get(e[1], len(ORDER))))
    return [{"at": iso(at), "event": event, "who": who, "text": text} for at, event, who, text in out[-limit:]]
