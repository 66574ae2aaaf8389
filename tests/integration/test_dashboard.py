"""The dashboard acting over real HTTP (uvicorn, httpx as the browser): each form, its refusals, CSRF, people's tokens.

A form is sent as a browser sends it: urlencoded, with the CSRF token the page carries and the
page's Origin. What a test checks afterwards is what the owner would: the page, and the engine's
records (runs, schedules, definitions), which a refused form must leave exactly as they were.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from bot.app import DASHBOARD_COOKIE
from engine.engine import Engine
from tests.conftest import contents
from tests.integration.conftest import TOKEN
from tests.integration.test_pages import Page

WEEKLY = {
    "id": "weekly", "name": "Weekly status", "owner": "lead@example.com",
    "template": {"participants": ["alice@example.com"], "fields": [
        {"key": "shipped", "prompt": "What did you ship this week?"},
        {"key": "blockers", "prompt": "Anything blocking you?", "required": False}]},
}
OTHER = {**WEEKLY, "id": "other", "name": "Someone else's", "owner": "eve@example.com"}
CSRF = re.compile(r'name="csrf" value="([0-9a-f]{64})"')


class Browser:
    """A signed-in browser: keeps its cookie, reads the CSRF token off the page, posts forms with its Origin."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client
        self.origin = str(client.base_url).rstrip("/")

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.get(path, **kwargs)

    def csrf(self, path: str = "/") -> str:
        page = self.client.get(path)
        assert page.status_code == 200, page.text
        tokens = set(CSRF.findall(page.text))
        assert len(tokens) == 1  # one token per session, in every form
        return tokens.pop()

    def post(self, path: str, data: dict[str, str] | None = None, *, csrf: str | None = "page",
             origin: str | None = "own", headers: dict[str, str] | None = None) -> httpx.Response:
        form = dict(data or {})
        if csrf == "page":
            csrf = self.csrf()
        if csrf is not None:
            form["csrf"] = csrf
        sent = dict(headers or {})
        if origin is not None:
            sent["Origin"] = self.origin if origin == "own" else origin
        return self.client.post(path, data=form, headers=sent)


@pytest.fixture
def sign_in(base: str) -> Iterator[Callable[[str], Browser]]:
    clients: list[httpx.Client] = []

    def open_with(token: str) -> Browser:
        client = httpx.Client(base_url=base, timeout=10)
        clients.append(client)
        res = client.get("/", params={"token": token})
        assert res.status_code == 303, res.text
        assert res.headers["location"] == "/"
        return Browser(client)

    yield open_with
    for c in clients:
        c.close()


@pytest.fixture
def admin(sign_in: Callable[[str], Browser]) -> Browser:
    return sign_in(TOKEN)


def setup(engine: Engine, *definitions: dict[str, Any]) -> None:
    engine.import_contacts([{"id": "alice", "email": "alice@example.com", "name": "Alice", "preferred_channel": "web"},
                            {"id": "lead", "email": "lead@example.com", "name": "Lea"},
                            {"id": "eve", "email": "eve@example.com", "name": "Eve"}])
    for d in definitions or (WEEKLY,):
        engine.apply_definition(d)


def run_of(res: httpx.Response) -> str:
    assert res.status_code == 303, res.text
    path = res.headers["location"]
    assert path.startswith("/runs/")
    return path.removeprefix("/runs/")


