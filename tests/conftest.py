"""Test fixtures: one real redis-server for the session (free port, own folder), flushed per test."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from rq import SimpleWorker

from bot.redis_server import RedisServer
from bot.settings import Settings
from bot.workers import TaskbotScheduler
from engine.engine import Engine

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """AOF on, ``appendfsync everysec``: the durability production runs with (tests/integration/redis_restart
    give each test its own server instead, to kill it)."""
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
def env(redis_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment a taskbot process of this test gets (also set in this process)."""
    # tests not about working hours must pass at any hour of any day; files received go to the test's folder
    values = {"TASKBOT_REDIS_URL": redis_url, "TASKBOT_LEASE_SECONDS": "3", "TASKBOT_SCHEDULER_INTERVAL": "0.2",
              "TASKBOT_PUBLIC_URL": "http://testserver", "TASKBOT_WORKING_HOURS": "always",
              "TASKBOT_DATA_DIR": str(tmp_path / "taskbot-data")}
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    from bot import bootstrap

    bootstrap.engine.cache_clear()
    yield {**os.environ, **values}
    if bootstrap.engine.cache_info().currsize:  # the process engine jobs used in this test
        bootstrap.engine().r.close()
    bootstrap.engine.cache_clear()


@pytest.fixture
def engine(r: redis.Redis, env: dict[str, str]) -> Iterator[Engine]:
    from bot.bootstrap import build_engine

    engine = build_engine(Settings())
    yield engine
    engine.r.close()


@pytest.fixture
def drain(engine: Engine) -> Iterator[Callable[..., None]]:
    """Run the scheduler pass and a burst worker until the queue is empty (jobs due later stay)."""
    from bot.bootstrap import engine as process_engine

    worker_engine = process_engine()  # what jobs in this process use: same Redis, same settings
    scheduler = TaskbotScheduler(worker_engine)

    def run(rounds: int = 20) -> None:
        for _ in range(rounds):
            scheduler.one_pass()
            if not len(worker_engine.jobs.queue):  # type: ignore[attr-defined]
                return
            SimpleWorker([worker_engine.jobs.queue], connection=worker_engine.r).work(  # type: ignore[attr-defined]
                burst=True, logging_level="ERROR")

    yield run
    scheduler.retries.connection.close()  # RQ's scheduler opens a connection pool of its own


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


@pytest.fixture
def workers(env: dict[str, str], tmp_path: Path) -> Iterator[Callable[[int], list]]:
    """Start real worker processes (`python worker.py`, with the scheduler loop); all are killed at the end."""
    import subprocess
    import sys

    started: list[subprocess.Popen[bytes]] = []

    def start(n: int = 1) -> list[subprocess.Popen[bytes]]:
        procs = []
        for _ in range(n):
            with (tmp_path / f"worker-{len(started) + len(procs)}.log").open("wb") as log:
                procs.append(subprocess.Popen([sys.executable, str(ROOT / "worker.py")], cwd=ROOT, env=env,
                                              stdout=log, stderr=subprocess.STDOUT))
        started.extend(procs)
        return procs

    yield start
    for p in started:
        if p.poll() is None:
            p.kill()
        p.wait()


@pytest.fixture
def taskbot_cli(env: dict[str, str]) -> Callable[..., object]:
    """Run the real `taskbot` command in a subprocess, as a user would."""
    import subprocess
    import sys

    def run(*args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([sys.executable, "-m", "bot", *args], cwd=ROOT, env=env, capture_output=True,
                                text=True, timeout=60)
        if check and result.returncode != 0:
            raise AssertionError(f"taskbot {' '.join(args)} exited {result.returncode}: {result.stderr}")
        return result

    return run


def turn_on(env: dict[str, str], monkeypatch: pytest.MonkeyPatch, values: dict[str, str]) -> None:
    """Settings for this test (a channel against its fake, a limit): in this process's environment, in
    ``env`` for the worker and CLI processes it starts, and for every engine built from here on (the
    process's cached one is dropped, so jobs run in this process see them too)."""
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    env.update(values)
    from bot import bootstrap

    bootstrap.engine.cache_clear()


def contents(r: redis.Redis, pattern: str = "taskbot:*", skip: tuple[bytes, ...] = ()) -> dict[bytes, object]:
    """What Redis holds under ``pattern``, by value: to assert that a refused request stored nothing.

    Not ``DUMP``: a large hash is dumped in its table's order, which Redis's incremental rehashing
    changes without any write.
    """
    read = {b"string": r.get, b"hash": r.hgetall, b"set": r.smembers, b"list": lambda k: r.lrange(k, 0, -1),
            b"zset": lambda k: r.zrange(k, 0, -1, withscores=True)}
    return {k: (r.type(k), read[r.type(k)](k)) for k in sorted(r.keys(pattern)) if not k.startswith(skip)}


def people(engine: Engine, *emails: str, channel: str = "web") -> None:
    """Put contacts in the directory who prefer ``channel``."""
    engine.import_contacts([{"email": e, "preferred_channel": channel} for e in emails])


def answer(engine: Engine, sub: dict[str, object], text: str, message_id: str) -> None:
    """A participant's message on their web chat link, through the engine's inbound path."""
    token = str(sub["chat_url"]).rsplit("/", 1)[-1]
    engine.inbox.post_web(token, text, message_id)


@contextlib.contextmanager
def served(app: Any) -> Iterator[str]:
    """The app under uvicorn on a free port (real HTTP, its lifespan run), stopped afterwards."""
    import threading

    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", ws="none"))
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive(), "uvicorn stopped while starting"
        assert time.monotonic() < deadline, "uvicorn did not start in time"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
