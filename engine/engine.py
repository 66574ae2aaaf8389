"""The engine facade: wiring, shared helpers and the work-lease sweeper that makes jobs lossless.

Every job the engine enqueues is guarded by a *lease*: a member of ``taskbot:leases`` whose
score is the time by which the work must be done. A job removes its lease when it finishes;
the sweeper re-enqueues any lease that expired (its worker died, Redis lost the queued job,
the scheduler was killed). Every job is idempotent, so running one twice is harmless.
"""

from __future__ import annotations

import functools
import json
import logging
import secrets
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import redis

from . import keys
from .agent import AgentConfig
from .conversation import Conversations
from .events import Events
from .inbound import Inbox
from .model import Assistant, Contact, ConversationState, TaskDefinition, TaskState
from .ports import Channel, Clock, Jobs, Model, SystemClock
from .runs import Runs
from .schedules import Schedules
from .store import Store
from .subtasks import Subtasks

log = logging.getLogger("taskbot.engine")

#: A lease re-driven this many times is given up (its job fails every time).
MAX_REDRIVES = 10

#: Lease kinds and the job that re-drives each; the member is ``kind:arg1:arg2...``.
LEASE_JOBS = {"step": "advance", "open": "open_batch", "fanin": "fan_in", "in": "process_inbound",
              "notify": "notify_owner"}


@functools.lru_cache(maxsize=512)
def _snapshot(r: redis.Redis, rid: str) -> TaskDefinition:
    """A run's definition snapshot never changes, so each process reads and parses it once.

    It lives in its own key: a run's hash is read on every answer, and a definition with a
    thousand participants listed would make every such read tens of kilobytes.
    """
    raw = r.get(keys.run_definition(rid))
    if raw is None:
        from .errors import NotFound

        raise NotFound("run", rid)
    return TaskDefinition.model_validate_json(raw)


def new_id(nbytes: int = 6) -> str:
    return secrets.token_hex(nbytes)


