"""Turn slots in Redis: the global and per-assistant limits, FIFO waiting, and dead holders."""

from __future__ import annotations

import time

from engine.limits import Slots


class Recorder:
    """Stands in for the job queue: what a freed slot woke."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[str, ...]]] = []

    def enqueue_many(self, calls):
        self.calls.extend(calls)


def slots(engine, limit=2, ttl=5.0) -> tuple[Slots, Recorder]:
    jobs = Recorder()
    return Slots(engine.r, engine.clock, jobs, engine.leases, limit, ttl), jobs


def test_over_the_limit_work_waits_in_order_and_a_freed_slot_wakes_the_first(engine):
    s, jobs = slots(engine, limit=2)
    assert s.acquire("in:a", "helper", None, "sub:1", "ta") == 1
    assert s.acquire("in:b", "helper", None, "sub:2", "tb") == 1
    assert s.acquire("in:c", "helper", None, "sub:3", "tc") == 0
    assert s.acquire("in:d", "helper", None, "sub:4", "td") == 0
    assert s.acquire("in:d", "helper", None, "sub:4", "td") == 0  # d asks again: c is still ahead of it
    assert s.release("in:a", "ta") == ["in:c"]
    assert jobs.calls == [("process_inbound", ("c",))]
    assert s.acquire("in:d", "helper", None, "sub:4", "td") == 0  # the freed slot is c's
    assert s.acquire("in:c", "helper", None, "sub:3", "tc") == 1
    assert s.acquire("in:c", "helper", None, "sub:3", "other-job") == -1  # a duplicate job of c does nothing
    assert s.in_use() == 2


def test_the_per_assistant_limit_and_one_turn_per_conversation(engine):
    s, _ = slots(engine, limit=10)
    assert s.acquire("in:a", "slow", 1, "sub:1", "ta") == 1
    assert s.acquire("in:b", "slow", 1, "sub:2", "tb") == 0  # slow allows one at a time
    assert s.acquire("in:c", "fast", None, "sub:3", "tc") == 1  # others pass the waiting one
    assert s.acquire("in:d", "fast", None, "sub:3", "td") == 0  # the same conversation is in a turn
    assert sorted(s.release("in:a", "ta")) == ["in:b"]
    assert sorted(s.release("in:c", "tc")) == ["in:d"]


def test_a_slot_held_by_a_dead_worker_is_taken_back(engine):
    s, jobs = slots(engine, limit=1, ttl=0.3)
    assert s.acquire("in:dead", "helper", None, "sub:1", "t1") == 1  # its worker dies: no heartbeat, no release
    assert s.acquire("in:next", "helper", None, "sub:2", "t2") == 0
    time.sleep(0.4)
    assert s.sweep() == ["in:next"]  # the scheduler pass
    assert jobs.calls == [("process_inbound", ("next",))]
    assert s.acquire("in:next", "helper", None, "sub:2", "t2") == 1


def test_a_heartbeat_keeps_a_long_turn_s_slot(engine):
    s, _ = slots(engine, limit=1, ttl=0.3)
    engine.leases.lease_seconds = 0.3
    with s.hold("in:long", "helper", None, "sub:1") as got:
        assert got == 1
        time.sleep(0.8)
        assert s.acquire("in:other", "helper", None, "sub:2", "t") == 0
    assert s.in_use() == 0


def test_waiting_is_not_counted_as_a_failed_re_drive(engine):
    s, _ = slots(engine, limit=1)
    assert s.acquire("in:busy", "helper", None, "sub:1", "t") == 1
    engine.r.hset("taskbot:redrives", "in:waiting", 9)  # the sweeper re-drove it while it waited
    with s.hold("in:waiting", "helper", None, "sub:2") as got:
        assert got == 0
    assert engine.r.hget("taskbot:redrives", "in:waiting") is None
