"""The engine's main story: fan out to three people, two answer, one is chased and times out."""

import json

from tests.conftest import answer, people

WEEKLY = """
id: weekly-status
name: Weekly status
output_type: report
description: Compile the team's answers into a one-page status report.
owner: lead@example.com
template:
  instructions: Hi! Two quick questions for this week's status report.
  fields:
    - {key: shipped, prompt: What did you ship this week?}
    - {key: blockers, prompt: Anything blocking you?, required: false}
  participants: [alice@example.com, bob@example.com, carol@example.com]
  chase: {interval: 1s, max_chases: 2, message: "Reminder: the weekly status closes soon."}
"""


def subtasks(engine, rid):
    return {s["participant_id"]: s for s in engine.run_view(rid)["subtasks"]}


def test_two_answer_one_is_chased_twice_then_times_out(engine, drain, wait_for, taskbot_cli, tmp_path):
    people(engine, "alice@example.com", "bob@example.com", "carol@example.com")
    spec = tmp_path / "weekly.yaml"
    spec.write_text(WEEKLY)
    assert taskbot_cli("tasks", "apply", str(spec)).returncode == 0
    run = taskbot_cli("run", "weekly-status")
    assert run.returncode == 0
    rid = run.stdout.strip().splitlines()[-1]
    drain()

    subs = subtasks(engine, rid)
    assert {s["status"] for s in subs.values()} == {"running"}
    opening = subs["alice@example.com"]["conversation"][0]["text"]
    assert "Two quick questions" in opening
    assert "What did you ship this week?" in opening

    answer(engine, subs["alice@example.com"], "The new parser", "a1")
    answer(engine, subs["alice@example.com"], "skip", "a2")
    answer(engine, subs["bob@example.com"], "Docs", "b1")
    answer(engine, subs["bob@example.com"], "Waiting on review", "b2")
    drain()
    subs = subtasks(engine, rid)
    assert subs["alice@example.com"]["status"] == "completed"
    assert subs["bob@example.com"]["data"] == {"shipped": "Docs", "blockers": "Waiting on review"}
    assert subs["carol@example.com"]["status"] == "running"

    wait_for(lambda: engine.store.run_fields(rid)["status"] == "completed", timeout=15, between=drain)

    carol = subtasks(engine, rid)["carol@example.com"]
    assert carol["status"] == "timed_out"
    assert carol["chases_sent"] == 2
    chases = [m for m in carol["conversation"] if m.get("kind") == "chase"]
    assert [m["text"] for m in chases] == ["Reminder: the weekly status closes soon."] * 2

    result = taskbot_cli("results", rid, "--json")
    assert result.returncode == 0
    view = json.loads(result.stdout)
    gathered = view["gathered"]
    assert gathered["tasks"]["alice@example.com"]["shipped"] == "The new parser"
    assert gathered["tasks"]["bob@example.com"] == {"shipped": "Docs", "blockers": "Waiting on review"}
    assert gathered["task_status"] == {"alice@example.com": "completed", "bob@example.com": "completed",
                                       "carol@example.com": "timed_out"}
    report = view["deliverables"][0]["content"]
    assert "| alice | The new parser | — | completed |" in report
    assert "| bob | Docs | Waiting on review | completed |" in report
    assert "**Timed out:** carol" in report
    notes = engine.store.notifications("lead@example.com")
    assert [n["kind"] for n in notes] == ["task_completed"]


def test_a_late_answer_is_kept_and_the_participant_told(engine, drain, wait_for):
    people(engine, "dan@example.com")
    engine.apply_definition(WEEKLY.replace("[alice@example.com, bob@example.com, carol@example.com]",
                                           "[dan@example.com]").replace("max_chases: 2", "max_chases: 0"))
    rid = engine.runs.trigger("weekly-status")
    drain()
    wait_for(lambda: engine.store.run_fields(rid)["status"] == "completed", timeout=10, between=drain)
    dan = subtasks(engine, rid)["dan@example.com"]
    answer(engine, dan, "Sorry, I shipped the exporter", "late-1")
    drain()
    dan = subtasks(engine, rid)["dan@example.com"]
    assert dan["status"] == "timed_out"
    assert dan["data"] == {}
    late = [m for m in dan["conversation"] if m.get("late")]
    assert [m["text"] for m in late] == ["Sorry, I shipped the exporter"]
    assert "closed" in dan["conversation"][-1]["text"]


def test_the_same_delivery_twice_is_processed_once(engine, drain):
    people(engine, "erin@example.com")
    engine.apply_definition(WEEKLY.replace("[alice@example.com, bob@example.com, carol@example.com]",
                                           "[erin@example.com]"))
    rid = engine.runs.trigger("weekly-status")
    drain()
    erin = subtasks(engine, rid)["erin@example.com"]
    for _ in range(3):
        answer(engine, erin, "The exporter", "provider-42")
    drain()
    erin = subtasks(engine, rid)["erin@example.com"]
    assert [m["text"] for m in erin["conversation"] if m["role"] == "user"] == ["The exporter"]
    assert erin["data"] == {"shipped": "The exporter"}


def test_cancel_closes_open_subtasks_and_drops_chases(engine, drain, taskbot_cli):
    people(engine, "alice@example.com", "bob@example.com", "carol@example.com")
    engine.apply_definition(WEEKLY)
    rid = engine.runs.trigger("weekly-status")
    drain()
    assert taskbot_cli("cancel", rid).returncode == 0
    view = engine.run_view(rid)
    assert view["status"] == "cancelled"
    assert {s["status"] for s in view["subtasks"]} == {"cancelled"}
    assert engine.r.zcard("taskbot:timers") == 0  # no chase check is left
    again = taskbot_cli("cancel", rid)
    assert again.returncode == 1
    assert "already cancelled" in again.stderr
    assert [n["kind"] for n in engine.store.notifications("lead@example.com")] == ["task_cancelled"]


def test_review_waits_for_approval(engine, drain, wait_for, taskbot_cli):
    people(engine, "alice@example.com")
    engine.apply_definition(WEEKLY.replace("owner:", "review: true\nowner:").replace(
        "[alice@example.com, bob@example.com, carol@example.com]", "[alice@example.com]"))
    rid = engine.runs.trigger("weekly-status")
    drain()
    alice = subtasks(engine, rid)["alice@example.com"]
    answer(engine, alice, "The parser", "r1")
    answer(engine, alice, "none", "r2")
    drain()
    assert engine.store.run_fields(rid)["status"] == "awaiting_review"
    assert taskbot_cli("approve", rid).returncode == 0
    assert engine.store.run_fields(rid)["status"] == "completed"
    kinds = [n["kind"] for n in engine.store.notifications("lead@example.com")]
    assert kinds == ["task_awaiting_review", "task_completed"]


def test_work_that_fails_every_time_is_given_up_after_ten_re_drives(r, env):
    from bot.bootstrap import build_engine
    from bot.settings import Settings

    class Clock:
        t = 1_000_000.0

        def now(self):
            return self.t

    clock = Clock()
    engine = build_engine(Settings(), clock=clock)
    engine.r.zadd("taskbot:leases", {"in:never-stored": 0})
    for _ in range(10):
        assert engine.sweep() == 1  # re-driven (its job will find nothing and fail or no-op)
        clock.t += engine.lease_seconds + 1
    assert engine.sweep() == 0
    assert engine.r.zscore("taskbot:leases", "in:never-stored") is None
    assert engine.r.hexists("taskbot:dead", "in:never-stored")
    engine.r.close()
