"""Worker and scheduler processes: an RQ worker, and the loop that makes due work runnable.

The scheduler is rq-scheduler's ``Scheduler`` (its lock lets one pass run at a time however
many workers host the loop; its own pass moves jobs scheduled with it) extended with the
engine's due work. Each ``interval`` a pass:

- hands chase checks that are due (``taskbot:timers``) to workers, fifty per job;
- hands fan-out deadlines that are due (``taskbot:deadlines``) to workers;
- moves jobs whose retry delay has passed back to the queue (RQ's scheduled registry);
- starts runs of cron schedules that are due;
- queues webhook deliveries;
- re-drives work whose lease expired (its worker died);
- queues the email poll (IMAP) every ``TASKBOT_IMAP_POLL`` seconds;
- queues a new reading of Slack's member list every ``TASKBOT_SLACK_DIRECTORY_REFRESH`` seconds.

Both ride out a Redis restart: the scheduler loop waits with backoff while Redis is away, and
the worker is supervised (:func:`supervise`): when RQ's loop ends on a lost connection, a fresh
worker starts once Redis answers again.

Reminders are not one rq-scheduler job each: its timestamps have one-second resolution and a
thousand due reminders would be a thousand jobs. The timer set is read with sub-second
precision and costs one command per pass.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from types import FrameType
from typing import Any

from rq import Queue, SimpleWorker, Worker
from rq.scheduler import RQScheduler
from rq.worker.base import BaseWorker
from rq_scheduler import Scheduler

from bot.queue import RQJobs
from engine.engine import Engine

from .bootstrap import build_engine
from .mailbox import schedule_poll
from .reconnect import GONE, MAX_WAIT, backoff, wait_for_redis
from .settings import Settings

log = logging.getLogger("taskbot.worker")


class TaskbotScheduler(Scheduler):  # type: ignore[misc]
    """rq-scheduler, whose pass also does the engine's due work."""

    def __init__(self, engine: Engine, interval: float = 0.5) -> None:
        assert isinstance(engine.jobs, RQJobs)
        super().__init__(queue=engine.jobs.queue, connection=engine.r, interval=interval)
        self.engine = engine
        self.retries = RQScheduler([engine.jobs.queue], connection=engine.r)
        self.retries.prepare_registries([engine.jobs.queue.name])

    def enqueue_jobs(self) -> list[object]:
        super().enqueue_jobs()
        self.engine.subtasks.take_due()
        self.engine.deadlines.take_due()
        self.retries.enqueue_scheduled_jobs()
        self.engine.schedules.fire_due()
        self.engine.events.flush()
        self.engine.sweep()
        schedule_poll(self.engine)
        schedule_slack_directory(self.engine)
        return []

    def one_pass(self) -> bool:
        """Run a pass if no other process is in one; True when it ran."""
        if not self.acquire_lock():
            return False
        try:
            self.enqueue_jobs()
            return True
        finally:
            self.remove_lock()


def schedule_slack_directory(engine: Engine) -> bool:
    """Queue the member-list refresh when it is due (only with Slack on; the adapter keeps the due time)."""
    directory = getattr(engine.channels.get("slack"), "directory", None)
    if directory is None or not directory.due():
        return False
    engine.jobs.enqueue("slack_directory")
    return True


def scheduler_loop(engine: Engine, interval: float, stop: threading.Event) -> None:
    """A pass every ``interval`` until ``stop``; while Redis is away, the next try waits longer each time."""
    scheduler = TaskbotScheduler(engine, interval)
    pauses = backoff()
    failures = 0
    while not stop.is_set():
        pause = interval
        try:
            scheduler.one_pass()
            if failures:
                log.warning("scheduler: Redis answers again; passes go on")
            failures = 0
        except GONE as exc:
            failures += 1
            pause = max(interval, pauses.compute(failures))
            if failures == 1:
                log.warning("scheduler: Redis is not answering (%s); trying again every %.0f s at most", exc, MAX_WAIT)
        except Exception:
            log.exception("scheduler pass failed; trying again")
        stop.wait(pause)


