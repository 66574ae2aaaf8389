"""A 503 that was stored (SPEC §10): a client that got no answer retries with the same id, and what it
sent is recorded once. The web chat's message id (the page makes one per message and re-uses it), and
the API's ``Idempotency-Key`` on ``POST /api/trigger`` and ``POST /api/tasks/{id}/runs``."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from engine import keys
from tests.integration.test_http import (
    HELLO,
    chat_path,
    start_weekly_status,
)

CHROMIUM = Path("/usr/bin/chromium")


def run_ids(api) -> list[str]:
    return [run["id"] for run in api.get("/api/runs").json()]


def test_a_trigger_sent_again_with_the_same_idempotency_key_starts_one_run(api, drain):
    assert api.post("/api/tasks", json=HELLO).status_code == 201
    body = {"task_definition_id": "hello", "data": {"week": "23"}}
    first = api.post("/api/trigger", json=body, headers={"Idempotency-Key": "weekly-23"})
    again = api.post("/api/trigger", json=body, headers={"Idempotency-Key": "weekly-23"})
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert run_ids(api) == [first.json()["run_id"]]
    # the same for POST /api/tasks/{id}/runs; another key is another run
    runs = [api.post("/api/tasks/hello/runs", json={"data": {}}, headers={"Idempotency-Key": "k-2"}) for _ in "ab"]
    assert runs[0].json() == runs[1].json()
    other = api.post("/api/tasks/hello/runs", headers={"Idempotency-Key": "k-3"})
    assert len({first.json()["run_id"], runs[0].json()["run_id"], other.json()["run_id"]}) == 3
    assert len(run_ids(api)) == 3
    drain()
    assert {api.get(f"/api/runs/{rid}").json()["status"] for rid in run_ids(api)} == {"completed"}


def test_a_key_that_started_another_task_is_a_conflict_and_a_bad_key_is_named(api):
    assert api.post("/api/tasks", json=HELLO).status_code == 201
    assert api.post("/api/tasks", json=HELLO | {"id": "bye", "name": "Bye"}).status_code == 201
    rid = api.post("/api/tasks/hello/runs", headers={"Idempotency-Key": "once"}).json()["run_id"]
    res = api.post("/api/tasks/bye/runs", headers={"Idempotency-Key": "once"})
    assert res.status_code == 409
    assert rid in res.json()["detail"]
    for bad in ("x" * 256, "with space", ""):
        res = api.post("/api/trigger", json={"task_definition_id": "hello"}, headers={"Idempotency-Key": bad})
        assert res.status_code == 422
        assert res.json()["detail"][0]["loc"] == ["header", "Idempotency-Key"]
    assert run_ids(api) == [rid]


def test_a_refused_trigger_frees_its_key_for_the_corrected_retry(api):
    res = api.post("/api/trigger", json={"task_definition_id": "hello"}, headers={"Idempotency-Key": "fix-me"})
    assert res.status_code == 404  # no such task yet
    assert api.post("/api/tasks", json=HELLO).status_code == 201
    res = api.post("/api/trigger", json={"task_definition_id": "hello"}, headers={"Idempotency-Key": "fix-me"})
    assert res.status_code == 202
    assert run_ids(api) == [res.json()["run_id"]]


def test_a_trigger_that_died_after_reserving_its_key_is_created_by_the_retry(api, r, drain):
    """The first attempt reserved the key with its run id, then Redis went away before the run was stored."""
    assert api.post("/api/tasks", json=HELLO).status_code == 201
    r.set(keys.idempotency(hashlib.sha256(b"lost").hexdigest()), "0123456789ab")
    res = api.post("/api/trigger", json={"task_definition_id": "hello"}, headers={"Idempotency-Key": "lost"})
    assert res.status_code == 202
    assert res.json() == {"run_id": "0123456789ab"}
    assert "idempotent-replayed" not in res.headers
    again = api.post("/api/trigger", json={"task_definition_id": "hello"}, headers={"Idempotency-Key": "lost"})
    assert again.json() == {"run_id": "0123456789ab"}
    drain()
    assert api.get("/api/runs/0123456789ab").json()["status"] == "completed"
    assert run_ids(api) == ["0123456789ab"]


def test_a_chat_answer_whose_202_was_lost_is_sent_again_by_the_page_and_recorded_once(api, base, drain):
    """The browser's POST reached taskbot and was stored, but the page saw a 503 (the answer was lost on
    its way back). The person presses Send again; the page re-sends the same message id."""
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)")
    from playwright.sync_api import Route, expect, sync_playwright

    alice = start_weekly_status(api, drain)["subtasks"][0]
    posted: list[dict[str, str]] = []

    def lose_the_first_answer(route: Route) -> None:
        if route.request.method != "POST":
            route.continue_()
            return
        posted.append(json.loads(route.request.post_data or "{}"))
        if len(posted) == 1:
            stored = route.fetch()  # it reaches taskbot and is stored ...
            assert stored.status == 202
            route.fulfill(status=503, body='{"detail": "Redis is not answering"}')  # ... the page sees a 503
        else:
            route.continue_()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.route("**/messages", lose_the_first_answer)
            page.goto(base + chat_path(alice))
            page.get_by_label("Your answer").fill("the new parser")
            page.get_by_role("button", name="Send").click()
            page.get_by_role("status").filter(has_text="Not sent yet").wait_for()
            page.get_by_role("button", name="Send").click()
            # sent: the note is cleared and so is the box (Playwright's expect waits for both; wait_for_function
            # would not do, its polling evaluates a string, which the page's CSP refuses, and an empty note is
            # hidden, so a wait for it to be visible never ends)
            expect(page.locator("#note")).to_have_text("")
            expect(page.locator("#text")).to_have_value("")
        finally:
            browser.close()
    assert len(posted) == 2
    assert posted[0]["id"]
    assert posted[0]["id"] == posted[1]["id"]
    assert posted[0]["text"] == posted[1]["text"] == "the new parser"
    drain()
    messages = api.get(f"/api/runs/{alice['run_id']}").json()["subtasks"][0]["conversation"]
    assert [m["text"] for m in messages if m["role"] == "user"] == ["the new parser"]
    assert messages[-1]["text"].startswith("Anything blocking you?")
