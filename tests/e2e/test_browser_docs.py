"""/docs in a real browser (Debian's Chromium through Playwright) with every other host cut off: Swagger UI
loads from the app itself and shows the API's operations and models."""

from __future__ import annotations

from urllib.parse import urlsplit

from bot.app import create_app
from bot.settings import Settings
from tests.conftest import served
from tests.e2e.test_browser import CHROMIUM, browser_page, pytestmark  # noqa: F401 - the fixture and its skip


def test_swagger_ui_shows_the_api_with_no_internet(engine, browser_page):  # noqa: F811
    page = browser_page
    elsewhere: list[str] = []
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    with served(create_app(engine, Settings(api_token="docs-token"))) as base:
        host = urlsplit(base).netloc

        def only_here(route):  # what an offline browser would get for anything not on this server
            if urlsplit(route.request.url).netloc == host:
                route.continue_()
            else:
                elsewhere.append(route.request.url)
                route.abort()

        page.route("**/*", only_here)
        page.goto(base + "/docs")
        page.wait_for_selector(".opblock", timeout=20_000)
        text = page.locator("#swagger-ui").inner_text()
        assert "/api/tasks/{task_id}" in text
        assert "/api/runs/{run_id}/results.csv" in text
        page.wait_for_selector("section.models", timeout=10_000)
        assert "RunSummary" in page.locator("section.models").inner_text()
    assert elsewhere == []
    assert problems == []
