"""Slack and Telegram requests of shapes their providers never send (SPEC §10): a signed request that is
malformed gets a 4xx or is acknowledged and ignored, never a 500, and nothing is stored or queued."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from urllib.parse import urlencode

import pytest

from bot.app import create_app
from bot.settings import Settings
from tests.conftest import contents, served, turn_on
from tests.fakes.slack_api import FakeSlack, SlackSender, dm_event, envelope
from tests.fakes.telegram_api import FakeTelegram, TelegramSender, message_update

SLACK_SECRET = "test-signing-secret"
TELEGRAM_SECRET = "test-webhook-secret"


@pytest.fixture(autouse=True)
def providers(env, monkeypatch) -> Iterator[tuple[FakeSlack, FakeTelegram]]:
    """Slack and Telegram both on, each against its local fake API."""
    slack, telegram = FakeSlack().start(), FakeTelegram().start()
    slack.add_user("U_ALICE", "alice@example.com", "Alice")
    values = {"SLACK_BOT_TOKEN": slack.token, "SLACK_SIGNING_SECRET": SLACK_SECRET,
              "TASKBOT_SLACK_API_URL": slack.api_url, "TELEGRAM_BOT_TOKEN": telegram.token,
              "TELEGRAM_WEBHOOK_SECRET": TELEGRAM_SECRET, "TASKBOT_TELEGRAM_API_URL": telegram.api_url}
    turn_on(env, monkeypatch, values)
    yield slack, telegram
    slack.stop()
    telegram.stop()


@pytest.fixture
def base(engine) -> Iterator[str]:
    with served(create_app(engine, Settings())) as url:
        yield url


@pytest.fixture
def slack(base) -> Iterator[SlackSender]:
    sender = SlackSender(base, SLACK_SECRET)
    yield sender
    sender.close()


@pytest.fixture
def telegram(base) -> Iterator[TelegramSender]:
    sender = TelegramSender(base, TELEGRAM_SECRET)
    yield sender
    sender.close()


def stored(r) -> dict[bytes, object]:
    """Everything taskbot keeps, but the adapters' short-lived caches and limiters."""
    return contents(r, skip=(b"taskbot:telegram:rate:", b"taskbot:slack:"))


def dm(**changes: object) -> dict[str, object]:
    event: dict[str, object] = dm_event("U_ALICE", "my answer", ts="1800000000.000100")
    for key, value in changes.items():
        if value is None:
            event.pop(key, None)
        else:
            event[key] = value
    return event


SLACK_BODIES = {
    "malformed JSON": ("{not json", "application/json"),
    "a JSON array": ("[1, 2]", "application/json"),
    "JSON null": ("null", "application/json"),
    "event as a string": (json.dumps({"type": "event_callback", "event": "message", "event_id": "Ev1"}),
                          "application/json"),
    "event as a list": (json.dumps({"type": "event_callback", "event": [1], "event_id": "Ev2"}), "application/json"),
    "event without a type": (json.dumps(envelope(dm(type=None), "Ev3")), "application/json"),
    "a ts that is no number": (json.dumps(envelope(dm(ts="abc"), "Ev4")), "application/json"),
    "no ts": (json.dumps(envelope(dm(ts=None), "Ev5")), "application/json"),
    "no channel": (json.dumps(envelope(dm(channel=None), "Ev6")), "application/json"),
    "text as a number": (json.dumps(envelope(dm(text=5), "Ev7")), "application/json"),
    "user as an object": (json.dumps(envelope(dm(user={"id": "U_ALICE"}), "Ev8")), "application/json"),
    "subtype as a list": (json.dumps(envelope(dm(subtype=["x"]), "Ev9")), "application/json"),
    "a lone surrogate": (json.dumps(envelope(dm(), "Ev10")).replace("my answer", "my \\ud800 answer"),
                         "application/json"),
    "type as a number": (json.dumps({**envelope(dm(), "Ev11"), "type": 7}), "application/json"),
    "authorizations as text": (json.dumps({**envelope(dm(), "Ev12"), "authorizations": "x"}), "application/json"),
    "enterprise as a number": (json.dumps({**envelope(dm(), "Ev13"), "enterprise": 5}), "application/json"),
    "not UTF-8": (b'{"type": "\xff"}', "application/json"),
    "a form payload that is no JSON": (urlencode({"payload": "{oops"}), "application/x-www-form-urlencoded"),
    "a form payload that is a list": (urlencode({"payload": "[1]"}), "application/x-www-form-urlencoded"),
    "a view submission without a view type": (urlencode({"payload": json.dumps(
        {"type": "view_submission", "user": {"id": "U_ALICE"}, "view": {"callback_id": "taskbot_new_task"}})}),
        "application/x-www-form-urlencoded"),
    "a view submission without state": (urlencode({"payload": json.dumps(
        {"type": "view_submission", "user": {"id": "U_ALICE"}, "view": {"type": "modal",
                                                                       "callback_id": "taskbot_new_task"}})}),
        "application/x-www-form-urlencoded"),
    "a command without a user": (urlencode({"command": "/task", "text": "list"}),
                                 "application/x-www-form-urlencoded"),
}


