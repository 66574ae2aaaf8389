"""Real worker processes: fan-in exactly once under racing answers, and nothing lost on kill -9."""

import os
import signal
import time

from tests.conftest import answer, people

ONE_QUESTION = """
id: {id}
name: Quick poll
owner: lead@example.com
template:
  fields: [{{key: vote, prompt: Your vote?}}]
  participants: [{people}]
  chase: {{interval: {interval}, max_chases: {chases}}}
"""


def test_fan_in_happens_once_when_the_last_two_answers_race(engine, workers, wait_for):
    people(engine, "p1@example.com", "p2@example.com")
    engine.apply_definition(ONE_QUESTION.format(id="poll", people="p1@example.com, p2@example.com",
                                                interval="1h", chases=1))
    runs = [engine.runs.trigger("poll") for _ in range(40)]
    workers(2)

    def opened():
        statuses = [s["status"] for rid in runs for s in engine.run_view(rid)["subtasks"]]
        return statuses == ["running"] * 80

    wait_for(opened, timeout=30)
    # Both answers of a run land back to back, so the two workers take them at the same moment.
    for rid in runs:
        subs = engine.run_view(rid)["subtasks"]
        for i, sub in enumerate(subs):
            answer(engine, sub, f"option {i}", f"{rid}-{i}")
    wait_for(lambda: all(engine.store.run_fields(rid)["status"] == "completed" for rid in runs), timeout=60)

    notes = engine.store.notifications("lead@example.com", limit=1000)
    for rid in runs:
        view = engine.run_view(rid)
        assert len(view["deliverables"]) == 1, rid
        assert view["gathered"]["task_status"] == {"p1@example.com": "completed", "p2@example.com": "completed"}
        assert [n["kind"] for n in notes if n["run_id"] == rid] == ["task_completed"]


def test_killing_every_worker_mid_run_loses_nothing_and_sends_no_chase_twice(engine, workers, wait_for):
    names = [f"u{i}@example.com" for i in range(6)]
    people(engine, *names)
    engine.apply_definition(ONE_QUESTION.format(id="survey", people=", ".join(names), interval="2s", chases=2))
    rid = engine.runs.trigger("survey")
    first = workers(2)
    wait_for(lambda: [s["status"] for s in engine.run_view(rid)["subtasks"]] == ["running"] * 6, timeout=30)
    subs = {s["participant_id"]: s for s in engine.run_view(rid)["subtasks"]}
    answer(engine, subs["u0@example.com"], "yes", "m0")
    # Let the first chases go out, then kill -9 every worker (and with them the scheduler loops).
    wait_for(lambda: any(s["chases_sent"] >= 1 for s in engine.run_view(rid)["subtasks"]), timeout=30)
    for proc in first:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    # Answers that arrive while nothing runs are stored and wait.
    answer(engine, subs["u1@example.com"], "no", "m1")
    answer(engine, subs["u2@example.com"], "maybe", "m2")
    time.sleep(1)
    assert engine.store.run_fields(rid)["status"] == "running"

    workers(2)
    wait_for(lambda: engine.store.run_fields(rid)["status"] == "completed", timeout=60)

    view = engine.run_view(rid)
    by_id = {s["participant_id"]: s for s in view["subtasks"]}
    assert {p: by_id[p]["data"].get("vote") for p in names[:3]} == {
        "u0@example.com": "yes", "u1@example.com": "no", "u2@example.com": "maybe"}
    for p in names[3:]:
        sub = by_id[p]
        assert sub["status"] == "timed_out"
        chases = [m for m in sub["conversation"] if m.get("kind") == "chase"]
        assert len(chases) == 2, (p, sub["conversation"])
        assert sub["chases_sent"] == 2
    for p in names[1:3]:
        chases = [m for m in by_id[p]["conversation"] if m.get("kind") == "chase"]
        assert len(chases) <= 2
    assert len(view["deliverables"]) == 1
