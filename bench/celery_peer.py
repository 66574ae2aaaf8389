"""The peer: the same fan-out built on Celery, a ``group`` of minimal openings joined by a ``chord``.

Each opening task writes what taskbot writes to create and open a sub-task at the least (its
hash with the fields, its reply token) and hands the opening to a "channel" the way the bench's
web channel records it (an RPUSH to ``bench:sent``); the chord's callback is the fan-in (it
counts the results and records the time). Broker and result backend are the same private Redis
taskbot's figures use, and the worker runs as many prefork processes as taskbot's workers.
Run it as ``celery -A bench.celery_peer worker`` with ``BENCH_CELERY_URL`` set (see :func:`chord`).
"""

from __future__ import annotations

import gc
import json
import os
import secrets
import subprocess
import sys
import time
from typing import Any

import redis
from celery import Celery, chord, group

from .harness import ROOT, wait

URL = os.environ.get("BENCH_CELERY_URL", "redis://127.0.0.1:6379/0")
app = Celery("bench", broker=URL, backend=URL)
app.conf.update(task_default_queue="bench", worker_prefetch_multiplier=16, task_acks_late=False,
                broker_connection_retry_on_startup=True, result_expires=600, worker_hijack_root_logger=False)
_r: redis.Redis | None = None


def _redis() -> redis.Redis:
    global _r
    if _r is None:
        _r = redis.Redis.from_url(URL)
    return _r


@app.task(name="bench.open_subtask")
def open_subtask(rid: str, i: int, pid: str) -> str:
    sid, token, now = f"{rid}-{i}", secrets.token_hex(16), time.time()
    with _redis().pipeline(transaction=False) as p:
        p.hset(f"peer:sub:{sid}", mapping={"id": sid, "run_id": rid, "participant_id": pid, "status": "running",
                                           "token": token, "created_at": now, "opened_at": now})
        p.set(f"peer:token:{token}", sid)
        p.rpush("bench:sent", json.dumps({"sub": sid, "t": time.time()}))
        p.execute()
    return sid


@app.task(name="bench.fan_in")
def fan_in(sids: list[str], rid: str) -> int:
    _redis().set(f"peer:done:{rid}", json.dumps({"n": len(sids), "t": time.time()}))
    return len(sids)


def chord_seconds(url: str, n: int, n_workers: int) -> dict[str, float]:
    """Apply a chord of ``n`` openings on a Celery worker of ``n_workers`` prefork processes; seconds to the
    last opening and to the fan-in having run."""
    env = {**os.environ, "BENCH_CELERY_URL": url}
    worker = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "celery", "-A", "bench.celery_peer", "worker", "--pool", "prefork",
         "--concurrency", str(n_workers), "-Q", "bench", "--without-heartbeat", "--without-gossip",
         "--without-mingle", "-l", "warning"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    r = redis.Redis.from_url(url)
    # a client app of this call's own: the module's app keeps its connections to the first Redis it used
    client = Celery("bench-client", broker=url, backend=url)
    client.conf.update(task_default_queue="bench", broker_connection_retry_on_startup=True)

    def opening(rid: str, i: int, pid: str) -> Any:
        return client.signature("bench.open_subtask", args=(rid, i, pid))

    try:
        results = [chord(group([opening("warm", i, "w") for i in range(n_workers * 2)], app=client),
                         app=client)(client.signature("bench.fan_in", args=("warm",)))]
        wait(lambda: r.exists("peer:done:warm"), timeout=120)  # the worker is up (results are not read back)
        r.delete("bench:sent")
        header = group([opening("peer", i, f"p{i}@example.com") for i in range(n)], app=client)
        t0 = time.time()
        results.append(chord(header, app=client)(client.signature("bench.fan_in", args=("peer",))))
        wait(lambda: r.exists("peer:done:peer"), timeout=900, step=0.02)
        done = json.loads(r.get("peer:done:peer") or b"{}")
        last = max(json.loads(x)["t"] for x in r.lrange("bench:sent", 0, -1))
        # the result objects unsubscribe when collected: do it while this Redis is up (Celery keeps them in
        # its pending map, so at exit they would try a Redis that is gone, and print the failure)
        del results
        for mapping in client.backend._pending_results:
            for waiters in list(mapping.values()):
                for result in list(waiters.values()):
                    client.backend.remove_pending_result(result)
        gc.collect()
        return {"last_opening_s": last - t0, "fan_in_s": float(done["t"]) - t0}
    finally:
        client.close()
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()


def redis_floor(url: str, n: int) -> float:
    """Seconds for one process to pipeline, in thousands, the writes taskbot makes to create and open ``n``
    sub-tasks: the hash (12 fields) and token, the run's list, then the opened fields (7), the conversation's
    first message, the active-conversation and chase-timer entries, the sent mark, and the channel's record."""
    r = redis.Redis.from_url(url)
    t0 = time.time()
    for start in range(0, n, 1000):
        with r.pipeline(transaction=False) as p:
            sids = []
            for i in range(start, min(n, start + 1000)):
                sid, token, now = f"floor-{i}", secrets.token_hex(16), time.time()
                sids.append(sid)
                p.hset(f"floor:sub:{sid}", mapping={
                    "id": sid, "run_id": "floor", "step": 0, "kind": "task", "participant_id": f"p{i}@example.com",
                    "name": f"p{i}", "status": "pending", "chases_sent": 0, "cursor": 0, "data": "{}",
                    "created_at": now, "token": token})
                p.set(f"floor:token:{token}", sid)
            p.rpush("floor:subs", *sids)
            p.execute()
    for start in range(0, n, 1000):
        with r.pipeline(transaction=False) as p:
            for i in range(start, min(n, start + 1000)):
                sid, now = f"floor-{i}", time.time()
                p.hset(f"floor:sub:{sid}", mapping={"status": "running", "channel": "web", "address": sid,
                                                    "opened_at": now, "last_activity_at": now, "tz": "UTC",
                                                    "hours": "always"})
                p.rpush(f"floor:sub:{sid}:conv", json.dumps({"role": "assistant", "text": "Hello", "at": now}))
                p.zadd(f"floor:active:web:{sid}", {sid: now})
                p.sadd(f"floor:sub:{sid}:sent", "open")
                p.zadd("floor:timers", {sid: now + 3600})
                p.rpush("floor:sent", json.dumps({"sub": sid, "t": now}))
            p.execute()
    return time.time() - t0


def peers(url: str, n: int, n_workers: int) -> dict[str, Any]:
    floor = redis_floor(url, n)
    celery = chord_seconds(url, n, n_workers)
    return {"floor_s": round(floor, 3), "celery_open_s": round(celery["last_opening_s"], 3),
            "celery_chord_s": round(celery["fan_in_s"], 3)}
