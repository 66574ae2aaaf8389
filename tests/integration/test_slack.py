"""Slack end to end: signed requests to the real app over HTTP, a fake Slack Web API on 127.0.0.1, real RQ jobs."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import httpx
import pytest

from bot.app import create_app
from bot.commands import USAGE
from bot.settings import Settings
from bot.slack_views import NEW_TASK
from tests.conftest import served, turn_on
from tests.fakes.slack_api import BOT_ID, BOT_USER, FakeSlack, SlackSender, command_form, dm_event, envelope

SECRET = "test-signing-secret"
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
  chase: {interval: 3s, max_chases: 1, message: "Reminder: the weekly status closes soon."}
"""
TEAM = [
    {"email": "lead@example.com", "slack_user_id": "U_LEAD"},
    {"email": "alice@example.com", "slack_user_id": "U_ALICE"},
    {"email": "bob@example.com", "slack_user_id": "U_BOB"},
    {"email": "carol@example.com"},  # no Slack id: found by email in the member list (users.list)
]


@pytest.fixture(autouse=True)
def fake_slack(env, monkeypatch) -> Iterator[FakeSlack]:
    """A fake Slack Web API, and the environment that turns taskbot's Slack channel on against it."""
    fake = FakeSlack().start()
    for uid, email, name in (("U_LEAD", "lead@example.com", "Lena Lead"), ("U_ALICE", "alice@example.com", "Alice"),
                             ("U_BOB", "bob@example.com", "Bob"), ("U_CAROL", "carol@example.com", "Carol"),
                             ("U_OTHER", "other@example.com", "Otto"), ("U_BOSS", "boss@example.com", "Bo Boss"),
                             ("U_NEW", None, "Nia New")):
        fake.add_user(uid, email, name)
    values = {"SLACK_BOT_TOKEN": fake.token, "SLACK_SIGNING_SECRET": SECRET, "TASKBOT_SLACK_API_URL": fake.api_url}
    turn_on(env, monkeypatch, values)
    yield fake
    fake.stop()


@pytest.fixture
def slack(engine) -> Iterator[SlackSender]:
    """The app over HTTP, and Slack's side of the conversation with it."""
    with served(create_app(engine, Settings())) as base:
        sender = SlackSender(base, SECRET)
        yield sender
        sender.close()


def queued(engine) -> int:
    return len(engine.jobs.queue)


def snapshot(r):
    """Every key and value, but the rate limiter's (its keys expire on their own)."""
    return {k: r.dump(k) for k in sorted(r.keys("*")) if not k.startswith(b"taskbot:slack:rate:")}


def subtasks(engine, rid):
    return {s["participant_id"]: s for s in engine.run_view(rid)["subtasks"]}


def block_text(message) -> str:
    out = []
    for block in message.get("blocks", []):
        out += [block["text"]["text"]] if "text" in block else [f["text"] for f in block.get("fields", [])]
    return "\n".join(out)


def start_run(engine, slack, fake, drain, user="U_LEAD", task="weekly-status") -> str:
    assert slack.command(user, f"run {task}", response_url=fake.response_url("run")).status_code == 200
    drain()
    started = fake.replies("run")[-1]["text"]
    rid = re.fullmatch(rf"Started run (\w+) of {task}\.", started)
    assert rid, started
    return rid.group(1)