def start_scheduler_thread(engine: Engine, interval: float) -> threading.Event:
    stop = threading.Event()
    threading.Thread(target=scheduler_loop, args=(engine, interval, stop), name="taskbot-scheduler",
                     daemon=True).start()
    return stop


class Supervised(BaseWorker):
    """An RQ worker whose shutdown request (SIGTERM, Ctrl-C) also tells :func:`supervise` to start no other.

    RQ's own wait for a lost connection (only while it waits for a job) backs off up to a
    minute; capped at ``MAX_WAIT`` here, so an idle worker takes work again soon after Redis is back.
    """

    max_connection_wait_time = MAX_WAIT

    def __init__(self, *args: Any, stopping: threading.Event | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stopping = stopping or threading.Event()

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        self.stopping.set()
        super().request_stop(signum, frame)


class TaskbotWorker(Supervised, SimpleWorker):
    """Runs jobs in its own process (see :func:`run_worker`)."""


class TaskbotForkWorker(Supervised, Worker):
    """Runs each job in a forked child."""


def supervise(engine: Engine, worker_class: type[Supervised], *, burst: bool, stop: threading.Event) -> None:
    """Run RQ workers one after another until a shutdown request (in burst mode: until the queue is empty).

    RQ's work loop rides out a lost connection only while it waits for a job: one lost during a
    job, its bookkeeping or a heartbeat ends ``work()`` ("found an unhandled exception, quitting").
    Then this waits with backoff until Redis answers and starts a fresh worker (a new name; the
    old one's registration expires by itself). The job that was running is re-driven by its lease.
    """
    assert isinstance(engine.jobs, RQJobs)
    queue = engine.jobs.queue
    quick_failures = 0
    while True:
        _stop_on_signals(stop)
        if not wait_for_redis(engine.r, stop, what="worker"):
            return
        worker = worker_class([queue], connection=engine.r, stopping=stop)
        began = time.monotonic()
        try:
            worker.work(burst=burst, logging_level="WARNING")
        except GONE as exc:  # RQ's teardown after the loop: it could not unregister the worker
            log.warning("worker %s: Redis went away (%s)", worker.name, exc)
        finally:
            _let_go(worker)
        if stop.is_set() or (burst and _empty(queue)):
            return
        log.warning("worker %s stopped on an error (see above); a fresh worker starts once Redis answers",
                    worker.name)
        # Redis answers but the worker fails at once again and again: do not spin.
        quick_failures = quick_failures + 1 if time.monotonic() - began < 10 else 0
        if quick_failures and stop.wait(backoff().compute(quick_failures)):
            return


def _stop_on_signals(stop: threading.Event) -> None:
    """Between two workers, SIGTERM or Ctrl-C ends the supervision (each worker installs RQ's own handlers)."""
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())


def _let_go(worker: BaseWorker) -> None:
    """Stop the worker's pubsub thread, which RQ's teardown leaves running when Redis was gone
    (it would reconnect and listen for the dead worker's commands forever)."""
    thread = worker.pubsub_thread
    if thread is not None and thread.is_alive():
        thread.stop()


def _empty(queue: Queue) -> bool:
    try:
        return not len(queue)
    except GONE:
        return False


def run_worker(settings: Settings | None = None, *, with_scheduler: bool = True, burst: bool = False,
               fork: bool = False) -> None:
    """Run an RQ worker on the taskbot queue until stopped (Ctrl-C, SIGTERM: after the current job).

    ``SimpleWorker`` runs jobs in-process: our jobs are short, and forking per job costs about
    four times the throughput here. ``fork=True`` isolates each job in a child process instead.
    A Redis restart does not end it: see :func:`supervise`.
    """
    settings = settings or Settings()
    engine = build_engine(settings, announce=True)
    stop = threading.Event()
    scheduler_stop = start_scheduler_thread(engine, settings.scheduler_interval) if with_scheduler else None
    try:
        supervise(engine, TaskbotForkWorker if fork else TaskbotWorker, burst=burst, stop=stop)
    finally:
        if scheduler_stop is not None:
            scheduler_stop.set()