def test_the_admin_runs_a_task_with_data_sees_it_and_cancels_it(engine, drain, admin, r):
    setup(engine)
    page = admin.get("/")
    assert page.status_code == 200
    assert page.headers["referrer-policy"] == "same-origin"  # so the forms send their Origin
    assert 'action="/tasks/weekly/runs"' in page.text

    rid = run_of(admin.post("/tasks/weekly/runs", {"data": '{"week": "23"}'}))
    drain()
    run = engine.run_view(rid)
    assert run["gathered"] == {"week": "23"}
    assert run["trigger"] == {"kind": "manual", "by": "admin"}
    assert run["status"] == "running"

    shown = admin.get(f"/runs/{rid}")
    assert shown.status_code == 200
    assert f'action="/runs/{rid}/cancel"' in shown.text
    assert "Asked Alice on web." in Page(shown.text).text  # the timeline

    assert admin.post(f"/runs/{rid}/cancel").headers["location"] == f"/runs/{rid}"
    assert engine.store.run_fields(rid)["status"] == "cancelled"
    after = Page(admin.get(f"/runs/{rid}").text).text
    assert "Run cancelled." in after
    assert "Cancel run" not in after  # a final run has no actions
    again = admin.post(f"/runs/{rid}/cancel")
    assert again.status_code == 409
    assert f"run {rid} is already cancelled" in Page(again.text).text


def test_a_refused_form_names_its_field_keeps_what_was_typed_and_changes_nothing(engine, admin, r):
    setup(engine, WEEKLY, {**OTHER, "id": "paused", "active": False})
    before = contents(r)
    cases = [
        ("/tasks/weekly/runs", {"data": '{"week": '}, 422, "data: is not JSON"),
        ("/tasks/weekly/runs", {"data": '["a list"]'}, 422, "data: must be a JSON object"),
        ("/tasks/paused/runs", {"data": ""}, 409, "task 'paused' is inactive"),
        ("/tasks/nope/runs", {"data": ""}, 404, "nope"),
        ("/schedules", {"task_id": "weekly", "kind": "cron", "cron": "0 9 * *"}, 422, "cron: '0 9 * *' has 4 fields"),
        ("/schedules", {"task_id": "weekly", "kind": "every", "every": "7", "unit": "minutes"}, 422,
         "every: minutes: must divide 60 evenly"),
        ("/schedules", {"task_id": "weekly", "kind": "cron", "cron": "0 9 * * *", "timezone": "Mars/Olympus"}, 422,
         "timezone: unknown time zone"),
        ("/schedules", {"task_id": "weekly", "kind": "cron", "cron": "0 9 * * *", "data": "1"}, 422,
         "data: must be a JSON object"),
        ("/schedules", {"task_id": "paused", "kind": "cron", "cron": "0 9 * * *"}, 409, "inactive"),
        ("/schedules/nope/delete", {}, 404, "nope"),
        ("/runs/nope/approve", {}, 404, "nope"),
    ]
    for path, form, status, text in cases:
        res = admin.post(path, form)
        assert res.status_code == status, (path, form, res.text)
        banner = Page(res.text)
        assert text in banner.text, (path, form)
        assert 'role="alert"' in res.text
    assert contents(r) == before  # nothing stored, nothing queued

    typed = admin.post("/tasks/weekly/runs", {"data": '{"week": '})
    assert '{&#34;week&#34;: </textarea>' in typed.text  # the textarea shows what was sent, to fix it
    assert 'aria-invalid="true"' in typed.text
    cron = admin.post("/schedules", {"task_id": "weekly", "kind": "cron", "cron": "61 * * * *"})
    assert cron.status_code == 422
    assert 'value="61 * * * *"' in cron.text


def test_a_run_awaiting_review_is_approved_from_its_page(engine, drain, admin):
    setup(engine, {**WEEKLY, "review": True})
    rid = run_of(admin.post("/tasks/weekly/runs", {"data": ""}))
    drain()
    [sub] = engine.run_view(rid)["subtasks"]
    token = urlsplit(sub["chat_url"]).path.rsplit("/", 1)[-1]
    for n, text in enumerate(("the parser", "nothing")):
        engine.inbox.post_web(token, text, f"m{n}")
        drain()
    assert engine.store.run_fields(rid)["status"] == "awaiting_review"
    page = admin.get(f"/runs/{rid}")
    assert f'action="/runs/{rid}/approve"' in page.text
    assert f'action="/runs/{rid}/approve"' in admin.get("/").text  # on the dashboard's list too

    assert admin.post(f"/runs/{rid}/approve").status_code == 303
    assert engine.store.run_fields(rid)["status"] == "completed"
    timeline = Page(admin.get(f"/runs/{rid}").text).text
    assert "Alice answered." in timeline
    assert "Run completed." in timeline
    assert admin.post(f"/runs/{rid}/approve").status_code == 409