def test_run_from_slack_two_answer_one_is_chased_in_the_thread_and_the_owner_sees_the_report(
        engine, slack, fake_slack, drain, wait_for):
    engine.import_contacts(TEAM)
    engine.apply_definition(WEEKLY)
    rid = start_run(engine, slack, fake_slack, drain)

    # three DMs, each the root of its own thread, posted to the user id (no conversations.open); carol was found
    # by email in the member list, without a lookup of her own
    roots = {}
    for uid in ("U_ALICE", "U_BOB", "U_CAROL"):
        [opening] = fake_slack.posts(f"D{uid}")
        assert "thread_ts" not in opening or opening["thread_ts"] is None
        assert "What did you ship this week?" in opening["text"]
        roots[uid] = opening["ts"]
    assert fake_slack.calls_to("users.lookupByEmail") == []
    assert fake_slack.calls_to("conversations.open") == []
    assert [c.args.get("cursor") for c in fake_slack.calls_to("users.list")] == [None]
    assert {s["channel"] for s in subtasks(engine, rid).values()} == {"slack"}

    # alice answers in the thread, bob in the DM itself; carol stays silent
    for text in ("The parser", "none"):
        assert slack.dm("U_ALICE", text, thread_ts=roots["U_ALICE"]).status_code == 200
    for text in ("Docs", "skip"):
        assert slack.dm("U_BOB", text).status_code == 200
    drain()
    subs = subtasks(engine, rid)
    assert subs["alice@example.com"]["data"] == {"shipped": "The parser", "blockers": "none"}
    assert subs["bob@example.com"]["data"] == {"shipped": "Docs"}
    assert subs["carol@example.com"]["status"] == "running"
    bob_says = fake_slack.posts("DU_BOB")[1:]
    assert [m["thread_ts"] for m in bob_says] == [roots["U_BOB"]] * 2  # the bot answers in the opening's thread
    assert "Anything blocking you?" in bob_says[0]["text"]

    wait_for(lambda: engine.store.run_fields(rid)["status"] == "completed", timeout=30, between=drain)
    carol = subtasks(engine, rid)["carol@example.com"]
    assert (carol["status"], carol["chases_sent"]) == ("timed_out", 1)
    [chase] = fake_slack.posts("DU_CAROL")[1:]
    assert chase["text"] == "Reminder: the weekly status closes soon."
    assert chase["thread_ts"] == roots["U_CAROL"]
    drain()
    [told] = fake_slack.posts("DU_LEAD")
    assert told["text"].startswith(f"Run {rid} of weekly-status completed.")

    slack.command("U_LEAD", f"status {rid}", response_url=fake_slack.response_url("status"))
    slack.command("U_LEAD", f"results {rid}", response_url=fake_slack.response_url("results"))
    drain()
    status = block_text(fake_slack.replies("status")[-1])
    assert f"Run {rid} of weekly-status: completed" in status
    assert "*Answered*\nalice, bob" in status
    assert "*Chased*\ncarol (1)" in status
    assert "*Timed out*\ncarol" in status
    results = block_text(fake_slack.replies("results")[-1])
    assert "*Weekly status*" in results
    assert "| alice | The parser | none | completed |" in results
    assert "| bob | Docs | — | completed |" in results
    assert "*Timed out:* carol" in results


