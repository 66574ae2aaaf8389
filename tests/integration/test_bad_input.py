"""Input that cannot hurt (SPEC §10), over real HTTP: bounded bodies, the token before the body, nothing
deeper than 32 levels, no lone surrogates, bounded filters, five-field crons; each refusal names the field,
nothing is stored, and every read afterwards still works."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator

import httpx
import pytest

from bot.app import create_app
from bot.settings import Settings
from tests.conftest import contents
from tests.integration.conftest import TOKEN
from tests.integration.test_http import (
    HELLO,
    WEEKLY,
    chat_path,
    start_weekly_status,
)

MiB = 1024 * 1024


def snapshot(r) -> dict[bytes, object]:
    return contents(r)


def reads_still_work(api: httpx.Client) -> None:
    """What every user reads afterwards: all of it answers 200."""
    for path in ("/api/tasks", "/api/runs", "/api/contacts", "/api/schedules", "/healthz"):
        res = api.get(path)
        assert res.status_code == 200, (path, res.text[:200])
    for run in api.get("/api/runs").json():
        assert api.get(f"/api/runs/{run['id']}").status_code == 200


def nested(levels: int) -> object:
    value: object = "leaf"
    for _ in range(levels - 1):
        value = {"a": value}
    return {"a": value}


def raw(client: httpx.Client, method: str, path: str, text: str, **headers: str) -> httpx.Response:
    """Send JSON text as written (``\\ud800`` escapes stay escapes: json.dumps would not write them)."""
    return client.request(method, path, content=text.encode(), headers={"Content-Type": "application/json",
                                                                        **headers})


class Counting:
    """A request body that yields ``total`` bytes in chunks, counting what the client could send."""

    def __init__(self, total: int, chunk: int = 256 * 1024) -> None:
        self.total, self.chunk, self.sent = total, chunk, 0

    def __iter__(self) -> Iterator[bytes]:
        while self.sent < self.total:
            self.sent += self.chunk
            yield b" " * self.chunk


# -- TASKBOT_MAX_BODY ------------------------------------------------------------------------------------
def test_a_body_over_1_mib_gets_413_before_it_is_parsed_and_nothing_is_stored(api, r):
    just_under = HELLO | {"description": "x" * (MiB - 200)}
    assert api.post("/api/tasks", json=just_under).status_code == 201
    before = snapshot(r)
    over = HELLO | {"id": "big", "description": "x" * MiB}
    res = api.post("/api/tasks", json=over)
    assert res.status_code == 413
    assert len(res.content) < 100  # a short refusal, nothing echoed
    # a chunked body (no Content-Length) is counted as it arrives
    body = Counting(64 * MiB)
    res = api.post("/api/tasks", content=body, headers={"Content-Type": "application/json"})
    assert res.status_code == 413
    assert body.sent < 32 * MiB  # the server stopped reading soon after the limit
    assert snapshot(r) == before
    assert [t["id"] for t in api.get("/api/tasks").json()] == ["hello"]
    reads_still_work(api)


def test_max_body_is_a_setting(engine, serve, monkeypatch):
    monkeypatch.setenv("TASKBOT_MAX_BODY", "4096")
    monkeypatch.setenv("TASKBOT_API_TOKEN", TOKEN)
    with httpx.Client(base_url=serve(create_app(engine, Settings())), timeout=30,
                      headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        assert client.post("/api/tasks", json=HELLO | {"description": "x" * 3000}).status_code == 201
        assert client.post("/api/tasks", json=HELLO | {"description": "x" * 5000}).status_code == 413
        assert client.get("/api/tasks/hello").json()["description"] == "x" * 3000


def test_an_unauthenticated_300_mb_post_is_refused_without_being_read(api, base, r):
    before = snapshot(r)
    with httpx.Client(base_url=base, timeout=60) as stranger:
        body = Counting(300 * MiB)
        res = stranger.post("/api/tasks", content=body, headers={"Content-Type": "application/json"})
        assert res.status_code == 401
        assert res.headers["www-authenticate"] == "Bearer"
        assert body.sent < 32 * MiB, f"the server read {body.sent / MiB:.0f} MiB before refusing"
        declared = Counting(300 * MiB)
        res = stranger.post("/api/trigger", content=declared, headers={"Content-Type": "application/json",
                                                                       "Content-Length": str(300 * MiB),
                                                                       "Authorization": "Bearer wrong"})
        assert res.status_code in (401, 413)
        assert declared.sent < 32 * MiB
    assert snapshot(r) == before
    reads_still_work(api)


def test_a_chat_post_to_a_wrong_link_reads_and_echoes_nothing(api, web, drain):
    alice = start_weekly_status(api, drain)["subtasks"][0]
    answer = "y" * 500_000
    res = web.post("/chat/not-a-chat-link/messages", json={"text": answer})
    assert res.status_code == 404
    assert len(res.content) < 200
    res = web.post("/chat/not-a-chat-link/messages", json={"text": "z" * (10 * MiB)})
    assert res.status_code == 413
    assert len(res.content) < 200
    # On a right link, a wrong body is a 422 naming the field, still without echoing the body back.
    res = web.post(f"{chat_path(alice)}/messages", json={"text": 5, "id": "q" * 5000})
    assert res.status_code == 422
    assert {tuple(d["loc"]) for d in res.json()["detail"]} == {("body", "text"), ("body", "id")}
    assert "qqqq" not in res.text
    assert len(res.content) < 1000
    res = raw(web, "POST", f"{chat_path(alice)}/messages", "w" * 100_000)
    assert res.status_code == 422
    assert "www" not in res.text
    res = web.post(f"{chat_path(alice)}/messages", json={"text": "   "})
    assert (res.status_code, res.json()["field"]) == (422, "text")
    assert [m["role"] for m in web.get(f"{chat_path(alice)}/messages").json()] == ["assistant"]
    reads_still_work(api)


# -- nesting ---------------------------------------------------------------------------------------------
def test_run_data_260_levels_deep_is_refused_and_the_run_list_still_reads(api, r):
    assert api.post("/api/tasks", json=HELLO).status_code == 201
    before = snapshot(r)
    for levels in (260, 33):
        res = api.post("/api/trigger", json={"task_definition_id": "hello", "data": nested(levels)})
        assert res.status_code == 422
        assert res.json()["field"] == "data"
        assert res.json()["detail"][0]["msg"] == "nested deeper than 32 levels"
        res = api.post("/api/tasks/hello/runs", json={"data": nested(levels)})
        assert (res.status_code, res.json()["field"]) == (422, "data")
    assert snapshot(r) == before
    ok = api.post("/api/trigger", json={"task_definition_id": "hello", "data": nested(31)})  # 32 with the body
    assert ok.status_code == 202
    reads_still_work(api)
    assert api.get(f"/api/runs/{ok.json()['run_id']}").json()["gathered"] == nested(31)


def test_deep_datasets_contacts_and_bodies_are_refused_naming_the_field(api, r):
    before = snapshot(r)
    res = api.put("/api/datasets/team", json=[{"email": "a@example.com"}, {"profile": nested(40)}])
    assert (res.status_code, res.json()["field"]) == (422, "[1]")
    res = api.put("/api/datasets/team", json={"rows": [{"profile": nested(40)}]})
    assert (res.status_code, res.json()["field"]) == (422, "rows")
    res = api.put("/api/contacts/ann", json={"email": "ann@example.com", "name": nested(40)})
    assert (res.status_code, res.json()["field"]) == (422, "name")
    deep_text = "[" * 100_000 + "]" * 100_000  # deeper than Python's JSON parser goes
    for path in ("/api/tasks", "/api/trigger"):
        res = raw(api, "POST", path, deep_text)
        assert res.status_code == 422
        assert res.json() == {"detail": [{"type": "value_error", "loc": ["body"],
                                          "msg": "JSON nested deeper than 32 levels"}], "field": "body"}
    res = api.post("/api/tasks", content=b'{"id": "caf\xe9"}', headers={"Content-Type": "application/json"})
    assert (res.status_code, res.json()["field"]) == (400, "body")  # Latin-1, not UTF-8
    assert "UTF-8" in res.json()["detail"][0]["msg"]
    assert snapshot(r) == before
    reads_still_work(api)


# -- lone surrogates --------------------------------------------------------------------------------------
def test_lone_surrogates_are_refused_naming_the_field_never_a_500(api, web, drain, r):
    alice = start_weekly_status(api, drain)["subtasks"][0]
    before = snapshot(r)
    definition = json.dumps(WEEKLY).replace("What did you ship this week?", "Shipped \\ud800?")
    probes = [
        ("POST", f"{chat_path(alice)}/messages", '{"text": "my answer \\ud800"}', web, "text"),
        ("POST", "/api/trigger", '{"task_definition_id": "weekly-status", "data": {"note": "\\udfff"}}', api,
         "data.note"),
        ("POST", "/api/trigger", '{"task_definition_id": "weekly-status", "data": {"k\\ud83d": 1}}', api,
         "data.k\\ud83d"),
        ("POST", "/api/tasks/weekly-status/runs", '{"data": {"list": ["ok", "\\ud800"]}}', api, "data.list[1]"),
        ("POST", "/api/tasks", definition, api, "template.fields[0].prompt"),
        ("PUT", "/api/datasets/team", '[{"email": "a@example.com", "role": "\\ud800"}]', api, "[0].role"),
        ("PUT", "/api/contacts/ann", '{"email": "ann@example.com", "name": "Ann \\udc00"}', api, "name"),
        ("POST", "/api/schedules", '{"task_id": "weekly-status", "cron": "0 9 * * *", "data": {"x": "\\ud800"}}',
         api, "data.x"),
        ("POST", "/api/schedules", '{"task_id": "weekly\\udfff", "cron": "0 9 * * *"}', api, "task_id"),
        ("POST", "/api/trigger", '{"task_definition_id": "\\ud800"}', api, "task_definition_id"),
    ]
    for method, path, text, client, field in probes:
        res = raw(client, method, path, text)
        assert res.status_code == 422, (path, res.status_code, res.text[:300])
        assert res.json()["field"] == field, path
        assert "lone surrogate" in res.json()["detail"][0]["msg"]
    assert snapshot(r) == before
    reads_still_work(api)
    assert [m["role"] for m in web.get(f"{chat_path(alice)}/messages").json()] == ["assistant"]


# -- filters ----------------------------------------------------------------------------------------------
def filtered(text: str) -> dict:
    definition = copy.deepcopy(WEEKLY)
    del definition["template"]["participants"]
    definition["template"] |= {"dataset": "team", "filter": text}
    return definition


def test_filters_too_deep_or_too_large_are_refused_naming_the_filter(api, r):
    assert api.put("/api/datasets/team", json=[{"email": "ann@example.com", "role": "engineer"}]).status_code == 200
    before = snapshot(r)
    res = api.post("/api/tasks", json=filtered("(" * 1000 + "role = 'engineer'" + ")" * 1000))
    assert (res.status_code, res.json()["field"]) == (422, "template.filter")
    assert "nested deeper than 32" in res.json()["detail"][0]["msg"]
    res = api.post("/api/tasks", json=filtered(" or ".join(f"role = 'r{i}'" for i in range(5_000))))
    assert (res.status_code, res.json()["field"]) == (422, "template.filter")
    assert "more than 10,000" in res.json()["detail"][0]["msg"]
    # 100,000 terms make a body over TASKBOT_MAX_BODY: refused before anything parses it
    res = api.post("/api/tasks", json=filtered(" and ".join(f"f{i} = {i}" for i in range(100_000))))
    assert res.status_code == 413
    assert snapshot(r) == before
    assert api.post("/api/tasks", json=filtered("(role = 'engineer' or role = 'lead')")).status_code == 201
    reads_still_work(api)


# -- cron -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("cron", "says"), [
    ("* * * * * * *", "has 7 fields; a cron has exactly five"),
    ("*/5 * * * * *", "has 6 fields"),
    ("0 0 31 2 *", "never fires"),
    ("0 0 30 2 *", "never fires"),
    ("61 9 * * *", "is not a cron expression"),
    ("@daily", "has 1 fields"),
])
def test_a_cron_must_be_five_fields_that_fire_some_day(api, r, cron, says):
    assert api.post("/api/tasks", json=HELLO).status_code == 201
    before = snapshot(r)
    res = api.post("/api/schedules", json={"task_id": "hello", "cron": cron})
    assert (res.status_code, res.json()["field"]) == (422, "cron")
    assert says in res.json()["detail"][0]["msg"]
    assert snapshot(r) == before
    reads_still_work(api)


def test_schedules_over_the_api(api):
    assert api.post("/api/tasks", json=HELLO).status_code == 201
    res = api.post("/api/schedules", json={"task_id": "hello", "cron": "0 0 29 2 *", "timezone": "Europe/Paris"})
    assert res.status_code == 201
    schedule = res.json()
    # a leap day: it fires, once every four years (the next 29 February, at midnight in Paris)
    assert schedule["next_run_local"].split("T")[0].endswith("-02-29")
    res = api.post("/api/schedules", json={"task_id": "hello", "cron": "0 9 * * MON", "timezone": "Mars/Olympus"})
    assert (res.status_code, res.json()["field"]) == (422, "timezone")
    assert [s["id"] for s in api.get("/api/schedules").json()] == [schedule["id"]]
    assert api.delete(f"/api/schedules/{schedule['id']}").status_code == 204
    assert api.delete(f"/api/schedules/{schedule['id']}").status_code == 404
    assert api.post("/api/schedules", json={"task_id": "nope", "cron": "0 9 * * *"}).status_code == 404
    assert api.get("/api/schedules").json() == []
