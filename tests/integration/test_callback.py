"""The Web Trigger callback (SPEC §11) over real HTTP: the run object POSTed once, signed, when the run ends (a failed
delivery retried); a callback URL on a private or loopback network refused with 422 at trigger, nothing started."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator

import httpx
import pytest

from bot.app import create_app
from bot.settings import Settings
from tests.conftest import answer, people, served
from tests.fakes import serve, shut

TASK = {"id": "poll", "name": "Poll", "owner": "lead@example.com",
        "template": {"fields": [{"key": "vote", "prompt": "Your vote?"}], "participants": ["ann@example.com"]}}
TOKEN = "api-token"


@pytest.fixture
def receiver() -> Iterator[tuple[str, list]]:
    """A callback receiver on 127.0.0.1 that answers its first POST with 503, then records each with 204."""
    got: list = []
    failed: list = []

    def handle(request) -> None:
        body = request.rfile.read(int(request.headers["Content-Length"]))
        if not failed:
            failed.append(body)
            request.send_response(503)
        else:
            got.append((dict(request.headers), body))
            request.send_response(204)
        request.end_headers()

    server = serve(handle, "callback-receiver")
    yield f"http://127.0.0.1:{server.server_address[1]}/done?key=k3y", got
    shut(server)


@pytest.fixture
def api(engine, env, monkeypatch) -> Iterator[httpx.Client]:
    monkeypatch.setenv("TASKBOT_API_TOKEN", TOKEN)
    with served(create_app(engine, Settings())) as base, \
            httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        yield client


def private_allowed(env, monkeypatch) -> None:
    values = {"TASKBOT_CALLBACK_ALLOW_PRIVATE": "true", "TASKBOT_WEBHOOK_SECRET": "s3cret"}
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    env.update(values)


@pytest.fixture
def engine_private(r, env, monkeypatch):
    """The engine of a deployment that allows callbacks to this machine (the test's receiver is on 127.0.0.1)."""
    private_allowed(env, monkeypatch)
    from bot import bootstrap
    from bot.bootstrap import build_engine

    bootstrap.engine.cache_clear()
    engine = build_engine(Settings())
    yield engine
    engine.r.close()


def test_the_run_object_is_posted_once_signed_when_the_run_ends(engine_private, receiver, workers, wait_for,
                                                                monkeypatch):
    engine = engine_private
    url, got = receiver
    people(engine, "ann@example.com")
    engine.apply_definition(TASK)
    monkeypatch.setenv("TASKBOT_API_TOKEN", TOKEN)
    with served(create_app(engine, Settings())) as base:
        response = httpx.post(f"{base}/api/trigger", headers={"Authorization": f"Bearer {TOKEN}"},
                              json={"task_definition_id": "poll", "data": {"week": "23"}, "callback_url": url})
    assert response.status_code == 202
    rid = response.json()["run_id"]
    workers(1)
    wait_for(lambda: engine.run_view(rid)["subtasks"] and engine.run_view(rid)["subtasks"][0]["status"] == "running",
             timeout=30)
    assert engine.run_view(rid)["callback"]["status"] == "waiting"  # nothing is posted before the run ends
    answer(engine, engine.run_view(rid)["subtasks"][0], "yes", "v1")
    wait_for(lambda: got, timeout=30)  # the first POST got a 503; the retry came

    [(headers, body)] = got
    assert headers["X-Taskbot-Event"] == "run.completed"
    assert headers["X-Taskbot-Signature"] == "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    posted = json.loads(body)
    assert (posted["id"], posted["status"], posted["trigger"]["kind"]) == (rid, "completed", "web")
    assert posted["gathered"]["tasks"] == {"ann@example.com": {"vote": "yes"}}
    assert posted["deliverables"][0]["version"] == 1
    assert "conversation" not in posted["subtasks"][0]
    wait_for(lambda: engine.run_view(rid)["callback"]["status"] == "delivered", timeout=10)
    shown = engine.run_view(rid)["callback"]
    assert shown["attempts"] == 2
    assert shown["url"] == url.split("?")[0]  # the query (a key, here) is not shown
    assert len(got) == 1


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/hook", "http://localhost/hook", "http://10.0.0.7/hook",
                                 "http://169.254.169.254/latest/meta-data/", "http://[::1]/hook"])
def test_a_callback_to_a_private_or_loopback_address_is_refused_at_trigger(engine, api, url):
    engine.apply_definition(TASK)
    response = api.post("/api/trigger", json={"task_definition_id": "poll", "callback_url": url})
    assert response.status_code == 422
    assert response.json()["field"] == "callback_url"
    assert "TASKBOT_CALLBACK_ALLOW_PRIVATE" in response.json()["detail"][0]["msg"]
    assert engine.list_runs() == []  # nothing started


def test_a_callback_that_is_not_http_is_refused(engine, api):
    engine.apply_definition(TASK)
    response = api.post("/api/trigger", json={"task_definition_id": "poll", "callback_url": "file:///etc/passwd"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "callback_url"]
    assert engine.list_runs() == []