def test_task_new_opens_a_modal_that_validates_then_saves(engine, slack, fake_slack, drain, r):
    engine.import_contacts(TEAM)
    assert slack.command("U_LEAD", "new", response_url=fake_slack.response_url("new"),
                         trigger_id="trig-42").status_code == 200
    [opened] = fake_slack.calls_to("views.open")
    assert opened.args["trigger_id"] == "trig-42"
    modal = opened.args["view"]
    assert (modal["type"], modal["callback_id"]) == ("modal", NEW_TASK)
    assert {"name", "output_type", "participants", "questions", "chase_interval", "max_chases",
            "schedule"} <= {b["block_id"] for b in modal["blocks"]}
    assert queued(engine) == 0

    form = {"name": {"type": "plain_text_input", "value": "Weekly status"},
            "output_type": {"type": "static_select", "selected_option": {"value": "summary"}},
            "participants": {"type": "multi_users_select", "selected_users": ["U_ALICE", "U_NEW"]},
            "questions": {"type": "plain_text_input", "value": "shipped: What did you ship?\nAny blockers? (optional)"},
            "chase_interval": {"type": "plain_text_input", "value": "2x"},
            "max_chases": {"type": "number_input", "value": "1"},
            "schedule": {"type": "plain_text_input", "value": "0 9 * * MON"},
            "timezone": {"type": "plain_text_input", "value": "Europe/Paris"}}
    before = snapshot(r)
    bad = slack.submit("U_LEAD", NEW_TASK, form)
    assert bad.status_code == 200
    assert bad.json() == {"response_action": "errors",
                          "errors": {"chase_interval": "'2x' is not a duration (use e.g. 30s, 15m, 24h, 2d)"}}
    assert snapshot(r) == before  # nothing stored, nothing queued

    form["chase_interval"]["value"] = "1d"
    good = slack.submit("U_LEAD", NEW_TASK, form)
    assert (good.status_code, good.text) == (200, "")
    task = engine.store.get_definition("weekly-status")
    assert (task.name, task.output_type, task.owner) == ("Weekly status", "summary", "lead@example.com")
    assert task.template.participants == ["alice@example.com", "U_NEW"]
    assert [(f.key, f.required) for f in task.template.fields] == [("shipped", True), ("any_blockers", False)]
    assert (task.template.chase.interval, task.template.chase.max_chases) == (86400, 1)
    [schedule] = engine.schedules.all()
    assert (schedule["task_id"], schedule["cron"], schedule["timezone"]) == ("weekly-status", "0 9 * * MON",
                                                                            "Europe/Paris")
    drain()
    assert engine.store.find_contacts(["U_NEW"])["U_NEW"].name == "Nia New"
    [confirm] = fake_slack.posts("DU_LEAD")
    assert "Saved task Weekly status (weekly-status)" in confirm["text"]

    again = slack.submit("U_LEAD", NEW_TASK, form)
    assert again.json()["errors"] == {"name": "a task 'weekly-status' exists already; pick another name"}


@pytest.mark.parametrize(("fault", "options"), [("bad signature", {"secret": "not-the-signing-secret"}),
                                                  ("stale timestamp", {"timestamp": time.time() - 600}),
                                                  ("missing headers", {"sign": False})])
def test_unsigned_or_stale_requests_are_refused_and_nothing_is_enqueued(engine, slack, fake_slack, r, fault, options):
    engine.import_contacts(TEAM)
    engine.apply_definition(WEEKLY)
    before = snapshot(r)
    answers = [slack.dm("U_ALICE", "The parser", **options),
               slack.command("U_LEAD", "run weekly-status", response_url=fake_slack.response_url("x"), **options),
               slack.submit("U_LEAD", NEW_TASK, {}, **options)]
    assert [a.status_code for a in answers] == [401, 401, 401], fault
    assert queued(engine) == 0
    assert r.keys("taskbot:inbound:*") == []
    assert r.keys("taskbot:seen:*") == []
    assert snapshot(r) == before
    assert fake_slack.calls == []


def test_an_event_delivered_three_times_is_recorded_once_and_answered_once(engine, slack, fake_slack, drain):
    engine.import_contacts(TEAM)
    engine.apply_definition(WEEKLY.replace("alice@example.com, bob@example.com, carol@example.com",
                                           "alice@example.com"))
    rid = start_run(engine, slack, fake_slack, drain)
    [opening] = fake_slack.posts("DU_ALICE")
    for retry in (None, 1, 2):
        answer = slack.dm("U_ALICE", "The parser", thread_ts=opening["ts"], event_id="Ev-SAME", retry=retry,
                          ts="1800000000.424242")
        assert answer.status_code == 200
        assert engine.r.exists("taskbot:seen:slack:Ev-SAME")  # stored before Slack got its 200
    assert len(engine.r.keys("taskbot:inbound:*")) == 1
    drain()
    alice = subtasks(engine, rid)["alice@example.com"]
    assert [m["text"] for m in alice["conversation"] if m["role"] == "user"] == ["The parser"]
    assert alice["data"] == {"shipped": "The parser"}
    [reply] = fake_slack.posts("DU_ALICE")[1:]
    assert "Anything blocking you?" in reply["text"]


