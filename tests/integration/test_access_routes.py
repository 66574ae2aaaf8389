"""Every /api route × {the admin token, the owner's token, another person's token, no token} (SPEC §12).

Lee owns the task ``lee-task`` (and its run and schedule); Kim owns ``kim-task``. Each row of
the table is one request on Lee's things (or on a route that is the admin's alone); each caller
must get the status in the row, and afterwards Redis must show the change made or nothing
changed. A person's token sees another person's task, run or schedule as not there (404), and
an admin-only route is 403 for every person.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from engine.engine import Engine
from engine.errors import NotFound
from tests.conftest import contents
from tests.integration.conftest import TOKEN


def task(tid: str, owner: str) -> dict[str, Any]:
    return {"id": tid, "name": tid.title(), "owner": owner,
            "template": {"participants": ["ann@example.com"], "fields": [{"key": "today", "prompt": "Today?"}]}}


@dataclass
class World:
    """What exists before each request: two owners' tasks, runs and schedules, and everyone's tokens."""

    engine: Engine
    tokens: dict[str, str | None]
    ids: dict[str, str] = field(default_factory=dict)


@pytest.fixture
def world(engine: Engine) -> World:
    engine.import_contacts([
        {"id": "lee", "email": "lee@example.com", "name": "Lee", "slack_user_id": "U_LEE", "preferred_channel": "web"},
        {"id": "kim", "email": "kim@example.com", "name": "Kim", "preferred_channel": "web"},
        {"id": "ann", "email": "ann@example.com", "name": "Ann", "preferred_channel": "web"},
    ])
    engine.apply_definition(task("lee-task", "lee@example.com"))
    engine.apply_definition(task("kim-task", "U_KIM_NOT_LINKED"))  # owned by an id Kim's contact does not have
    engine.apply_definition(task("kims-own", "kim"))  # owned by Kim's contact id
    w = World(engine, {"admin": TOKEN, "owner": engine.tokens.create("lee")[0],
                       "other": engine.tokens.create("kim")[0], "none": None})
    w.ids["lee_run"] = engine.runs.trigger("lee-task", {"week": "1"})
    w.ids["kim_run"] = engine.runs.trigger("kims-own")
    w.ids["lee_ended"] = engine.runs.trigger("lee-task")
    engine.runs.cancel(w.ids["lee_ended"])  # tells Lee (a notification under lee@example.com)
    kim_ended = engine.runs.trigger("kims-own")
    engine.runs.cancel(kim_ended)
    w.ids["lee_schedule"] = engine.schedules.create("lee-task", "0 9 * * MON")["id"]
    w.ids["kim_schedule"] = engine.schedules.create("kims-own", "0 9 * * TUE")["id"]
    engine.import_dataset("team", [{"email": "ann@example.com"}])
    return w


@pytest.fixture
def call(base: str, world: World) -> Iterator[Callable[..., httpx.Response]]:
    with httpx.Client(base_url=base, timeout=10) as client:
        def send(who: str, method: str, path: str, body: Any = None) -> httpx.Response:
            token = world.tokens[who]
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            return client.request(method, path.format(**world.ids), json=body, headers=headers)

        yield send


CALLERS = ("admin", "owner", "other", "none")


def run_status(w: World, name: str) -> str:
    return w.engine.store.run_fields(w.ids[name])["status"]


def exists(w: World, tid: str) -> bool:
    try:
        w.engine.store.get_definition(tid)
    except NotFound:
        return False
    return True


def runs_of(w: World, tid: str) -> int:
    return len(w.engine.store.run_ids(tid, 100))


def schedule(w: World) -> dict[str, Any] | None:
    try:
        return w.engine.schedules.get(w.ids["lee_schedule"])
    except NotFound:
        return None


#: Requests that change something: (method, path, body, status by caller, what shows the change made).
CHANGES: list[tuple[str, str, Any, dict[str, int], Callable[[World], bool]]] = [
    ("POST", "/api/tasks", task("new-task", "lee@example.com"), {"admin": 201, "owner": 403, "other": 403},
     lambda w: exists(w, "new-task")),
    ("PUT", "/api/tasks/lee-task", {**task("lee-task", "lee@example.com"), "name": "Renamed"},
     {"admin": 200, "owner": 200, "other": 404}, lambda w: w.engine.store.get_definition("lee-task").name == "Renamed"),
    ("DELETE", "/api/tasks/lee-task", None, {"admin": 204, "owner": 204, "other": 404},
     lambda w: not exists(w, "lee-task")),
    ("POST", "/api/tasks/lee-task/runs", {"data": {"week": "2"}}, {"admin": 202, "owner": 202, "other": 404},
     lambda w: runs_of(w, "lee-task") == 3),
    ("POST", "/api/trigger", {"task_definition_id": "lee-task", "data": {}}, {"admin": 202, "owner": 202, "other": 404},
     lambda w: runs_of(w, "lee-task") == 3),
    ("POST", "/api/runs/{lee_run}/cancel", None, {"admin": 200, "owner": 200, "other": 404},
     lambda w: run_status(w, "lee_run") == "cancelled"),
    ("POST", "/api/schedules", {"task_id": "lee-task", "cron": "0 10 * * *"},
     {"admin": 201, "owner": 201, "other": 404},
     lambda w: len(w.engine.schedules.all("lee-task")) == 2),
    ("PATCH", "/api/schedules/{lee_schedule}", {"enabled": False}, {"admin": 200, "owner": 200, "other": 404},
     lambda w: (schedule(w) or {}).get("enabled") is False),
    ("DELETE", "/api/schedules/{lee_schedule}", None, {"admin": 204, "owner": 204, "other": 404},
     lambda w: schedule(w) is None),
    ("PUT", "/api/contacts/zoe", {"email": "zoe@example.com"}, {"admin": 200, "owner": 403, "other": 403},
     lambda w: "zoe" in {c.id for c in w.engine.store.list_contacts()}),
    ("PUT", "/api/datasets/team", [{"email": "zoe@example.com"}], {"admin": 200, "owner": 403, "other": 403},
     lambda w: w.engine.store.get_dataset("team") == [{"email": "zoe@example.com"}]),
]


@pytest.mark.parametrize("who", CALLERS)
@pytest.mark.parametrize(("method", "path", "body", "statuses", "changed"), CHANGES,
                         ids=[f"{m} {p}" for m, p, *_ in CHANGES])
def test_who_may_change_what(world, call, r, who, method, path, body, statuses, changed):
    before = contents(r, skip=(b"taskbot:tokens",))  # a token's last use is recorded, nothing else
    res = call(who, method, path, body)
    expected = statuses.get(who, 401)
    assert res.status_code == expected, res.text
    if expected < 300:
        assert changed(world)
    else:
        assert not changed(world)
        assert contents(r, skip=(b"taskbot:tokens",)) == before


def test_approving_is_checked_before_the_state(call, world):
    """A run not awaiting review: its owner and the admin hear why (409); another person, that it is not there."""
    got = {who: call(who, "POST", "/api/runs/{lee_run}/approve").status_code for who in CALLERS}
    assert got == {"admin": 409, "owner": 409, "other": 404, "none": 401}
    assert run_status(world, "lee_run") == "pending"


#: Reads: (path, what each caller sees: a status, or (200, the ids listed)).
READS: list[tuple[str, dict[str, Any]]] = [
    ("/api/tasks", {"admin": {"kim-task", "kims-own", "lee-task"}, "owner": {"lee-task"}, "other": {"kims-own"}}),
    ("/api/tasks/lee-task", {"admin": 200, "owner": 200, "other": 404}),
    ("/api/tasks/kim-task", {"admin": 200, "owner": 404, "other": 404}),  # an owner id Kim's contact lacks
    ("/api/runs", {"admin": 4, "owner": 2, "other": 2}),
    ("/api/runs?task_id=lee-task", {"admin": 2, "owner": 2, "other": 0}),
    ("/api/runs/{lee_run}", {"admin": 200, "owner": 200, "other": 404}),
    ("/api/runs/{lee_run}/results.csv", {"admin": 200, "owner": 200, "other": 404}),
    ("/api/runs/nope", {"admin": 404, "owner": 404, "other": 404}),
    ("/api/deliverables/nope/file", {"admin": 404, "owner": 404, "other": 404}),
    ("/api/schedules", {"admin": 2, "owner": 1, "other": 1}),
    ("/api/contacts", {"admin": {"ann", "kim", "lee"}, "owner": {"lee"}, "other": {"kim"}}),
    ("/api/contacts/lee", {"admin": 200, "owner": 200, "other": 404}),
    ("/api/contacts/lee@example.com", {"admin": 200, "owner": 200, "other": 404}),
    ("/api/datasets/team", {"admin": 200, "owner": 403, "other": 403}),
    ("/api/notifications", {"admin": 0, "owner": 1, "other": 1}),
    ("/api/notifications?owner=lee@example.com", {"admin": 1, "owner": 1, "other": 403}),
]


@pytest.mark.parametrize("who", CALLERS)
@pytest.mark.parametrize(("path", "sees"), READS, ids=[p for p, _ in READS])
def test_who_sees_what(world, call, who, path, sees):
    res = call(who, "GET", path)
    expected = sees.get(who, 401)
    if who == "none":
        assert res.status_code == 401
        assert res.headers["WWW-Authenticate"] == "Bearer"
    elif isinstance(expected, set):
        assert res.status_code == 200, res.text
        assert {item["id"] for item in res.json()} == expected
    elif expected < 100:  # a count of items listed
        assert res.status_code == 200, res.text
        assert len(res.json()) == expected
    else:
        assert res.status_code == expected, res.text


def test_a_persons_lists_hold_only_their_own_things(world, call):
    runs = call("owner", "GET", "/api/runs").json()
    assert {run["task_id"] for run in runs} == {"lee-task"}
    notes = call("owner", "GET", "/api/notifications").json()
    assert [(n["kind"], n["run_id"]) for n in notes] == [("task_cancelled", world.ids["lee_ended"])]
    assert {s["task_id"] for s in call("owner", "GET", "/api/schedules").json()} == {"lee-task"}
    assert call("owner", "GET", "/api/runs/{lee_run}/results.csv").text.startswith("id,name,status,today")


def test_a_run_a_person_starts_records_them_as_its_starter(world, call):
    res = call("owner", "POST", "/api/tasks/lee-task/runs", {"data": {}})
    assert res.status_code == 202
    run = call("owner", "GET", res.headers["Location"]).json()
    assert run["trigger"] == {"kind": "api", "by": "lee"}


def test_an_owner_cannot_give_a_task_away(world, call, r):
    before = contents(r, skip=(b"taskbot:tokens",))
    res = call("owner", "PUT", "/api/tasks/lee-task", task("lee-task", "kim@example.com"))
    assert res.status_code == 403
    assert "owner" in res.json()["detail"]
    assert contents(r, skip=(b"taskbot:tokens",)) == before
    kept = {**task("lee-task", "lee@example.com"), "name": "Kept"}
    del kept["owner"]  # left out: it stays Lee's
    assert call("owner", "PUT", "/api/tasks/lee-task", kept).status_code == 200
    assert world.engine.store.get_definition("lee-task").owner == "lee@example.com"


def test_a_revoked_or_made_up_token_opens_nothing(world, call):
    world.engine.tokens.revoke(world.tokens["owner"] or "")
    assert call("owner", "GET", "/api/tasks").status_code == 401
    world.tokens["owner"] = "tb_00000000_" + "x" * 43
    assert call("owner", "GET", "/api/tasks").status_code == 401


def test_a_persons_token_while_redis_is_away_is_a_503_to_retry_not_a_401(serve):
    """A person's token is looked up in Redis; with Redis away the answer says to retry, and the admin's still opens."""
    import socket

    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from bot.app import create_app
    from bot.bootstrap import wire
    from bot.queue import RQJobs
    from bot.settings import Settings

    with socket.socket() as probe:  # a port nobody listens on once this closes
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    dead = redis.Redis(port=dead_port, retry=Retry(NoBackoff(), 0))
    base = serve(create_app(wire(dead, RQJobs(dead), {}), Settings(api_token=TOKEN)))
    with httpx.Client(base_url=base, timeout=10) as client:
        res = client.get("/api/tasks", headers={"Authorization": "Bearer tb_1a2b3c4d_" + "x" * 43})
        assert res.status_code == 503
        assert res.headers["Retry-After"] == "1"
        assert client.get("/api/tasks", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/api/tasks", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 503
    dead.close()
