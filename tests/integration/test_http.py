"""The HTTP app over real HTTP (uvicorn on a free port, httpx): REST API, web chat, dashboard."""

from __future__ import annotations

import copy
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from bot.app import DASHBOARD_COOKIE, create_app
from bot.bootstrap import wire
from bot.queue import RQJobs
from bot.settings import Settings
from tests.integration.conftest import TOKEN

WEEKLY = {
    "id": "weekly-status",
    "name": "Weekly status",
    "output_type": "report",
    "owner": "lead@example.com",
    "template": {
        "instructions": "Hi! Two quick questions for this week's status report.",
        "fields": [
            {"key": "shipped", "prompt": "What did you ship this week?"},
            {"key": "blockers", "prompt": "Anything blocking you?", "required": False},
        ],
        "participants": ["alice@example.com", "bob@example.com"],
        "chase": {"interval": "24h", "max_chases": 2},
    },
}
HELLO = {"id": "hello", "name": "Hello", "description": "Say hello to the team.", "owner": "lead@example.com"}


def add_web_contacts(api: httpx.Client, *people: tuple[str, str]) -> None:
    for email, name in people:
        contact = {"name": name, "email": email, "preferred_channel": "web"}
        res = api.put(f"/api/contacts/{email}", json=contact)
        assert res.status_code == 200, res.text


def start_weekly_status(api: httpx.Client, drain: Callable[[], None]) -> dict:
    """Alice and Bob on web chat, the weekly status applied and triggered; returns the running run."""
    add_web_contacts(api, ("alice@example.com", "Alice"), ("bob@example.com", "Bob"))
    assert api.post("/api/tasks", json=WEEKLY).status_code == 201
    res = api.post("/api/trigger", json={"task_definition_id": "weekly-status", "data": {"week": "23"}})
    assert res.status_code == 202, res.text
    drain()
    return api.get(f"/api/runs/{res.json()['run_id']}").json()


def chat_path(subtask: dict) -> str:
    return urlsplit(subtask["chat_url"]).path


def test_two_web_participants_answer_and_the_owner_gets_the_report(api, web, drain):
    run = start_weekly_status(api, drain)
    assert run["status"] == "running"
    assert run["trigger"]["kind"] == "web"
    alice, bob = run["subtasks"]
    assert [alice["name"], bob["name"]] == ["Alice", "Bob"]
    assert [s["channel"] for s in run["subtasks"]] == ["web", "web"]
    alice_chat, bob_chat = chat_path(alice), chat_path(bob)
    assert alice_chat.startswith("/chat/")
    assert alice_chat != bob_chat

    # Alice opens her private link and sees the opening question.
    page = web.get(alice_chat)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "<title>Weekly status</title>" in page.text
    assert "What did you ship this week?" in page.text
    assert f'action="{alice_chat}"' in page.text

    # She answers from the page's script (JSON); the bot asks the next question.
    res = web.post(f"{alice_chat}/messages", json={"text": "the new parser", "id": "alice-1"})
    assert res.status_code == 202
    assert res.json()["duplicate"] is False
    drain()
    messages = web.get(f"{alice_chat}/messages").json()
    assert [m["role"] for m in messages] == ["assistant", "user", "assistant"]
    assert messages[1]["text"] == "the new parser"
    assert messages[2]["text"].startswith("Anything blocking you?")
    assert all(m["at"] for m in messages)
    assert web.post(f"{alice_chat}/messages", json={"text": "none", "id": "alice-2"}).status_code == 202

    # Bob has no JavaScript: the plain form answers with a redirect back to his page.
    res = web.post(bob_chat, data={"text": "the docs site", "id": "form-1"})
    assert res.status_code == 303
    assert res.headers["location"] == bob_chat
    assert web.post(bob_chat, data={"text": "skip", "id": "form-2"}).status_code == 303
    drain()

    run = api.get(f"/api/runs/{run['id']}").json()
    assert run["status"] == "completed"
    assert [s["status"] for s in run["subtasks"]] == ["completed", "completed"]
    report = run["deliverables"][0]["content"]
    assert "the new parser" in report
    assert "the docs site" in report
    assert "2 of 2 participants answered" in report
    bob_page = web.get(bob_chat).text
    assert "the docs site" in bob_page
    assert "This task has closed" in bob_page
    notes = api.get("/api/notifications", params={"owner": "lead@example.com"}).json()
    assert [n["kind"] for n in notes] == ["task_completed"]
    assert notes[0]["run_id"] == run["id"]
    listed = api.get("/api/runs", params={"task_id": "weekly-status"}).json()
    assert [r["id"] for r in listed] == [run["id"]]


