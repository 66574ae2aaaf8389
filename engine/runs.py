"""Run lifecycle (SPEC §2): trigger, the workflow's states in order, fan-in, compile, end states."""

from __future__ import annotations

import json
import logging
import re
import secrets
from typing import TYPE_CHECKING, Any

from . import keys
from .bounds import check_value
from .errors import Conflict, InvalidInput, NotFound
from .filters import parse_filter
from .model import FINAL_RUN, CompileState, Contact, ConversationState, RunStatus, TaskDefinition, TaskState
from .ports import Address, DeliveryFailed, Outbound
from .report import markdown_report
from .store import dumps

if TYPE_CHECKING:
    from .engine import Engine

log = logging.getLogger("taskbot.runs")

TRIGGER_KINDS = ("manual", "slash", "schedule", "web", "api", "delegation")
END_TEXT = {
    "task_completed": "Run {id} of {task_id} completed.",
    "task_awaiting_review": "Run {id} of {task_id} is ready for review: approve it to complete it.",
    "task_failed": "Run {id} of {task_id} failed: {error_message}",
    "task_cancelled": "Run {id} of {task_id} was cancelled.",
}


def lookup(data: Any, path: str) -> Any:
    """Follow a dotted path (``gathered.reviewer_list``) into nested dicts; None when absent."""
    for part in path.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def as_people(value: Any) -> list[str]:
    """A gathered participant list may be a list or free text ("alice@x.com, bob@x.com")."""
    if value is None:
        return []
    items = value if isinstance(value, list) else re.split(r"[,;\s]+", str(value))
    return [str(i).strip() for i in items if str(i).strip()]


