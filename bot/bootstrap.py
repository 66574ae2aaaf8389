"""The composition root: builds the engine's services with real adapters, once per process.

Each service gets the few collaborators it uses, built here bottom up, so the dependency
graph is this one function: store, clock, jobs and leases at the bottom; the outbox, events,
slots and inbox on them; conversations, the compiler, owner messages, escalations, deadlines,
reporting and callbacks above; sub-tasks, fan-in, runs, revisions and schedules on those;
inbound processing, the sweeper and people's tokens on top.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence

import redis

from bot.llm import LiteLLM  # cheap: litellm itself is imported on the first model call
from bot.queue import RQJobs
from channels import build_channels
from engine.agent import AgentConfig
from engine.budget import Budgets
from engine.callbacks import Callbacks
from engine.compiler import Compiler
from engine.conversation import Conversations
from engine.deadlines import Deadlines
from engine.engine import Engine
from engine.escalations import Escalations
from engine.events import Events
from engine.fanin import FanIn
from engine.inbound import InboundProcessor
from engine.inbox import Inbox
from engine.leases import Leases
from engine.limits import Slots
from engine.outbox import Outbox
from engine.owners import Owners
from engine.ports import Channel, Clock, Jobs, Model, Poster, SystemClock
from engine.reporting import Reporting
from engine.revisions import Revisions
from engine.runs import Runs
from engine.schedules import Schedules
from engine.store import Store
from engine.subtasks import Subtasks
from engine.sweeper import Sweeper
from engine.tokens import Tokens

from . import plugins
from .reconnect import command_retry
from .settings import Settings
from .webhooks import SignedPoster

log = logging.getLogger("taskbot")

#: A model slot outlives a few missed heartbeats of a busy worker before it counts as dead.
MIN_SLOT_TTL = 10.0


def connect(url: str) -> redis.Redis:
    """A client that rides out a Redis restart: dropped connections are retried (``command_retry``),
    an idle pooled one is checked before use, and a connect gives up after 5 s (a host that is gone)."""
    return redis.Redis.from_url(url, health_check_interval=30, socket_connect_timeout=5, socket_keepalive=True,
                                retry=command_retry())


def wire(r: redis.Redis, jobs: Jobs, channels: Mapping[str, Channel], *, clock: Clock | None = None,
         default_model: str = "scripted", lease_seconds: float = 60.0, batch_size: int = 100,
         public_url: str = "http://127.0.0.1:8080", webhook_urls: Sequence[str] = (), model: Model | None = None,
         agent: AgentConfig | None = None, max_concurrent: int = 10, poster: Poster | None = None,
         allow_private_callbacks: bool = False, working_hours: str = "Mon-Fri 09:00-18:00") -> Engine:
    """Build every service on one Redis connection, job queue and set of channels.

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
        poster: signs and POSTs Web Trigger callbacks (None: they are not delivered).
        allow_private_callbacks: TASKBOT_CALLBACK_ALLOW_PRIVATE (callbacks to private addresses).
        working_hours: when participants whose contact and task say nothing may be messaged.
    """
    clock = clock or SystemClock()
    agent = agent or AgentConfig()
    store = Store(r, default_model)
    leases = Leases(r, clock, lease_seconds)
    outbox = Outbox(r, channels, lease_seconds)
    events = Events(r, clock, jobs, webhook_urls)
    slots = Slots(r, clock, jobs, leases, max_concurrent, max(lease_seconds, MIN_SLOT_TTL))
    inbox = Inbox(r, clock, jobs, leases)
    budgets = Budgets(store, clock, jobs, leases)
    conversations = Conversations(store, clock, inbox, slots, model, agent, budgets)
    compiler = Compiler(store, slots, model, agent, budgets)
    owners = Owners(store, outbox)
    escalations = Escalations(store, clock, outbox, events)
    deadlines = Deadlines(r, clock, jobs, leases, events)
    reporting = Reporting(store, clock, jobs, leases, events, outbox)
    callbacks = Callbacks(store, clock, leases, poster, public_url, allow_private_callbacks)
    subtasks = Subtasks(store, clock, jobs, leases, outbox, events, conversations, inbox, escalations,
                        working_hours)
    # a fan-in closed early waits this long for an answer that came in time but is not applied yet
    fanin = FanIn(store, clock, leases, subtasks, inbox, grace=2 * lease_seconds)
    runs = Runs(store, clock, jobs, leases, events, outbox, subtasks, conversations, compiler, fanin, deadlines,
                reporting, callbacks, owners, batch_size)
    revisions = Revisions(store, clock, jobs, leases, events, compiler, reporting, owners)
    schedules = Schedules(store, clock, runs)
    inbound = InboundProcessor(store, clock, inbox, outbox, conversations, subtasks, runs, schedules, revisions)
    sweeper = Sweeper(r, clock, jobs, leases, slots, inbox)
    return Engine(r=r, store=store, jobs=jobs, channels=dict(channels), clock=clock, leases=leases, events=events,
                  inbox=inbox, inbound=inbound, conversations=conversations, subtasks=subtasks, runs=runs,
                  schedules=schedules, sweeper=sweeper, tokens=Tokens(store, clock), public_url=public_url,
                  deadlines=deadlines, revisions=revisions, reporting=reporting, callbacks=callbacks)


def build_engine(settings: Settings | None = None, *, announce: bool = False, clock: Clock | None = None) -> Engine:
    """Wire Redis, RQ, the configured channels and the engine from settings.

    Args:
        settings: configuration; read from the environment when omitted.
        announce: log once which channels are off and why (at service start-up).
        clock: the time source (tests inject one).
    """
    settings = settings or Settings()
    plugins.load(settings.plugins)  # first: a plugin may add a channel, a tool or an output type
    r = connect(settings.redis_url)
    channels, off = build_channels(settings)
    if announce:
        for line in off:
            log.info(line)
    agent = AgentConfig(history=settings.history_messages, max_steps=settings.max_turn_steps,
                        retries=settings.model_retries, backoff=settings.model_backoff, timeout=settings.model_timeout)
    return wire(r, RQJobs(r), channels, clock=clock, default_model=settings.model,
                lease_seconds=settings.lease_seconds, batch_size=settings.batch_size, public_url=settings.base_url,
                webhook_urls=[u.strip() for u in settings.webhook_urls.split(",") if u.strip()],
                model=LiteLLM(), agent=agent, max_concurrent=settings.max_concurrent_tasks,
                poster=SignedPoster(settings.webhook_secret.get_secret_value() if settings.webhook_secret else ""),
                allow_private_callbacks=settings.callback_allow_private, working_hours=settings.working_hours)


@functools.cache
def engine() -> Engine:
    """The process's engine, for jobs (which receive only primitive arguments)."""
    return build_engine()