def test_the_bots_own_messages_and_edits_do_not_loop_back(engine, slack, fake_slack, drain, r):
    engine.import_contacts(TEAM)
    engine.apply_definition(WEEKLY.replace("alice@example.com, bob@example.com, carol@example.com",
                                           "alice@example.com"))
    start_run(engine, slack, fake_slack, drain)
    before = snapshot(r)
    own = {"type": "message", "channel": "DU_ALICE", "channel_type": "im", "user": BOT_USER, "text": "Hi",
           "ts": "1800000001.000001", "bot_id": BOT_ID}
    edit = {"type": "message", "subtype": "message_changed", "channel": "DU_ALICE", "channel_type": "im",
            "message": {"user": "U_ALICE", "text": "edited"}, "ts": "1800000001.000002"}
    bot_message = {"type": "message", "subtype": "bot_message", "channel": "DU_ALICE", "channel_type": "im",
                   "bot_id": "B_OTHER", "text": "beep", "ts": "1800000001.000003"}
    for event in (own, edit, bot_message):
        assert slack.event(event).status_code == 200
    assert snapshot(r) == before
    assert queued(engine) == 0


def test_a_rate_limited_send_is_retried_after_retry_after(engine, slack, fake_slack, drain):
    engine.import_contacts(TEAM)
    engine.apply_definition(WEEKLY.replace("alice@example.com, bob@example.com, carol@example.com",
                                           "alice@example.com"))
    fake_slack.fail_next("chat.postMessage", status=429, retry_after=1)
    rid = start_run(engine, slack, fake_slack, drain)
    first, second = fake_slack.calls_to("chat.postMessage")
    assert (first.status, second.status) == (429, 200)
    assert second.at - first.at >= 1.0
    assert "What did you ship this week?" in second.args["text"]
    assert subtasks(engine, rid)["alice@example.com"]["status"] == "running"


def test_a_long_retry_after_does_not_hold_the_worker_and_the_opening_goes_out_later(engine, slack, fake_slack,
                                                                                     drain, wait_for):
    engine.import_contacts(TEAM)
    engine.apply_definition(WEEKLY.replace("alice@example.com, bob@example.com, carol@example.com",
                                           "alice@example.com"))
    fake_slack.fail_next("chat.postMessage", status=429, retry_after=12)
    started = time.monotonic()
    rid = start_run(engine, slack, fake_slack, drain)
    assert time.monotonic() - started < 10
    assert [c.status for c in fake_slack.calls_to("chat.postMessage")] == [429]
    assert subtasks(engine, rid)["alice@example.com"]["status"] == "pending"
    wait_for(lambda: subtasks(engine, rid)["alice@example.com"]["status"] == "running", timeout=40, between=drain)
    assert [c.status for c in fake_slack.calls_to("chat.postMessage")] == [429, 200]
    assert time.monotonic() - started >= 12  # not before Slack's Retry-After


def test_people_slack_cannot_reach_fail_or_fall_back_and_lookups_are_cached(engine, slack, fake_slack, drain):
    engine.import_contacts([*TEAM, {"email": "gone@example.com", "slack_user_id": "U_GONE"},
                            {"email": "dave@example.com"}])
    engine.apply_definition(WEEKLY.replace("alice@example.com, bob@example.com, carol@example.com",
                                           "gone@example.com, dave@example.com"))
    for _ in range(2):
        rid = start_run(engine, slack, fake_slack, drain)
        subs = subtasks(engine, rid)
        assert subs["gone@example.com"]["status"] == "failed"
        assert subs["gone@example.com"]["reason"] == "Slack refused: user_not_found"
        assert subs["dave@example.com"]["status"] == "failed"  # not on Slack, and email is off here
        assert "no usable channel" in subs["dave@example.com"]["reason"]
    assert [c.args["email"] for c in fake_slack.calls_to("users.lookupByEmail")] == ["dave@example.com"]


