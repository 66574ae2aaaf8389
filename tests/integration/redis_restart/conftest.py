"""Redis killed with -9 and restarted from its append-only file, for the tests in this folder.

Each test runs its own redis-server (AOF, ``appendfsync everysec``, as the session's) so that it
can kill it; the restart reads the same data folder on the same port, as a supervisor would.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from bot.redis_server import RedisServer

#: How long Redis stays away: well past a command's own retries (1.5 s at most), so that every
#: process meets the outage, not just a slow reply.
OUTAGE = 4.0


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """This test's own redis-server, which it may kill: every fixture of the test (``r``, ``env``, ``engine``,
    ``workers``, ``drain``) uses it instead of the session's."""
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


def crash(server: RedisServer) -> None:
    """kill -9: no shutdown, no last write to the append-only file."""
    assert server.process is not None
    server.process.send_signal(signal.SIGKILL)
    server.process.wait()


def chat_token(sub: dict) -> str:
    return str(sub["chat_url"]).rsplit("/", 1)[-1]


def user_texts(sub: dict) -> list[str]:
    return [m["text"] for m in sub["conversation"] if m["role"] == "user"]


def worker_logs(folder: Path) -> str:
    """What the ``workers`` fixture's processes wrote (stdout and stderr)."""
    return "".join(p.read_text(errors="replace") for p in sorted(folder.glob("worker-*.log")))


def all_at_once(calls: dict[str, Callable[[], httpx.Response]]) -> dict[str, httpx.Response]:
    """Every request at the same time (each may wait out a command's retries before its 503)."""
    with ThreadPoolExecutor(len(calls)) as pool:
        futures = {name: pool.submit(call) for name, call in calls.items()}
        return {name: f.result() for name, f in futures.items()}
