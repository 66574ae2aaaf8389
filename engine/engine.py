"""The engine facade: the services an entry point uses, and the few operations that span them.

Nothing below imports this module: each service gets the collaborators it uses in its
constructor, and the composition root (``bot/bootstrap.py``) builds them and this facade.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis

from .access import Caller, may, notification_owners
from .bounds import check_value
from .callbacks import Callbacks
from .conversation import Conversations
from .deadlines import Deadlines
from .definitions import load_contacts, load_definition, load_definition_text, parse_yaml, validate
from .errors import InvalidInput
from .events import Events
from .inbound import InboundProcessor
from .inbox import Inbox
from .leases import Leases
from .model import SLUG, Assistant, Contact, TaskDefinition
from .ports import Channel, Clock, Jobs
from .reporting import Reporting
from .results import results_csv
from .revisions import Revisions
from .runs import Runs
from .schedules import Schedules
from .store import Store
from .subtasks import Subtasks
from .sweeper import Sweeper
from .tokens import Tokens
from .views import progress, run_view


@dataclass
class Engine:
    """Runs tasks: fan-out, chase, fan-in and compile, over Redis, a job queue and channels.

    Attributes:
        r: the Redis connection (store and queue).
        store: the records.
        jobs: the job queue port.
        channels: the configured channel adapters by name.
        clock: the time source.
        leases: the work leases.
        events: system events for webhooks.
        inbox: inbound messages stored, routed and ordered (what channel entry points call).
        inbound: inbound messages processed (the ``process_inbox`` job).
        conversations: openings, notes and model turns; ``conversations.slots`` the limits.
        subtasks: opening, chasing, finishing sub-tasks.
        runs: the run lifecycle.
        schedules: cron schedules.
        sweeper: re-drives work whose lease expired.
        tokens: people's API tokens (who a token stands for; policy in ``engine.access``).
        public_url: base of web chat links.
        deadlines: fan-out deadlines (the scheduler pass hands out the due ones).
        revisions: late answers and the new versions they make.
        reporting: deliverables posted to ``report_to`` targets.
        callbacks: Web Trigger callbacks.
    """

    r: redis.Redis
    store: Store
    jobs: Jobs
    channels: Mapping[str, Channel]
    clock: Clock
    leases: Leases
    events: Events
    inbox: Inbox
    inbound: InboundProcessor
    conversations: Conversations
    subtasks: Subtasks
    runs: Runs
    schedules: Schedules
    sweeper: Sweeper
    tokens: Tokens
    public_url: str
    deadlines: Deadlines
    revisions: Revisions
    reporting: Reporting
    callbacks: Callbacks

    @property
    def default_model(self) -> str:
        return self.store.default_model

    @property
    def lease_seconds(self) -> float:
        return self.leases.lease_seconds

    def now(self) -> float:
        return self.clock.now()

    def definition_of(self, run: Mapping[str, str] | str) -> TaskDefinition:
        return self.store.definition_of(run)

    def chat_url(self, token: str) -> str:
        return f"{self.public_url.rstrip('/')}/chat/{token}"

    # -- what entry points call ---------------------------------------------------------
    def apply_definition(self, data: Any) -> TaskDefinition:
        """Validate and store a task definition (a mapping, or YAML/JSON text); refused whole."""
        definition = load_definition_text(data) if isinstance(data, str) else load_definition(data)
        return self.runs.apply(definition)

    def apply_assistant(self, data: Any) -> Assistant:
        """Validate and store an assistant (a mapping, or YAML/JSON text); refused whole."""
        assistant: Assistant = validate(Assistant, parse_yaml(data) if isinstance(data, str) else data)
        self.store.put_assistant(assistant)
        self.conversations.forget(assistant.id)
        return assistant

    def import_contacts(self, rows: list[dict[str, Any]]) -> list[Contact]:
        """Validate every row, then store them all (or none)."""
        contacts = load_contacts(rows)
        self.store.put_contacts(contacts)
        return contacts

    def import_dataset(self, name: str, rows: list[dict[str, Any]]) -> int:
        if not SLUG.match(name):
            raise InvalidInput("NAME", "must be a slug: lowercase letters, digits, - and _")
        for i, row in enumerate(rows):
            if not isinstance(row, dict):
                raise InvalidInput(f"[{i}]", "expected an object")
        check_value(rows)
        self.store.put_dataset(name, rows)
        return len(rows)

    def run_view(self, rid: str, *, conversations: bool = True) -> dict[str, Any]:
        return run_view(self.store, self.chat_url, rid, conversations=conversations)

    def deliverable_file(self, did: str) -> tuple[str, str, bytes]:
        return self.store.deliverable_file(did)

    def list_runs(self, task_id: str | None = None, limit: int = 50,
                  caller: Caller | None = None) -> list[dict[str, Any]]:
        """Newest first, without sub-task conversations (they can be large); with ``caller``, the runs they may see."""
        ids = (self.store.run_ids(task_id, limit) if caller is None or caller.admin else
               self.store.run_ids_where(lambda owner: may(caller, "see", owner), task_id, limit))
        return [run_view(self.store, self.chat_url, rid, subtasks=False) for rid in ids]

    def results_csv(self, rid: str) -> str:
        """The run's answers, one row per participant (``taskbot results --csv``, the API's results.csv)."""
        return results_csv(self.store, rid)

    def notifications_for(self, caller: Caller, limit: int = 100) -> list[dict[str, Any]]:
        """The caller's in-app notifications, under every identity they own things by, oldest first."""
        notes = [n for owner in notification_owners(caller) for n in self.store.notifications(owner, limit)]
        return sorted(notes, key=lambda n: n["at"])[-limit:]

    def progress(self, rid: str) -> dict[str, int]:
        return progress(self.store, rid)

    def sweep(self, limit: int = 500) -> int:
        return self.sweeper.sweep(limit)
