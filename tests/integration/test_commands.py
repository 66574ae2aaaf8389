"""The /task grammar shared by Slack, Telegram and the CLI, and cron schedules."""

from bot.commands import USAGE, Actor, execute

TASK = """
id: standup
name: Standup
owner: lead@example.com
template:
  fields: [{key: today, prompt: What will you do today?}]
  participants: [ann@example.com]
"""

ADMIN = Actor(frozenset({"U_ADMIN"}), admin=True)
OWNER = Actor(frozenset({"U_LEAD", "lead@example.com"}))
STRANGER = Actor(frozenset({"U_OTHER", "other@example.com"}))


def snapshot(r):
    return {k: r.dump(k) for k in sorted(r.keys("taskbot:*"))}


def test_wrong_words_answer_one_line_and_the_usage_and_change_nothing(engine, r):
    engine.apply_definition(TASK)
    before = snapshot(r)
    for words in ("frobnicate", "run", "show a b", "cancel", 'schedule standup "0 9 * * *" UTC extra', 'run "x'):
        reply = execute(engine, words, ADMIN)
        assert not reply.ok
        first, usage = reply.text.split("\n")
        assert usage == USAGE
        assert first
    assert snapshot(r) == before


def test_owner_may_run_and_cancel_their_task_others_are_refused(engine, drain):
    engine.apply_definition(TASK)
    refused = execute(engine, "run standup", STRANGER)
    assert not refused.ok
    assert "only an admin or the task's owner" in refused.text
    started = execute(engine, "run standup week=47", OWNER)
    assert started.ok
    rid = started.run["id"]
    assert engine.run_view(rid)["gathered"] == {"week": "47"}
    assert not execute(engine, f"cancel {rid}", STRANGER).ok
    assert engine.store.run_fields(rid)["status"] == "pending"
    assert execute(engine, f"cancel {rid}", OWNER).ok
    assert engine.store.run_fields(rid)["status"] == "cancelled"
    assert "standup — Standup" in execute(engine, "list", STRANGER).text


def test_status_and_results_read_the_run(engine, drain):
    engine.import_contacts([{"email": "ann@example.com", "preferred_channel": "web"}])
    engine.apply_definition(TASK)
    rid = execute(engine, "run standup", ADMIN).run["id"]
    drain()
    status = execute(engine, f"status {rid}", OWNER)
    assert "0 answered, 1 open" in status.text
    assert "no deliverable yet" in execute(engine, f"results {rid}", OWNER).text
    assert not execute(engine, f"results {rid}", STRANGER).ok


def test_a_schedule_starts_runs_in_its_time_zone_and_an_inactive_task_gets_none(engine, drain, r, taskbot_cli):
    engine.apply_definition(TASK)
    bad = taskbot_cli("task", "schedule", "standup", "61 9 * * *")
    assert bad.returncode == 2
    assert "cron" in bad.stderr
    bad_zone = execute(engine, 'schedule standup "0 9 * * MON-FRI" Mars/Olympus', ADMIN)
    assert not bad_zone.ok
    assert "unknown time zone" in bad_zone.text
    assert engine.schedules.all() == []

    made = execute(engine, 'schedule standup "0 9 * * MON-FRI" Europe/Paris', ADMIN)
    assert made.ok
    (schedule,) = engine.schedules.all()
    from datetime import datetime
    from zoneinfo import ZoneInfo

    when = datetime.fromtimestamp(schedule["next_run_at"], ZoneInfo("Europe/Paris"))
    assert (when.hour, when.minute) == (9, 0)
    assert when.weekday() < 5

    r.zadd("taskbot:schedules:due", {schedule["id"]: 1})  # its time has come
    drain()
    (run,) = engine.list_runs("standup")
    assert run["trigger"] == {"kind": "schedule", "by": f"schedule:{schedule['id']}"}
    assert engine.schedules.all()[0]["next_run_at"] > 1  # moved to the next slot, fired once

    assert execute(engine, "deactivate standup", ADMIN).ok
    refused = execute(engine, 'schedule standup "0 10 * * *"', ADMIN)
    assert not refused.ok
    assert "inactive" in refused.text
    assert len(engine.schedules.all()) == 1  # the existing schedule is kept
    r.zadd("taskbot:schedules:due", {schedule["id"]: 1})
    drain()
    assert len(engine.list_runs("standup")) == 1  # an inactive task's slot is skipped
    assert execute(engine, f"unschedule {schedule['id']}", ADMIN).ok
    assert engine.schedules.all() == []