def test_a_task_is_deactivated_and_activated_again(engine, admin):
    setup(engine)
    assert admin.post("/tasks/weekly/deactivate").headers["location"] == "/#tasks"
    assert engine.store.get_definition("weekly").active is False
    page = admin.get("/").text
    assert 'action="/tasks/weekly/activate"' in page
    assert 'action="/tasks/weekly/runs"' not in page  # an inactive task cannot be run
    assert admin.post("/tasks/weekly/activate").status_code == 303
    assert engine.store.get_definition("weekly").active is True


def test_schedules_are_added_listed_switched_and_removed(engine, admin):
    setup(engine)
    assert admin.post("/schedules", {"task_id": "weekly", "kind": "cron", "cron": "0 9 * * MON",
                                     "timezone": "Europe/Paris", "data": '{"team": "core"}'}).status_code == 303
    assert admin.post("/schedules", {"task_id": "weekly", "kind": "every", "every": "15", "unit": "minutes",
                                     "timezone": ""}).status_code == 303
    assert admin.post("/schedules", {"task_id": "weekly", "kind": "every", "every": "1", "unit": "days",
                                     "at": "08:30"}).status_code == 303
    schedules = {s["cron"]: s for s in engine.schedules.views()}
    assert set(schedules) == {"0 9 * * MON", "*/15 * * * *", "30 8 * * *"}
    paris = schedules["0 9 * * MON"]
    assert (paris["timezone"], paris["data"]) == ("Europe/Paris", {"team": "core"})
    assert schedules["*/15 * * * *"]["timezone"] == "UTC"

    page = admin.get("/")
    rows = re.findall(r'<tr data-schedule="(\w+)">(.*?)</tr>', page.text, re.S)
    assert len(rows) == 3
    row = dict(rows)[paris["id"]]
    assert paris["next_run_at"][:16].replace("T", " ") in row  # the next run, in UTC
    assert paris["next_run_local"][:16].replace("T", " ") + " local" in row

    assert admin.post(f"/schedules/{paris['id']}/disable").status_code == 303
    assert engine.schedules.get(paris["id"])["enabled"] is False
    assert f'action="/schedules/{paris["id"]}/enable"' in admin.get("/").text
    assert admin.post(f"/schedules/{paris['id']}/enable").status_code == 303
    assert engine.schedules.get(paris["id"])["enabled"] is True
    assert admin.post(f"/schedules/{paris['id']}/delete").headers["location"] == "/#schedules"
    assert {s["cron"] for s in engine.schedules.views()} == {"*/15 * * * *", "30 8 * * *"}
    assert paris["id"] not in admin.get("/").text


