"""Deadline and quorum (SPEC §11) with real worker processes: a fan-out closes once, whichever comes first
of its quorum, its deadline and its last answers, also when they race and when workers are killed."""

from __future__ import annotations

import os
import signal
import time

from tests.conftest import answer, people

POLL = """
id: {id}
name: Quick poll
owner: lead@example.com
template:
  fields: [{{key: vote, prompt: Your vote?}}]
  participants: [{people}]
  chase: {{interval: 1h, max_chases: 1}}
  close: {close}
"""


def subs(engine, rid):
    return {s["participant_id"]: s for s in engine.run_view(rid)["subtasks"]}


def opened(engine, rids, count):
    return lambda: [s["status"] for rid in rids for s in engine.run_view(rid, conversations=False)["subtasks"]] == \
        ["running"] * count


def test_a_quorum_of_half_closes_the_fan_out_at_the_second_of_four_answers(engine, workers, wait_for):
    team = [f"{n}@example.com" for n in ("ann", "ben", "cat", "dan")]
    people(engine, *team)
    engine.apply_definition(POLL.format(id="poll", people=", ".join(team), close="{quorum: 0.5}"))
    rid = engine.runs.trigger("poll")
    workers(1)
    wait_for(opened(engine, [rid], 4), timeout=30)
    by = subs(engine, rid)
    answer(engine, by["ann@example.com"], "yes", "a1")
    wait_for(lambda: subs(engine, rid)["ann@example.com"]["status"] == "completed", timeout=20)
    assert engine.store.run_fields(rid)["status"] == "running"  # one of four is not half

    answer(engine, by["ben@example.com"], "no", "b1")
    wait_for(lambda: engine.store.run_fields(rid)["status"] == "completed", timeout=20)

    view = engine.run_view(rid)
    assert view["closed_by"] == "quorum"
    by = {s["participant_id"]: s for s in view["subtasks"]}
    assert [by[p]["status"] for p in team] == ["completed", "completed", "timed_out", "timed_out"]
    assert {by[p]["reason"] for p in team[2:]} == {"closed at quorum"}
    assert view["gathered"]["task_status"] == dict(zip(team, ["completed", "completed", "timed_out", "timed_out"],
                                                       strict=True))
    assert engine.r.zscore("taskbot:timers", by["cat@example.com"]["id"]) is None  # their chases are dropped
    [deliverable] = view["deliverables"]
    assert "2 of 4 participants answered." in deliverable["content"]
    assert "closed at quorum" in deliverable["content"]
    # an answer now is kept, marked late, and not recorded
    answer(engine, by["cat@example.com"], "maybe", "c1")
    wait_for(lambda: any(m.get("late") for m in subs(engine, rid)["cat@example.com"]["conversation"]), timeout=20)
    assert subs(engine, rid)["cat@example.com"]["data"] == {}


def test_a_deadline_after_5s_closes_the_fan_out_at_the_deadline_within_a_second(engine, workers, wait_for):
    team = ["ann@example.com", "ben@example.com", "cat@example.com"]
    people(engine, *team)
    engine.apply_definition(POLL.format(id="poll", people=", ".join(team), close="{after: 5s}"))
    workers(1)
    rid = engine.runs.trigger("poll")
    wait_for(opened(engine, [rid], 3), timeout=30)
    answer(engine, subs(engine, rid)["ann@example.com"], "yes", "a1")
    wait_for(lambda: engine.store.run_fields(rid)["status"] == "completed", timeout=30)

    run = engine.store.run_fields(rid)
    deadline = float(run["deadline"])
    assert deadline == float(run["started_at"]) + 5
    assert 0 <= float(run["closed_at"]) - deadline < 1.0, (run["closed_at"], deadline)
    view = engine.run_view(rid)
    assert view["closed_by"] == "deadline"
    by = {s["participant_id"]: s for s in view["subtasks"]}
    assert by["ann@example.com"]["status"] == "completed"
    for p in team[1:]:
        sub = engine.store.sub_fields(by[p]["id"])
        assert (sub["status"], sub["reason"]) == ("timed_out", "closed at deadline")
        assert 0 <= float(sub["completed_at"]) - deadline < 1.0
    [deliverable] = engine.store.deliverables(rid)
    assert float(deliverable["created_at"]) - deadline < 1.0  # fan-in and compile at the deadline, not later
    assert engine.r.zcard("taskbot:deadlines") == 0


