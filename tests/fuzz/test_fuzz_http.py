"""API bodies, chat messages, Slack and Telegram payloads, to the real app over HTTP: never a 500; a 422
names the field (and nothing is stored); every other refusal says why."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from bot.app import create_app
from bot.settings import Settings
from tests.conftest import contents, served
from tests.fakes.slack_api import FakeSlack
from tests.fakes.telegram_api import FakeTelegram
from tests.fuzz.conftest import FUZZ
from tests.fuzz.strategies import DEFINITION_OR_JUNK, JSON, SLUG, TEXT, as_json_text, mutated, nested

TOKEN = "fuzz-api-token-1234"
SLACK_SECRET = "fuzz-signing-secret"
TELEGRAM_SECRET = "fuzz-webhook-secret"
HELLO = {"id": "hello", "name": "Hello", "description": "Say hello.", "owner": "lead@example.com",
         "template": {"fields": [{"key": "hi", "prompt": "Hi?"}], "participants": ["ann@example.com"]}}


@pytest.fixture
def app_url(env, engine, monkeypatch) -> Iterator[str]:
    """The app with Slack and Telegram on (against their fakes), a task and a web participant."""
    slack, telegram = FakeSlack().start(), FakeTelegram().start()
    values = {"SLACK_BOT_TOKEN": slack.token, "SLACK_SIGNING_SECRET": SLACK_SECRET,
              "TASKBOT_SLACK_API_URL": slack.api_url, "TELEGRAM_BOT_TOKEN": telegram.token,
              "TELEGRAM_WEBHOOK_SECRET": TELEGRAM_SECRET, "TASKBOT_TELEGRAM_API_URL": telegram.api_url,
              "TASKBOT_API_TOKEN": TOKEN}
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    from bot.bootstrap import build_engine

    app_engine = build_engine(Settings())
    app_engine.import_contacts([{"email": "ann@example.com", "preferred_channel": "web"}])
    app_engine.apply_definition(HELLO)
    try:
        with served(create_app(app_engine, Settings())) as url:
            yield url
    finally:
        app_engine.r.close()
        slack.stop()
        telegram.stop()


@pytest.fixture
def client(app_url) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=app_url, timeout=30, headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        yield c


def stored(r) -> dict[bytes, object]:
    return contents(r, skip=(b"taskbot:slack:", b"taskbot:telegram:rate:"))


def judged(res: httpx.Response) -> None:
    """No 500; a refusal is JSON that says why, and a 422 names the field."""
    assert res.status_code < 500, (res.status_code, res.text[:300])
    if res.status_code >= 400:
        body = res.json()
        assert body["detail"], body
        if res.status_code == 422:
            assert body["field"], body
            assert all(d["loc"] and d["msg"] for d in body["detail"]), body


ROUTES = st.sampled_from([
    ("POST", "/api/tasks"), ("PUT", "/api/tasks/hello"), ("PUT", "/api/tasks/other"), ("POST", "/api/trigger"),
    ("POST", "/api/tasks/hello/runs"), ("PUT", "/api/contacts/ann@example.com"), ("PUT", "/api/contacts/x"),
    ("PUT", "/api/datasets/team"), ("PUT", "/api/datasets/Bad Name"), ("POST", "/api/schedules"),
    ("POST", "/api/runs/nope/cancel"),
])
BODY = st.one_of(
    DEFINITION_OR_JUNK,
    st.fixed_dictionaries({"task_definition_id": st.one_of(st.just("hello"), SLUG)},
                          optional={"data": JSON, "callback_url": TEXT, "x": JSON}),
    st.fixed_dictionaries({"task_id": st.one_of(st.just("hello"), SLUG), "cron": TEXT},
                          optional={"timezone": TEXT, "data": JSON}),
    st.fixed_dictionaries({"data": JSON}),
    st.lists(st.dictionaries(TEXT, JSON, max_size=3), max_size=3),
    st.fixed_dictionaries({"email": TEXT}, optional={"name": TEXT, "preferred_channel": TEXT,
                                                    "telegram_chat_id": JSON, "timezone": TEXT}),
)
RAW = st.one_of(BODY.map(as_json_text), st.text(max_size=50), st.integers(20, 3000).map(lambda n: "[" * n + "]" * n))
CHAT = st.one_of(RAW, st.fixed_dictionaries({"text": TEXT}, optional={"id": TEXT}).map(as_json_text),
                 mutated({"text": "the new parser", "id": "m-1"}).map(as_json_text))


@FUZZ
@given(ROUTES, RAW, st.one_of(st.none(), st.sampled_from(["k1", "k2", "bad key", "é"])))
def test_api_bodies(client, r, route: tuple[str, str], body: str, key: str | None) -> None:
    method, path = route
    before = stored(r)
    headers = {"Content-Type": b"application/json"}
    if key is not None:
        headers["Idempotency-Key"] = key.encode()  # bytes: a client may send any, httpx only encodes ASCII
    res = client.request(method, path, content=body.encode("utf-8", "surrogatepass"), headers=headers)
    judged(res)
    event(f"{method} {path.split('/')[2]}: {res.status_code}")
    if res.status_code >= 400:
        after = stored(r)
        assert after == before, {k: (before.get(k), after.get(k)) for k in before.keys() | after.keys()
                                 if before.get(k) != after.get(k)}
    assert client.get("/api/runs").status_code == 200
    assert client.get("/api/tasks").status_code == 200


@FUZZ
@given(CHAT, st.sampled_from(["real", "real", "wrong"]))
def test_chat_messages(client, engine, r, body: str, link: str) -> None:
    sub = next(iter(engine.r.scan_iter("taskbot:token:*")), None)
    if sub is None:
        engine.runs.trigger("hello")
        from bot.bootstrap import engine as process_engine

        process_engine().runs.advance(engine.store.run_ids()[0], 0)
        process_engine().subtasks.open_batch(engine.store.run_ids()[0], 0, 100)
        sub = next(iter(engine.r.scan_iter("taskbot:token:*")))
    token = sub.decode().rsplit(":", 1)[-1] if link == "real" else "not-a-link"
    res = client.post(f"/chat/{token}/messages", content=body.encode("utf-8", "surrogatepass"),
                      headers={"Content-Type": "application/json"})
    judged(res)
    event(f"chat {link}: {res.status_code}")
    assert client.get(f"/chat/{token}/messages").status_code in (200, 404)


def fresh(payload: Any, key: str, value: Any) -> Any:
    """A new provider id for a mutated payload, so it is not dropped as a duplicate delivery."""
    return {**payload, key: value} if isinstance(payload, dict) and key in payload else payload


def slack_signed(body: bytes, content_type: str) -> dict[str, str]:
    ts = str(int(time.time()))
    digest = hmac.new(SLACK_SECRET.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    return {"Content-Type": content_type, "X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


EVENT = st.fixed_dictionaries({}, optional={
    "type": st.one_of(st.just("message"), JSON), "channel_type": st.one_of(st.just("im"), JSON),
    "channel": st.one_of(st.just("DU_ANN"), JSON), "user": st.one_of(st.just("U_ANN"), JSON),
    "text": st.one_of(TEXT, JSON), "ts": st.one_of(st.just("1800000000.000100"), TEXT, JSON),
    "thread_ts": st.one_of(TEXT, JSON), "subtype": st.one_of(st.none(), TEXT, JSON), "bot_id": JSON,
    "message": JSON, "blocks": JSON})
ENVELOPE = st.fixed_dictionaries({"type": st.one_of(st.just("event_callback"), JSON)}, optional={
    "event": st.one_of(EVENT, JSON), "event_id": st.one_of(TEXT, JSON), "team_id": JSON, "authorizations": JSON,
    "enterprise": JSON, "team": JSON, "user": JSON, "view": JSON, "actions": JSON, "challenge": JSON})
DM = {"token": "legacy", "team_id": "T1", "api_app_id": "A1", "type": "event_callback", "event_id": "Ev1",
      "event_time": 1800000000, "authorizations": [{"team_id": "T1", "user_id": "U_BOT", "is_bot": True}],
      "event": {"type": "message", "channel": "DU_ANN", "channel_type": "im", "user": "U_ANN", "text": "hello",
                "ts": "1800000000.000100"}}
SLACK_BODY = st.one_of(
    st.builds(fresh, mutated(DM), st.just("event_id"), TEXT).map(lambda e: (as_json_text(e), "application/json")),
    ENVELOPE.map(lambda e: (as_json_text(e), "application/json")),
    JSON.map(lambda v: (as_json_text(v), "application/json")),
    st.dictionaries(st.sampled_from(["command", "text", "user_id", "trigger_id", "response_url", "payload"]),
                    st.one_of(st.just("/task"), TEXT), max_size=5).map(
        lambda f: (urlencode({k: v.encode("utf-8", "surrogatepass") for k, v in f.items()}),
                   "application/x-www-form-urlencoded")),
    st.fixed_dictionaries({"type": st.sampled_from(["view_submission", "block_actions", "shortcut"])},
                          optional={"view": JSON, "user": JSON, "actions": JSON}).map(
        lambda p: (urlencode({"payload": as_json_text(p)}), "application/x-www-form-urlencoded")),
)


@FUZZ
@given(SLACK_BODY)
def test_signed_slack_payloads(client, body: tuple[str, str]) -> None:
    text, content_type = body
    raw = text.encode("utf-8", "surrogatepass")
    res = client.post("/slack/events", content=raw, headers=slack_signed(raw, content_type))
    assert res.status_code < 500, (res.status_code, res.text[:300], text[:300])
    event(f"slack: {res.status_code}")


def update_of(message: Any, update_id: Any) -> dict[str, Any]:
    return {"update_id": update_id, "message": message}


MESSAGE = st.fixed_dictionaries({}, optional={
    "message_id": st.one_of(st.integers(), JSON), "date": st.one_of(st.integers(), JSON),
    "chat": st.one_of(st.fixed_dictionaries({"id": st.one_of(st.integers(), JSON),
                                             "type": st.one_of(st.just("private"), JSON)}), JSON),
    "from": st.one_of(st.fixed_dictionaries({"id": st.integers(), "is_bot": st.booleans(),
                                             "first_name": TEXT}), JSON),
    "text": st.one_of(TEXT, JSON), "caption": JSON, "reply_to_message": JSON, "entities": JSON})
VALID_UPDATE = {"update_id": 700001, "message": {"message_id": 5, "date": 1800000000, "text": "hello",
                                                 "chat": {"id": 1001, "type": "private", "first_name": "Ann"},
                                                 "from": {"id": 1001, "is_bot": False, "first_name": "Ann"}}}
UPDATE = st.one_of(st.builds(update_of, st.one_of(MESSAGE, JSON), st.one_of(st.integers(1, 2**40), JSON)), JSON,
                   st.builds(fresh, mutated(VALID_UPDATE), st.just("update_id"), st.integers(1, 2**40)),
                   st.builds(fresh, mutated(VALID_UPDATE, edits=1), st.just("update_id"), st.integers(1, 2**40)))


@FUZZ
@given(UPDATE)
def test_telegram_updates(client, update: Any) -> None:
    res = client.post("/telegram/webhook", content=as_json_text(update).encode(), headers={
        "Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET})
    assert res.status_code in (200, 400), (res.status_code, res.text[:300])
    event(f"telegram: {res.status_code} {res.json().get('result', '')[:20]}")


def test_the_fuzzed_app_still_reads(client) -> None:
    """The strategies above include the worst cases once more, explicitly, then every read works."""
    for body in (as_json_text({"task_definition_id": "hello", "data": nested(300)}), "[" * 5000 + "]" * 5000):
        judged(client.post("/api/trigger", content=body.encode(), headers={"Content-Type": "application/json"}))
    for path in ("/api/runs", "/api/tasks", "/api/contacts", "/api/schedules"):
        assert client.get(path).status_code == 200
    assert json.loads(client.get("/healthz").text)["redis"] is True
