"""The answer path alone: CPU time and Redis commands per answer, in one process.

The multi-worker ``answers`` scenario measures throughput, which on a shared 2-core machine
moves with whatever else runs. This one is for before/after comparisons of a change: N
participants' answers (three rounds of one each) are stored, then applied by one in-process
RQ ``SimpleWorker`` in burst mode, and the worker's CPU time (``time.process_time``) and the
Redis commands it issued are divided by the answers applied. RQ's own bookkeeping is included,
since every answer pays it. The minimum over the repeats is the figure (the least disturbed run).
"""

from __future__ import annotations

import os
import time
from typing import Any

import redis
from rq import Queue, SimpleWorker

from .harness import commands, redis_server
from .scenarios import engine_for, setup_task


def _drain(r: redis.Redis) -> tuple[float, float, int]:
    """Run every queued job in this process; CPU seconds, wall seconds, Redis commands."""
    before = commands(r)
    cpu, wall = time.process_time(), time.perf_counter()
    SimpleWorker([Queue("taskbot", connection=r)], connection=r).work(burst=True, with_scheduler=False,
                                                                      logging_level="WARNING")
    return time.process_time() - cpu, time.perf_counter() - wall, commands(r) - before


def answer_path(n: int = 300, repeats: int = 3) -> dict[str, Any]:
    """Per answer: CPU ms, wall ms and Redis commands of applying it (the minimum over ``repeats`` runs)."""
    best: dict[str, float] = {}
    for _ in range(repeats):
        with redis_server() as server:
            os.environ.update(TASKBOT_REDIS_URL=server.url, TASKBOT_PUBLIC_URL="http://bench",
                              TASKBOT_WORKING_HOURS="always")
            from bot import bootstrap

            bootstrap.engine.cache_clear()  # the jobs' engine must talk to this run's Redis
            r = redis.Redis.from_url(server.url)
            engine = engine_for(server.url)
            setup_task(engine, n)
            rid = engine.runs.trigger("bench")
            _drain(r)  # the fan-out, not measured
            tokens = [s["token"] for s in engine.store.subs_fields(engine.store.sub_ids(rid))]
            cpu = wall = calls = 0.0
            for round_ in range(3):
                for token in tokens:
                    engine.inbox.post_web(token, f"answer {round_}")
                c, w, k = _drain(r)
                cpu, wall, calls = cpu + c, wall + w, calls + k
            assert engine.store.run_fields(rid)["status"] == "completed", "the bench run did not complete"
            per = {"cpu_ms": cpu * 1000 / (3 * n), "wall_ms": wall * 1000 / (3 * n), "commands": calls / (3 * n)}
            best = {k: min(v, best.get(k, v)) for k, v in per.items()}
    return {"n": n, "answers": 3 * n, "cpu_ms_per_answer": round(best["cpu_ms"], 3),
            "wall_ms_per_answer": round(best["wall_ms"], 3),
            "redis_commands_per_answer": round(best["commands"], 1)}
