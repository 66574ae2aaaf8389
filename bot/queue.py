"""The job queue behind the engine: RQ for work now, rq-scheduler for work at a time."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import redis
from rq import Queue, Retry
from rq_scheduler import Scheduler

QUEUE_NAME = "taskbot"
JOBS_MODULE = "bot.jobs"
#: Results are never read; keeping none saves a hash per job (memory per sub-task matters).
RESULT_TTL = 0
FAILURE_TTL = 7 * 86400
JOB_TIMEOUT = 300


def retry() -> Retry:
    """Every job is idempotent, so a failed or abandoned one is simply run again."""
    return Retry(max=3, interval=[1, 5, 30])


class RQJobs:
    """Implements the engine's ``Jobs`` port on RQ and rq-scheduler."""

    def __init__(self, r: redis.Redis, queue_name: str = QUEUE_NAME) -> None:
        self.queue = Queue(queue_name, connection=r)
        self.scheduler = Scheduler(queue=self.queue, connection=r)

    def enqueue(self, func: str, *args: Any) -> None:
        self.queue.enqueue(f"{JOBS_MODULE}.{func}", args=args, result_ttl=RESULT_TTL,
                           failure_ttl=FAILURE_TTL, job_timeout=JOB_TIMEOUT, retry=retry())

    def enqueue_many(self, calls: list[tuple[str, tuple[Any, ...]]]) -> None:
        if not calls:
            return
        datas = [
            Queue.prepare_data(f"{JOBS_MODULE}.{func}", args=args, result_ttl=RESULT_TTL,
                               failure_ttl=FAILURE_TTL, timeout=JOB_TIMEOUT, retry=retry())
            for func, args in calls
        ]
        self.queue.enqueue_many(datas)

    def enqueue_at(self, when: datetime, func: str, *args: Any, job_id: str) -> None:
        # rq-scheduler takes naive UTC datetimes and `timeout`, not `job_timeout`.
        self.scheduler.enqueue_at(when, f"{JOBS_MODULE}.{func}", *args, job_id=job_id,
                                  job_result_ttl=RESULT_TTL, timeout=JOB_TIMEOUT)

    def cancel(self, job_id: str) -> None:
        self.scheduler.cancel(job_id)
        self.queue.connection.delete(f"rq:job:{job_id}")