def test_quorum_deadline_and_last_answers_racing_over_40_runs_on_two_workers_fan_in_once_each(engine, workers,
                                                                                               wait_for):
    pair = ["p1@example.com", "p2@example.com"]
    people(engine, *pair)
    engine.apply_definition(POLL.format(id="poll", people=", ".join(pair), close="{after: 4s, quorum: 0.5}"))
    workers(2)
    rids = [engine.runs.trigger("poll") for _ in range(40)]
    wait_for(opened(engine, rids, 80), timeout=40)
    # Both answers of each run land at its deadline, on two workers: the quorum (the first answer), the deadline
    # and the last answer race for the one fan-in.
    for n, rid in sorted(enumerate(rids), key=lambda item: float(engine.store.run_fields(item[1])["deadline"])):
        deadline = float(engine.store.run_fields(rid)["deadline"])
        time.sleep(max(0.0, deadline - (0.02 if n % 2 else 0.0) - time.time()))  # timing the race, not waiting
        for i, sub in enumerate(engine.run_view(rid, conversations=False)["subtasks"]):
            answer(engine, sub, f"option {i}", f"{rid}-{i}")
    wait_for(lambda: all(engine.store.run_fields(rid)["status"] == "completed" for rid in rids), timeout=60)

    notes = engine.store.notifications("lead@example.com", limit=1000)
    closed_by = set()
    for rid in rids:
        view = engine.run_view(rid)
        assert len(view["deliverables"]) == 1, rid
        assert [n["kind"] for n in notes if n["run_id"] == rid] == ["task_completed"]
        closed_by.add(view["closed_by"])
        assert view["closed_by"] in ("quorum", "deadline")
        for sub in view["subtasks"]:
            # each answered (stored before the close, it is taken in) or ended by the close that won
            assert sub["status"] == "completed" or sub["reason"] == f"closed at {view['closed_by']}", (rid, sub)
            assert view["gathered"]["task_status"][sub["participant_id"]] == sub["status"]
    assert engine.r.zcard("taskbot:deadlines") == 0


def test_workers_and_their_schedulers_killed_around_a_deadline_still_fan_in_once(engine, workers, wait_for):
    team = [f"u{i}@example.com" for i in range(3)]
    people(engine, *team)
    engine.apply_definition(POLL.format(id="poll", people=", ".join(team), close="{after: 8s}"))
    first = workers(2)
    rids = [engine.runs.trigger("poll") for _ in range(10)]
    wait_for(opened(engine, rids, 30), timeout=30)
    for rid in rids:
        answer(engine, engine.run_view(rid)["subtasks"][0], "yes", f"{rid}-a")
    deadlines = [float(engine.store.run_fields(rid)["deadline"]) for rid in rids]
    earliest, latest = min(deadlines), max(deadlines)
    # the opening took less than the deadline's 8 s, or this test would not test what it says
    assert time.time() < earliest - 0.3, "the runs opened too slowly to kill the workers before a deadline"
    time.sleep(max(0.0, earliest - 0.3 - time.time()))  # up to just before the first deadline
    for proc in first:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    time.sleep(max(0.0, latest + 0.5 - time.time()))  # every deadline passes while nothing runs
    assert {engine.store.run_fields(rid)["status"] for rid in rids} == {"running"}

    # again: killed while they close the states (some closed, not all merged)
    second = workers(2)
    wait_for(lambda: any(engine.store.run_fields(rid).get("closed_by") for rid in rids), timeout=30, step=0.01)
    for proc in second:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()

    workers(2)
    wait_for(lambda: all(engine.store.run_fields(rid)["status"] == "completed" for rid in rids), timeout=60)
    notes = engine.store.notifications("lead@example.com", limit=1000)
    for rid in rids:
        view = engine.run_view(rid)
        assert view["closed_by"] == "deadline"
        assert len(view["deliverables"]) == 1
        assert [n["kind"] for n in notes if n["run_id"] == rid] == ["task_completed"]
        statuses = [(s["status"], s["reason"]) for s in view["subtasks"]]
        closed = ("timed_out", "closed at deadline")
        assert statuses == [("completed", None), closed, closed]
