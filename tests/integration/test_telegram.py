"""Telegram end to end: updates posted to the real webhook over HTTP, a fake Bot API on 127.0.0.1, real RQ jobs."""

from __future__ import annotations

import re
import time
from collections import defaultdict
from collections.abc import Iterator

import httpx
import pytest

from bot.app import create_app
from bot.commands import USAGE
from bot.settings import Settings
from bot.telegram import NOT_LINKED_TEXT, USED_TEXT, link_contact
from engine import keys
from engine.inbound import CLOSED_TEXT
from tests.conftest import served, turn_on
from tests.fakes.telegram_api import BOT, FakeTelegram, TelegramSender, message_update

SECRET = "test-webhook-secret"
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
POLL = """
id: {id}
name: Poll {id}
owner: lead@example.com
template:
  fields:
    - {{key: first, prompt: "{id}: first question?"}}
    - {{key: second, prompt: "{id}: second question?"}}
  participants: [{people}]
  chase: {{interval: 1h}}
"""
LEAD, ALICE, BOB, CAROL = 1000, 1001, 1002, 1003
TEAM = [{"email": "lead@example.com", "name": "Lena"}, {"email": "alice@example.com", "name": "Alice"},
        {"email": "bob@example.com", "name": "Bob"}, {"email": "carol@example.com", "name": "Carol"}]
LINKED = [{**person, "telegram_chat_id": str(chat)} for person, chat in zip(TEAM, (LEAD, ALICE, BOB, CAROL),
                                                                            strict=True)]


@pytest.fixture(autouse=True)
def fake_telegram(env, monkeypatch) -> Iterator[FakeTelegram]:
    """A fake Bot API, and the environment that turns taskbot's Telegram channel on against it."""
    fake = FakeTelegram().start()
    values = {"TELEGRAM_BOT_TOKEN": fake.token, "TELEGRAM_WEBHOOK_SECRET": SECRET,
              "TASKBOT_TELEGRAM_API_URL": fake.api_url}
    turn_on(env, monkeypatch, values)
    yield fake
    fake.stop()


@pytest.fixture
def telegram(engine) -> Iterator[TelegramSender]:
    """The app over HTTP (webhook mode: TASKBOT_PUBLIC_URL is set), and Telegram's side of the chats."""
    with served(create_app(engine, Settings())) as base:
        sender = TelegramSender(base, SECRET)
        yield sender
        sender.close()


def snapshot(r):
    """Every key and value, but the send limiter's (its keys expire on their own)."""
    return {k: r.dump(k) for k in sorted(r.keys("*")) if not k.startswith(b"taskbot:telegram:rate:")}


def subtasks(engine, rid):
    return {s["participant_id"]: s for s in engine.run_view(rid)["subtasks"]}


def user_texts(sub) -> list[str]:
    return [m["text"] for m in sub["conversation"] if m["role"] == "user"]


def run_from_chat(telegram, fake, drain, chat: int, task: str) -> str:
    assert telegram.says(chat, f"/task run {task}").json() == {"ok": True, "result": "command"}
    drain()
    started = re.fullmatch(rf"Started run (\w+) of {task}\.", fake.texts(chat)[-1])
    assert started, fake.texts(chat)
    return started.group(1)


