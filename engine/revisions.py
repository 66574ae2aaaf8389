"""New versions of a deliverable (SPEC §11 ``accept_late``): a late answer merged in and compiled again.

A timed-out sub-task of a state with ``accept_late`` that gets every answer becomes
``completed``, marked ``late`` (:meth:`Revisions.complete_late`). Before its state's fan-in
that is all: the fan-in merges it like any answer (the change touches the run's hash, which
a fan-in merging at that moment watches, so the merge is done again with it). After the
fan-in, the sub-task joins the run's ``late`` list, and the ``revise`` job takes that list
in order, one sub-task at a time: it merges the answers into ``gathered``, compiles the task's
compile state again (a model sees the previous version and the change) and stores the result
as version N+1, in one ``WATCH`` transaction that checks nothing moved meanwhile; if something
did, it computes again. So two late answers at the same moment make versions 2 and 3, and
version 3 holds both. Earlier versions are kept. The owner is told what changed, and the
new version goes to the task's ``report_to`` targets.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import redis

from . import keys
from .compiler import CompileFailed, Compiler, Revision
from .events import Events
from .lateness import TAKING, accepts_late
from .leases import Leases
from .model import CompileState, RunStatus
from .owners import Owners
from .ports import Clock, Jobs
from .reporting import Reporting, version_of
from .store import Store, decode_hash, dumps, new_id

log = logging.getLogger("taskbot.revisions")


class Revisions:
    """Complete late sub-tasks and make the new versions they call for.

    Args:
        store: the records.
        clock: the time source.
        jobs: the job queue (``revise``, ``announce_revision``, report posts).
        leases: the revision's lease (held while the late list is not empty).
        events: records ``subtask.completed`` (late) and ``deliverable.versioned``.
        compiler: compiles the new version.
        reporting: posts it to the task's ``report_to`` targets.
        owners: tells the owner on their channels.
    """

    def __init__(self, store: Store, clock: Clock, jobs: Jobs, leases: Leases, events: Events, compiler: Compiler,
                 reporting: Reporting, owners: Owners) -> None:
        self.store = store
        self.r = store.r
        self.clock = clock
        self.jobs = jobs
        self.leases = leases
        self.events = events
        self.compiler = compiler
        self.reporting = reporting
        self.owners = owners

    def complete_late(self, sid: str) -> bool:
        """A timed-out sub-task got every answer: it becomes ``completed`` + ``late``; True when it did."""
        sub = self.store.sub_fields(sid)
        rid, step = sub["run_id"], int(sub["step"])
        if not accepts_late(self.store.state_of(rid, step)):
            return False
        now = self.clock.now()

        def change(p: Any) -> bool | None:
            current = decode_hash(p.hgetall(keys.sub(sid)))
            status, run_step = p.hmget(keys.run(rid), ["status", "step"])
            if current.get("status") != "timed_out" or status is None or status.decode() not in TAKING:
                return None
            fanned_in = int(run_step) > step
            p.multi()
            p.hset(keys.sub(sid), mapping={"status": "completed", "late": "1", "late_at": now, "completed_at": now,
                                           "timed_out_reason": current.get("reason", "")})
            p.hdel(keys.sub(sid), "reason")
            if current.get("channel") and current.get("address"):
                p.zrem(keys.active(current["channel"], current["address"]), sid)
            p.hincrby(keys.run(rid), "late_answers", 1)  # a fan-in merging this very moment merges again
            self.events.emit(p, "subtask.completed", run_id=rid, subtask_id=sid, status="completed", reason=None,
                             late=True)
            if fanned_in:
                p.rpush(keys.run_late(rid), sid)
                self.leases.lease(p, f"revise:{rid}")
            return fanned_in

        fanned_in = self.r.transaction(change, keys.sub(sid), keys.run(rid), value_from_callable=True)
        if fanned_in:
            self.jobs.enqueue("revise", rid)
        return fanned_in is not None

    # -- one version per late sub-task, in order ---------------------------------------------------------
    def revise(self, rid: str) -> None:
        """Take the run's late sub-tasks in order, each into its own new version (the ``revise`` job)."""
        member = f"revise:{rid}"
        while True:
            head = self.r.lindex(keys.run_late(rid), 0)
            if head is None:
                if self._release_if_empty(rid, member):
                    return
                continue
            if self._one(rid, head.decode(), member) == "wait":
                return

    def _release_if_empty(self, rid: str, member: str) -> bool:
        def release(p: Any) -> bool:
            if p.llen(keys.run_late(rid)):
                return False
            p.multi()
            self.leases.release(member, p)
            return True

        return bool(self.r.transaction(release, keys.run_late(rid), value_from_callable=True))

    def _one(self, rid: str, sid: str, member: str) -> str:
        """Merge one late sub-task and store its version: ``done``, ``again`` (something moved), ``wait``."""
        run, sub = self.store.run_fields(rid), self.store.sub_fields(sid)
        states = self.store.definition_of(run).states()
        compile_at = max((i for i, s in enumerate(states) if isinstance(s, CompileState)), default=None)
        if run["status"] == RunStatus.RUNNING and compile_at is not None and int(run["step"]) == compile_at:
            self.leases.defer(member, self.clock.now() + 1.0)  # being compiled now: merge into the next version
            return "wait"
        data = json.loads(sub["data"])
        gathered = json.loads(run["gathered"])
        gathered.setdefault("tasks", {})[sub["participant_id"]] = data
        gathered.setdefault("task_status", {})[sub["participant_id"]] = "completed"
        change = f"{sub.get('name') or sub['participant_id']} answered late ({', '.join(data) or 'no answers'})"
        compiled = None
        if run["status"] in (RunStatus.COMPLETED, RunStatus.AWAITING_REVIEW) and compile_at is not None:
            stored = self.store.deliverables(rid)
            state = states[compile_at]
            assert isinstance(state, CompileState)
            waiting = frozenset(s.decode() for s in self.r.lrange(keys.run_late(rid), 1, -1))  # their own versions
            result = self.compiler.compile({**run, "gathered": dumps(gathered)}, compile_at, state, item=member,
                                           revision=Revision(stored[-1]["content"] if stored else "", change, waiting))
            if result is None:
                return "wait"  # for a model slot: the lease stays, and a freed slot wakes this job
            if isinstance(result, CompileFailed):
                log.error("run %s: the new version for %s failed: %s", rid, sid, result.reason)
                self.store.count_usage_now(rid, result.usage, result.calls)
                change += f"; it is in the data, but compiling a new version failed: {result.reason}"
            else:
                compiled = result
        return self._commit(run, sid, sub, gathered, change, compiled)

    def _commit(self, run: dict[str, str], sid: str, sub: dict[str, str], gathered: dict[str, Any], change: str,
                compiled: Any) -> str:
        rid, now = run["id"], self.clock.now()
        calls: list[tuple[str, tuple[Any, ...]]] = []
        with self.r.pipeline() as p:
            try:
                p.watch(keys.run(rid), keys.run_late(rid), keys.run_deliverables(rid))
                if p.lindex(keys.run_late(rid), 0) != sid.encode() or \
                        p.hget(keys.run(rid), "gathered") != run["gathered"].encode():
                    p.unwatch()
                    return "again"
                version = int(p.llen(keys.run_deliverables(rid))) + 1
                p.multi()
                p.hset(keys.run(rid), "gathered", dumps(gathered))
                p.lpop(keys.run_late(rid))
                if compiled is not None:
                    did = new_id()
                    p.hset(keys.deliverable(did), mapping={"id": did, "run_id": rid, **compiled.deliverable,
                                                           "version": version, "change": change, "created_at": now})
                    if compiled.file is not None:
                        p.set(keys.deliverable_file(did), compiled.file)
                    p.rpush(keys.run_deliverables(rid), did)
                    p.hset(keys.run(rid), "result_summary", compiled.summary)
                    self.store.count_usage(p, rid, compiled.usage, compiled.calls)
                    self.store.notify(p, now, run["owner"], "task_revised", run, self.text(run, version, change))
                    self.events.emit(p, "deliverable.versioned", run_id=rid, deliverable_id=did, version=version,
                                     subtask_id=sid, participant_id=sub["participant_id"],
                                     fields=sorted(json.loads(sub["data"])))
                    self.leases.lease(p, f"revised:{rid}:{version}")
                    calls.append(("announce_revision", (rid, str(version))))
                    if run["status"] == RunStatus.COMPLETED:
                        calls += self.reporting.plan(p, run, version)
                p.execute()
            except redis.WatchError:
                return "again"
        self.jobs.enqueue_many(calls)
        return "done"

    @staticmethod
    def text(run: dict[str, str], version: int, change: str) -> str:
        return (f"Run {run['id']} of {run['task_id']}: {change}. Version {version} of the deliverable replaces "
                f"version {version - 1}.")

    def announce(self, rid: str, version: int) -> None:
        """Tell the owner on their channels about a new version (the ``announce_revision`` job)."""
        run = self.store.run_fields(rid)
        stored = self.store.deliverables(rid)
        change = next((d.get("change", "") for i, d in enumerate(stored) if version_of(stored, i) == version), "")
        self.owners.tell(rid, f"v{version}", self.text(run, version, change))
        self.leases.release(f"revised:{rid}:{version}")
