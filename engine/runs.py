"""Run lifecycle (SPEC §2): trigger, the workflow's states in order, fan-in, compile, end states."""

from __future__ import annotations

import json
import logging
import math
import re
import secrets
from typing import Any

from . import keys
from .bounds import check_value
from .callbacks import Callbacks
from .compiler import Compiled, CompileFailed, Compiler
from .conversation import Conversations, plan
from .deadlines import Deadlines, deadline_of
from .errors import Conflict, InvalidInput, NotFound
from .events import Events
from .fanin import FanIn
from .filters import parse_filter
from .leases import Leases
from .model import FINAL_RUN, CompileState, ConversationState, RunStatus, TaskDefinition, TaskState
from .opening import create_args, create_script
from .outbox import Outbox
from .owners import Owners
from .ports import Clock, Jobs
from .reporting import Reporting
from .store import Store, dumps, new_id
from .subtasks import Subtasks

log = logging.getLogger("taskbot.runs")

TRIGGER_KINDS = ("manual", "slash", "schedule", "web", "api", "delegation")
END_TEXT = {
    "task_completed": "Run {id} of {task_id} completed.",
    "task_awaiting_review": "Run {id} of {task_id} is ready for review: approve it to complete it.",
    "task_failed": "Run {id} of {task_id} failed: {error_message}",
    "task_cancelled": "Run {id} of {task_id} was cancelled.",
}
#: What the owner is told on their channels of a run that goes on (the in-app text has the figures).
RUNNING_TEXT = {
    "budget_reached": "Run {id} of {task_id} reached its model token budget: the remaining participants get "
                      "the scripted questions, without the model.",
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
    """Runs through their workflow: trigger, fan-out, fan-in, compile, end states, the owner told.

    Args:
        store: the records.
        clock: the time source.
        jobs: the job queue (steps, open batches, notifications).
        leases: the work leases every step holds until it is done.
        events: records run events for webhooks.
        outbox: tells the owner on their channels.
        subtasks: closes a run's open sub-tasks when it fails or is cancelled.
        conversations: opening texts; a delegated run's result posted back.
        compiler: the compile step's deliverable.
        fanin: closes a state's open sub-tasks and merges its answers.
        deadlines: sets a fan-out's deadline.
        reporting: posts the deliverable to the task's ``report_to`` targets when the run completes.
        callbacks: the Web Trigger callback when the run ends.
        owners: tells the owner on their channels.
        batch_size: sub-tasks opened per fan-out job.
    """

    def __init__(self, store: Store, clock: Clock, jobs: Jobs, leases: Leases, events: Events, outbox: Outbox,
                 subtasks: Subtasks, conversations: Conversations, compiler: Compiler, fanin: FanIn,
                 deadlines: Deadlines, reporting: Reporting, callbacks: Callbacks, owners: Owners,
                 batch_size: int = 100) -> None:
        self.store = store
        self.r = store.r
        self.clock = clock
        self.jobs = jobs
        self.leases = leases
        self.events = events
        self.outbox = outbox
        self.subtasks = subtasks
        self.conversations = conversations
        self.compiler = compiler
        self.fanin = fanin
        self.deadlines = deadlines
        self.reporting = reporting
        self.callbacks = callbacks
        self.owners = owners
        self.batch_size = batch_size
        self._create = create_script(self.r)

    # -- definitions ---------------------------------------------------------
    def apply(self, definition: TaskDefinition) -> TaskDefinition:
        """Store a validated definition, refusing one whose assistant does not exist."""
        try:
            self.store.assistant(definition.assistant)
        except NotFound:
            raise InvalidInput("assistant", f"unknown assistant {definition.assistant!r}") from None
        self.store.put_definition(definition)
        return definition

    def set_active(self, task_id: str, active: bool) -> TaskDefinition:
        definition = self.store.get_definition(task_id)
        definition = definition.model_copy(update={"active": active})
        self.store.put_definition(definition)
        return definition

    # -- trigger and steps ---------------------------------------------------
    def trigger(self, task_id: str, data: dict[str, Any] | None = None, *, kind: str = "manual",
                by: str | None = None, callback_url: str | None = None, rid: str | None = None) -> str:
        """Create a pending run and queue its start; returns the run id.

        ``callback_url`` gets the run object when the run ends (the Web Trigger's); ``rid`` is the id
        to give the run (reserved by an idempotent trigger), else a new one.

        Raises:
            NotFound: no such task. Conflict: the task is inactive. InvalidInput: a refused callback URL.
        """
        definition = self.store.get_definition(task_id)
        if not definition.active:
            raise Conflict(f"task {task_id!r} is inactive; activate it first")
        if kind not in TRIGGER_KINDS:
            raise InvalidInput("trigger.kind", f"must be one of {', '.join(TRIGGER_KINDS)}")
        if callback_url is not None:
            self.callbacks.check(callback_url)
        check_value(data, "data")
        return self.start(definition, data, kind=kind, by=by, rid=rid,
                          extra={"callback_url": callback_url} if callback_url else None)

    def start(self, definition: TaskDefinition, data: dict[str, Any] | None = None, *, kind: str,
              by: str | None = None, rid: str | None = None, extra: dict[str, Any] | None = None) -> str:
        """Create a pending run of ``definition`` (stored or made up, as for a delegation)."""
        definition = plan(definition, self.store.assistant(definition.assistant), kind)
        task_id = definition.id
        rid = rid or new_id()
        now = self.clock.now()
        owner = definition.owner or by or "owner"
        fields = {
            "id": rid, "task_id": task_id, "status": RunStatus.PENDING, "owner": owner,
            "trigger": dumps({"kind": kind, "by": by}), "gathered": dumps(data or {}),
            "created_at": now, "step": 0, **(extra or {}),
        }
        with self.r.pipeline() as p:
            p.set(keys.run_definition(rid), definition.model_dump_json(exclude_none=True))
            p.hset(keys.run(rid), mapping=fields)
            p.zadd(keys.RUNS, {rid: now})
            p.zadd(keys.runs_of_task(task_id), {rid: now})
            self.leases.lease(p, f"step:{rid}:0")
            self.events.emit(p, "run.pending", run_id=rid, task_id=task_id, status="pending")
            p.execute()
        self.jobs.enqueue("advance", rid, "0")
        return rid

    def advance(self, rid: str, step: int) -> None:
        """Enter workflow state ``step`` of the run (idempotent: a stale call does nothing)."""
        member = f"step:{rid}:{step}"
        run = self.store.run_fields(rid)
        if run["status"] == RunStatus.PENDING and step == 0:
            run = self._start(rid)
        if run["status"] != RunStatus.RUNNING or int(run["step"]) != step:
            self.leases.release(member)
            return
        states = self.store.definition_of(run).states()
        if step >= len(states):
            self.finish(rid)
        else:
            state = states[step]
            if isinstance(state, CompileState):
                if not self.compile(rid, step, state):
                    return  # waiting for a model slot: the step's lease stays, a freed slot wakes it
            else:
                self._fan_out(run, step, state)
        self.leases.release(member)

    def _start(self, rid: str) -> dict[str, str]:
        def start(p: Any) -> None:
            if p.hget(keys.run(rid), "status") == RunStatus.PENDING.encode():
                p.multi()
                p.hset(keys.run(rid), mapping={"status": RunStatus.RUNNING, "started_at": self.clock.now()})
                self.events.emit(p, "run.running", run_id=rid, status="running")
        self.r.transaction(start, keys.run(rid))
        return self.store.run_fields(rid)

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
            rows = self.store.get_dataset(state.dataset)
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
        contacts = self.store.find_contacts(people)
        kind = "conversation" if isinstance(state, ConversationState) else "task"
        now = self.clock.now()

        def create(p: Any) -> tuple[int, int]:
            current = p.hget(keys.run(rid), "fanout_step")
            if current is not None and current.decode() == str(step):
                return (0, 0)
            base = p.llen(keys.run_subs(rid))
            p.multi()
            sids = []
            created = []
            for i, pid in enumerate(people):
                sid = f"{rid}-{base + i}"
                sids.append(sid)
                contact = contacts.get(pid)
                token = secrets.token_hex(16)  # lower-case: survives mail systems that fold case
                created.append((sid, pid, contact.name if contact else pid, token))
            # one script call writes every sub-task's hash and token, and the run's list of them
            self._create(keys=[keys.run_subs(rid)], client=p, args=create_args(
                {"run_id": rid, "step": step, "kind": kind, "status": "pending", "chases_sent": 0, "cursor": 0,
                 "data": "{}", "created_at": now}, created))
            p.set(keys.run_open(rid, step), len(sids))
            p.hset(keys.run(rid), "fanout_step", step)
            close = state.close if isinstance(state, TaskState) else None
            if close is not None and close.quorum is not None:  # FINISH closes the state at this many completed
                p.set(keys.run_need(rid, step), max(1, math.ceil(close.quorum * len(sids) - 1e-9)))
            deadline = deadline_of(close, run)
            if deadline is not None:
                self.deadlines.set(p, rid, step, deadline)
            batches = range(base, base + len(sids), self.batch_size)
            for start in batches:
                self.leases.lease(p, f"open:{rid}:{start}:{min(start + self.batch_size, base + len(sids))}")
            return (base, base + len(sids))

        start, end = self.r.transaction(create, keys.run(rid), value_from_callable=True)
        calls = [("open_batch", (rid, str(s), str(min(s + self.batch_size, end))))
                 for s in range(start, end, self.batch_size)]
        self.jobs.enqueue_many(calls)

    def fan_in(self, rid: str, step: int) -> None:
        """Close the state's open sub-tasks if it closed early, merge its answers, enter the next state (once)."""
        if self.fanin.merge(rid, step):
            self.advance(rid, step + 1)

    def compile(self, rid: str, step: int, state: CompileState) -> bool:
        """Compile the deliverable and move the run on; False while it waits for a model slot."""
        result = self.compiler.compile(self.store.run_fields(rid), step, state)
        if result is None:
            return False
        if isinstance(result, CompileFailed):
            self.store.count_usage_now(rid, result.usage, result.calls)
            self.fail(rid, result.reason)
        elif self.deliver(rid, step, result):
            self.advance(rid, step + 1)
        return True

    def deliver(self, rid: str, step: int, compiled: Compiled) -> bool:
        """Store the compile step's deliverable and move the run on, once (False: it moved already)."""
        did = new_id()

        def store(p: Any) -> bool:
            current = p.hmget(keys.run(rid), ["status", "step"])
            if current[0] != RunStatus.RUNNING.encode() or int(current[1]) != step:
                return False
            version = int(p.llen(keys.run_deliverables(rid))) + 1
            p.multi()
            p.hset(keys.deliverable(did), mapping={"id": did, "run_id": rid, **compiled.deliverable,
                                                   "version": version, "created_at": self.clock.now()})
            if compiled.file is not None:
                p.set(keys.deliverable_file(did), compiled.file)
            p.rpush(keys.run_deliverables(rid), did)
            p.hset(keys.run(rid), mapping={"step": step + 1, "result_summary": compiled.summary})
            self.leases.lease(p, f"step:{rid}:{step + 1}")
            self.store.count_usage(p, rid, compiled.usage, compiled.calls)
            return True

        if self.r.transaction(store, keys.run(rid), value_from_callable=True):
            return True
        self.store.count_usage_now(rid, compiled.usage, compiled.calls)  # spent, though another job won
        return False

    # -- end states ----------------------------------------------------------
    def _end(self, rid: str, status: RunStatus, allowed: frozenset[str], **extra: Any) -> bool:
        """Move the run to ``status`` from one of ``allowed`` and notify the owner, atomically."""
        kind = {RunStatus.COMPLETED: "task_completed", RunStatus.AWAITING_REVIEW: "task_awaiting_review",
                RunStatus.FAILED: "task_failed", RunStatus.CANCELLED: "task_cancelled"}[status]

        after: list[tuple[str, tuple[Any, ...]]] = []

        def end(p: Any) -> bool:
            run = {k.decode(): v.decode() for k, v in p.hgetall(keys.run(rid)).items()}
            if run.get("status") not in allowed:
                return False
            versions = int(p.llen(keys.run_deliverables(rid)))
            update = {"status": status.value, **extra}
            if status != RunStatus.AWAITING_REVIEW:
                update["completed_at"] = self.clock.now()
            p.multi()
            p.hset(keys.run(rid), mapping=update)
            self.store.notify(p, self.clock.now(), run["owner"], kind, run, END_TEXT[kind].format(**{**run, **update}))
            self.events.emit(p, f"run.{status.value}", run_id=rid, task_id=run["task_id"], status=status.value,
                               error_message=extra.get("error_message"))
            self.leases.lease(p, f"notify:{rid}:{kind}")
            after.clear()  # a retried transaction plans again
            if status == RunStatus.COMPLETED and versions:
                after.extend(self.reporting.plan(p, run, versions))
            after.extend(self.callbacks.plan(p, run, status.value))
            return True

        ended = bool(self.r.transaction(end, keys.run(rid), value_from_callable=True))
        if ended:
            self.jobs.enqueue_many([("notify_owner", (rid, kind)), *after])
        return ended

    def notify_owner(self, rid: str, kind: str) -> None:
        """Tell the owner on each chat channel they are linked on (in-app was done with the change).

        Each (notification, channel) pair is sent at most once: it is claimed in a set first, and
        the claim is given back only when the send fails in a way worth retrying.
        """
        member = f"notify:{rid}:{kind}"
        if kind in RUNNING_TEXT:
            self.owners.tell(rid, kind, RUNNING_TEXT[kind].format(**self.store.run_fields(rid)))
            self.leases.release(member)
            return
        self.conversations.deliver_result(rid)  # a delegated run's result goes back to who asked
        run = self.store.run_fields(rid)
        text = END_TEXT[kind].format(**run)
        if kind in ("task_completed", "task_awaiting_review") and run.get("result_summary"):
            text += f" {run['result_summary']}"
        self.owners.tell(rid, kind, text)
        self.leases.release(member)

    def finish(self, rid: str) -> None:
        review = self.store.definition_of(self.store.run_fields(rid)).review
        self._end(rid, RunStatus.AWAITING_REVIEW if review else RunStatus.COMPLETED,
                  frozenset({RunStatus.RUNNING}))

    def fail(self, rid: str, reason: str) -> None:
        """A failed run is final and never retried automatically (tools may have had effects)."""
        if self._end(rid, RunStatus.FAILED, frozenset({RunStatus.PENDING, RunStatus.RUNNING}),
                     error_message=reason):
            self._close_open_subtasks(rid, "cancelled", f"run failed: {reason}")

    def cancel(self, rid: str) -> None:
        """Cancel a run in any state that is not final; open sub-tasks and their chases go too."""
        run = self.store.run_fields(rid)
        if run["status"] in FINAL_RUN:
            raise Conflict(f"run {rid} is already {run['status']}")
        if not self._end(rid, RunStatus.CANCELLED,
                         frozenset({RunStatus.PENDING, RunStatus.RUNNING, RunStatus.AWAITING_REVIEW})):
            raise Conflict(f"run {rid} is already {self.store.run_fields(rid)['status']}")
        self._close_open_subtasks(rid, "cancelled", "run cancelled")

    def approve(self, rid: str) -> None:
        run = self.store.run_fields(rid)
        if run["status"] != RunStatus.AWAITING_REVIEW:
            raise Conflict(f"run {rid} is {run['status']}, not awaiting_review")
        if not self._end(rid, RunStatus.COMPLETED, frozenset({RunStatus.AWAITING_REVIEW})):
            raise Conflict(f"run {rid} changed state; try again")

    def _close_open_subtasks(self, rid: str, status: str, reason: str) -> None:
        for sub in self.store.subs_fields(self.store.sub_ids(rid)):
            if sub.get("status") in ("pending", "running"):
                self.subtasks.finish(sub["id"], status, reason)