def test_linked_by_deep_link_three_people_get_the_task_one_is_chased_and_times_out_the_owner_gets_results(
        engine, telegram, fake_telegram, taskbot_cli, drain, wait_for):
    engine.import_contacts(TEAM)
    engine.apply_definition(WEEKLY)
    wait_for(lambda: fake_telegram.webhook)  # `serve` registered the webhook, with its secret
    assert fake_telegram.webhook["url"] == "http://testserver/telegram/webhook"
    assert fake_telegram.webhook["secret_token"] == SECRET

    # the admin makes one link per person with the CLI; each opens theirs in Telegram (/start <token>)
    for person, chat in zip(TEAM, (LEAD, ALICE, BOB, CAROL), strict=True):
        made = taskbot_cli("contacts", "link", "telegram", person["email"], check=True)
        link = made.stdout.strip().splitlines()[-1]
        found = re.fullmatch(rf"https://t\.me/{BOT['username']}\?start=([A-Za-z0-9_-]{{20,64}})", link)
        assert found, link
        assert telegram.says(chat, f"/start {found.group(1)}").status_code == 200
    drain()
    for person, chat in zip(TEAM, (LEAD, ALICE, BOB, CAROL), strict=True):
        assert engine.store.find_contacts([person["email"]])[person["email"]].telegram_chat_id == str(chat)
        assert fake_telegram.texts(chat) == [
            f"Hi {person['name']}! This chat is now linked to {person['name']} ({person['email']}): "
            "your tasks will come here."]

    # the owner starts the task from their chat; three private chats get the opening
    rid = run_from_chat(telegram, fake_telegram, drain, LEAD, "weekly-status")
    openings = {}
    for chat in (ALICE, BOB, CAROL):
        opening = fake_telegram.sent(chat)[-1]
        assert opening["text"] == ("Hi! Two quick questions for this week's status report.\n\n"
                                   "What did you ship this week?")
        openings[chat] = opening["message_id"]
    assert {s["channel"] for s in subtasks(engine, rid).values()} == {"telegram"}

    # alice answers by replying to the opening, bob just writes in the chat; carol stays silent
    telegram.says(ALICE, "The parser", reply_to=openings[ALICE])
    telegram.says(BOB, "Docs")
    drain()
    assert "Anything blocking you?" in fake_telegram.texts(ALICE)[-1]
    telegram.says(ALICE, "none")
    telegram.says(BOB, "skip")
    drain()
    subs = subtasks(engine, rid)
    assert subs["alice@example.com"]["data"] == {"shipped": "The parser", "blockers": "none"}
    assert subs["bob@example.com"]["data"] == {"shipped": "Docs"}
    assert subs["carol@example.com"]["status"] == "running"

    wait_for(lambda: engine.store.run_fields(rid)["status"] == "completed", timeout=30, between=drain)
    carol = subtasks(engine, rid)["carol@example.com"]
    assert (carol["status"], carol["chases_sent"]) == ("timed_out", 1)
    chase = fake_telegram.sent(CAROL)[-1]
    assert chase["text"] == "Reminder: the weekly status closes soon."
    assert chase["reply_to_message"]["message_id"] == openings[CAROL]  # the chase quotes the opening

    drain()
    assert fake_telegram.texts(LEAD)[-1].startswith(f"Run {rid} of weekly-status completed.")
    telegram.says(LEAD, f"/task results {rid}")
    drain()
    results = fake_telegram.texts(LEAD)[-1]
    assert "# Weekly status" in results
    assert "| Alice | The parser | none | completed |" in results
    assert "| Bob | Docs | — | completed |" in results
    assert "**Timed out:** Carol (no answer after 1 reminder)" in results

    # carol answers after all, to the opening: kept, marked late, and she is told the task has closed
    telegram.says(CAROL, "Sorry, I was away", reply_to=openings[CAROL])
    drain()
    assert fake_telegram.texts(CAROL)[-1] == CLOSED_TEXT
    late = subtasks(engine, rid)["carol@example.com"]["conversation"]
    assert [(m["text"], m.get("late")) for m in late if m["role"] == "user"] == [("Sorry, I was away", True)]


def test_a_reply_goes_to_the_sub_task_of_the_message_it_answers(engine, telegram, fake_telegram, drain):
    engine.import_contacts(LINKED)
    for task in ("poll-a", "poll-b"):
        engine.apply_definition(POLL.format(id=task, people="alice@example.com"))
    run_a = engine.runs.trigger("poll-a")
    drain()
    run_b = engine.runs.trigger("poll-b")
    drain()
    opening_a, opening_b = fake_telegram.sent(ALICE)
    assert (opening_a["text"], opening_b["text"]) == ("poll-a: first question?", "poll-b: first question?")

    def data(rid):
        return subtasks(engine, rid)["alice@example.com"]["data"]

    # run B is the more recent, but a reply to A's opening is an answer in A
    telegram.says(ALICE, "A one", reply_to=opening_a["message_id"])
    drain()
    assert (data(run_a), data(run_b)) == ({"first": "A one"}, {})
    question_a = fake_telegram.sent(ALICE)[-1]
    assert question_a["text"] == "poll-a: second question?"

    # a reply to B's opening is an answer in B
    telegram.says(ALICE, "B one", reply_to=opening_b["message_id"])
    drain()
    assert (data(run_a), data(run_b)) == ({"first": "A one"}, {"first": "B one"})
    assert fake_telegram.texts(ALICE)[-1] == "poll-b: second question?"

    # B is now the most recently active, yet a reply to A's follow-up question still lands in A
    telegram.says(ALICE, "A two", reply_to=question_a["message_id"])
    drain()
    assert data(run_a) == {"first": "A one", "second": "A two"}
    assert subtasks(engine, run_a)["alice@example.com"]["status"] == "completed"

    # with no reply, the open one takes it
    telegram.says(ALICE, "B two")
    drain()
    assert data(run_b) == {"first": "B one", "second": "B two"}
    assert subtasks(engine, run_b)["alice@example.com"]["status"] == "completed"


