"""The web chat in a real browser (Debian's Chromium through Playwright): its script, loaded from /static under
the page's Content-Security-Policy, sends the answer and shows the bot's reply without a reload."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from bot.app import create_app
from bot.settings import Settings
from tests.conftest import people, served

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium installed (Debian: apt-get install chromium)")


@pytest.fixture
def browser_page() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            yield browser.new_page()
        finally:
            browser.close()


def test_alice_answers_in_her_browser_and_sees_the_next_question(engine, drain, wait_for, browser_page):
    page = browser_page
    problems: list[str] = []  # a CSP violation or a script error shows up here
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    people(engine, "alice@example.com")
    engine.apply_definition({"id": "weekly", "name": "Weekly status", "template": {
        "participants": ["alice@example.com"], "fields": [
            {"key": "shipped", "prompt": "What did you ship this week?"},
            {"key": "blockers", "prompt": "Anything blocking you?"}]}})
    rid = engine.runs.trigger("weekly", kind="api")
    drain()
    [sub] = engine.run_view(rid)["subtasks"]

    with served(create_app(engine, Settings())) as base:
        page.goto(base + urlsplit(sub["chat_url"]).path)
        assert page.title() == "Weekly status"
        assert "What did you ship this week?" in page.locator("#messages").inner_text()
        page.fill("#text", "the new parser")
        page.click("button[type=submit]")
        # The script posted (no reload: the page's URL is the same) and polls; the worker answers.
        wait_for(lambda: "Anything blocking you?" in page.locator("#messages").inner_text(), between=drain)
        assert page.url == base + urlsplit(sub["chat_url"]).path
        texts = page.locator("#messages li .text").all_inner_texts()
        assert texts[1] == "the new parser"
        assert page.locator("#messages li.user").count() == 1
        assert page.input_value("#text") == ""
        assert page.evaluate("getComputedStyle(document.body).backgroundColor") != "rgba(0, 0, 0, 0)"  # the CSS
    assert problems == []
    assert engine.run_view(rid)["subtasks"][0]["data"] == {"shipped": "the new parser"}


def test_alice_presses_the_buttons_and_picks_a_date_in_her_browser(engine, drain, wait_for, browser_page):
    page = browser_page
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    people(engine, "alice@example.com")
    engine.apply_definition({"id": "retro", "name": "Sprint retro", "template": {
        "participants": ["alice@example.com"], "fields": [
            {"key": "mood", "prompt": "How did the sprint feel?", "type": "choice", "choices": ["great", "fine"]},
            {"key": "score", "prompt": "How well did we plan?", "type": "scale"},
            {"key": "due", "prompt": "When is the demo?", "type": "date"}]}})
    rid = engine.runs.trigger("retro", kind="api")
    drain()
    [sub] = engine.run_view(rid)["subtasks"]

    with served(create_app(engine, Settings())) as base:
        page.goto(base + urlsplit(sub["chat_url"]).path)
        assert page.locator("#choices button").all_inner_texts() == ["great", "fine"]
        page.click("#choices button:text-is('fine')")
        wait_for(lambda: page.locator("#choices button").all_inner_texts() == ["1", "2", "3", "4", "5"],
                 between=drain)
        page.click("#choices button:text-is('4')")
        wait_for(lambda: page.locator("#choices input[type=date]").count() == 1, between=drain)
        page.fill("#choices input[type=date]", "2027-02-05")
        page.click("#choices button[type=submit]")
        wait_for(lambda: "Thank you!" in page.locator("#messages").inner_text(), between=drain)
        assert page.locator("#choices").is_hidden()
    assert problems == []
    assert engine.run_view(rid)["subtasks"][0]["data"] == {"mood": "fine", "score": 4, "due": "2027-02-05"}


def png_size(path) -> tuple[int, int]:
    """A PNG's width and height, read from its IHDR chunk (the file must be a PNG)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def screenshot(page, path) -> None:
    """A full-page screenshot that shows something: a real PNG, page-sized, not a blank few hundred bytes."""
    page.screenshot(path=str(path), full_page=True)
    width, height = png_size(path)
    assert width >= 800
    assert height >= 300
    assert path.stat().st_size > 10_000


