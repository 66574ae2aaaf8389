"""Every /api route with the admin's token, the owner's token, another person's and none (SPEC §12).

Lee owns the task ``mine`` (its run, its schedule); Ann owns ``theirs``. Each row says what each
caller gets, and a check reads what they see or what changed afterwards, straight from the engine:
a refused request must leave everything as it was. Something of another owner is a 404 (as if it
did not exist); what only the admin may do at all is a 403; no token is a 401.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from bot.app import create_app
from bot.settings import Settings
from engine.engine import Engine
from engine.errors import NotFound
from tests.integration.conftest import TOKEN

MINE = {"id": "mine", "name": "Lee's standup", "owner": "lee@example.com",
        "template": {"participants": ["ann@example.com"], "fields": [{"key": "today", "prompt": "Today?"}]}}
THEIRS = {**MINE, "id": "theirs", "name": "Ann's retro", "owner": "ann@example.com"}
WHO = ("admin", "owner", "other", "none")


@dataclass
class World:
    engine: Engine
    ids: dict[str, str] = field(default_factory=dict)

    def runs_of(self, task_id: str) -> int:
        return sum(1 for run in self.engine.list_runs(task_id, 500))

    def exists(self, get: Callable[[], Any]) -> bool:
        try:
            get()
        except NotFound:
            return False
        return True


@pytest.fixture
def world(engine: Engine) -> World:
    engine.import_contacts([{"id": "lee", "email": "lee@example.com", "name": "Lee", "preferred_channel": "web"},
                            {"id": "ann", "email": "ann@example.com", "name": "Ann", "preferred_channel": "web"}])
    engine.import_dataset("team", [{"email": "lee@example.com"}])
    engine.apply_definition(MINE)
    engine.apply_definition(THEIRS)
    world = World(engine)
    world.ids["mine_run"] = engine.runs.trigger("mine", {"week": "23"}, kind="api")
    world.ids["theirs_run"] = engine.runs.trigger("theirs", kind="api")
    for task_id in ("mine", "theirs"):  # a cancelled run each: a notification for each owner
        engine.runs.cancel(engine.runs.trigger(task_id, kind="api"))
    world.ids["mine_schedule"] = engine.schedules.create("mine", "0 9 * * MON", "UTC", {})["id"]
    world.ids["theirs_schedule"] = engine.schedules.create("theirs", "0 9 * * TUE", "UTC", {})["id"]
    world.ids["lee"], _ = engine.tokens.create("lee")
    world.ids["ann"], _ = engine.tokens.create("ann")
    return world


def ids(items: list[dict[str, Any]], key: str = "id") -> set[str]:
    return {item[key] for item in items}


@dataclass(frozen=True)
class Row:
    method: str
    path: str
    statuses: tuple[int, int, int, int]  # admin, owner (Lee), other (Ann), none
    body: Any = None
    check: Callable[[World, str, httpx.Response], None] | None = None


def sees_tasks(w: World, who: str, res: httpx.Response) -> None:
    if who != "none":
        assert ids(res.json()) == {"admin": {"mine", "theirs"}, "owner": {"mine"}, "other": {"theirs"}}[who]


def created_task(w: World, who: str, res: httpx.Response) -> None:
    assert w.exists(lambda: w.engine.store.get_definition("new")) == (who == "admin")


def renamed(w: World, who: str, res: httpx.Response) -> None:
    name = w.engine.store.get_definition("mine").name
    assert name == ("Renamed" if who == "admin" else "Lee's standup")


def deleted(w: World, who: str, res: httpx.Response) -> None:
    assert w.exists(lambda: w.engine.store.get_definition("mine")) == (who in ("other", "none"))


def one_more_run(w: World, who: str, res: httpx.Response) -> None:
    assert w.runs_of("mine") == (3 if who in ("admin", "owner") else 2)
    if who == "owner":
        run = w.engine.run_view(res.json()["run_id"])
        assert run["trigger"]["by"] == "lee"  # recorded as who started it


def sees_runs(w: World, who: str, res: httpx.Response) -> None:
    if who != "none":
        tasks = {run["task_id"] for run in res.json()}
        assert tasks == {"admin": {"mine", "theirs"}, "owner": {"mine"}, "other": {"theirs"}}[who]
        assert all("subtasks" not in run for run in res.json())


def sees_the_run(w: World, who: str, res: httpx.Response) -> None:
    if res.status_code == 200:
        assert res.json()["id"] == w.ids["mine_run"]
        assert res.json()["gathered"] == {"week": "23"}
        assert isinstance(res.json()["subtasks"], list)


def csv_rows(w: World, who: str, res: httpx.Response) -> None:
    if res.status_code == 200:
        assert res.headers["content-type"].startswith("text/csv")
        assert res.text == w.engine.results_csv(w.ids["mine_run"])  # the CLI's file, byte for byte
        assert res.text.splitlines()[0] == "id,name,status,today"


def cancelled(w: World, who: str, res: httpx.Response) -> None:
    status = w.engine.store.run_fields(w.ids["mine_run"])["status"]
    assert status == ("cancelled" if who in ("admin", "owner") else "pending")
    if res.status_code == 200:
        assert res.json()["status"] == "cancelled"


def still_pending(w: World, who: str, res: httpx.Response) -> None:
    assert w.engine.store.run_fields(w.ids["mine_run"])["status"] == "pending"


def sees_schedules(w: World, who: str, res: httpx.Response) -> None:
    if who != "none":
        assert {s["task_id"] for s in res.json()} == {"admin": {"mine", "theirs"}, "owner": {"mine"},
                                                      "other": {"theirs"}}[who]
        assert all(s["next_run_at"] for s in res.json())


def scheduled(w: World, who: str, res: httpx.Response) -> None:
    count = len(w.engine.schedules.all("mine"))
    assert count == (2 if who in ("admin", "owner") else 1)


def switched_off(w: World, who: str, res: httpx.Response) -> None:
    enabled = w.engine.schedules.get(w.ids["mine_schedule"])["enabled"]
    assert enabled == (who in ("other", "none"))
    if res.status_code == 200:
        assert res.json()["enabled"] is False


def unscheduled(w: World, who: str, res: httpx.Response) -> None:
    gone = not w.exists(lambda: w.engine.schedules.get(w.ids["mine_schedule"]))
    assert gone == (who in ("admin", "owner"))


def sees_contacts(w: World, who: str, res: httpx.Response) -> None:
    if who != "none":
        assert ids(res.json()) == {"admin": {"lee", "ann"}, "owner": {"lee"}, "other": {"ann"}}[who]


def contact_renamed(w: World, who: str, res: httpx.Response) -> None:
    [lee] = [c for c in w.engine.store.list_contacts() if c.id == "lee"]
    assert lee.name == ("Lee Renamed" if who == "admin" else "Lee")


def dataset_rows(w: World, who: str, res: httpx.Response) -> None:
    if res.status_code == 200:
        assert res.json() == {"name": "team", "rows": [{"email": "lee@example.com"}]}


def dataset_replaced(w: World, who: str, res: httpx.Response) -> None:
    assert len(w.engine.store.get_dataset("team")) == (2 if who == "admin" else 1)


def own_notifications(w: World, who: str, res: httpx.Response) -> None:
    if who in ("owner", "other"):
        assert {n["task_id"] for n in res.json()} == {"owner": {"mine"}, "other": {"theirs"}}[who]
        assert {n["kind"] for n in res.json()} == {"task_cancelled"}
    elif who == "admin":
        assert res.json() == []  # the admin's own: nothing was the admin's


def lees_notifications(w: World, who: str, res: httpx.Response) -> None:
    if res.status_code == 200:
        assert {n["task_id"] for n in res.json()} == {"mine"}


ROWS = [
    Row("GET", "/api/tasks", (200, 200, 200, 401), check=sees_tasks),
    Row("POST", "/api/tasks", (201, 403, 403, 401), {**MINE, "id": "new"}, created_task),
    Row("GET", "/api/tasks/mine", (200, 200, 404, 401)),
    Row("PUT", "/api/tasks/mine", (200, 403, 403, 401), {**MINE, "name": "Renamed"}, renamed),
    Row("DELETE", "/api/tasks/mine", (204, 204, 404, 401), check=deleted),
    Row("POST", "/api/tasks/mine/runs", (202, 202, 404, 401), {"data": {"week": "24"}}, one_more_run),
    Row("POST", "/api/trigger", (202, 202, 404, 401), {"task_definition_id": "mine"}, one_more_run),
    Row("GET", "/api/runs", (200, 200, 200, 401), check=sees_runs),
    Row("GET", "/api/runs/{mine_run}", (200, 200, 404, 401), check=sees_the_run),
    Row("GET", "/api/runs/{mine_run}/results.csv", (200, 200, 404, 401), check=csv_rows),
    Row("POST", "/api/runs/{mine_run}/cancel", (200, 200, 404, 401), check=cancelled),
    Row("POST", "/api/runs/{mine_run}/approve", (409, 409, 404, 401), check=still_pending),
    Row("GET", "/api/deliverables/nope/file", (404, 404, 404, 401)),
    Row("GET", "/api/schedules", (200, 200, 200, 401), check=sees_schedules),
    Row("POST", "/api/schedules", (201, 201, 404, 401), {"task_id": "mine", "cron": "0 10 * * *"}, scheduled),
    Row("PATCH", "/api/schedules/{mine_schedule}", (200, 200, 404, 401), {"enabled": False}, switched_off),
    Row("DELETE", "/api/schedules/{mine_schedule}", (204, 204, 404, 401), check=unscheduled),
    Row("GET", "/api/contacts", (200, 200, 200, 401), check=sees_contacts),
    Row("GET", "/api/contacts/lee", (200, 200, 404, 401)),
    Row("PUT", "/api/contacts/lee", (200, 403, 403, 401), {"name": "Lee Renamed", "email": "lee@example.com"},
        contact_renamed),
    Row("GET", "/api/datasets/team", (200, 403, 403, 401), check=dataset_rows),
    Row("PUT", "/api/datasets/team", (200, 403, 403, 401), [{"email": "a@example.com"}, {"email": "b@example.com"}],
        dataset_replaced),
    Row("GET", "/api/notifications", (200, 200, 200, 401), check=own_notifications),
    Row("GET", "/api/notifications?owner=lee@example.com", (200, 200, 403, 401), check=lees_notifications),
]


@pytest.fixture
def call(world: World, serve) -> Callable[[str, Row], httpx.Response]:
    base = serve(create_app(world.engine, Settings(api_token=TOKEN)))

    def send(who: str, row: Row) -> httpx.Response:
        token = {"admin": TOKEN, "owner": world.ids["lee"], "other": world.ids["ann"], "none": None}[who]
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        path = row.path.format(**world.ids)
        with httpx.Client(base_url=base, headers=headers, timeout=10) as client:
            return client.request(row.method, path, json=row.body)

    return send


@pytest.mark.parametrize("who", WHO)
@pytest.mark.parametrize("row", ROWS, ids=lambda row: f"{row.method} {row.path}")
def test_each_route_for_each_caller(row: Row, who: str, world: World, call) -> None:
    res = call(who, row)
    assert res.status_code == row.statuses[WHO.index(who)], res.text
    if res.status_code == 401:
        assert res.headers["www-authenticate"] == "Bearer"
    if res.status_code in (403, 404):
        assert "theirs" not in res.text  # a refusal tells nothing of others' things
        assert "Ann" not in res.text
    if row.check is not None:
        row.check(world, who, res)


def test_the_table_has_every_api_route(engine: Engine) -> None:
    paths = create_app(engine, Settings(api_token=TOKEN)).openapi()["paths"]
    routes = {(method.upper(), path) for path, ops in paths.items() if path.startswith("/api/") for method in ops}
    tested = {(row.method, row.path.split("?")[0]) for row in ROWS}
    generic = {(m, p.replace("{mine_run}", "{run_id}").replace("{mine_schedule}", "{schedule_id}")
                .replace("/mine", "/{task_id}").replace("/lee", "/{contact_id}").replace("/team", "/{name}")
                .replace("/nope/", "/{deliverable_id}/")) for m, p in tested}
    assert routes == generic


def test_a_revoked_token_opens_nothing_at_once(world: World, call) -> None:
    row = ROWS[0]
    assert call("owner", row).status_code == 200
    world.engine.tokens.revoke(world.ids["lee"][:11])
    res = call("owner", row)
    assert res.status_code == 401
    assert res.json() == {"detail": "missing or wrong bearer token"}


def test_a_persons_token_while_redis_is_away_is_a_503_to_retry_not_a_500(serve) -> None:
    """A person's token is looked up in Redis; with Redis away the gate answers 503 with Retry-After, as every
    route does, instead of an exception escaping the middleware (a 500). The admin's token needs no lookup."""
    import socket

    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from bot.bootstrap import wire
    from bot.queue import RQJobs

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