def test_a_long_opening_goes_out_in_parts_and_a_reply_to_it_routes_back(engine, fake_telegram, telegram, drain):
    engine.import_contacts(LINKED)
    # 3,000 emoji: 3,000 characters but 6,000 UTF-16 units, which is what Telegram counts
    long = POLL.format(id="long", people="alice@example.com")
    engine.apply_definition(long.replace("template:\n", "template:\n  instructions: " + "\U0001F600" * 3000 + "\n"))
    engine.apply_definition(POLL.format(id="short", people="alice@example.com"))
    run_long = engine.runs.trigger("long")
    drain()
    run_short = engine.runs.trigger("short")
    drain()
    *parts, short_opening = fake_telegram.sent(ALICE)
    units = [len(p["text"].encode("utf-16-le")) // 2 for p in parts]
    assert units == [4096, 6000 - 4096 + len("\n\nlong: first question?")]
    assert short_opening["text"] == "short: first question?"
    assert "".join(p["text"] for p in parts).replace("\n", "") == "\U0001F600" * 3000 + "long: first question?"

    telegram.says(ALICE, "yes", reply_to=parts[-1]["message_id"])  # the part with the question
    drain()
    assert subtasks(engine, run_long)["alice@example.com"]["data"] == {"first": "yes"}
    assert subtasks(engine, run_short)["alice@example.com"]["data"] == {}


def test_while_telegram_is_unreachable_openings_wait_instead_of_failing(engine, fake_telegram, drain):
    engine.import_contacts(LINKED)
    engine.apply_definition(WEEKLY)
    fake_telegram.stop()
    rid = engine.runs.trigger("weekly-status")
    drain()
    view = engine.run_view(rid)
    assert view["status"] == "running"
    assert [s["status"] for s in view["subtasks"]] == ["pending"] * 3


@pytest.mark.parametrize(("fault", "options"), [("wrong secret", {"secret": "not-the-secret"}),
                                                  ("missing secret", {"send_secret": False}),
                                                  ("empty secret", {"secret": ""})])
def test_a_wrong_or_missing_secret_is_refused_and_nothing_is_stored(engine, telegram, fake_telegram, r, fault,
                                                                      options):
    engine.import_contacts(LINKED)
    engine.apply_definition(WEEKLY)
    before = snapshot(r)
    answers = [telegram.says(ALICE, "The parser", **options), telegram.says(LEAD, "/task run weekly-status", **options),
               telegram.says(BOB, "/start sometoken", **options)]
    assert [a.status_code for a in answers] == [401, 401, 401], fault
    assert r.keys("taskbot:inbound:*") == []
    assert r.keys("taskbot:seen:*") == []
    assert len(engine.jobs.queue) == 0
    assert snapshot(r) == before
    assert fake_telegram.calls_to("sendMessage") == []


def test_the_same_update_delivered_twice_is_processed_once(engine, telegram, fake_telegram, drain):
    engine.import_contacts(LINKED)
    engine.apply_definition(WEEKLY.replace("alice@example.com, bob@example.com, carol@example.com",
                                           "alice@example.com"))
    command = message_update(7001, LEAD, "/task run weekly-status")
    assert [telegram.post(command).json()["result"] for _ in range(2)] == ["command", "duplicate"]
    drain()
    [rid] = engine.store.run_ids("weekly-status")
    started = [t for t in fake_telegram.texts(LEAD) if t.startswith("Started run")]
    assert started == [f"Started run {rid} of weekly-status."]
    [opening] = fake_telegram.sent(ALICE)

    update = message_update(7002, ALICE, "The parser", reply_to=opening["message_id"])
    for _ in range(3):
        assert telegram.post(update).status_code == 200
        assert engine.r.exists("taskbot:seen:telegram:7002")  # stored before Telegram got its 200
    assert len(engine.r.keys("taskbot:inbound:*")) == 1
    group = message_update(7003, -4242, "The parser", chat_type="group")  # the bot only talks in private chats
    assert telegram.post(group).json() == {"ok": True, "result": "ignored"}
    drain()
    alice = subtasks(engine, rid)["alice@example.com"]
    assert user_texts(alice) == ["The parser"]
    assert alice["data"] == {"shipped": "The parser"}
    assert fake_telegram.texts(ALICE)[1:] == ["Anything blocking you?\n(optional: reply 'skip' to pass)"]


def test_a_person_who_blocked_the_bot_fails_and_the_others_complete(engine, telegram, fake_telegram, drain):
    engine.import_contacts(LINKED)
    engine.apply_definition(WEEKLY)
    fake_telegram.block(CAROL)
    rid = engine.runs.trigger("weekly-status")
    drain()
    carol = subtasks(engine, rid)["carol@example.com"]
    assert (carol["status"], carol["reason"]) == ("failed", "Telegram refused: Forbidden: bot was blocked by the user")
    for chat, words in ((ALICE, ("The parser", "none")), (BOB, ("Docs", "skip"))):
        for text in words:
            telegram.says(chat, text)
            drain()
    view = engine.run_view(rid)
    assert view["status"] == "completed"
    assert view["gathered"]["task_status"] == {"alice@example.com": "completed", "bob@example.com": "completed",
                                               "carol@example.com": "failed"}
    assert fake_telegram.texts(CAROL) == []


def test_telegrams_retry_after_is_honoured(engine, fake_telegram, drain, wait_for):
    engine.import_contacts(LINKED)
    engine.apply_definition(WEEKLY)
    fake_telegram.rate_limit(ALICE, retry_after=3)
    started = time.monotonic()
    rid = engine.runs.trigger("weekly-status")
    drain()
    assert time.monotonic() - started < 3  # the worker did not sit out the wait
    subs = subtasks(engine, rid)
    assert (subs["bob@example.com"]["status"], subs["carol@example.com"]["status"]) == ("running", "running")
    assert subs["alice@example.com"]["status"] == "pending"
    wait_for(lambda: subtasks(engine, rid)["alice@example.com"]["status"] == "running", timeout=30, between=drain)
    refused, sent = [c for c in fake_telegram.calls_to("sendMessage") if c.args["chat_id"] == str(ALICE)]
    assert (refused.status, sent.status) == (429, 200)
    assert sent.at - refused.at >= 3.0
    assert len(fake_telegram.sent(ALICE)) == 1


def test_a_retry_after_shorter_than_a_claim_lives_sends_the_opening_when_telegram_allows(
        engine, fake_telegram, drain, wait_for, env, monkeypatch):
    turn_on(env, monkeypatch, {"TASKBOT_LEASE_SECONDS": "60"})  # a claim lives a minute, as by default
    engine.import_contacts(LINKED)
    engine.apply_definition(WEEKLY)
    fake_telegram.rate_limit(ALICE, retry_after=2)
    rid = engine.runs.trigger("weekly-status")
    drain()
    assert subtasks(engine, rid)["alice@example.com"]["status"] == "pending"
    wait_for(lambda: subtasks(engine, rid)["alice@example.com"]["status"] == "running", timeout=20, between=drain)
    refused, sent = [c for c in fake_telegram.calls_to("sendMessage") if c.args["chat_id"] == str(ALICE)]
    assert (refused.status, sent.status) == (429, 200)
    assert 2.0 <= sent.at - refused.at < 10  # when Telegram allowed it, not when the refused send's claim lapsed


def test_a_fan_out_to_200_stays_under_telegrams_limits_overall_and_per_chat(engine, fake_telegram, workers,
                                                                              wait_for):
    people = [{"email": f"p{i:03}@example.com", "telegram_chat_id": str(5000 + i)} for i in range(200)]
    engine.import_contacts(people)
    everyone = ", ".join(p["email"] for p in people)
    engine.apply_definition(POLL.format(id="survey", people=everyone))
    # A second task to eight of the same chats, whose opening is too long for one message: those chats get
    # three messages at once, and the parts must be cut at 4,096 characters.
    long_instructions = " ".join(f"Paragraph {i} of the brief, read it carefully." for i in range(120))
    notes = POLL.format(id="notes", people=", ".join(p["email"] for p in people[:8]))
    engine.apply_definition(notes.replace("template:\n", f"template:\n  instructions: {long_instructions}\n"))
    survey = engine.runs.trigger("survey")
    notes_run = engine.runs.trigger("notes")
    workers(2)

    def all_open() -> bool:
        statuses = [s["status"] for rid in (survey, notes_run)
                    for s in engine.run_view(rid, conversations=False)["subtasks"]]
        return statuses == ["running"] * 208

    wait_for(all_open, timeout=100, step=0.5)
    calls = fake_telegram.calls_to("sendMessage")
    assert [c.status for c in calls] == [200] * (200 + 8 * 2)
    assert fake_telegram.flood_refusals == 0  # the fake answers 429 past 30 a second or 1 a second per chat
    times = sorted(c.at for c in calls)
    busiest = max(sum(1 for t in times[i:] if t < start + 1.0) for i, start in enumerate(times))
    assert busiest <= 30, f"{busiest} sendMessage calls within one second"
    by_chat: dict[str, list[float]] = defaultdict(list)
    for c in calls:
        by_chat[c.args["chat_id"]].append(c.at)
    closest = min(b - a for ats in by_chat.values() for a, b in zip(sorted(ats), sorted(ats)[1:], strict=False))
    print(f"sendMessage: {len(calls)} in {times[-1] - times[0]:.1f}s, busiest second {busiest}, "
          f"closest two to one chat {closest:.3f}s apart")
    assert closest >= 1.0, f"two messages to one chat {closest:.3f}s apart"

    notes_subs = {s["participant_id"]: s for s in engine.run_view(notes_run)["subtasks"]}
    for person in people[:8]:
        parts = [m["text"] for m in fake_telegram.sent(person["telegram_chat_id"])
                 if m["text"] != "survey: first question?"]
        assert len(parts) == 2
        assert all(len(p) <= 4096 for p in parts)
        opening = notes_subs[person["email"]]["conversation"][0]["text"]
        assert " ".join(parts).split() == opening.split()
        assert parts[1].endswith("notes: first question?")


def test_a_used_or_expired_link_links_no_one(engine, telegram, fake_telegram, drain, r):
    engine.import_contacts(TEAM)
    link = link_contact(engine, "alice@example.com")
    token = link.rsplit("=", 1)[1]
    assert 6.9 * 86400 < r.ttl(keys.telegram_link(token)) <= 7 * 86400
    telegram.says(ALICE, f"/start {token}")
    drain()
    assert engine.store.contact_by("email", "alice@example.com").telegram_chat_id == str(ALICE)

    telegram.says(666, f"/start {token}")  # someone else got hold of the same link
    drain()
    assert fake_telegram.texts(666) == [USED_TEXT]
    assert engine.store.contact_by("email", "alice@example.com").telegram_chat_id == str(ALICE)
    assert engine.store.contact_by("telegram_chat_id", "666") is None

    expired = link_contact(engine, "bob@example.com").rsplit("=", 1)[1]
    r.pexpire(keys.telegram_link(expired), 1)  # its seven days are over
    time.sleep(0.01)
    telegram.says(BOB, f"/start {expired}")
    telegram.says(CAROL, "/start")
    telegram.says(ALICE, "/start")
    drain()
    assert fake_telegram.texts(BOB) == [USED_TEXT]
    assert engine.store.contact_by("email", "bob@example.com").telegram_chat_id is None
    assert fake_telegram.texts(CAROL) == [NOT_LINKED_TEXT]
    assert fake_telegram.texts(ALICE)[-1] == "Hi Alice! This chat is linked to Alice (alice@example.com)."


def test_task_commands_in_telegram_answer_in_the_chat_and_check_who_asks(engine, telegram, fake_telegram, drain,
                                                                          monkeypatch):
    engine.import_contacts([*LINKED, {"email": "other@example.com", "telegram_chat_id": "1009"}])
    engine.apply_definition(WEEKLY)
    telegram.says(LEAD, "/task frobnicate")
    telegram.says(LEAD, "/task new")
    telegram.says(LEAD, "/help")
    drain()
    wrong, new, usage = fake_telegram.texts(LEAD)
    assert wrong == f"unknown command 'frobnicate'\n{USAGE}"
    assert "taskbot tasks apply FILE" in new
    assert usage == USAGE
    assert engine.store.run_ids() == []

    rid = run_from_chat(telegram, fake_telegram, drain, LEAD, "weekly-status")
    telegram.says(1009, f"/task cancel {rid}")
    drain()
    assert fake_telegram.texts(1009) == ["Sorry, only an admin or the task's owner may cancel that."]
    assert engine.store.run_fields(rid)["status"] == "running"

    monkeypatch.setenv("TASKBOT_ADMINS", "1009")  # an admin named by Telegram chat id
    telegram.says(1009, f"/task@{BOT['username']} cancel {rid}")
    drain()
    assert fake_telegram.texts(1009)[-1] == f"Run {rid} cancelled."
    assert engine.store.run_fields(rid)["status"] == "cancelled"


@pytest.mark.parametrize("why", ["no public URL", "webhook refused"])
def test_long_polling_without_a_webhook(engine, fake_telegram, drain, wait_for, monkeypatch, why):
    if why == "no public URL":
        monkeypatch.delenv("TASKBOT_PUBLIC_URL")
    else:
        fake_telegram.webhook_refusal = "Bad Request: bad webhook: An HTTPS URL must be provided for webhook"
    engine.import_contacts(LINKED)
    engine.apply_definition(WEEKLY.replace("alice@example.com, bob@example.com, carol@example.com",
                                           "alice@example.com"))
    fake_telegram.webhook = {"url": "https://old.example.com/telegram/webhook"}  # left over from a deployment
    with served(create_app(engine, Settings())):
        fake_telegram.queue_update(message_update(9001, LEAD, "/task run weekly-status"))
        wait_for(lambda: engine.r.exists(keys.telegram_update("9001")))
        drain()
        [rid] = engine.store.run_ids("weekly-status")
        [opening] = fake_telegram.sent(ALICE)
        fake_telegram.queue_update(message_update(9002, ALICE, "The parser", reply_to=opening["message_id"]))
        wait_for(lambda: engine.r.exists("taskbot:seen:telegram:9002"))
    drain()
    assert subtasks(engine, rid)["alice@example.com"]["data"] == {"shipped": "The parser"}
    assert fake_telegram.calls_to("deleteWebhook")
    assert [c.status for c in fake_telegram.calls_to("setWebhook")] == ([] if why == "no public URL" else [400])
    offsets = [int(c.args.get("offset") or 0) for c in fake_telegram.calls_to("getUpdates")]
    assert {9002, 9003} <= set(offsets)  # the offset moved past each update once it was stored
    assert offsets == sorted(offsets)
    assert len([t for t in fake_telegram.texts(LEAD) if t.startswith("Started run")]) == 1


def test_telegram_is_off_without_a_bot_token(r, env, monkeypatch, taskbot_cli):
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN")
    del env["TELEGRAM_BOT_TOKEN"]
    from bot.bootstrap import build_engine

    engine = build_engine(Settings())
    assert "telegram" not in engine.channels
    with served(create_app(engine, Settings())) as base:
        answer = httpx.post(f"{base}/telegram/webhook", content=b"{}",
                            headers={"X-Telegram-Bot-Api-Secret-Token": SECRET})
    assert answer.status_code == 404
    assert "TELEGRAM_BOT_TOKEN" in answer.json()["detail"]
    engine.import_contacts(TEAM)
    made = taskbot_cli("contacts", "link", "telegram", "alice@example.com")
    assert made.returncode == 2
    assert "TELEGRAM_BOT_TOKEN" in made.stderr
