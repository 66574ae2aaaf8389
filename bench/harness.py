"""Start a private Redis and worker processes for one measurement; read what they recorded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis
from rq import Queue
from rq.registry import StartedJobRegistry

from bot.redis_server import RedisServer

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


def env_for(url: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The workers' environment: none of this shell's taskbot settings or channel tokens, only ``extra``'s."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TASKBOT_", "SLACK_", "TELEGRAM_"))}
    env.update(TASKBOT_REDIS_URL=url, TASKBOT_SCHEDULER_INTERVAL="0.1", TASKBOT_PUBLIC_URL="http://bench",
               TASKBOT_WORKING_HOURS="always")  # the figures must not depend on the hour the bench runs at
    env.update(extra or {})
    return env


@contextmanager
def workers(url: str, n: int, *, scheduler: bool = False,
            env: dict[str, str] | None = None) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``n`` bench worker processes (the first runs the scheduler loop when asked), with ``env`` added.

    Their warnings and errors go to ``bench/results/logs/worker-<i>.log`` (the last measurement's).
    """
    procs = []
    logs = ROOT / "bench" / "results" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        args = [sys.executable, "-m", "bench.worker"] + (["--scheduler"] if scheduler and i == 0 else [])
        with (logs / f"worker-{i}.log").open("wb") as log:
            procs.append(subprocess.Popen(args, cwd=ROOT, env=env_for(url, env),  # noqa: S603
                                          stdout=subprocess.DEVNULL, stderr=log))
    r = redis.Redis.from_url(url)
    wait(lambda: int(r.scard("rq:workers:taskbot")) >= n, timeout=60)
    try:
        yield procs
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def peak_rss_mb(procs: list[subprocess.Popen[bytes]]) -> float:
    """The largest peak resident set (VmHWM) among live worker processes, in MB."""
    peak = 0
    for p in procs:
        try:
            for line in Path(f"/proc/{p.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except OSError:
            continue
    return peak / 1024


def wait(predicate: Callable[[], object], timeout: float = 600, step: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark condition not reached in time")
        time.sleep(step)


def queue_idle(r: redis.Redis) -> bool:
    queue = Queue("taskbot", connection=r)
    return len(queue) == 0 and StartedJobRegistry(queue=queue).count == 0


def sent(r: redis.Redis, start: int = 0) -> list[dict[str, Any]]:
    return [json.loads(x) for x in r.lrange("bench:sent", start, -1)]


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def commands(r: redis.Redis) -> int:
    return sum(int(v["calls"]) for v in r.info("commandstats").values())
