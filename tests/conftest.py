"""Test fixtures: one real redis-server for the session (free port, own folder), flushed per test."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from rq import SimpleWorker
from rq_scheduler import Scheduler

from taskbot.bot.redis_server import RedisServer
from taskbot.bot.settings import Settings
from taskbot.bot.workers import scheduler_pass
from taskbot.engine.engine import Engine

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url


@pytest.fixture
def r(redis_server: RedisServer) -> Iterator[redis.Redis]:
    conn = redis.Redis.from_url(redis_server.url)
    conn.flushall()
    yield conn
    conn.close()


@pytest.fixture
def env(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment a taskbot process of this test gets (also set in this process)."""
    values = {"TASKBOT_REDIS_URL": redis_url, "TASKBOT_LEASE_SECONDS": "3", "TASKBOT_SCHEDULER_INTERVAL": "0.2",
              "TASKBOT_PUBLIC_URL": "http://testserver"}
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    from taskbot.bot import bootstrap

    bootstrap.engine.cache_clear()
    return {**os.environ, **values}


@pytest.fixture
def engine(r: redis.Redis, env: dict[str, str]) -> Engine:
    from taskbot.bot.bootstrap import build_engine

    return build_engine(Settings())


@pytest.fixture
def drain(engine: Engine) -> Callable[..., None]:
    """Run the scheduler pass and a burst worker until the queue is empty (jobs due later stay)."""
    from taskbot.bot.bootstrap import engine as process_engine

    worker_engine = process_engine()  # what jobs in this process use: same Redis, same settings
    scheduler = Scheduler(queue=worker_engine.jobs.queue, connection=worker_engine.r)  # type: ignore[attr-defined]

    def run(rounds: int = 20) -> None:
        for _ in range(rounds):
            scheduler_pass(worker_engine, scheduler)
            if not len(worker_engine.jobs.queue):  # type: ignore[attr-defined]
                return
            SimpleWorker([worker_engine.jobs.queue], connection=worker_engine.r).work(  # type: ignore[attr-defined]
                burst=True, logging_level="ERROR")

    return run


@pytest.fixture
def wait_for() -> Callable[..., None]:
    def wait(predicate: Callable[[], object], timeout: float = 20.0, step: float = 0.05,
             between: Callable[[], None] | None = None) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            if between:
                between()
            time.sleep(step)
        raise AssertionError("condition not met in time")

    return wait