def test_every_form_refuses_a_post_without_its_sessions_csrf_token_or_from_another_site(engine, drain, admin,
                                                                                         sign_in, base, r):
    setup(engine)
    rid = engine.runs.trigger("weekly", kind="api")
    sid = engine.schedules.create("weekly", "0 9 * * *")["id"]
    drain()
    mine, theirs = admin.csrf(), sign_in(TOKEN).csrf()
    altered = mine[:-1] + ("1" if mine[-1] == "0" else "0")
    assert mine != theirs  # one token per sign-in
    forms = [("/tasks/weekly/runs", {"data": "{}"}), ("/tasks/weekly/deactivate", {}), ("/tasks/weekly/activate", {}),
             (f"/runs/{rid}/cancel", {}), (f"/runs/{rid}/approve", {}), ("/schedules", {"task_id": "weekly",
             "kind": "cron", "cron": "0 9 * * *"}), (f"/schedules/{sid}/delete", {}), (f"/schedules/{sid}/disable", {}),
             (f"/schedules/{sid}/enable", {}), ("/signout", {}), ("/signin/switch", {"next": "/"})]
    before = contents(r)
    for path, form in forms:
        for kwargs in ({"csrf": None}, {"csrf": ""}, {"csrf": theirs}, {"csrf": altered},
                       {"csrf": mine, "origin": "https://evil.example"}, {"csrf": mine, "origin": "null"},
                       {"csrf": mine, "origin": None, "headers": {"Sec-Fetch-Site": "cross-site"}}):
            res = admin.post(path, form, **kwargs)
            assert res.status_code == 403, (path, kwargs, res.status_code)
            assert "Not done" in Page(res.text).text
        with httpx.Client(base_url=base, timeout=10) as stranger:  # no session at all
            assert stranger.post(path, data={**form, "csrf": mine}, headers={"Origin": admin.origin}).status_code == 401
    assert contents(r) == before
    assert admin.get("/").status_code == 200  # still signed in: no refused sign-out went through
    # A client that is no browser sends no Origin: the session's token alone lets it act.
    assert admin.post("/tasks/weekly/deactivate", origin=None).status_code == 303


def test_the_session_cookie_is_httponly_samesite_and_holds_no_token(engine, base):
    with httpx.Client(base_url=base, timeout=10) as client:
        res = client.get("/runs/x", params={"token": TOKEN, "keep": "1"})
        assert res.headers["location"] == "/runs/x?keep=1"
        cookie = res.headers["set-cookie"].lower()
        assert "httponly" in cookie
        assert "samesite=lax" in cookie
        assert "max-age=604800" in cookie
        value = client.cookies[DASHBOARD_COOKIE]
        assert TOKEN not in value
        client.cookies.set(DASHBOARD_COOKIE, value[:-1] + ("0" if value[-1] != "0" else "1"))
        assert client.get("/").status_code == 401  # a forged MAC opens nothing


def test_someone_elses_sign_in_link_asks_before_it_switches_who_is_signed_in(engine, sign_in, base):
    setup(engine, WEEKLY, OTHER)
    lead = sign_in(engine.tokens.create("lead")[0])
    eves = engine.tokens.create("eve")[0]
    link = lead.get(f"/runs/x?token={eves}&keep=1")  # a link in an answer, a mail: it could come from anyone
    assert link.status_code == 303
    assert link.headers["location"] == "/signin/switch?next=%2Fruns%2Fx%3Fkeep%3D1"  # the token out of the URL
    asked = lead.get(link.headers["location"])
    assert asked.status_code == 200
    page = Page(asked.text)
    assert "You are signed in as lead. The link you opened signs in as eve instead." in page.text
    assert eves not in asked.text  # the token is in no page
    assert 'href="/runs/x?keep=1"' in asked.text  # staying goes where the link went, as lead
    assert "Signed in as lead" in Page(lead.get("/").text).text  # nothing switched by opening it

    assert lead.post("/signin/switch", {"next": "/runs/x?keep=1"}, origin="https://evil.example").status_code == 403
    assert "Signed in as lead" in Page(lead.get("/").text).text
    switched = lead.post("/signin/switch", {"next": "/runs/x?keep=1"})
    assert switched.status_code == 303
    assert switched.headers["location"] == "/runs/x?keep=1"
    assert "Signed in as eve" in Page(lead.get("/").text).text
    again = lead.post("/signin/switch", {"next": "/"})  # the waiting sign-in was used up
    assert again.status_code == 409
    assert "that sign-in link has expired" in Page(again.text).text
    assert "Signed in as eve" in Page(lead.get("/").text).text

    same = lead.get(f"/?token={eves}")  # one's own link again: no question
    assert same.status_code == 303
    assert same.headers["location"] == "/"
    assert lead.get("/signin/switch?next=//evil.example/x").headers["location"] == "/"  # nothing to ask; not off-site
    with httpx.Client(base_url=base, timeout=10) as fresh:  # and with no session, a link signs in at once
        assert fresh.get("/", params={"token": eves}).status_code == 303
        assert "Signed in as eve" in Page(fresh.get("/").text).text