class Engine:
    """Runs tasks: fan-out, chase, fan-in and compile, over Redis, a job queue and channels.

    Args:
        r: the Redis connection (store and queue).
        jobs: the job queue port.
        channels: configured channel adapters by name.
        clock: the time source (tests inject one).
        default_model: model of the built-in ``default`` assistant.
        lease_seconds: how long a job may take before the sweeper runs it again.
        batch_size: sub-tasks opened per fan-out job.
        public_url: base URL for web chat links.
        webhook_urls: where system events are POSTed (none: events are not recorded).
        model: the LLM port for assistants whose model is not ``scripted`` (the litellm adapter).
        agent: how the agent loop behaves (history bound, steps per turn, retries).
        max_concurrent: most assistant turns at once across every worker.
    """

    def __init__(
        self,
        r: redis.Redis,
        jobs: Jobs,
        channels: Mapping[str, Channel],
        *,
        clock: Clock | None = None,
        default_model: str = "scripted",
        lease_seconds: float = 60.0,
        batch_size: int = 100,
        public_url: str = "http://127.0.0.1:8080",
        webhook_urls: Sequence[str] = (),
        model: Model | None = None,
        agent: AgentConfig | None = None,
        max_concurrent: int = 10,
    ) -> None:
        self.r = r
        self.store = Store(r)
        self.jobs = jobs
        self.channels = dict(channels)
        self.clock = clock or SystemClock()
        self.default_model = default_model
        self.lease_seconds = lease_seconds
        self.batch_size = batch_size
        self.public_url = public_url.rstrip("/")
        self.events = Events(self, webhook_urls)
        self.runs = Runs(self)
        self.subtasks = Subtasks(self)
        self.inbox = Inbox(self)
        self.schedules = Schedules(self)
        self.conversations = Conversations(self, model, agent or AgentConfig(), max_concurrent)

    # -- helpers shared by the mixins -------------------------------------
    def now(self) -> float:
        return self.clock.now()

    def at(self, ts: float) -> datetime:
        """rq-scheduler wants naive UTC datetimes."""
        return datetime.fromtimestamp(ts, UTC).replace(tzinfo=None)

    def definition_of(self, run: Mapping[str, str] | str) -> TaskDefinition:
        """The definition a run follows, given the run's fields or its id."""
        return _snapshot(self.r, run if isinstance(run, str) else run["id"])

    def state_of(self, run: Mapping[str, str] | str, step: int) -> Any:
        return self.definition_of(run).states()[step]

    def fields_of(self, run: Mapping[str, str] | str, step: int) -> list[Any]:
        state = self.state_of(run, step)
        assert isinstance(state, ConversationState | TaskState)
        return list(state.fields)

    def assistant_of(self, run: Mapping[str, str]) -> Assistant:
        return self.store.get_assistant(self.definition_of(run).assistant, self.default_model)

    def chat_url(self, token: str) -> str:
        return f"{self.public_url}/chat/{token}"

    def lease(self, pipe: Any, member: str, deadline: float | None = None) -> None:
        pipe.zadd(keys.LEASES, {member: deadline if deadline is not None else self.now() + self.lease_seconds})

    def release(self, member: str, pipe: Any = None) -> None:
        """The work is done: drop its lease (and its re-drive count, if it ever had one)."""
        p = pipe if pipe is not None else self.r.pipeline(transaction=False)
        p.zrem(keys.LEASES, member)
        p.hdel(keys.REDRIVES, member)
        if pipe is None:
            p.execute()

    def notify(self, pipe: Any, owner: str, kind: str, run: Mapping[str, str], text: str) -> None:
        """Queue an in-app notification inside the caller's transaction, so it happens once."""
        note = {"id": new_id(), "kind": kind, "run_id": run["id"], "task_id": run["task_id"],
                "text": text, "at": self.now()}
        pipe.rpush(keys.notifications(owner), json.dumps(note))

    # -- the service layer entry points call ---------------------------------
    def apply_definition(self, data: Any) -> TaskDefinition:
        """Validate and store a task definition (a mapping, or YAML/JSON text); refused whole."""
        from .definitions import load_definition, load_definition_text

        definition = load_definition_text(data) if isinstance(data, str) else load_definition(data)
        return self.runs.apply(definition)

    def apply_assistant(self, data: Any) -> Assistant:
        """Validate and store an assistant (a mapping, or YAML/JSON text); refused whole."""
        from .definitions import parse_yaml, validate

        assistant: Assistant = validate(Assistant, parse_yaml(data) if isinstance(data, str) else data)
        self.store.put_assistant(assistant)
        self.conversations.forget(assistant.id)
        return assistant

    def import_contacts(self, rows: list[dict[str, Any]]) -> list[Contact]:
        """Validate every row, then store them all (or none)."""
        from .definitions import load_contacts

        contacts = load_contacts(rows)
        self.store.put_contacts(contacts)
        return contacts

    def import_dataset(self, name: str, rows: list[dict[str, Any]]) -> int:
        from .bounds import check_value
        from .errors import InvalidInput
        from .model import SLUG

        if not SLUG.match(name):
            raise InvalidInput("NAME", "must be a slug: lowercase letters, digits, - and _")
        for i, row in enumerate(rows):
            if not isinstance(row, dict):
                raise InvalidInput(f"[{i}]", "expected an object")
        check_value(rows)
        self.store.put_dataset(name, rows)
        return len(rows)

    def run_view(self, rid: str, *, conversations: bool = True) -> dict[str, Any]:
        from .views import run_view

        return run_view(self, rid, conversations=conversations)

    def deliverable_file(self, did: str) -> tuple[str, str, bytes]:
        """An image or file deliverable: (file name, media type, bytes).

        Raises:
            NotFound: no such deliverable, or it is not a file.
        """
        with self.r.pipeline(transaction=False) as p:
            p.hmget(keys.deliverable(did), ["filename", "content_type"])
            p.get(keys.deliverable_file(did))
            (name, kind), data = p.execute()
        if data is None or name is None:
            from .errors import NotFound

            raise NotFound("deliverable file", did)
        return name.decode(), (kind or b"application/octet-stream").decode(), bytes(data)

    def list_runs(self, task_id: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Newest first, without sub-task conversations (they can be large)."""
        from .views import run_view

        return [run_view(self, rid, subtasks=False) for rid in self.store.run_ids(task_id, limit)]

    def progress(self, rid: str) -> dict[str, int]:
        from .views import progress

        return progress(self, rid)

    # -- the sweeper --------------------------------------------------------
    def sweep(self, limit: int = 500) -> int:
        """Re-enqueue work whose lease expired; returns how many items were re-driven.

        Called by the scheduler loop about once a second. The lease is pushed forward before
        the job is enqueued, so a busy queue does not get the same item over and over.
        """
        self.conversations.slots.sweep()  # slots of dead workers back, waiters that may go woken
        now = self.now()
        members = [m.decode() for m in self.r.zrangebyscore(keys.LEASES, "-inf", now, start=0, num=limit)]
        if not members:
            return 0
        with self.r.pipeline(transaction=False) as p:
            for m in members:
                p.zadd(keys.LEASES, {m: now + self.lease_seconds}, xx=True)
                p.hincrby(keys.REDRIVES, m, 1)
            counts = p.execute()[1::2]
        calls = []
        for m, count in zip(members, counts, strict=True):
            if count > MAX_REDRIVES:
                # A job that fails every time must not be retried forever: park it where an
                # operator sees it (`taskbot:dead`), with the time it was given up.
                log.error("giving up on %s after %d re-drives; see taskbot:dead", m, count - 1)
                with self.r.pipeline() as p:
                    self.release(m, p)
                    p.hset(keys.DEAD, m, now)
                    p.execute()
                continue
            kind, *args = m.split(":")
            func = LEASE_JOBS.get(kind)
            if func is None:
                log.warning("unknown lease %s dropped", m)
                self.release(m)
                continue
            log.info("re-driving %s (lease expired)", m)
            calls.append((func, tuple(args)))  # jobs take strings and convert
        self.jobs.enqueue_many(calls)
        return len(calls)
