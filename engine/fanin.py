"""Fan-in (SPEC §4, §11): a closed fan-out's open sub-tasks ended, then its answers merged into ``gathered``.

A state closes once (see :mod:`.subtasks` ``FINISH`` and :mod:`.deadlines`): when its last
sub-task becomes final, at its quorum, or at its deadline. Closed early, its sub-tasks still
open end ``timed_out`` with the reason (``closed at quorum``, ``closed at deadline``) and their
chases are dropped. One whose answer is stored but not yet applied (it waits in its inbox, a
worker died on it) is not cut off: the answer came in time, so fan-in waits for it to be
applied, at most ``grace`` seconds after the close, and takes it in.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from . import keys
from .inbox import Inbox
from .leases import Leases
from .model import RunStatus
from .ports import Clock
from .store import Store, dumps
from .subtasks import Subtasks

log = logging.getLogger("taskbot.fanin")

#: How often a fan-in waiting for stored answers looks again (seconds).
RECHECK = 0.5


class FanIn:
    """Close a state's open sub-tasks and merge its answers, once.

    Args:
        store: the records.
        clock: the time source.
        leases: the fan-in lease (held until the merge commits).
        subtasks: ends the open sub-tasks of a state closed early.
        inbox: whether a sub-task's answer waits to be applied.
        grace: the longest fan-in waits for such an answer after the close (seconds).
    """

    def __init__(self, store: Store, clock: Clock, leases: Leases, subtasks: Subtasks, inbox: Inbox,
                 grace: float) -> None:
        self.store = store
        self.r = store.r
        self.clock = clock
        self.leases = leases
        self.subtasks = subtasks
        self.inbox = inbox
        self.grace = grace

    def merge(self, rid: str, step: int) -> bool:
        """Merge the closed state's answers into ``gathered`` and lease the next state (once).

        Returns:
            True when this call merged (the caller enters the next state); False when the
            state was merged already, or fan-in waits for stored answers (its lease is deferred).
        """
        member = f"fanin:{rid}:{step}"
        run = self.store.run_fields(rid)
        if run["status"] != RunStatus.RUNNING or int(run["step"]) != step:
            self.leases.release(member)
            return False
        if not self.close_out(run, step):
            return False

        def merge(p: Any) -> bool:
            current = {k.decode(): v.decode() for k, v in p.hgetall(keys.run(rid)).items()}
            if current["status"] != RunStatus.RUNNING or int(current["step"]) != step:
                return False
            # read inside the transaction: a late completion that commits meanwhile changes the
            # run's hash, so this is tried again with its sub-task as it now is (no lost answer)
            subs = [s for s in self.store.subs_fields(self.store.sub_ids(rid)) if s.get("step") == str(step)]
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
            self.leases.release(member, p)
            self.leases.lease(p, f"step:{rid}:{step + 1}")
            return True

        if self.r.transaction(merge, keys.run(rid), value_from_callable=True):
            return True
        self.leases.release(member)
        return False

    def close_out(self, run: dict[str, str], step: int) -> bool:
        """End the open sub-tasks of a state that closed early; False while one's answer waits."""
        rid = run["id"]
        raw = self.r.get(keys.run_closed(rid, step))
        why = raw.decode() if raw else "all"
        if why == "all":
            return True
        now = self.clock.now()
        closed_at = float(run.get("closed_at") or now)
        waiting = []
        for sub in self.store.subs_fields(self.store.sub_ids(rid)):
            if sub.get("step") != str(step) or sub.get("status") not in ("pending", "running"):
                continue
            if self.inbox.pending(sub["id"]) and now < closed_at + self.grace:
                waiting.append(sub["id"])
                continue
            self.subtasks.finish(sub["id"], "timed_out", f"closed at {why}")
        if waiting:
            log.info("run %s closed at %s; waiting for the stored answers of %s", rid, why, ", ".join(waiting))
            self.leases.defer(f"fanin:{rid}:{step}", now + RECHECK)
            return False
        return True