def test_signing_in_with_the_form_and_signing_out(engine, base):
    setup(engine)
    with httpx.Client(base_url=base, timeout=10) as client:
        closed = client.get("/")
        assert closed.status_code == 401
        assert 'action="/signin"' in closed.text
        assert client.post("/signin", data={"token": "wrong"}, headers={"Origin": base}).status_code == 401
        assert client.post("/signin", data={"token": TOKEN}, headers={"Origin": "https://evil.example"}
                           ).status_code == 403
        res = client.post("/signin", data={"token": TOKEN}, headers={"Origin": base})
        assert res.status_code == 303
        browser = Browser(client)
        assert "Signed in as admin" in Page(browser.get("/").text).text
        out = browser.post("/signout")
        assert out.status_code == 303
        assert 'max-age=0' in out.headers["set-cookie"].lower() or "expires=" in out.headers["set-cookie"].lower()
        assert client.get("/").status_code == 401


def test_a_person_signed_in_with_their_token_sees_and_acts_only_on_their_own_tasks(engine, drain, sign_in, r):
    setup(engine, WEEKLY, OTHER)
    theirs = engine.runs.trigger("other", kind="api")
    other_schedule = engine.schedules.create("other", "0 9 * * *")["id"]
    own_schedule = engine.schedules.create("weekly", "0 10 * * *")["id"]
    drain()
    token, _ = engine.tokens.create("lead")
    lead = sign_in(token)

    page = lead.get("/")
    text = Page(page.text).text
    assert "Signed in as lead" in text
    assert "Weekly status" in text
    assert "Someone else's" not in text
    assert theirs not in page.text
    assert own_schedule in page.text
    assert other_schedule not in page.text

    rid = run_of(lead.post("/tasks/weekly/runs", {"data": '{"week": "24"}'}))
    drain()
    assert engine.run_view(rid)["trigger"] == {"kind": "manual", "by": "lead"}
    assert rid in lead.get("/").text
    assert lead.get(f"/runs/{rid}").status_code == 200
    assert lead.get(f"/runs/{rid}/results.csv").status_code == 200

    before = contents(r, skip=(b"taskbot:tokens",))  # (a token's last use is recorded)
    for path in (f"/runs/{theirs}", f"/runs/{theirs}/results.csv"):
        assert lead.get(path).status_code == 404  # another's run is one that does not exist
    for path in ("/tasks/other/runs", "/tasks/other/deactivate", f"/runs/{theirs}/cancel",
                 f"/schedules/{other_schedule}/delete", f"/schedules/{other_schedule}/disable"):
        res = lead.post(path, {"data": ""})
        assert res.status_code == 404, path
    assert lead.post("/schedules", {"task_id": "other", "kind": "cron", "cron": "0 9 * * *"}).status_code == 404
    assert contents(r, skip=(b"taskbot:tokens",)) == before

    assert lead.post(f"/runs/{rid}/cancel").status_code == 303
    drain()
    assert f"Run {rid} of weekly was cancelled." in Page(lead.get("/").text).text  # their own notification

    engine.tokens.revoke(token)
    assert lead.get("/").status_code == 401  # revoking the token ends the session at once


