"""Answers stay in order: whatever dies when, a conversation's messages are applied as they came."""

import contextlib
import os
import signal
import time

from tests.conftest import answer, people

THREE_QUESTIONS = """
id: status
name: Status
owner: lead@example.com
template:
  fields:
    - {{key: shipped, prompt: What did you ship?}}
    - {{key: next, prompt: What is next?}}
    - {{key: blockers, prompt: Anything blocking you?}}
  participants: [{people}]
  chase: {{interval: 1h, max_chases: 1}}
"""

FIELDS = ("shipped", "next", "blockers")  # each answer is "<participant> <its field>"


def said(sub):
    return [m["text"] for m in sub["conversation"] if m["role"] == "user"]


def test_a_worker_killed_during_an_answer_never_lets_the_next_answers_overtake_it(engine, workers, wait_for):
    names = [f"p{i}@example.com" for i in range(40)]
    people(engine, *names)
    engine.apply_definition(THREE_QUESTIONS.format(people=", ".join(names)))
    rid = engine.runs.trigger("status")
    running = workers(2)
    wait_for(lambda: [s["status"] for s in engine.run_view(rid)["subtasks"]] == ["running"] * 40, timeout=60)
    subs = engine.run_view(rid)["subtasks"]
    kills = 0
    for i, sub in enumerate(subs):
        answer(engine, sub, f"{sub['participant_id']} shipped", f"{i}-1")
        if i % 5 == 0:
            # the worker taking that answer dies about 20 ms into it; the next two come at once
            time.sleep(0.02)
            victim = running.pop(0)
            os.kill(victim.pid, signal.SIGKILL)
            victim.wait()
            kills += 1
            running += workers(1)
        answer(engine, sub, f"{sub['participant_id']} next", f"{i}-2")
        answer(engine, sub, f"{sub['participant_id']} blockers", f"{i}-3")
    wait_for(lambda: engine.store.run_fields(rid)["status"] == "completed", timeout=120)

    view = engine.run_view(rid)
    assert kills == 8
    for sub in view["subtasks"]:
        pid = sub["participant_id"]
        assert sub["status"] == "completed", sub
        assert sub["data"] == {f: f"{pid} {f}" for f in FIELDS}, sub["conversation"]
        assert said(sub) == [f"{pid} shipped", f"{pid} next", f"{pid} blockers"]  # each once, none late
        assert not any(m.get("late") for m in sub["conversation"])
    # every inbox is empty (a lock a killed worker held lapses by itself)
    assert [k for k in engine.r.keys("taskbot:inbox:*") if not k.endswith(b":lock")] == []


def test_answers_taken_by_workers_that_die_are_applied_before_the_answers_after_them(engine, workers, wait_for):
    """Eight workers each take someone's first answer and are killed before applying it (stopped
    first, so that each surely holds one); the next two answers of each come at once."""
    names = [f"q{i}@example.com" for i in range(8)]
    people(engine, *names)
    engine.apply_definition(THREE_QUESTIONS.format(people=", ".join(names)))
    rid = engine.runs.trigger("status")
    doomed = workers(8)
    wait_for(lambda: [s["status"] for s in engine.run_view(rid)["subtasks"]] == ["running"] * 8, timeout=60)
    wait_for(lambda: engine.r.scard("rq:workers:taskbot") >= 8 and len(engine.jobs.queue) == 0, timeout=60)
    time.sleep(1)  # registered workers get to their first wait for a job
    for proc in doomed:
        os.kill(proc.pid, signal.SIGSTOP)  # idle in BLMOVE: Redis hands each the next job all the same
    subs = engine.run_view(rid)["subtasks"]
    for i, sub in enumerate(subs):
        answer(engine, sub, f"{sub['participant_id']} shipped", f"{i}-1")
    with contextlib.suppress(AssertionError):
        wait_for(lambda: len(engine.jobs.queue) == 0, timeout=3)
    assert len(engine.jobs.queue) < 8  # first answers' jobs are in stopped workers (a late starter may miss one)
    for proc in doomed:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    workers(2)
    for i, sub in enumerate(subs):
        answer(engine, sub, f"{sub['participant_id']} next", f"{i}-2")
        answer(engine, sub, f"{sub['participant_id']} blockers", f"{i}-3")
    wait_for(lambda: engine.store.run_fields(rid)["status"] == "completed", timeout=120)

    for sub in engine.run_view(rid)["subtasks"]:
        pid = sub["participant_id"]
        assert sub["data"] == {f: f"{pid} {f}" for f in FIELDS}, sub["conversation"]
        assert said(sub) == [f"{pid} shipped", f"{pid} next", f"{pid} blockers"]
        assert not any(m.get("late") for m in sub["conversation"])


def test_a_message_left_at_the_head_by_a_dead_worker_is_applied_before_the_ones_behind_it(engine, drain, wait_for):
    """The exact state a worker killed mid-answer leaves: its inbox locked, the answer first in it."""
    people(engine, "ann@example.com")
    engine.apply_definition(THREE_QUESTIONS.format(people="ann@example.com"))
    rid = engine.runs.trigger("status")
    drain()
    sub = engine.run_view(rid)["subtasks"][0]
    engine.jobs.queue.empty()  # type: ignore[attr-defined]
    answer(engine, sub, "the parser", "m1")
    engine.jobs.queue.empty()  # its job is lost with the worker that took it ...
    engine.r.set(f"taskbot:inbox:s-{sub['id']}:lock", "dead-worker", px=2000)  # ... which held the inbox
    answer(engine, sub, "the lexer", "m2")
    answer(engine, sub, "nothing", "m3")
    assert len(engine.jobs.queue) == 0  # the (dead) holder would have taken them: no job of their own
    drain()
    assert engine.run_view(rid)["subtasks"][0]["data"] == {}  # nobody overtakes m1 while its lease runs

    wait_for(lambda: engine.store.run_fields(rid)["status"] == "completed", timeout=20, between=drain)
    done = engine.run_view(rid)["subtasks"][0]
    assert done["data"] == {"shipped": "the parser", "next": "the lexer", "blockers": "nothing"}
    assert said(done) == ["the parser", "the lexer", "nothing"]


def test_a_silent_check_does_not_time_out_someone_whose_answer_waits_to_be_applied(engine, drain, wait_for):
    people(engine, "bo@example.com")
    engine.apply_definition({"id": "status", "name": "Status", "owner": "lead@example.com", "template": {
        "fields": [{"key": "shipped", "prompt": "Shipped?"}], "participants": ["bo@example.com"],
        "chase": {"interval": "2s", "max_chases": 0}}})
    rid = engine.runs.trigger("status")
    drain()
    sub = engine.run_view(rid)["subtasks"][0]
    engine.jobs.queue.empty()  # type: ignore[attr-defined]
    answer(engine, sub, "the parser", "m1")
    engine.jobs.queue.empty()  # its worker died with it, holding the inbox
    engine.r.set(f"taskbot:inbox:s-{sub['id']}:lock", "dead-worker", px=6000)
    # the time-out falls due while the answer waits at the head of the inbox
    due = float(engine.store.sub_fields(sub["id"])["opened_at"]) + 2
    time.sleep(max(0.0, due - time.time()) + 0.3)
    drain()
    assert engine.run_view(rid)["subtasks"][0]["status"] == "running"

    wait_for(lambda: engine.store.run_fields(rid)["status"] == "completed", timeout=20, between=drain)
    done = engine.run_view(rid)["subtasks"][0]
    assert done["status"] == "completed"
    assert done["data"] == {"shipped": "the parser"}
