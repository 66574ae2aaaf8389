"""Working hours, time zones and away with the clock injected: a real Redis, real RQ jobs and the scheduler's pass,
the time moved by the test instead of waited for."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import httpx
import pytest
from rq import SimpleWorker

from bot.app import create_app
from bot.settings import Settings
from bot.workers import TaskbotScheduler
from tests.conftest import served

NY = ZoneInfo("America/New_York")
WEEKLY = {"id": "weekly", "name": "Weekly status", "owner": "lead@example.com", "template": {
    "instructions": "Hi!", "fields": [{"key": "shipped", "prompt": "What did you ship?"}],
    "participants": ["pat@example.com"], "chase": {"interval": "24h", "max_chases": 1, "message": "Reminder!"}}}


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def now(self) -> float:
        return self.t


def at(tz, *when) -> float:
    return datetime(*when, tzinfo=tz).timestamp()


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@pytest.fixture
def world(r, env, monkeypatch):
    """An engine on a clock the test moves, used by the jobs too; ``run()`` is a scheduler pass plus a burst
    worker until the queue is empty. Office hours are the default here, as they are out of the box."""
    monkeypatch.setenv("TASKBOT_WORKING_HOURS", "Mon-Fri 09:00-18:00")
    from bot import bootstrap, jobs

    clock = Clock(0.0)
    engine = bootstrap.build_engine(Settings(), clock=clock)
    monkeypatch.setattr(jobs, "engine", lambda: engine)  # what the RQ jobs of this process run on
    scheduler = TaskbotScheduler(engine)

    def run() -> None:
        for _ in range(20):
            scheduler.one_pass()
            if not len(engine.jobs.queue):
                return
            SimpleWorker([engine.jobs.queue], connection=engine.r).work(burst=True, logging_level="ERROR")

    yield clock, engine, run
    engine.r.close()


def pat(engine):
    [sub] = engine.run_view(engine.store.run_ids()[0])["subtasks"]
    return sub


@pytest.mark.parametrize("zone", ["America/New_York", "Asia/Kolkata"])
def test_an_opening_due_at_two_in_the_night_goes_out_at_nine_on_the_participants_clock(world, zone, taskbot_cli):
    clock, engine, run = world
    tz = ZoneInfo(zone)
    engine.import_contacts([{"email": "pat@example.com", "preferred_channel": "web", "timezone": zone}])
    engine.apply_definition(WEEKLY)
    clock.t = at(tz, 2027, 1, 12, 2, 0)  # Tuesday, 02:00 where Pat is
    rid = engine.runs.trigger("weekly")
    run()
    nine = at(tz, 2027, 1, 12, 9, 0)
    sub = pat(engine)
    assert (sub["status"], sub["conversation"]) == ("pending", [])
    assert (sub["next_at"], sub["next_action"], sub["timezone"]) == (iso(nine), "opening", zone)
    status = taskbot_cli("status", rid, check=True).stdout
    assert f"opening {iso(nine)}" in " ".join(status.split())  # `taskbot status` says when Pat hears from us

    clock.t = nine - 1
    run()
    assert pat(engine)["status"] == "pending"
    clock.t = nine
    run()
    sub = pat(engine)
    assert sub["status"] == "running"
    assert [(m["kind"], m["at"]) for m in sub["conversation"]] == [("opening", iso(nine))]
    # the reminder is due a day later at 09:00, Wednesday, still inside the window
    assert (sub["next_at"], sub["next_action"]) == (iso(at(tz, 2027, 1, 13, 9, 0)), "chase")


@pytest.mark.parametrize(("opened", "due", "short"), [
    ((2026, 3, 7, 10, 0), (2026, 3, 8, 10, 0), "the March change: the day is 23 hours long"),
    ((2026, 10, 31, 10, 0), (2026, 11, 1, 10, 0), "the November change: the day is 25 hours long"),
], ids=["march", "november"])
def test_a_daily_chase_over_a_daylight_saving_change_is_on_time_in_local_terms(world, opened, due, short):
    clock, engine, run = world
    engine.import_contacts([{"email": "pat@example.com", "preferred_channel": "web", "timezone": "America/New_York",
                             "working_hours": "Mon-Sun 09:00-18:00"}])
    engine.apply_definition(WEEKLY)
    clock.t = at(NY, *opened)  # Saturday 10:00 in New York
    engine.runs.trigger("weekly")
    run()
    assert pat(engine)["status"] == "running"
    chase_at = at(NY, *due)  # Sunday 10:00 in New York, on the other side of the change
    assert pat(engine)["next_at"] == iso(chase_at)
    clock.t = chase_at - 1  # one second before, on the new side of the change
    run()
    assert pat(engine)["chases_sent"] == 0
    clock.t = chase_at
    run()
    sub = pat(engine)
    assert sub["chases_sent"] == 1, short
    [chase] = [m for m in sub["conversation"] if m.get("kind") == "chase"]
    assert chase["at"] == iso(chase_at)
    assert datetime.fromtimestamp(chase_at, NY).hour == 10


def test_a_chase_due_on_saturday_waits_for_monday_morning_and_the_time_out_does_not_wait(world):
    clock, engine, run = world
    engine.import_contacts([{"email": "pat@example.com", "preferred_channel": "web", "timezone": "America/New_York"}])
    engine.apply_definition(WEEKLY)
    clock.t = at(NY, 2027, 1, 15, 10, 0)  # Friday 10:00
    rid = engine.runs.trigger("weekly")
    run()
    monday = at(NY, 2027, 1, 18, 9, 0)
    assert (pat(engine)["next_at"], pat(engine)["next_action"]) == (iso(monday), "chase")
    clock.t = at(NY, 2027, 1, 16, 10, 0)  # Saturday 10:00: due, but outside Pat's hours
    run()
    assert pat(engine)["chases_sent"] == 0
    clock.t = monday
    run()
    assert pat(engine)["chases_sent"] == 1
    assert (pat(engine)["next_at"], pat(engine)["next_action"]) == (iso(at(NY, 2027, 1, 19, 9, 0)), "time_out")
    clock.t = at(NY, 2027, 1, 19, 9, 0)
    run()
    assert pat(engine)["status"] == "timed_out"
    assert engine.store.run_fields(rid)["status"] == "completed"


def test_the_task_files_hours_apply_to_contacts_without_their_own(world):
    clock, engine, run = world
    engine.import_contacts([{"email": "pat@example.com", "preferred_channel": "web", "timezone": "Europe/Paris"},
                            {"email": "sam@example.com", "preferred_channel": "web", "timezone": "Europe/Paris",
                             "working_hours": "always"}])
    weekly = json.loads(json.dumps(WEEKLY))
    weekly["template"].update(participants=["pat@example.com", "sam@example.com"],
                              working_hours=["Mon-Thu 08:00-16:00", "Fri 08:00-12:00"])
    engine.apply_definition(weekly)
    clock.t = at(ZoneInfo("Europe/Paris"), 2027, 1, 15, 13, 0)  # Friday 13:00 in Paris
    rid = engine.runs.trigger("weekly")
    run()
    subs = {s["participant_id"]: s for s in engine.run_view(rid)["subtasks"]}
    assert subs["sam@example.com"]["status"] == "running"  # the contact's own hours first
    assert (subs["pat@example.com"]["status"], subs["pat@example.com"]["next_at"]) == (
        "pending", iso(at(ZoneInfo("Europe/Paris"), 2027, 1, 18, 8, 0)))  # the task's: Monday 08:00


def test_someone_away_is_not_messaged_their_subtask_is_excused_and_the_report_lists_them(world):
    clock, engine, run = world
    engine.import_contacts([{"email": "pat@example.com", "preferred_channel": "web", "timezone": "America/New_York",
                             "away_until": "2027-01-20"},
                            {"email": "kim@example.com", "preferred_channel": "web", "timezone": "America/New_York"}])
    weekly = json.loads(json.dumps(WEEKLY))
    weekly["template"]["participants"] = ["pat@example.com", "kim@example.com"]
    engine.apply_definition(weekly)
    clock.t = at(NY, 2027, 1, 12, 10, 0)
    rid = engine.runs.trigger("weekly")
    run()
    subs = {s["participant_id"]: s for s in engine.run_view(rid)["subtasks"]}
    assert (subs["pat@example.com"]["status"], subs["pat@example.com"]["reason"]) == ("excused",
                                                                                      "away until 2027-01-20")
    assert subs["pat@example.com"]["conversation"] == []  # not one message
    assert subs["kim@example.com"]["status"] == "running"

    # kim goes away while her sub-task is open (the API updates her contact): her reminder excuses her instead
    with served(create_app(engine, Settings(TASKBOT_API_TOKEN="admin-token"))) as base:
        auth = {"Authorization": "Bearer admin-token"}
        wrong = httpx.put(f"{base}/api/contacts/kim@example.com", headers=auth, json={
            "email": "kim@example.com", "working_hours": "weekdays 9 to 5"})
        assert wrong.status_code == 422
        assert wrong.json()["field"] == "working_hours"
        put = httpx.put(f"{base}/api/contacts/kim@example.com", headers=auth, json={
            "email": "kim@example.com", "preferred_channel": "web", "timezone": "America/New_York",
            "away_until": "2027-02-01"})
        assert put.status_code == 200
        assert put.json()["away_until"] == "2027-02-01"
    clock.t = at(NY, 2027, 1, 13, 10, 0)
    run()
    run_view = engine.run_view(rid)
    kim = next(s for s in run_view["subtasks"] if s["participant_id"] == "kim@example.com")
    assert (kim["status"], kim["chases_sent"]) == ("excused", 0)
    assert [m["kind"] for m in kim["conversation"]] == ["opening"]
    assert run_view["status"] == "completed"  # excused is final for fan-in
    assert run_view["gathered"]["task_status"] == {"pat@example.com": "excused", "kim@example.com": "excused"}
    report = run_view["deliverables"][0]["content"]
    assert "**Excused:** pat (away until 2027-01-20), kim (away until 2027-02-01)" in report
    assert engine.progress(rid)["excused"] == 2