def test_the_report_is_sanitised_html_the_answers_a_table_and_the_csv_the_cli_file(engine, drain, admin):
    setup(engine, {**WEEKLY, "output_type": "report"})
    hostile = ('<script>alert(1)</script><img src=x onerror="alert(2)"> [click](javascript:alert(3)) **bold** '
               '![me](/?token=tb_12345678_theirs) [sign in](/?token=tb_12345678_theirs) [docs](https://example.com/d)')
    rid = run_of(admin.post("/tasks/weekly/runs", {"data": ""}))
    drain()
    [sub] = engine.run_view(rid)["subtasks"]
    token = urlsplit(sub["chat_url"]).path.rsplit("/", 1)[-1]
    for n, text in enumerate((hostile, "=HYPERLINK(\"http://x\")")):
        engine.inbox.post_web(token, text, f"m{n}")
        drain()
    run = engine.run_view(rid)
    assert run["status"] == "completed"
    assert hostile in run["deliverables"][0]["content"]

    page = admin.get(f"/runs/{rid}")
    parsed = Page(page.text)
    tags = [tag for tag, _ in parsed.tags]
    assert "img" not in tags
    assert [a for _, a in parsed.tags if a.get("src")] == [a for t, a in parsed.tags if t == "script"]
    assert all(a["src"].startswith("/static/") for t, a in parsed.tags if t == "script")
    assert not [a for _, a in parsed.tags if any(k.startswith("on") for k in a)]
    assert not [a for _, a in parsed.tags if "javascript:" in (a.get("href") or "")]
    assert not [a for _, a in parsed.tags if "token=" in (a.get("href") or "") + (a.get("src") or "")]
    assert ("a", {"href": "https://example.com/d", "rel": "noopener noreferrer"}) in parsed.tags  # off-site: kept
    assert "<script>alert(1)</script>" in parsed.text  # shown as text, in the report and the answers table
    report = page.text[page.text.index('<div class="markdown">'):]
    report = report[:report.index("</section>")]
    assert "<table>" in report  # the Markdown rendered: its table and bold are HTML
    assert "<strong>" in report
    answers = re.search(r'<table id="answers-table">(.*?)</table>', page.text, re.S)
    assert answers is not None
    cells = re.findall(r"<t[hd]>(.*?)</t[hd]>", answers.group(1), re.S)
    assert cells[:4] == ["Participant", "Status", "shipped", "blockers"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in answers.group(1)

    csv = admin.get(f"/runs/{rid}/results.csv")
    assert csv.status_code == 200
    assert csv.headers["content-type"] == "text/csv; charset=utf-8"
    assert csv.headers["content-disposition"] == f'attachment; filename="weekly-{rid}.csv"'
    assert csv.text == engine.results_csv(rid)
    assert "'=HYPERLINK" in csv.text  # the CSV's formula guard


def test_the_timeline_shows_chases_the_escalation_the_time_out_and_a_late_answer(engine, drain, wait_for, admin):
    engine.import_contacts([
        {"id": "alice", "email": "alice@example.com", "name": "Alice", "preferred_channel": "web",
         "manager": "mia@example.com"},
        {"id": "bob", "email": "bob@example.com", "name": "Bob", "preferred_channel": "web"},
        {"id": "mia", "email": "mia@example.com", "name": "Mia", "preferred_channel": "web"}])
    engine.apply_definition({
        "id": "chased", "name": "Chased", "owner": "lead@example.com",
        "template": {"participants": ["alice@example.com", "bob@example.com"], "accept_late": True,
                     "fields": [{"key": "shipped", "prompt": "What did you ship?"}],
                     "chase": {"interval": "1s", "max_chases": 1, "escalate_to": "manager"}}})
    rid = run_of(admin.post("/tasks/chased/runs", {"data": ""}))
    drain()
    subs = {s["participant_id"]: s for s in engine.run_view(rid)["subtasks"]}
    engine.inbox.post_web(urlsplit(subs["bob@example.com"]["chat_url"]).path.rsplit("/", 1)[-1], "docs", "b1")
    wait_for(lambda: engine.store.run_fields(rid)["status"] == "completed", timeout=30, between=drain)

    def events() -> list[str]:
        items = re.findall(r'<li class="event-(\w+)"><time datetime="([^"]+)">', admin.get(f"/runs/{rid}").text)
        assert [at for _, at in items] == sorted(at for _, at in items)  # oldest first
        return [event for event, _ in items]

    closed = events()
    for event in ("created", "started", "opened", "chased", "escalated", "answered", "timed_out", "report",
                  "completed"):
        assert event in closed, (event, closed)
    assert closed.index("chased") < closed.index("escalated") < closed.index("timed_out") < closed.index("completed")
    assert closed.count("opened") == 2
    assert "Alice timed out" in Page(admin.get(f"/runs/{rid}").text).text

    engine.inbox.post_web(urlsplit(subs["alice@example.com"]["chat_url"]).path.rsplit("/", 1)[-1], "parser", "a1")
    wait_for(lambda: len(engine.run_view(rid)["deliverables"]) == 2, timeout=30, between=drain)
    late = events()
    assert late[-2:] == ["late", "report"]  # the late answer, and the new version it made
    assert late.count("report") == 2
    text = Page(admin.get(f"/runs/{rid}").text).text
    assert "Reminded Alice (reminder 1)." in text
    assert "Alice's silence escalated to Mia (not delivered: no usable channel for mia" in text  # no channel here
    assert "Alice answered after the run closed." in text
    assert "Bob answered." in text


def test_a_form_body_that_is_too_large_not_utf8_or_has_too_many_fields_is_refused(engine, admin, r):
    setup(engine)
    before = contents(r)
    csrf = admin.csrf()
    headers = {"Origin": admin.origin, "Content-Type": "application/x-www-form-urlencoded"}
    big = admin.client.post("/tasks/weekly/runs", content=f"csrf={csrf}&data=" + "x" * 300_000, headers=headers)
    assert big.status_code == 413
    latin = admin.client.post("/tasks/weekly/runs", content=f"csrf={csrf}&data=".encode() + b"\xff", headers=headers)
    assert latin.status_code == 422
    assert "form: the form is not UTF-8" in Page(latin.text).text
    many = admin.client.post("/tasks/weekly/runs", content="&".join(f"f{i}=1" for i in range(100)), headers=headers)
    assert many.status_code == 422
    assert "form: more than 64 fields" in Page(many.text).text
    assert contents(r) == before


def test_a_page_refreshes_itself_while_runs_are_open_but_not_a_refusal(engine, drain, admin):
    setup(engine)
    assert "data-refresh" not in admin.get("/").text  # nothing moves
    rid = run_of(admin.post("/tasks/weekly/runs", {"data": ""}))
    drain()
    assert 'data-refresh="3"' in admin.get("/").text
    assert 'data-refresh="3"' in admin.get(f"/runs/{rid}").text
    refused = admin.post("/tasks/weekly/runs", {"data": "["})
    assert refused.status_code == 422
    assert "data-refresh" not in refused.text  # it was answered at the form's URL, which a refresh cannot GET
    admin.post(f"/runs/{rid}/cancel")
    assert "data-refresh" not in admin.get(f"/runs/{rid}").text


def test_every_dashboard_page_with_the_admins_token_a_persons_and_none(engine, drain, sign_in, base):
    setup(engine, WEEKLY, OTHER)
    mine, theirs = engine.runs.trigger("weekly", kind="api"), engine.runs.trigger("other", kind="api")
    drain()
    lead = sign_in(engine.tokens.create("lead")[0])
    admin = sign_in(TOKEN)
    pages = {"/": (200, 200), f"/runs/{mine}": (200, 200), f"/runs/{theirs}": (200, 404),
             f"/runs/{mine}/results.csv": (200, 200), f"/runs/{theirs}/results.csv": (200, 404),
             f"/runs/{mine}/deliverables/nope/file": (404, 404), f"/runs/{theirs}/deliverables/nope/file": (404, 404)}
    with httpx.Client(base_url=base, timeout=10) as nobody:
        for path, (as_admin, as_lead) in pages.items():
            assert (admin.get(path).status_code, lead.get(path).status_code) == (as_admin, as_lead), path
            refused = nobody.get(path)
            assert refused.status_code == 401, path
            assert 'action="/signin"' in refused.text
    assert theirs in admin.get("/").text
    assert theirs not in lead.get("/").text
