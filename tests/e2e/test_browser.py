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