@pytest.mark.parametrize("name", list(SLACK_BODIES))
def test_a_signed_slack_request_of_the_wrong_shape_is_refused_or_ignored_never_a_500(engine, slack, r, name):
    body, content_type = SLACK_BODIES[name]
    raw = body if isinstance(body, bytes) else body.encode()
    before = stored(r)
    res = slack.client.post("/slack/events", content=raw, headers=signed_headers(raw, content_type))
    assert res.status_code in (200, 400), (res.status_code, res.text[:300])
    if res.status_code == 400:
        assert res.json()["detail"]
    assert stored(r) == before
    assert len(engine.jobs.queue) == 0
    # the next well-formed message is taken as ever
    assert slack.dm("U_ALICE", "hello after that").status_code == 200
    assert inbound_texts(r) == ["hello after that"]


def signed_headers(body: bytes, content_type: str = "application/json") -> dict[str, str]:
    """Headers Slack sends: its signature over the very bytes of the body."""
    ts = str(int(time.time()))
    digest = hmac.new(SLACK_SECRET.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    return {"Content-Type": content_type, "X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


def inbound_texts(r) -> list[str]:
    """The texts of the messages stored and waiting to be processed."""
    return [r.hget(k, "text").decode() for k in r.keys("taskbot:inbound:*")]


@pytest.mark.parametrize("timestamp", ["abc", "", "12.5", "-1", "1e9", "1 2", "9" * 40])
def test_a_slack_request_whose_timestamp_is_no_number_gets_401(engine, slack, r, timestamp):
    body = json.dumps(envelope(dm(), "EvT"))
    for signature in ("v0=abc", signed_headers(body.encode())["X-Slack-Signature"]):
        res = slack.post(body, "application/json", sign=False,
                         headers={"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": signature})
        assert res.status_code == 401
    assert r.keys("taskbot:inbound:*") == []


def update(**message_changes: object) -> dict[str, object]:
    base = message_update(600001, 1001, "my answer")
    message = dict(base["message"])  # type: ignore[arg-type]
    for key, value in message_changes.items():
        if value is None:
            message.pop(key, None)
        else:
            message[key] = value
    return {**base, "message": message}


TELEGRAM_UPDATES = {
    "a message without chat": update(chat=None),
    "chat as text": update(chat="private"),
    "a chat id that is text": update(chat={"id": "1001", "type": "private"}),
    "message as text": {"update_id": 600002, "message": "hello"},
    "text as a number": update(text=5),
    "a date past any clock": update(date=10**20),
    "date as text": update(date="today"),
    "from as a number": update(**{"from": 5}),
    "a reply to text": update(reply_to_message="x"),
    "a lone surrogate": update(text="my \ud800 answer"),
    "no message at all": {"update_id": 600003, "edited_message": {"text": "x"}},
}


@pytest.mark.parametrize("name", list(TELEGRAM_UPDATES))
def test_a_telegram_update_of_the_wrong_shape_is_ignored_never_a_500(engine, telegram, r, name):
    before = stored(r)
    res = telegram.post(TELEGRAM_UPDATES[name])
    assert res.status_code == 200, res.text[:300]
    assert res.json()["result"].startswith("ignored")
    if name == "a lone surrogate":
        assert "message.text: contains a lone surrogate" in res.json()["result"]
    assert stored(r) == before
    assert len(engine.jobs.queue) == 0
    res = telegram.post(message_update(600100, 1001, "hello after that"))
    assert res.json() == {"ok": True, "result": "stored"}


def test_a_telegram_body_that_is_no_update_gets_400(telegram, r):
    for body in (b"{not json", b"[1]", b'{"message": {}}', b"[" * 100_000):
        res = telegram.client.post("/telegram/webhook", content=body, headers={
            "Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET})
        assert res.status_code == 400
    assert r.keys("taskbot:inbound:*") == []