def test_wrong_words_answer_the_usage_and_change_nothing(engine, slack, fake_slack, r):
    engine.import_contacts(TEAM)
    engine.apply_definition(WEEKLY)
    before = snapshot(r)
    for words in ("frobnicate", "run", "cancel a b"):
        answer = slack.command("U_LEAD", words, response_url=fake_slack.response_url("bad"))
        assert answer.status_code == 200
        first, usage = answer.json()["text"].split("\n")
        assert usage == USAGE
        assert first
    assert snapshot(r) == before
    assert queued(engine) == 0


def test_only_the_owner_or_an_admin_may_cancel(engine, slack, fake_slack, drain, monkeypatch):
    engine.import_contacts(TEAM)
    engine.apply_definition(WEEKLY)
    rid = start_run(engine, slack, fake_slack, drain)
    slack.command("U_OTHER", f"cancel {rid}", response_url=fake_slack.response_url("other"))
    drain()
    assert fake_slack.replies("other")[-1]["text"] == "Sorry, only an admin or the task's owner may cancel that."
    assert engine.store.run_fields(rid)["status"] == "running"

    monkeypatch.setenv("TASKBOT_ADMINS", "boss@example.com")  # Slack knows U_BOSS by that email
    slack.command("U_BOSS", f"cancel {rid}", response_url=fake_slack.response_url("boss"))
    drain()
    assert fake_slack.replies("boss")[-1]["text"] == f"Run {rid} cancelled."
    assert engine.store.run_fields(rid)["status"] == "cancelled"


def test_slack_is_off_without_a_bot_token(r, env, monkeypatch):
    monkeypatch.delenv("SLACK_BOT_TOKEN")
    from bot.bootstrap import build_engine

    engine = build_engine(Settings())
    assert "slack" not in engine.channels
    with served(create_app(engine, Settings())) as base:
        answer = httpx.post(f"{base}/slack/events", content=b"{}", headers={"Content-Type": "application/json"})
    assert answer.status_code == 404
    assert "SLACK_BOT_TOKEN" in answer.json()["detail"]


def test_url_verification_is_answered_when_signed(slack):
    body = '{"token": "legacy", "challenge": "c-123", "type": "url_verification"}'
    assert slack.post(body, "application/json").json() == {"challenge": "c-123"}
    assert slack.post(body, "application/json", sign=False).status_code == 401


def test_socket_mode_receives_dms_and_commands_without_public_http(engine, fake_slack, drain, monkeypatch):
    fake_slack.start_socket_mode()
    monkeypatch.setenv("SLACK_APP_TOKEN", fake_slack.app_token)
    engine.import_contacts(TEAM)
    engine.apply_definition(WEEKLY.replace("alice@example.com, bob@example.com, carol@example.com",
                                           "alice@example.com"))
    rid = engine.runs.trigger("weekly-status")
    drain()
    [opening] = fake_slack.posts("DU_ALICE")
    with served(create_app(engine, Settings())):  # the lifespan connects the socket
        answer = fake_slack.push("events_api", envelope(dm_event("U_ALICE", "The parser", ts="1800000009.000001",
                                                                 thread_ts=opening["ts"]), "Ev-SOCKET"))
        assert fake_slack.ack_of(answer) == {"envelope_id": answer}
        assert engine.r.exists("taskbot:seen:slack:Ev-SOCKET")  # stored before the ack went back
        wrong = fake_slack.push("slash_commands", command_form("U_LEAD", "frobnicate", fake_slack.response_url("s")))
        assert USAGE in fake_slack.ack_of(wrong)["payload"]["text"]
    drain()
    assert subtasks(engine, rid)["alice@example.com"]["data"] == {"shipped": "The parser"}
    assert [c.method for c in fake_slack.calls_to("apps.connections.open")] == ["apps.connections.open"]
