"""Worker and scheduler processes: an RQ worker, and the loop that makes due work runnable.

The scheduler is rq-scheduler's ``Scheduler`` (its lock lets one pass run at a time however
many workers host the loop; its own pass moves jobs scheduled with it) extended with the
engine's due work. Each ``interval`` a pass:

- hands chase checks that are due (``taskbot:timers``) to workers, fifty per job;
- moves jobs whose retry delay has passed back to the queue (RQ's scheduled registry);
- starts runs of cron schedules that are due;
- queues webhook deliveries;
- re-drives work whose lease expired (its worker died);
- queues the email poll (IMAP) every ``TASKBOT_IMAP_POLL`` seconds;
- queues a new reading of Slack's member list every ``TASKBOT_SLACK_DIRECTORY_REFRESH`` seconds.

Reminders are not one rq-scheduler job each: its timestamps have one-second resolution and a
thousand due reminders would be a thousand jobs. The timer set is read with sub-second
precision and costs one command per pass.
"""

from __future__ import annotations

import logging
import threading

from rq import SimpleWorker, Worker
from rq.scheduler import RQScheduler
from rq_scheduler import Scheduler

from bot.queue import RQJobs
from engine.engine import Engine

from .bootstrap import build_engine
from .mailbox import schedule_poll
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
    scheduler = TaskbotScheduler(engine, interval)
    while not stop.is_set():
        try:
            scheduler.one_pass()
        except Exception:
            log.exception("scheduler pass failed; trying again")
        stop.wait(interval)


def start_scheduler_thread(engine: Engine, interval: float) -> threading.Event:
    stop = threading.Event()
    threading.Thread(target=scheduler_loop, args=(engine, interval, stop), name="taskbot-scheduler",
                     daemon=True).start()
    return stop


def run_worker(settings: Settings | None = None, *, with_scheduler: bool = True, burst: bool = False,
               fork: bool = False) -> None:
    """Run an RQ worker on the taskbot queue until stopped (Ctrl-C finishes the current job).

    ``SimpleWorker`` runs jobs in-process: our jobs are short, and forking per job costs about
    four times the throughput here. ``fork=True`` isolates each job in a child process instead.
    """
    settings = settings or Settings()
    engine = build_engine(settings, announce=True)
    assert isinstance(engine.jobs, RQJobs)
    stop = start_scheduler_thread(engine, settings.scheduler_interval) if with_scheduler else None
    worker_class = Worker if fork else SimpleWorker
    worker = worker_class([engine.jobs.queue], connection=engine.r)
    try:
        worker.work(burst=burst, logging_level="WARNING")
    finally:
        if stop is not None:
            stop.set()