def test_a_message_sent_twice_with_the_same_id_is_stored_once(api, web, drain):
    alice = start_weekly_status(api, drain)["subtasks"][0]
    first = web.post(f"{chat_path(alice)}/messages", json={"text": "the new parser", "id": "retry-me"})
    again = web.post(f"{chat_path(alice)}/messages", json={"text": "the new parser", "id": "retry-me"})
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json() == {"id": first.json()["id"], "duplicate": True}
    drain()
    messages = web.get(f"{chat_path(alice)}/messages").json()
    assert [m["text"] for m in messages if m["role"] == "user"] == ["the new parser"]


def test_the_api_refuses_callers_without_the_right_token_and_stores_nothing(api, base):
    with httpx.Client(base_url=base, timeout=10) as stranger:
        res = stranger.post("/api/tasks", json=WEEKLY)
        assert res.status_code == 401
        assert res.json()["detail"]
        assert res.headers["www-authenticate"] == "Bearer"
        wrong = stranger.post("/api/tasks", json=WEEKLY, headers={"Authorization": "Bearer not-the-token"})
        assert wrong.status_code == 401
        assert stranger.get("/api/runs").status_code == 401
        assert stranger.post("/api/trigger", json={"task_definition_id": "weekly-status"}).status_code == 401
    assert api.get("/api/tasks").json() == []


def test_with_no_token_configured_the_api_and_the_dashboard_stay_closed(engine, serve, monkeypatch):
    monkeypatch.delenv("TASKBOT_API_TOKEN", raising=False)
    base = serve(create_app(engine, Settings(api_token=None)))
    with httpx.Client(base_url=base, timeout=10) as client:
        res = client.get("/api/tasks", headers={"Authorization": "Bearer anything"})
        assert res.status_code == 401
        assert "TASKBOT_API_TOKEN" in res.json()["detail"]
        # The dashboard lists every participant's chat link (each a credential): closed like the API.
        for path in ("/", "/?token=", "/runs/anything"):
            page = client.get(path)
            assert page.status_code == 401
            assert "TASKBOT_API_TOKEN" in page.text


def test_a_bad_definition_is_refused_whole_naming_the_field(api):
    bad = copy.deepcopy(WEEKLY)
    bad["template"]["chase"]["interval"] = "2x"
    res = api.post("/api/tasks", json=bad)
    assert res.status_code == 422
    body = res.json()
    assert body["field"] == "template.chase.interval"
    assert body["detail"][0]["loc"] == ["body", "template", "chase", "interval"]
    assert "2x" in body["detail"][0]["msg"]
    assert api.get("/api/tasks").json() == []
    assert api.get("/api/tasks/weekly-status").status_code == 404


def test_definitions_can_be_read_replaced_and_deleted(api):
    assert api.post("/api/tasks", json=HELLO).status_code == 201
    renamed = {k: v for k, v in HELLO.items() if k != "id"} | {"name": "Hello again"}
    res = api.put("/api/tasks/hello", json=renamed)
    assert res.status_code == 200
    assert res.json()["id"] == "hello"
    assert api.get("/api/tasks/hello").json()["name"] == "Hello again"
    mismatch = api.put("/api/tasks/hello", json=HELLO | {"id": "other"})
    assert mismatch.status_code == 422
    assert mismatch.json()["field"] == "id"
    assert [t["id"] for t in api.get("/api/tasks").json()] == ["hello"]
    assert api.delete("/api/tasks/hello").status_code == 204
    assert api.get("/api/tasks").json() == []
    assert api.delete("/api/tasks/hello").status_code == 404


def test_bad_bodies_get_422_naming_the_field(api, base):
    assert api.post("/api/tasks", content=b"{not json", headers={"Content-Type": "application/json"}
                    ).status_code == 422
    res = api.post("/api/trigger", json={"data": {}})
    assert res.status_code == 422
    assert res.json()["detail"][0]["loc"] == ["body", "task_definition_id"]
    res = api.put("/api/contacts/carol", json={"email": "not-an-email"})
    assert (res.status_code, res.json()["field"]) == (422, "email")
    assert api.get("/api/contacts").json() == []
    assert api.get("/api/notifications", params={"owner": ""}).status_code == 422  # without owner: the caller's
    with httpx.Client(base_url=base, timeout=10) as browser:
        res = browser.post("/chat/whatever/messages", json={"text": "   "})
        assert res.status_code == 404  # the link is checked before its body is read


