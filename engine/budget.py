"""A run's token budget (``budget: {tokens: N}`` on the task or its assistant): whether the next model
call may be made, and the owner told once when it may not.

Both the conversations' turns and the compile step ask before they call the model. The next call
is reckoned at the run's average call so far, so a run stops before it goes over on calls like
those before it; a compile, whose prompt carries every answer, may be larger than that average.
"""

from __future__ import annotations

import logging
from typing import Any

from . import keys
from .leases import Leases
from .model import Assistant
from .ports import Clock, Jobs
from .store import Store

log = logging.getLogger("taskbot.budget")
#: The run's mark that its owner was told, among the (what:channel) marks of Owners.tell: no colon, no clash.
MARK = "budget_reached"


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
        text = (f"Run {run['id']} of {run['task_id']} reached its budget of {limit:,} model tokens "
                f"({spent:,} spent): taskbot calls the model no more in this run; the remaining participants "
                f"get the scripted questions, and the deliverable is compiled without the model where it can be.")
        told = keys.run_notified(run["id"])

        def tell(p: Any) -> bool:  # the mark, the in-app notification and the channels' job's lease: all or none
            if p.sismember(told, MARK):
                return False
            p.multi()
            p.sadd(told, MARK)
            self.store.notify(p, self.clock.now(), run["owner"], "budget_reached", run, text)
            self.leases.lease(p, f"notify:{run['id']}:budget_reached")
            return True

        if self.r.transaction(tell, told, value_from_callable=True):
            self.jobs.enqueue("notify_owner", run["id"], "budget_reached")
            log.warning("%s", text)
        return True
