"""The ways in while redis-server is killed with -9 and restarted from its AOF: the web app answers 503 on
every route that needs Redis and recovers by itself, the Telegram long poller and the IMAP poller go on."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from email.message import EmailMessage
from email.utils import make_msgid

import httpx
import pytest

from bot.app import create_app
from bot.bootstrap import build_engine
from bot.settings import Settings
from engine import keys
from tests.conftest import served, turn_on
from tests.fakes.mail import Dovecot, SmtpServer, dovecot_binary
from tests.fakes.slack_api import FakeSlack, SlackSender
from tests.fakes.telegram_api import FakeTelegram, TelegramSender, message_update
from tests.integration.redis_restart.conftest import OUTAGE, all_at_once, chat_token, crash, user_texts, worker_logs

TOKEN = "api-token-for-tests"
SLACK_SECRET = "test-signing-secret"
TELEGRAM_SECRET = "test-webhook-secret"
ALICE_CHAT = 1001
ONE_FIELD = """
id: shipped
name: Shipped
owner: lead@example.com
template:
  fields: [{key: shipped, prompt: What did you ship this week?}]
  participants: [PEOPLE]
  chase: {interval: 1h}
"""


@pytest.fixture
def fakes(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeSlack, FakeTelegram]]:
    slack, telegram = FakeSlack().start(), FakeTelegram().start()
    slack.add_user("U_ALICE", "alice@example.com", "Alice")
    turn_on(env, monkeypatch, {"SLACK_BOT_TOKEN": slack.token, "SLACK_SIGNING_SECRET": SLACK_SECRET,
                               "TASKBOT_SLACK_API_URL": slack.api_url, "TELEGRAM_BOT_TOKEN": telegram.token,
                               "TELEGRAM_WEBHOOK_SECRET": TELEGRAM_SECRET,
                               "TASKBOT_TELEGRAM_API_URL": telegram.api_url})
    yield slack, telegram
    slack.stop()
    telegram.stop()


def test_every_route_answers_503_while_redis_is_away_and_works_again_after(engine, redis_server, fakes, drain,
                                                                           env, monkeypatch):
    turn_on(env, monkeypatch, {"TASKBOT_API_TOKEN": TOKEN})
    engine.import_contacts([{"email": "alice@example.com", "preferred_channel": "web", "slack_user_id": "U_ALICE",
                             "telegram_chat_id": str(ALICE_CHAT)}, {"email": "lead@example.com"}])
    engine.apply_definition(ONE_FIELD.replace("PEOPLE", "alice@example.com"))
    rid = engine.runs.trigger("shipped")
    drain()
    token = chat_token(engine.run_view(rid)["subtasks"][0])
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    definition = {"id": "other", "name": "Other", "owner": "lead@example.com",
                  "template": {"fields": [{"key": "x", "prompt": "X?"}], "participants": ["alice@example.com"]}}

    with served(create_app(build_engine(Settings()), Settings())) as base, \
            httpx.Client(base_url=base, timeout=30) as web:
        slack, telegram = SlackSender(base, SLACK_SECRET), TelegramSender(base, TELEGRAM_SECRET)
        assert web.get(f"/?token={TOKEN}").status_code == 303  # signed in to the dashboard (a cookie)
        phase = {"now": "before"}  # what each message says: when it was sent

        def said(kind: str) -> str:
            return f"{phase['now']}: {kind}"

        calls = {
            "GET /healthz": lambda: web.get("/healthz"),
            "GET /": lambda: web.get("/"),
            "GET /runs/{id}": lambda: web.get(f"/runs/{rid}"),
            "GET /chat/{token}": lambda: web.get(f"/chat/{token}"),
            "POST /chat/{token}": lambda: web.post(f"/chat/{token}", data={"text": said("form")}),
            "GET /chat/{token}/messages": lambda: web.get(f"/chat/{token}/messages"),
            "POST /chat/{token}/messages": lambda: web.post(f"/chat/{token}/messages", json={"text": said("json")}),
            "GET /api/runs": lambda: web.get("/api/runs", headers=bearer),
            "GET /api/runs/{id}": lambda: web.get(f"/api/runs/{rid}", headers=bearer),
            "POST /api/tasks": lambda: web.post("/api/tasks", json=definition, headers=bearer),
            "POST /api/trigger": lambda: web.post("/api/trigger", json={"task_definition_id": "shipped"},
                                                  headers=bearer),
            "POST /slack/events": lambda: slack.dm("U_ALICE", said("slack")),
            "POST /telegram/webhook": lambda: telegram.says(ALICE_CHAT, said("telegram")),
        }
        up = {name: res.status_code for name, res in all_at_once(calls).items()}
        assert up == {"GET /healthz": 200, "GET /": 200, "GET /runs/{id}": 200, "GET /chat/{token}": 200,
                      "POST /chat/{token}": 303, "GET /chat/{token}/messages": 200,
                      "POST /chat/{token}/messages": 202, "GET /api/runs": 200, "GET /api/runs/{id}": 200,
                      "POST /api/tasks": 201, "POST /api/trigger": 202, "POST /slack/events": 200,
                      "POST /telegram/webhook": 200}
        runs_before = len(engine.store.run_ids("shipped"))

        phase["now"] = "during"
        crash(redis_server)
        down = all_at_once(calls)
        assert {name: res.status_code for name, res in down.items()} == dict.fromkeys(calls, 503)
        for name, res in down.items():
            assert res.headers.get("Retry-After") == "1", name
            page = name in ("GET /", "GET /runs/{id}", "GET /chat/{token}", "POST /chat/{token}")
            assert res.headers["content-type"].startswith("text/html" if page else "application/json"), name
        assert "Try again in a moment" in down["GET /chat/{token}"].text
        assert down["GET /healthz"].json() == {"status": "unavailable", "redis": False,
                                               "detail": "Redis is not answering; try again shortly"}
        assert web.get("/openapi.json").status_code == 200  # what needs no Redis still works

        phase["now"] = "after"
        redis_server.start()
        again = {name: res.status_code for name, res in all_at_once(calls).items()}
        assert again == up  # the same answers as before the outage: the app reconnected by itself
        slack.close()
        telegram.close()

    # what got a 503 was not stored (Slack and Telegram deliver it again); what got a 2xx was
    drain()
    assert len(engine.store.run_ids("shipped")) == runs_before + 1
    assert sorted(user_texts(engine.run_view(rid)["subtasks"][0])) == [
        "after: form", "after: json", "before: form", "before: json"]
    for kind, provider_ids in (("slack", ["Ev000001", "Ev000003"]), ("telegram", ["500001", "500003"])):
        stored = [k.decode().rsplit(":", 1)[-1] for k in engine.r.keys(keys.seen(kind, "*"))]
        assert sorted(stored) == provider_ids, kind


def test_the_telegram_long_poller_rides_out_a_redis_restart(engine, redis_server, fakes, drain, wait_for,
                                                            env, monkeypatch, caplog):
    _, fake = fakes
    monkeypatch.delenv("TASKBOT_PUBLIC_URL")  # no public URL: updates come by long polling
    engine.import_contacts([{"email": "alice@example.com", "telegram_chat_id": str(ALICE_CHAT),
                             "preferred_channel": "telegram"}, {"email": "lead@example.com"}])
    engine.apply_definition(ONE_FIELD.replace("PEOPLE", "alice@example.com"))
    rid = engine.runs.trigger("shipped")
    drain()
    [opening] = fake.sent(ALICE_CHAT)

    def handed_out(update_id: int) -> int:
        return sum(update_id in [u["update_id"] for u in c.args.get("result", [])] for c in fake.calls_to("getUpdates"))

    def offsets() -> list[int]:
        return [int(c.args.get("offset") or 0) for c in fake.calls_to("getUpdates")]

    caplog.set_level(logging.WARNING, logger="taskbot.telegram")
    with served(create_app(build_engine(Settings()), Settings())):
        wait_for(lambda: fake.calls_to("getUpdates"))  # polling
        crash(redis_server)
        fake.queue_update(message_update(9001, ALICE_CHAT, "The parser", reply_to=opening["message_id"]))
        wait_for(lambda: "Telegram update 9001 not stored: Redis is not answering" in caplog.text, timeout=30)
        redis_server.start()
        wait_for(lambda: engine.r.exists(keys.seen("telegram", "9001")), timeout=30)
        wait_for(lambda: 9002 in offsets())  # the offset moved past it only once it was stored
    drain()
    alice = engine.run_view(rid)["subtasks"][0]
    assert alice["data"] == {"shipped": "The parser"}
    assert user_texts(alice) == ["The parser"]
    assert handed_out(9001) >= 2  # fetched while Redis was away, and again once it was back
    assert offsets() == sorted(offsets())


BOT_ADDRESS = "tasks@example.com"


def reply(to: EmailMessage, sender: str, text: str) -> EmailMessage:
    """A short answer to ``to``, as a mail client sends it."""
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = str(to["Reply-To"])
    mail["Subject"] = f"Re: {to['Subject']}"
    mail["Message-ID"] = make_msgid(domain="mail.example.net")
    mail["In-Reply-To"] = to["Message-ID"]
    mail["References"] = to["Message-ID"]
    mail.set_content(f"{text}\n")
    return mail


def test_the_mail_poller_rides_out_a_redis_restart(engine, redis_server, workers, wait_for, env, monkeypatch,
                                                   tmp_path):
    if dovecot_binary() is None:
        pytest.skip("dovecot is not installed (Debian: apt-get install dovecot-imapd; .ci/run installs it)")
    smtp, mailbox = SmtpServer().start(), Dovecot(user=BOT_ADDRESS).start()
    try:
        turn_on(env, monkeypatch, {
            "TASKBOT_SMTP_HOST": "127.0.0.1", "TASKBOT_SMTP_PORT": str(smtp.port),
            "TASKBOT_EMAIL_FROM": f"taskbot <{BOT_ADDRESS}>", "TASKBOT_DATA_DIR": str(tmp_path / "data"),
            "TASKBOT_IMAP_HOST": "127.0.0.1", "TASKBOT_IMAP_PORT": str(mailbox.port), "TASKBOT_IMAP_USER": BOT_ADDRESS,
            "TASKBOT_IMAP_PASSWORD": mailbox.password, "TASKBOT_IMAP_SSL": "false", "TASKBOT_IMAP_POLL": "0.2"})
        people = ["alice@example.com", "bob@example.com"]
        engine.import_contacts([{"email": p, "preferred_channel": "email"} for p in people])
        engine.apply_definition(ONE_FIELD.replace("PEOPLE", ", ".join(people)))
        rid = engine.runs.trigger("shipped")
        [proc] = workers(1)  # polls the mailbox every 0.2 s from its scheduler loop
        wait_for(lambda: all(smtp.to(p) for p in people), timeout=30)
        mailbox.deliver(reply(smtp.to("alice@example.com")[0], "alice@example.com", "The parser"))
        wait_for(lambda: engine.run_view(rid)["subtasks"][0]["data"] == {"shipped": "The parser"}, timeout=30)

        crash(redis_server)
        mailbox.deliver(reply(smtp.to("bob@example.com")[0], "bob@example.com", "The docs"))
        wait_for(lambda: "scheduler: Redis is not answering" in worker_logs(tmp_path), timeout=30)
        time.sleep(OUTAGE)  # the outage itself
        assert mailbox.unseen() == 1  # not stored, so not flagged seen
        redis_server.start()

        wait_for(lambda: engine.store.run_fields(rid)["status"] == "completed", timeout=60)
        subs = {s["participant_id"]: s for s in engine.run_view(rid)["subtasks"]}
        assert subs["alice@example.com"]["data"] == {"shipped": "The parser"}
        assert subs["bob@example.com"]["data"] == {"shipped": "The docs"}
        assert user_texts(subs["bob@example.com"]) == ["The docs"]
        assert mailbox.unseen() == 0
        assert proc.poll() is None
    finally:
        mailbox.stop()
        smtp.stop()


def test_a_mail_poll_that_loses_redis_gives_its_lock_back_once_redis_is_back(engine, redis_server):
    """Else a poll that met the outage would keep polling off for the lock's two minutes."""
    from bot import mailbox as poller

    assert engine.r.set(poller.POLL_LOCK, "this-poll", nx=True, ex=poller.LOCK_SECONDS)
    crash(redis_server)
    releasing = threading.Thread(target=poller.release, args=(engine, "this-poll"))
    releasing.start()
    time.sleep(OUTAGE)  # the outage itself
    assert releasing.is_alive()  # waiting for Redis
    redis_server.start()
    releasing.join(30)
    assert not releasing.is_alive()
    assert not engine.r.exists(poller.POLL_LOCK)