def test_the_owner_runs_cancels_approves_and_schedules_from_the_dashboard(engine, drain, wait_for, browser_page,
                                                                          tmp_path):
    page = browser_page
    page.set_viewport_size({"width": 1280, "height": 900})
    problems: list[str] = []  # a CSP violation, a script error, a refused request
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    people(engine, "alice@example.com")
    fields = [{"key": "shipped", "prompt": "What did you ship this week?"}]
    engine.apply_definition({"id": "weekly", "name": "Weekly status", "owner": "lead@example.com",
                             "template": {"participants": ["alice@example.com"], "fields": fields}})
    engine.apply_definition({"id": "reviewed", "name": "Reviewed status", "owner": "lead@example.com", "review": True,
                             "template": {"participants": ["alice@example.com"], "fields": fields}})
    token = "browser-test-token-1234"

    with served(create_app(engine, Settings(api_token=token))) as base:
        page.goto(f"{base}/?token={token}")  # the sign-in link: a cookie, and the token gone from the URL
        assert page.url == f"{base}/"
        assert page.locator("#signed-in-as").inner_text() == "admin"

        # Run "weekly" with data: the form lands on the new run's page.
        row = page.locator("tr[data-task=weekly]")
        row.locator("summary").click()
        row.locator("textarea[name=data]").fill('{"week": "49"}')
        row.locator("button:text-is('Run now')").click()
        page.wait_for_url(f"{base}/runs/*")
        rid = page.url.rsplit("/", 1)[-1]
        drain()
        assert engine.run_view(rid)["gathered"] == {"week": "49"}
        # The page refreshes itself in place (dashboard.js) while the run is open: the opening appears.
        wait_for(lambda: "Asked alice" in page.locator("#timeline-list").inner_text(), between=drain)
        assert page.locator("#answers-table").count() == 1
        screenshot(page, tmp_path / "run.png")

        page.click("#run-actions button:text-is('Cancel run')")
        page.wait_for_url(f"{base}/runs/{rid}")
        assert page.locator("h1 .badge").inner_text() == "cancelled"
        assert "Run cancelled." in page.locator("#timeline-list").inner_text()
        assert page.locator("#run-actions").count() == 0
        assert engine.store.run_fields(rid)["status"] == "cancelled"

        # A run awaiting review, approved from the dashboard's list.
        reviewed = engine.runs.trigger("reviewed", kind="api")
        drain()
        [sub] = engine.run_view(reviewed)["subtasks"]
        page.goto(base + urlsplit(sub["chat_url"]).path)
        page.fill("#text", "the exporter")
        page.click("#compose button[type=submit]")
        wait_for(lambda: engine.store.run_fields(reviewed)["status"] == "awaiting_review", between=drain)
        page.goto(f"{base}/")
        page.locator(f"tr[data-run='{reviewed}'] button:text-is('Approve')").click()
        page.wait_for_url(f"{base}/runs/{reviewed}")
        assert page.locator("h1 .badge").inner_text() == "completed"
        assert "the exporter" in page.locator("#answers-table").inner_text()
        assert "Reviewed status" in page.locator(".markdown").inner_text()  # the report, rendered
        assert page.locator(".markdown table").count() == 1
        assert engine.store.run_fields(reviewed)["status"] == "completed"

        # A schedule: a refused cron first (named, kept in the field), then a good one, then removed.
        page.goto(f"{base}/")
        form = page.locator("#add-schedule")
        form.locator("select[name=task_id]").select_option("weekly")
        form.locator("input[name=cron]").fill("0 9 * *")
        form.locator("button:text-is('Add schedule')").click()
        assert "cron: '0 9 * *' has 4 fields" in page.locator("#notice").inner_text()
        assert page.locator("#add-schedule input[name=cron]").input_value() == "0 9 * *"
        # that refusal was the point (the browser logs it too)
        problems.remove(f"422 {base}/schedules")
        problems.remove("Failed to load resource: the server responded with a status of 422 (Unprocessable Entity)")
        form = page.locator("#add-schedule")
        form.locator("input[name=cron]").fill("0 9 * * MON")
        form.locator("input[name=timezone]").fill("Europe/Paris")
        form.locator("button:text-is('Add schedule')").click()
        page.wait_for_url(f"{base}/#schedules")
        [schedule] = engine.schedules.views()
        row = page.locator(f"tr[data-schedule='{schedule['id']}']")
        assert "0 9 * * MON" in row.inner_text()
        assert schedule["next_run_at"][:16].replace("T", " ") in row.inner_text()
        screenshot(page, tmp_path / "dashboard.png")
        row.locator("button:text-is('Remove')").click()
        page.wait_for_url(f"{base}/#schedules")
        assert page.locator("tr[data-schedule]").count() == 0
        assert "No schedules." in page.locator("main").inner_text()
        assert engine.schedules.views() == []
    assert problems == []
