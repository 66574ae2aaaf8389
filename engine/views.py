"""The run object of SPEC §8 (what the REST API, `results --json` and the dashboard show)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from .chase import next_due
from .hours import ALWAYS, Availability, parse_hours, zone
from .model import ChaseSpec, TaskState
from .reporting import report_records, version_of
from .store import Store

RUN_TIMES = ("created_at", "started_at", "completed_at", "deadline", "closed_at")
SUB_TIMES = ("created_at", "opened_at", "completed_at", "last_activity_at", "escalated_at")


def iso(ts: str | float | None) -> str | None:
    if ts in (None, ""):
        return None
    return datetime.fromtimestamp(float(ts), UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def message_view(m: dict[str, Any]) -> dict[str, Any]:
    out = {"role": m["role"], "text": m["text"], "at": iso(m["at"])}
    for extra in ("kind", "late", "auto_reply", "attachments", "tool", "usage", "question", "field"):
        if extra in m:
            out[extra] = m[extra]
    if m.get("edit_of"):
        out["edited"] = True
    return out


def chat_view(store: Store, sid: str) -> list[dict[str, Any]]:
    """The conversation as its participant sees it: the assistant's tool calls and taskbot's
    prompt to start a conversation are not theirs to read."""
    return [message_view(m) for m in store.conversation(sid)
            if m.get("role") != "tool" and m.get("kind") not in ("kickoff", "escalation")]


def usage_of(sub: dict[str, str]) -> dict[str, int]:
    prompt, completion = int(sub.get("tokens_prompt", 0)), int(sub.get("tokens_completion", 0))
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "cached_tokens": int(sub.get("tokens_cached", 0))}


def next_step(store: Store, sub: dict[str, str]) -> tuple[str | None, str | None]:
    """When the sub-task's next opening, chase or time-out is due, and which (SPEC §11 ``next_at``),
    by the rules the chase check follows (:func:`.chase.next_due`)."""
    if sub.get("status") == "pending" and sub.get("open_at"):
        return iso(sub["open_at"]), "opening"
    if sub.get("status") != "running" or not sub.get("last_activity_at"):
        return None, None
    state = store.state_of(sub["run_id"], int(sub["step"]))
    window = Availability(zone(sub.get("tz")), parse_hours(sub.get("hours") or ALWAYS))
    then, at = next_due(chases_sent=int(sub.get("chases_sent", 0)), last_activity_at=float(sub["last_activity_at"]),
                        last_chase_at=float(sub.get("last_chase_at", 0)), window=window,
                        spec=state.chase if isinstance(state, TaskState) else ChaseSpec(),
                        escalated=bool(sub.get("escalated_at")))
    return iso(at), then


def history_view(raw: str | None) -> dict[str, list[dict[str, Any]]]:
    """Each field's earlier values, oldest first, with when each was replaced."""
    history: dict[str, list[dict[str, Any]]] = json.loads(raw or "{}")
    return {key: [{"value": h["value"], "replaced_at": iso(h["replaced_at"])} for h in values]
            for key, values in history.items()}


def subtask_view(store: Store, chat_url: Callable[[str], str], sub: dict[str, str], *,
                 conversation: bool = True) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": sub["id"], "run_id": sub["run_id"], "participant_id": sub["participant_id"],
        "name": sub.get("name", sub["participant_id"]), "kind": sub.get("kind", "task"),
        "channel": sub.get("channel"), "status": sub["status"], "chases_sent": int(sub.get("chases_sent", 0)),
        "data": json.loads(sub.get("data", "{}")), "data_history": history_view(sub.get("data_history")),
        "reason": sub.get("reason") or None, "timezone": sub.get("tz") or None,
        "late": sub.get("late") == "1", "escalated_to": sub.get("escalated_to") or None,
    }
    for t in SUB_TIMES:
        view[t] = iso(sub.get(t))
    view["next_at"], view["next_action"] = next_step(store, sub)
    if "tokens_prompt" in sub:
        view["usage"] = usage_of(sub)
    if sub.get("channel") == "web" and sub.get("token"):
        view["chat_url"] = chat_url(sub["token"])
    if conversation:
        view["conversation"] = [message_view(m) for m in store.conversation(sub["id"])]
    return view


def run_view(store: Store, chat_url: Callable[[str], str], rid: str, *, subtasks: bool = True,
             conversations: bool = True) -> dict[str, Any]:
    """The run's fields plus its sub-tasks and deliverables (each with its content).

    Args:
        store: the records.
        chat_url: a web participant's chat link, from their token.
        rid: the run.
        subtasks: include the sub-tasks; ``conversations``: with their messages.
    """
    run = store.run_fields(rid)
    view: dict[str, Any] = {
        "id": rid, "task_id": run["task_id"], "status": run["status"], "trigger": json.loads(run["trigger"]),
        "owner": run.get("owner"), "gathered": json.loads(run.get("gathered", "{}")),
        "result_summary": run.get("result_summary") or None, "error_message": run.get("error_message") or None,
        "closed_by": run.get("closed_by") or None,
    }
    for t in RUN_TIMES:
        view[t] = iso(run.get(t))
    view["usage"] = store.usage(rid)
    stored = store.deliverables(rid)
    # every version, newest first
    view["deliverables"] = [deliverable_view(d, version_of(stored, i)) for i, d in reversed(list(enumerate(stored)))]
    view["reports"] = [{**record, "at": iso(record.get("at"))} for record in report_records(store, rid)]
    view["callback"] = callback_view(run)
    if subtasks:
        subs = store.subs_fields(store.sub_ids(rid))
        view["subtasks"] = [subtask_view(store, chat_url, s, conversation=conversations) for s in subs if s]
    return view


def deliverable_view(d: dict[str, str], version: int = 1) -> dict[str, Any]:
    """A deliverable; an image or a file names its file (its bytes: ``Engine.deliverable_file``)."""
    view: dict[str, Any] = {"id": d["id"], "run_id": d["run_id"], "output_type": d["output_type"], "title": d["title"],
                            "content": d["content"], "version": version, "change": d.get("change") or None,
                            "created_at": iso(d.get("created_at"))}
    if d.get("filename"):
        view["file"] = {"filename": d["filename"], "content_type": d.get("content_type"), "size": int(d["size"]),
                        "url": f"/api/deliverables/{d['id']}/file"}
    return view


def shown_url(url: str) -> str:
    """A URL without its query and credentials: a token in a callback URL is not for every reader."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}{parts.path}"


def callback_view(run: dict[str, str]) -> dict[str, Any] | None:
    """The Web Trigger callback of a run: where (shown without query), and how its delivery went."""
    if not run.get("callback_url"):
        return None
    return {"url": shown_url(run["callback_url"]), "status": run.get("callback_status") or "waiting",
            "attempts": int(run.get("callback_attempts") or 0), "error": run.get("callback_error") or None,
            "at": iso(run.get("callback_at"))}


def progress(store: Store, rid: str) -> dict[str, int]:
    """Counts a person watching a run cares about: answered, open, chased, timed out, failed, excused."""
    counts = {"total": 0, "answered": 0, "open": 0, "chased": 0, "timed_out": 0, "failed": 0, "cancelled": 0,
              "excused": 0}
    for sub in store.subs_fields(store.sub_ids(rid)):
        if not sub or sub.get("kind") == "conversation":
            continue
        counts["total"] += 1
        status = sub["status"]
        if status == "completed":
            counts["answered"] += 1
        elif status in ("pending", "running"):
            counts["open"] += 1
        elif status in counts:
            counts[status] += 1
        if int(sub.get("chases_sent", 0)) > 0:
            counts["chased"] += 1
    return counts
