"""A run's token budget (``budget: {tokens: N}`` on the task or its assistant): whether the next model
call may be made, and the owner told once when it may not.

Both the conversations' turns and the compile step ask before they call the model, so a run
stops before it goes over, not after: the next call is reckoned at the run's average call so far.
"""

from __future__ import annotations

import logging

from . import keys
from .leases import Leases
from .model import Assistant
from .ports import Clock, Jobs
from .store import Store

log = logging.getLogger("taskbot.budget")


class Budgets:
    """Check runs against their token budget.

    Args:
        store: the records (the run's definition and usage; the in-app notification).
        clock: the time source.
        jobs, leases: the owner's message on their channels is a job (``notify_owner``), leased with the
            in-app notification, so that it is not lost.
    """

    def __init__(self, store: Store, clock: Clock, jobs: Jobs, leases: Leases) -> None:
        self.store = store
        self.r = store.r
        self.clock = clock
        self.jobs = jobs
        self.leases = leases

    def limit(self, run: dict[str, str], assistant: Assistant) -> int | None:
        """The run's budget in tokens: the lower of the task's and the assistant's; None without one."""
        limits = [b.tokens for b in (self.store.definition_of(run).budget, assistant.budget) if b is not None]
        return min(limits) if limits else None

    def spent(self, run: dict[str, str], assistant: Assistant) -> bool:
        """True when the run's next model call would take it past its budget; the first time, the owner is
        told, in-app and on each channel they are linked on (once per run)."""
        limit = self.limit(run, assistant)
        if limit is None:
            return False
        used = self.store.usage(run["id"])
        spent, calls = used["total_tokens"], used["model_calls"]
        if spent + (spent / calls if calls else 0) <= limit:
            return False
        if self.r.sadd(keys.run_notified(run["id"]), "budget_reached:app"):
            text = (f"Run {run['id']} of {run['task_id']} reached its budget of {limit:,} model tokens "
                    f"({spent:,} spent): taskbot calls the model no more in this run; the remaining participants "
                    f"get the scripted questions, and the report is written without the model.")
            with self.r.pipeline() as p:
                self.store.notify(p, self.clock.now(), run["owner"], "budget_reached", run, text)
                self.leases.lease(p, f"notify:{run['id']}:budget_reached")
                p.execute()
            self.jobs.enqueue("notify_owner", run["id"], "budget_reached")
            log.warning("%s", text)
        return True