class Runs:
    def __init__(self, engine: Engine) -> None:
        self.e = engine

    # -- definitions ---------------------------------------------------------
    def apply(self, definition: TaskDefinition) -> TaskDefinition:
        """Store a validated definition, refusing one whose assistant does not exist."""
        try:
            self.e.store.get_assistant(definition.assistant, self.e.default_model)
        except NotFound:
            raise InvalidInput("assistant", f"unknown assistant {definition.assistant!r}") from None
        self.e.store.put_definition(definition)
        return definition

    def set_active(self, task_id: str, active: bool) -> TaskDefinition:
        definition = self.e.store.get_definition(task_id)
        definition = definition.model_copy(update={"active": active})
        self.e.store.put_definition(definition)
        return definition

    # -- trigger and steps ---------------------------------------------------
    def trigger(self, task_id: str, data: dict[str, Any] | None = None, *, kind: str = "manual",
                by: str | None = None, rid: str | None = None) -> str:
        """Create a pending run and queue its start; returns the run id.

        Raises:
            NotFound: no such task. Conflict: the task is inactive.
        """
        definition = self.e.store.get_definition(task_id)
        if not definition.active:
            raise Conflict(f"task {task_id!r} is inactive; activate it first")
        if kind not in TRIGGER_KINDS:
            raise InvalidInput("trigger.kind", f"must be one of {', '.join(TRIGGER_KINDS)}")
        check_value(data, "data")
        return self.start(definition, data, kind=kind, by=by, rid=rid)

    def start(self, definition: TaskDefinition, data: dict[str, Any] | None = None, *, kind: str,
              by: str | None = None, rid: str | None = None, extra: dict[str, Any] | None = None) -> str:
        """Create a pending run of ``definition`` (stored or made up, as for a delegation)."""
        from .engine import new_id

        definition = self.e.conversations.plan(definition, kind)
        task_id = definition.id
        rid = rid or new_id()
        now = self.e.now()
        owner = definition.owner or by or "owner"
        fields = {
            "id": rid, "task_id": task_id, "status": RunStatus.PENDING, "owner": owner,
            "trigger": dumps({"kind": kind, "by": by}), "gathered": dumps(data or {}),
            "created_at": now, "step": 0, **(extra or {}),
        }
        with self.e.r.pipeline() as p:
            p.set(keys.run_definition(rid), definition.model_dump_json(exclude_none=True))
            p.hset(keys.run(rid), mapping=fields)
            p.zadd(keys.RUNS, {rid: now})
            p.zadd(keys.runs_of_task(task_id), {rid: now})
            self.e.lease(p, f"step:{rid}:0")
            self.e.events.emit(p, "run.pending", run_id=rid, task_id=task_id, status="pending")
            p.execute()
        self.e.jobs.enqueue("advance", rid, "0")
        return rid

    def advance(self, rid: str, step: int) -> None:
        """Enter workflow state ``step`` of the run (idempotent: a stale call does nothing)."""
        member = f"step:{rid}:{step}"
        run = self.e.store.run_fields(rid)
        if run["status"] == RunStatus.PENDING and step == 0:
            run = self._start(rid)
        if run["status"] != RunStatus.RUNNING or int(run["step"]) != step:
            self.e.release(member)
            return
        states = self.e.definition_of(run).states()
        if step >= len(states):
            self.finish(rid)
        else:
            state = states[step]
            if isinstance(state, CompileState):
                if not self.compile(rid, step, state):
                    return  # waiting for a model slot: the step's lease stays, a freed slot wakes it
            else:
                self._fan_out(run, step, state)
        self.e.release(member)

    def _start(self, rid: str) -> dict[str, str]:
        def start(p: Any) -> None:
            if p.hget(keys.run(rid), "status") == RunStatus.PENDING.encode():
                p.multi()
                p.hset(keys.run(rid), mapping={"status": RunStatus.RUNNING, "started_at": self.e.now()})
                self.e.events.emit(p, "run.running", run_id=rid, status="running")
        self.e.r.transaction(start, keys.run(rid))
        return self.e.store.run_fields(rid)

    def participants(self, run: dict[str, str], state: TaskState | ConversationState) -> list[str]:
        """Resolve who takes part, dropping duplicates and keeping order."""
        if isinstance(state, ConversationState):
            people = [run["owner"]]
        elif state.participants is not None:
            people = list(state.participants)
        elif state.participants_from is not None:
            gathered = json.loads(run["gathered"])
            people = as_people(lookup({"gathered": gathered}, state.participants_from))
        else:
            assert state.dataset is not None
            rows = self.e.store.get_dataset(state.dataset)
            if state.filter:
                query = parse_filter(state.filter)
                rows = [row for row in rows if query.matches(row)]
            people = [str(row[state.participant_field]) for row in rows if row.get(state.participant_field)]
        return list(dict.fromkeys(p.strip() for p in people if p.strip()))

    def _fan_out(self, run: dict[str, str], step: int, state: TaskState | ConversationState) -> None:
        rid = run["id"]
        if run.get("fanout_step") == str(step):
            return  # sub-tasks exist; their open jobs hold their own leases
        try:
            people = self.participants(run, state)
        except NotFound as exc:
            self.fail(rid, str(exc))
            return
        if not people:
            source = "the owner" if isinstance(state, ConversationState) else "the participant source"
            self.fail(rid, f"no participants resolved from {source}")
            return
        contacts = self.e.store.find_contacts(people)
        kind = "conversation" if isinstance(state, ConversationState) else "task"
        now = self.e.now()

        def create(p: Any) -> tuple[int, int]:
            current = p.hget(keys.run(rid), "fanout_step")
            if current is not None and current.decode() == str(step):
                return (0, 0)
            base = p.llen(keys.run_subs(rid))
            p.multi()
            sids = []
            for i, pid in enumerate(people):
                sid = f"{rid}-{base + i}"
                sids.append(sid)
                contact = contacts.get(pid)
                token = secrets.token_hex(16)  # lower-case: survives mail systems that fold case
                p.hset(keys.sub(sid), mapping={
                    "id": sid, "run_id": rid, "step": step, "kind": kind, "participant_id": pid,
                    "name": contact.name if contact else pid, "status": "pending", "chases_sent": 0,
                    "cursor": 0, "data": "{}", "created_at": now, "token": token,
                })
                p.set(keys.token(token), sid)
            p.rpush(keys.run_subs(rid), *sids)
            p.set(keys.run_open(rid, step), len(sids))
            p.hset(keys.run(rid), "fanout_step", step)
            batches = range(base, base + len(sids), self.e.batch_size)
            for start in batches:
                self.e.lease(p, f"open:{rid}:{start}:{min(start + self.e.batch_size, base + len(sids))}")
            return (base, base + len(sids))

        start, end = self.e.r.transaction(create, keys.run(rid), value_from_callable=True)
        calls = [("open_batch", (rid, str(s), str(min(s + self.e.batch_size, end))))
                 for s in range(start, end, self.e.batch_size)]
        self.e.jobs.enqueue_many(calls)

    def fan_in(self, rid: str, step: int) -> None:
        """Merge a finished state's answers into ``gathered`` and enter the next state (once)."""
        member = f"fanin:{rid}:{step}"
        run = self.e.store.run_fields(rid)
        if run["status"] != RunStatus.RUNNING or int(run["step"]) != step:
            self.e.release(member)
            return
        subs = [s for s in self.e.store.subs_fields(self.e.store.sub_ids(rid)) if s.get("step") == str(step)]

        def merge(p: Any) -> bool:
            current = {k.decode(): v.decode() for k, v in p.hgetall(keys.run(rid)).items()}
            if current["status"] != RunStatus.RUNNING or int(current["step"]) != step:
                return False
            gathered = json.loads(current["gathered"])
            for s in subs:
                data = json.loads(s["data"])
                if s["kind"] == "conversation":
                    gathered.update(data)
                else:
                    gathered.setdefault("tasks", {})[s["participant_id"]] = data
                    gathered.setdefault("task_status", {})[s["participant_id"]] = s["status"]
            p.multi()
            p.hset(keys.run(rid), mapping={"gathered": dumps(gathered), "step": step + 1})
            self.e.release(member, p)
            self.e.lease(p, f"step:{rid}:{step + 1}")
            return True

        if self.e.r.transaction(merge, keys.run(rid), value_from_callable=True):
            self.advance(rid, step + 1)
        else:
            self.e.release(member)

    def compile(self, rid: str, step: int, state: CompileState) -> bool:
        """Compile the deliverable: through the assistant's model, or (scripted) a Markdown report of
        every fan-out state's answers. False while it waits for a model slot."""
        run = self.e.store.run_fields(rid)
        if not self.e.assistant_of(run).scripted:
            return self.e.conversations.compile(rid, step, state)
        definition = self.e.definition_of(run)
        states = definition.states()
        subs = self.e.store.subs_fields(self.e.store.sub_ids(rid))
        gathered = json.loads(run["gathered"])
        sections = []
        for index, earlier in enumerate(states[:step]):
            if isinstance(earlier, TaskState):
                people = [{"id": s["participant_id"], "name": s["name"], "status": s["status"],
                           "data": json.loads(s["data"]), "reason": s.get("reason", "")}
                          for s in subs if s["step"] == str(index)]
                sections.append((earlier.fields, people))
        if not sections:
            content = markdown_report(definition.name, state.instructions or definition.description, [], [],
                                      gathered)
        else:
            content = "\n".join(markdown_report(definition.name if i == 0 else (states[i].name or "Answers"),
                                                definition.description if i == 0 else "", fields, people,
                                                gathered if i == len(sections) - 1 else None)
                                for i, (fields, people) in enumerate(sections))
        summary = content.splitlines()[2] if len(content.splitlines()) > 2 else definition.name
        if self.deliver(rid, step, {"output_type": definition.output_type, "title": definition.name,
                                    "content": content}, summary):
            self.advance(rid, step + 1)
        return True

    def deliver(self, rid: str, step: int, deliverable: dict[str, Any], summary: str, file: bytes | None = None,
                usage: Any = None) -> bool:
        """Store the compile step's deliverable and move the run on, once (False: it moved already)."""
        from .engine import new_id

        did = new_id()

        def store(p: Any) -> bool:
            current = p.hmget(keys.run(rid), ["status", "step"])
            if current[0] != RunStatus.RUNNING.encode() or int(current[1]) != step:
                return False
            p.multi()
            p.hset(keys.deliverable(did), mapping={"id": did, "run_id": rid, **deliverable,
                                                   "created_at": self.e.now()})
            if file is not None:
                p.set(keys.deliverable_file(did), file)
            p.rpush(keys.run_deliverables(rid), did)
            p.hset(keys.run(rid), mapping={"step": step + 1, "result_summary": summary})
            self.e.lease(p, f"step:{rid}:{step + 1}")
            if usage is not None:
                usage(p)
            return True

        return bool(self.e.r.transaction(store, keys.run(rid), value_from_callable=True))

    # -- end states ----------------------------------------------------------
    def _end(self, rid: str, status: RunStatus, allowed: frozenset[str], **extra: Any) -> bool:
        """Move the run to ``status`` from one of ``allowed`` and notify the owner, atomically."""
        kind = {RunStatus.COMPLETED: "task_completed", RunStatus.AWAITING_REVIEW: "task_awaiting_review",
                RunStatus.FAILED: "task_failed", RunStatus.CANCELLED: "task_cancelled"}[status]

        def end(p: Any) -> bool:
            run = {k.decode(): v.decode() for k, v in p.hgetall(keys.run(rid)).items()}
            if run.get("status") not in allowed:
                return False
            update = {"status": status.value, **extra}
            if status != RunStatus.AWAITING_REVIEW:
                update["completed_at"] = self.e.now()
            p.multi()
            p.hset(keys.run(rid), mapping=update)
            self.e.notify(p, run["owner"], kind, run, END_TEXT[kind].format(**{**run, **update}))
            self.e.events.emit(p, f"run.{status.value}", run_id=rid, task_id=run["task_id"], status=status.value,
                               error_message=extra.get("error_message"))
            self.e.lease(p, f"notify:{rid}:{kind}")
            return True

        ended = bool(self.e.r.transaction(end, keys.run(rid), value_from_callable=True))
        if ended:
            self.e.jobs.enqueue("notify_owner", rid, kind)
        return ended

    def notify_owner(self, rid: str, kind: str) -> None:
        """Tell the owner on each chat channel they are linked on (in-app was done with the change).

        Each (notification, channel) pair is sent at most once: it is claimed in a set first, and
        the claim is given back only when the send fails in a way worth retrying.
        """
        member = f"notify:{rid}:{kind}"
        self.e.conversations.deliver_result(rid)  # a delegated run's result goes back to who asked
        run = self.e.store.run_fields(rid)
        owner = run["owner"]
        contact = self.e.store.find_contacts([owner]).get(owner) or Contact(
            id=owner, email=owner if "@" in owner else None)
        text = END_TEXT[kind].format(**run)
        if kind in ("task_completed", "task_awaiting_review") and run.get("result_summary"):
            text += f" {run['result_summary']}"
        for name in ("slack", "telegram", "email"):
            channel = self.e.channels.get(name)
            address = channel.resolve(contact) if channel else None
            if channel is None or not address:
                continue
            if not self.e.r.sadd(keys.run_notified(rid), f"{kind}:{name}"):
                continue
            out = Outbound(Address(name, address), text, key=f"{rid}:{kind}", kind="notification",
                           subject=f"taskbot: {text}")
            try:
                channel.send(out)
            except DeliveryFailed as exc:
                if not exc.permanent:
                    self.e.r.srem(keys.run_notified(rid), f"{kind}:{name}")
                    raise
                log.warning("notifying %s on %s failed: %s", owner, name, exc.reason)
        self.e.release(member)

    def finish(self, rid: str) -> None:
        review = self.e.definition_of(self.e.store.run_fields(rid)).review
        self._end(rid, RunStatus.AWAITING_REVIEW if review else RunStatus.COMPLETED,
                  frozenset({RunStatus.RUNNING}))

    def fail(self, rid: str, reason: str) -> None:
        """A failed run is final and never retried automatically (tools may have had effects)."""
        if self._end(rid, RunStatus.FAILED, frozenset({RunStatus.PENDING, RunStatus.RUNNING}),
                     error_message=reason):
            self._close_open_subtasks(rid, "cancelled", f"run failed: {reason}")

    def cancel(self, rid: str) -> None:
        """Cancel a run in any state that is not final; open sub-tasks and their chases go too."""
        run = self.e.store.run_fields(rid)
        if run["status"] in FINAL_RUN:
            raise Conflict(f"run {rid} is already {run['status']}")
        if not self._end(rid, RunStatus.CANCELLED,
                         frozenset({RunStatus.PENDING, RunStatus.RUNNING, RunStatus.AWAITING_REVIEW})):
            raise Conflict(f"run {rid} is already {self.e.store.run_fields(rid)['status']}")
        self._close_open_subtasks(rid, "cancelled", "run cancelled")

    def approve(self, rid: str) -> None:
        run = self.e.store.run_fields(rid)
        if run["status"] != RunStatus.AWAITING_REVIEW:
            raise Conflict(f"run {rid} is {run['status']}, not awaiting_review")
        if not self._end(rid, RunStatus.COMPLETED, frozenset({RunStatus.AWAITING_REVIEW})):
            raise Conflict(f"run {rid} changed state; try again")

    def _close_open_subtasks(self, rid: str, status: str, reason: str) -> None:
        for sub in self.e.store.subs_fields(self.e.store.sub_ids(rid)):
            if sub.get("status") in ("pending", "running"):
                self.e.subtasks.finish(sub["id"], status, reason)
