"""A taskbot worker whose web channel records each message handed to it, with a timestamp.

It is the real worker (`bot.workers.run_worker`) with one registry line changed: the
web adapter is wrapped so that every send also RPUSHes ``{key, kind, sub, t, overhead}`` to
``bench:sent``. ``overhead`` is the time from the start of the job that sent it to the send.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import redis

import bot.jobs as jobs
from bot.settings import Settings
from bot.workers import run_worker
from channels import REGISTRY
from channels.web import WebChannel
from engine.ports import Delivery, Outbound

SENT = "bench:sent"
job_started = 0.0


class RecordingChannel(WebChannel):
    def __init__(self, url: str) -> None:
        self.r = redis.Redis.from_url(url)

    def send(self, message: Outbound) -> Delivery:
        now = time.time()
        self.r.rpush(SENT, json.dumps({"key": message.key, "kind": message.kind, "sub": message.subtask_id,
                                       "t": now, "overhead": time.perf_counter() - job_started}))
        return Delivery(ref=None)


def timed(func: Any) -> Any:
    def wrapper(*args: Any) -> Any:
        global job_started
        job_started = time.perf_counter()
        return func(*args)

    wrapper.__name__ = func.__name__
    return wrapper


def main() -> None:
    settings = Settings()
    REGISTRY["web"] = lambda s: RecordingChannel(settings.redis_url)
    for name in ("advance", "open_batch", "chase_batch", "fan_in", "process_inbox"):
        setattr(jobs, name, timed(getattr(jobs, name)))
    run_worker(settings, with_scheduler="--scheduler" in sys.argv)


if __name__ == "__main__":
    main()
