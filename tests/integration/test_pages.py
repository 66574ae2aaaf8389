"""The HTML pages over real HTTP: what people type shows as text, never as markup, and pages run no inline script."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from urllib.parse import quote, urlsplit

import httpx
import pytest

from bot.app import DASHBOARD_COOKIE, create_app
from bot.settings import Settings
from engine.engine import Engine
from tests.conftest import served

TOKEN = "test-api-token-1234"
# What a careless page would turn into markup or a broken attribute: a tag, both quotes, an entity.
EVIL = """<script>alert('x')</script><img src=x onerror="alert(1)">&amp;"""
EVIL_ID = """o'hara"<i>@example.com"""


class Page(HTMLParser):
    """A page as a browser reads it: its elements with their attributes, and the text a reader sees."""

    def __init__(self, markup: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.chunks: list[str] = []
        self.feed(markup)
        self.close()

    @property
    def text(self) -> str:
        return "".join(self.chunks)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.chunks.append(data)


def assert_shown_as_text(markup: str, *values: str) -> None:
    """Each value is on the page as text; no element came from one, and the only scripts are ours."""
    page = Page(markup)
    for value in values:
        assert value in page.text
        assert value not in markup  # it is there escaped, not as written
    assert "img" not in [tag for tag, _ in page.tags]
    assert not [(tag, attrs) for tag, attrs in page.tags if any(name.startswith("on") for name in attrs)]
    scripts = [attrs for tag, attrs in page.tags if tag == "script"]
    assert all((attrs.get("src") or "").startswith("/static/") for attrs in scripts)
    assert "<script>" not in markup  # no inline script at all: the CSP forbids it


@pytest.fixture
def base(engine: Engine) -> Iterator[str]:
    with served(create_app(engine, Settings(api_token=TOKEN))) as url:
        yield url


@pytest.fixture
def browser(base: str) -> Iterator[httpx.Client]:
    """A browser signed in to the dashboard (the cookie the ?token= visit sets)."""
    with httpx.Client(base_url=base, timeout=10) as client:
        assert client.get("/", params={"token": TOKEN}).status_code == 303
        assert client.cookies.get(DASHBOARD_COOKIE)
        yield client


def evil_run(engine: Engine, drain: Callable[[], None]) -> dict:
    """A task whose name, instructions and question are the payload, for a participant named it, who
    answers with it; returns the completed run."""
    engine.import_contacts([{"id": EVIL_ID, "email": EVIL_ID, "name": EVIL, "preferred_channel": "web"}])
    engine.apply_definition({
        "id": "evil", "name": EVIL, "owner": "lead@example.com",
        "template": {"instructions": EVIL, "participants": [EVIL_ID], "fields": [
            {"key": "shipped", "prompt": EVIL}, {"key": "blockers", "prompt": "Blockers?", "required": False}]}})
    rid = engine.runs.trigger("evil", kind="api")
    drain()
    [sub] = engine.run_view(rid)["subtasks"]
    token = urlsplit(sub["chat_url"]).path.rsplit("/", 1)[-1]
    for n, text in enumerate((EVIL, EVIL)):
        engine.inbox.post_web(token, text, f"m{n}")
        drain()
    run = engine.run_view(rid)
    assert run["status"] == "completed"
    return run


def test_what_people_type_shows_as_text_on_every_page(engine, drain, browser):
    run = evil_run(engine, drain)
    [sub] = run["subtasks"]
    assert sub["data"] == {"shipped": EVIL, "blockers": EVIL}

    chat = browser.get(urlsplit(sub["chat_url"]).path)
    assert chat.status_code == 200
    assert Page(chat.text).text.count(EVIL) >= 5  # title, greeting, opening, question, two answers
    assert_shown_as_text(chat.text, EVIL)

    dashboard = browser.get("/")
    assert dashboard.status_code == 200
    assert_shown_as_text(dashboard.text, EVIL)  # the task's name, the participant's chat link

    detail = browser.get(f"/runs/{run['id']}")
    assert detail.status_code == 200
    assert_shown_as_text(detail.text, EVIL, EVIL_ID)  # name, id, answers, the report quoting them

    run_id = '<b onclick="alert(1)">&amp;'  # no "/": it must stay one path segment
    missing = browser.get(f"/runs/{quote(run_id, safe='')}")
    assert missing.status_code == 404
    assert_shown_as_text(missing.text, run_id)  # the id from the URL, echoed in "There is no run ..."


def test_pages_load_their_styles_and_script_from_static(engine, drain, browser):
    run = evil_run(engine, drain)
    chat = browser.get(urlsplit(run["subtasks"][0]["chat_url"]).path)
    policy = chat.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    tags = Page(chat.text).tags
    [script] = [attrs["src"] for tag, attrs in tags if tag == "script"]
    [style] = [attrs["href"] for tag, attrs in tags if tag == "link" and attrs.get("rel") == "stylesheet"]
    js, css = browser.get(script), browser.get(style)
    assert (js.status_code, css.status_code) == (200, 200)
    assert js.headers["content-type"].split(";")[0] in ("text/javascript", "application/javascript")
    assert css.headers["content-type"].startswith("text/css")
    assert "crypto.randomUUID" in js.text  # the chat's sender, with its client message ids
    assert "prefers-color-scheme" in css.text
    assert browser.get("/static/nothing-here.js").status_code == 404
    with contextlib.closing(httpx.Client(base_url=str(browser.base_url), timeout=10)) as stranger:
        assert stranger.get(script).status_code == 200  # a participant without the dashboard cookie gets it too