def test_unknown_runs_and_chat_links_are_404(api, web):
    res = api.get("/api/runs/nope")
    assert res.status_code == 404
    assert "nope" in res.json()["detail"]
    assert api.post("/api/runs/nope/cancel").status_code == 404
    assert api.post("/api/tasks/nope/runs").status_code == 404
    page = web.get("/chat/not-a-token")
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert web.get("/chat/not-a-token/messages").status_code == 404
    assert web.post("/chat/not-a-token/messages", json={"text": "hi"}).status_code == 404
    assert web.post("/chat/not-a-token", data={"text": "hi"}).status_code == 404


def test_cancelling_a_run_that_ended_is_a_conflict(api, drain):
    assert api.post("/api/tasks", json=HELLO).status_code == 201
    res = api.post("/api/tasks/hello/runs", json={"data": {"who": "everyone"}})
    assert res.status_code == 202
    rid = res.json()["run_id"]
    drain()
    run = api.get(f"/api/runs/{rid}").json()
    assert (run["status"], run["trigger"]["kind"]) == ("completed", "api")
    res = api.post(f"/api/runs/{rid}/cancel")
    assert res.status_code == 409
    assert "completed" in res.json()["detail"]
    assert api.post(f"/api/runs/{rid}/approve").status_code == 409
    assert api.get(f"/api/runs/{rid}").json()["status"] == "completed"


def test_cancelling_a_running_run_closes_its_subtasks(api, drain):
    run = start_weekly_status(api, drain)
    res = api.post(f"/api/runs/{run['id']}/cancel")
    assert res.status_code == 200
    assert res.json()["status"] == "cancelled"
    assert [s["status"] for s in res.json()["subtasks"]] == ["cancelled", "cancelled"]
    notes = api.get("/api/notifications", params={"owner": "lead@example.com"}).json()
    assert [n["kind"] for n in notes] == ["task_cancelled"]


def test_contacts_and_datasets_go_into_the_directory(api):
    add_web_contacts(api, ("alice@example.com", "Alice"))
    assert [(c["id"], c["preferred_channel"]) for c in api.get("/api/contacts").json()] == [
        ("alice@example.com", "web")]
    rows = [{"email": "alice@example.com", "role": "engineer"}]
    assert api.put("/api/datasets/team", json=rows).json() == {"name": "team", "rows": 1}
    assert api.put("/api/datasets/team", json={"rows": rows * 2}).json() == {"name": "team", "rows": 2}
    res = api.put("/api/datasets/team", json={"rows": [{"email": "x"}, "oops"]})
    assert (res.status_code, res.json()["field"]) == (422, "rows[1]")
    res = api.put("/api/datasets/Bad Name", json=rows)
    assert res.status_code == 422
    assert res.json()["detail"][0]["loc"] == ["path", "name"]


def test_the_dashboard_lists_runs_with_their_chat_links(api, web, drain):
    run = start_weekly_status(api, drain)
    assert web.get("/").status_code == 401
    assert web.get("/", params={"token": "wrong"}).status_code == 401
    res = web.get("/", params={"token": TOKEN})
    assert res.status_code == 303
    assert res.headers["location"] == "/"
    assert "httponly" in res.headers["set-cookie"].lower()
    assert TOKEN not in res.headers["set-cookie"]
    assert web.cookies.get(DASHBOARD_COOKIE)

    page = web.get("/")
    assert page.status_code == 200
    assert run["id"] in page.text
    assert "Weekly status" in page.text
    assert "0 answered · 2 open" in page.text
    for sub in run["subtasks"]:
        assert f'<a href="{sub["chat_url"]}">{sub["name"]}</a>' in page.text
    detail = web.get(f"/runs/{run['id']}")
    assert detail.status_code == 200
    assert "alice@example.com" in detail.text
    assert "running" in detail.text
    assert web.get("/runs/nope").status_code == 404


def test_health_and_openapi(web):
    assert web.get("/healthz").json() == {"status": "ok", "redis": True}
    spec = web.get("/openapi.json").json()
    assert spec["info"]["title"] == "taskbot"
    documented = {"/api/trigger", "/api/tasks", "/api/runs/{run_id}", "/chat/{token}/messages"}
    assert documented <= spec["paths"].keys()


def test_health_says_503_when_redis_does_not_answer(serve, env):
    with socket.socket() as probe:  # a port nobody listens on once this closes
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    dead = redis.Redis(port=dead_port, retry=Retry(NoBackoff(), 0))  # fail fast: no retries
    engine = wire(dead, RQJobs(dead), {})
    with httpx.Client(base_url=serve(create_app(engine, Settings(api_token=TOKEN))), timeout=10) as client:
        res = client.get("/healthz")
    dead.close()
    assert res.status_code == 503
    assert res.json()["redis"] is False
