"""Schedules an operator can see and switch: `taskbot schedules` and `/task schedules`."""

import json
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from bot.commands import Actor, execute

TASK = {"id": "standup", "name": "Standup", "owner": "lee@example.com",
        "template": {"participants": ["ann@example.com"], "fields": [{"key": "today", "prompt": "Today?"}]}}
LEE = Actor(frozenset({"U_LEE", "lee@example.com"}))
ANN = Actor(frozenset({"U_ANN", "ann@example.com"}))


@pytest.fixture
def standup(engine):
    engine.apply_definition(TASK)
    engine.apply_definition({**TASK, "id": "retro", "name": "Retro", "owner": "ann@example.com"})
    return engine


def due_now(r, sid):
    r.zadd("taskbot:schedules:due", {sid: 1})  # its time has come


def test_list_shows_each_schedule_with_its_next_run_in_its_zone_and_in_utc(standup, taskbot_cli):
    sid = taskbot_cli("schedules", "add", "standup", "30 9 * * MON-FRI", "--timezone", "Asia/Tokyo",
                      "--data", "team=core", check=True).stdout.strip().splitlines()[-1]
    other = taskbot_cli("task", "schedule", "retro", "0 17 * * FRI", check=True).stdout.split()[1].rstrip(":")
    [mine, theirs] = json.loads(taskbot_cli("schedules", "list", "--json", check=True).stdout)  # by task: retro first
    assert theirs["id"] == sid
    assert mine["id"] == other
    assert theirs["task_id"] == "standup"
    assert theirs["cron"] == "30 9 * * MON-FRI"
    assert theirs["timezone"] == "Asia/Tokyo"
    assert theirs["data"] == {"team": "core"}
    assert theirs["enabled"] is True
    local = datetime.fromisoformat(theirs["next_run_local"])
    assert (local.hour, local.minute, local.utcoffset().total_seconds()) == (9, 30, 9 * 3600)
    assert local.weekday() < 5
    utc = theirs["next_run_at"]
    assert utc.endswith("Z")
    assert datetime.fromisoformat(utc) == local
    table = taskbot_cli("schedules", "list", check=True).stdout
    for shown in (sid, "30 9 * * MON-FRI", "Asia/Tokyo", theirs["next_run_local"], utc, "team=core"):
        assert shown in table
    only = json.loads(taskbot_cli("schedules", "list", "--task", "retro", "--json", check=True).stdout)
    assert [s["id"] for s in only] == [other]


def test_a_disabled_schedule_keeps_its_place_and_starts_no_run_until_enabled(standup, taskbot_cli, drain, r):
    sid = taskbot_cli("schedules", "add", "standup", "0 9 * * *", check=True).stdout.strip()
    assert taskbot_cli("schedules", "disable", sid, check=True).stdout.strip() == f"disabled schedule {sid}"
    due_now(r, sid)
    drain()
    assert standup.list_runs("standup") == []
    [kept] = json.loads(taskbot_cli("schedules", "list", "--json", check=True).stdout)
    assert kept["enabled"] is False
    assert datetime.fromisoformat(kept["next_run_at"]).timestamp() > standup.now()  # its slot passed unused
    assert "disabled" in execute(standup, "schedules", LEE).text

    enabled = taskbot_cli("schedules", "enable", sid, check=True).stdout
    assert enabled.startswith(f"enabled schedule {sid}; next run ")
    nxt = standup.schedules.get(sid)["next_run_at"]
    assert datetime.fromtimestamp(nxt, ZoneInfo("UTC")).hour == 9
    due_now(r, sid)
    drain()
    [run] = standup.list_runs("standup")
    assert run["trigger"] == {"kind": "schedule", "by": f"schedule:{sid}"}


def test_delete_removes_it_and_bad_words_exit_2_naming_them(standup, taskbot_cli, r):
    sid = taskbot_cli("schedules", "add", "standup", "0 9 * * *", check=True).stdout.strip()
    before = {k: r.dump(k) for k in r.keys("taskbot:schedules*")}
    for args, says in [
        (["schedules", "add", "standup", "0 25 * * *"], "cron: '0 25 * * *' is not a cron expression"),
        (["schedules", "add", "standup", "0 9 * * *", "--timezone", "Mars/Base"], "timezone: unknown time zone"),
        (["schedules", "add", "nope", "0 9 * * *"], "task 'nope' not found"),
        (["schedules", "add", "standup", "0 9 * * *", "--data", "novalue"], "--data: expected key=value"),
        (["schedules", "list", "--task", "nope"], "task 'nope' not found"),
        (["schedules", "disable", "nope"], "schedule 'nope' not found"),
        (["schedules", "enable", "nope"], "schedule 'nope' not found"),
        (["schedules", "delete", "nope"], "schedule 'nope' not found"),
    ]:
        result = taskbot_cli(*args)
        assert result.returncode == 2, args
        assert result.stderr.startswith(f"taskbot: error: {says}"), (args, result.stderr)
    assert {k: r.dump(k) for k in r.keys("taskbot:schedules*")} == before
    assert taskbot_cli("schedules", "delete", sid, check=True).stdout.strip() == f"deleted schedule {sid}"
    assert "No schedules" in taskbot_cli("schedules", "list", check=True).stdout


def test_task_schedules_lists_an_owners_own_and_the_owner_may_unschedule_them(standup):
    mine = standup.schedules.create("standup", "0 9 * * MON", "Europe/Paris")["id"]
    theirs = standup.schedules.create("retro", "0 17 * * FRI")["id"]
    listed = execute(standup, "schedules", LEE)
    assert listed.ok
    assert mine in listed.text
    assert '"0 9 * * MON" Europe/Paris, next ' in listed.text
    assert theirs not in listed.text
    assert theirs in execute(standup, "schedules", Actor(frozenset({"U_ADMIN"}), admin=True)).text
    assert not execute(standup, "schedules retro", LEE).ok  # not theirs to see
    assert "No schedules of tasks you own" in execute(standup, "schedules", Actor(frozenset({"U_X"}))).text

    refused = execute(standup, f"unschedule {mine}", ANN)
    assert not refused.ok
    assert standup.schedules.get(mine)
    assert execute(standup, f"unschedule {mine}", LEE).ok
    assert [s["id"] for s in standup.schedules.all()] == [theirs]
    assert "schedule 'nope' not found" in execute(standup, "unschedule nope", LEE).text
