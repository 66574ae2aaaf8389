"""The measurements. Each starts its own redis-server and workers and returns a dict of figures."""

from __future__ import annotations

import json
import time
from typing import Any

import redis
from rq import Queue

from bot.settings import Settings

from .celery_peer import chord_seconds, redis_floor
from .harness import commands, peak_rss_mb, percentile, queue_idle, redis_server, sent, wait, workers

FIELDS = [{"key": "shipped", "prompt": "What did you ship?"}, {"key": "blockers", "prompt": "Blockers?"},
          {"key": "mood", "prompt": "Mood?"}]


def engine_for(url: str) -> Any:
    from bot.bootstrap import build_engine

    return build_engine(Settings(TASKBOT_REDIS_URL=url, TASKBOT_PUBLIC_URL="http://bench",
                                 TASKBOT_WORKING_HOURS="always"))


def setup_task(engine: Any, n: int, *, interval: str = "1h", chases: int = 2, fields: list[Any] = FIELDS) -> None:
    people = [f"p{i}@example.com" for i in range(n)]
    engine.import_contacts([{"email": p, "preferred_channel": "web"} for p in people])
    engine.apply_definition(json.dumps({"id": "bench", "name": "Bench", "owner": "owner@example.com", "template": {
        "fields": fields, "participants": people, "chase": {"interval": interval, "max_chases": chases}}}))


def fanout(n: int, n_workers: int, *, celery: bool = True) -> dict[str, Any]:
    """Trigger to the last opening handed to the channel, beside its references: the same number of raw RQ
    no-op jobs on the same Redis and workers, one process pipelining the same writes (the floor), and a
    Celery chord of minimal openings with as many prefork processes (:mod:`.celery_peer`)."""
    with redis_server() as server, workers(server.url, n_workers):
        r = redis.Redis.from_url(server.url)
        engine = engine_for(server.url)
        setup_task(engine, n)
        t0 = time.time()
        engine.runs.trigger("bench")
        wait(lambda: r.llen("bench:sent") >= n)
        engine_seconds = max(m["t"] for m in sent(r)) - t0
        wait(lambda: queue_idle(r))

        queue = Queue("taskbot", connection=r)
        datas = [Queue.prepare_data("bench.noop.noop", result_ttl=0) for _ in range(n)]
        t0 = time.time()
        for i in range(0, n, 1000):
            queue.enqueue_many(datas[i:i + 1000])
        wait(lambda: queue_idle(r))
        raw_seconds = time.time() - t0
        floor = redis_floor(server.url, n)
        # the peer on the same Redis (taskbot's workers idle in BLPOP meanwhile), as many worker processes
        peer = chord_seconds(server.url, n, n_workers) if celery else None
    row = {"n": n, "workers": n_workers, "engine_s": round(engine_seconds, 3),
           "openings_per_s": round(n / engine_seconds),
           "raw_rq_s": round(raw_seconds, 3), "vs_raw_rq": round(engine_seconds / raw_seconds, 2),
           "redis_floor_s": round(floor, 3), "vs_floor": round(engine_seconds / floor, 1)}
    if peer is not None:
        row.update(celery_chord_s=round(peer["fan_in_s"], 3), vs_celery=round(engine_seconds / peer["fan_in_s"], 2))
    return row


def answers(n: int, n_workers: int) -> dict[str, Any]:
    """N participants answer three questions, each round all at once; plus the cost of the whole run."""
    with redis_server() as server, workers(server.url, n_workers) as procs:
        r = redis.Redis.from_url(server.url)
        engine = engine_for(server.url)
        setup_task(engine, n)
        r.config_resetstat()
        memory0 = int(r.info("memory")["used_memory"])
        commands0 = commands(r)
        rid = engine.runs.trigger("bench")
        wait(lambda: r.llen("bench:sent") >= n)
        tokens = [s["token"] for s in engine.store.subs_fields(engine.store.sub_ids(rid))]
        received: dict[str, float] = {}
        latencies: list[float] = []
        overheads: list[float] = []
        t_first = time.time()
        for round_ in range(3):
            start = r.llen("bench:sent")
            for token in tokens:
                iid, _ = engine.inbox.post_web(token, f"answer {round_}")
                received[iid] = time.time()
            wait(lambda start=start: r.llen("bench:sent") >= start + n)
            for m in sent(r, start):
                iid = m["key"].rsplit(":", 1)[-1]
                latencies.append(m["t"] - received[iid])
                overheads.append(m["overhead"])
        t_last_reply = max(m["t"] for m in sent(r, r.llen("bench:sent") - n))
        wait(lambda: engine.store.run_fields(rid)["status"] == "completed")
        fan_in_s = float(engine.store.run_fields(rid)["completed_at"]) - t_last_reply
        wait(lambda: queue_idle(r) and r.zcard("taskbot:leases") == 0)
        # the bench's own record of sends is not taskbot's cost
        memory = int(r.info("memory")["used_memory"]) - memory0 - int(r.memory_usage("bench:sent") or 0)
        calls = commands(r) - commands0
        rss = peak_rss_mb(procs)
    total = 3 * n
    return {"n": n, "workers": n_workers, "answers_per_s": round(total / (t_last_reply - t_first)),
            "latency_p50_ms": round(percentile(latencies, 50) * 1000, 1),
            "latency_p99_ms": round(percentile(latencies, 99) * 1000, 1),
            "overhead_p50_ms": round(percentile(overheads, 50) * 1000, 2),
            "overhead_p99_ms": round(percentile(overheads, 99) * 1000, 2),
            "fan_in_ms": round(fan_in_s * 1000, 1),
            "redis_bytes_per_subtask": round(memory / n), "redis_commands_per_subtask": round(calls / n, 1),
            "worker_peak_rss_mb": round(rss, 1)}


def chase_accuracy(n: int, n_workers: int, interval: float = 3.0) -> dict[str, Any]:
    """How late reminders go out against their due time (last activity + interval), at N open sub-tasks."""
    with redis_server() as server, workers(server.url, n_workers, scheduler=True):
        r = redis.Redis.from_url(server.url)
        engine = engine_for(server.url)
        setup_task(engine, n, interval=f"{interval:g}s", chases=1)
        rid = engine.runs.trigger("bench")
        # n openings and n reminders; counted without reading the records (parsing the whole list every
        # 10 ms took a core from the workers being measured)
        wait(lambda: r.llen("bench:sent") >= 2 * n, timeout=600, step=0.05)
        opened = {s["id"]: float(s["opened_at"]) for s in engine.store.subs_fields(engine.store.sub_ids(rid))}
        lateness = [m["t"] - (opened[m["sub"]] + interval) for m in sent(r) if m["kind"] == "chase"]
        engine.runs.cancel(rid)
    return {"n": n, "workers": n_workers, "late_p50_ms": round(percentile(lateness, 50) * 1000),
            "late_p99_ms": round(percentile(lateness, 99) * 1000), "late_max_ms": round(max(lateness) * 1000),
            "early": sum(1 for x in lateness if x < 0)}
