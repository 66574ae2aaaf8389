"""Worker and scheduler processes: an RQ worker, and the loop that makes due work runnable.

Each ``interval`` the scheduler loop: runs rq-scheduler's pass (reminders that are due move to
the queue), moves jobs whose retry delay has passed back to the queue (RQ's own registry), starts
runs of cron schedules that are due, queues webhook deliveries, and sweeps expired leases (work
whose worker died is queued again).
Several processes may run it; rq-scheduler's lock lets one pass run at a time.
"""

from __future__ import annotations

import logging
import threading

from rq import SimpleWorker, Worker
from rq.scheduler import RQScheduler
from rq_scheduler import Scheduler

from taskbot.engine.engine import Engine
from taskbot.engine.queue import RQJobs

from .bootstrap import build_engine
from .settings import Settings

log = logging.getLogger("taskbot.worker")


def retries_scheduler(engine: Engine) -> RQScheduler:
    """RQ's own scheduler, used only to move jobs waiting for a retry back to the queue."""
    assert isinstance(engine.jobs, RQJobs)
    retries = RQScheduler([engine.jobs.queue], connection=engine.r)
    retries.prepare_registries([engine.jobs.queue.name])
    return retries


def scheduler_pass(engine: Engine, scheduler: Scheduler, retries: RQScheduler | None = None) -> int:
    """One pass: move due reminders to the queue and re-drive expired leases.

    Returns:
        How many expired leases were re-driven (rq-scheduler does not count what it moves).
    """
    if not scheduler.acquire_lock():
        return 0
    try:
        scheduler.enqueue_jobs()
        if retries is not None:
            retries.enqueue_scheduled_jobs()
        engine.schedules.fire_due()
        engine.events.flush()
        return engine.sweep()
    finally:
        scheduler.remove_lock()


def scheduler_loop(engine: Engine, interval: float, stop: threading.Event) -> None:
    assert isinstance(engine.jobs, RQJobs)
    scheduler = Scheduler(queue=engine.jobs.queue, connection=engine.r, interval=interval)
    retries = retries_scheduler(engine)
    while not stop.is_set():
        try:
            scheduler_pass(engine, scheduler, retries)
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
