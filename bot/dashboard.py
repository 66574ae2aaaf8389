"""The dashboard (SPEC §12): pages that show runs, tasks and schedules, and forms that act on them.

Who signs in (bot/sessions.py) decides what is shown: the admin sees everything; a person signed
in with their own token sees the tasks they own, those tasks' runs and schedules, and their own
notifications, and may act on those only (:func:`engine.access.may`). Every action goes through
the engine's services, as the REST API's routes do, and refuses bad input the same way: a 422
naming the field, with the page shown again as it was, and nothing changed.

Each POST is checked before it acts: the session (401), the ``Origin`` (403), the body's size
(413), then the form's CSRF token (403). A form that succeeds answers ``303 See Other`` to the
page that shows its effect, so reloading that page never sends the form again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from engine.access import Caller, may
from engine.engine import Engine
from engine.errors import Conflict, InvalidInput, NotFound

from . import pages
from .forms import data_field, every_cron, read_form
from .pages import DASHBOARD_HEADERS, Notice, Viewer
from .sessions import (
    COOKIE,
    CSRF_FIELD,
    SESSION_SECONDS,
    SWITCH_COOKIE,
    SWITCH_SECONDS,
    Session,
    configured_admin_token,
    cross_site,
    csrf_token,
    csrf_valid,
    session_of,
    sign_in,
)

dashboard = APIRouter(include_in_schema=False)
#: The paths of the dashboard's pages and forms (a 503 while Redis is away is a page there, not JSON).
PAGE_PREFIXES = ("/runs/", "/tasks/", "/schedules", "/signin", "/signout")
SIGN_IN_TEXT = "Open the dashboard once with ?token=<token>, or paste the token here: the admin's API token, " \
               "or your own from `taskbot tokens create`."


class Forbidden(Exception):
    """The caller may not do this (a person acting on what they do not own)."""


def is_dashboard_page(path: str) -> bool:
    return path == "/" or path.startswith(PAGE_PREFIXES)


def page(body: str, status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status_code, headers=DASHBOARD_HEADERS)


def message(title: str, text: str, status_code: int) -> HTMLResponse:
    return page(pages.message_page(title, text), status_code)


def engine_of(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def set_session(response: Response, request: Request, cookie: str) -> None:
    response.set_cookie(COOKIE, cookie, max_age=SESSION_SECONDS, httponly=True, samesite="lax",
                        secure=request.url.scheme == "https")


def signed_in(request: Request) -> Session | Response:
    """The visitor's session, or the response to send instead (the sign-in page, or the redirect a
    ``?token=`` visit gets: it sets the cookie, or, when someone else is signed in, a cookie that waits
    for them to confirm at ``/signin/switch``, and drops the token from the URL, so it does not
    linger in the history; the access log redacts it). With no API token set the dashboard is off.
    Called in the threadpool: a person's session is checked against their token's record in Redis.
    """
    admin_token = configured_admin_token(request)
    if admin_token is None:  # closed like the API: the dashboard lists chat links, each a participant's credential
        return page(pages.signin_page("Dashboard off", "Set TASKBOT_API_TOKEN, then open the dashboard once "
                                                       "with ?token=<API token>.", form=False), 401)
    engine = engine_of(request)
    given = request.query_params.get("token")
    if given is not None and request.method == "GET":
        cookie = sign_in(engine, admin_token, given)
        if cookie is None:
            return page(pages.signin_page("Sign in needed", "That token opens nothing. " + SIGN_IN_TEXT), 401)
        query = request.url.remove_query_params("token").query
        back = request.url.path + (f"?{query}" if query else "")
        current = session_of(engine, admin_token, request.cookies.get(COOKIE))
        other = session_of(engine, admin_token, cookie)
        if current is not None and other is not None and not same_person(current, other):
            # someone else's link (it may come from anyone, an answer or a mail): asked, not done silently, on a
            # page of its own, so the token leaves the address bar and the history as it does when signing in
            response = RedirectResponse("/signin/switch?" + urlencode({"next": back}), status_code=303)
            response.set_cookie(SWITCH_COOKIE, cookie, max_age=SWITCH_SECONDS, httponly=True, samesite="lax",
                                secure=request.url.scheme == "https")
            return response
        response = RedirectResponse(back, status_code=303)
        set_session(response, request, cookie)
        return response
    session = session_of(engine, admin_token, request.cookies.get(COOKIE))
    if session is None:
        return page(pages.signin_page("Sign in needed", SIGN_IN_TEXT), 401)
    return session


def viewer_of(request: Request, session: Session) -> Viewer:
    return Viewer(session.caller, session.label, csrf_token(configured_admin_token(request) or "", session))


# -- pages -----------------------------------------------------------------------------------------
@dashboard.get("/")
def dashboard_page(request: Request) -> Response:
    if not isinstance(session := signed_in(request), Session):
        return session
    return page(pages.dashboard(engine_of(request), viewer_of(request, session)))


def visible_run(engine: Engine, caller: Caller, run_id: str) -> dict[str, Any] | None:
    """The run (without conversations) if it exists and the caller may see it; None otherwise (one 404 for both)."""
    try:
        view = engine.run_view(run_id, conversations=False)
    except NotFound:
        return None
    return view if may(caller, "see", view.get("owner")) else None


def seen_run(request: Request, run_id: str) -> tuple[Engine, Session, dict[str, Any]] | Response:
    """The signed-in visitor's view of a run, or what to answer instead (the sign-in, or a 404 page for a run
    that is not there or not theirs: the same page, so a person cannot probe others' run ids)."""
    if not isinstance(session := signed_in(request), Session):
        return session
    engine = engine_of(request)
    if (view := visible_run(engine, session.caller, run_id)) is None:
        return message("Not found", f"There is no run {run_id!r}.", 404)
    return engine, session, view


@dashboard.get("/runs/{run_id}")
def run_page(run_id: str, request: Request) -> Response:
    if isinstance(seen := seen_run(request, run_id), Response):
        return seen
    engine, session, view = seen
    return page(pages.run_page(engine, view, viewer_of(request, session)))


@dashboard.get("/runs/{run_id}/results.csv")
def run_results_csv(run_id: str, request: Request) -> Response:
    """The answers as CSV, the same file as ``taskbot results RUN_ID --csv`` and ``/api/runs/{id}/results.csv``."""
    if isinstance(seen := seen_run(request, run_id), Response):
        return seen
    engine, _, view = seen
    filename = f"{view['task_id']}-{run_id}.csv"
    return Response(engine.results_csv(run_id), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store",
                             "X-Content-Type-Options": "nosniff"})


@dashboard.get("/runs/{run_id}/deliverables/{deliverable_id}/file")
def run_deliverable_file(run_id: str, deliverable_id: str, request: Request) -> Response:
    """An image or file deliverable of a run the visitor may see, as a download (never shown inline)."""
    if not isinstance(session := signed_in(request), Session):
        return session
    engine = engine_of(request)
    view = visible_run(engine, session.caller, run_id)
    if view is None or deliverable_id not in {d["id"] for d in view.get("deliverables") or []}:
        return message("Not found", f"Run {run_id!r} has no file {deliverable_id!r}.", 404)
    try:
        name, media_type, data = engine.deliverable_file(deliverable_id)
    except NotFound:
        return message("Not found", f"Run {run_id!r} has no file {deliverable_id!r}.", 404)
    safe = "".join(c for c in name if c.isprintable() and c not in '"\\') or "deliverable"
    return Response(data, media_type=media_type, headers={"Content-Disposition": f'attachment; filename="{safe}"',
                                                          "X-Content-Type-Options": "nosniff"})


# -- forms -----------------------------------------------------------------------------------------
Action = Callable[[Engine, Caller, dict[str, str]], str]
Shown = Callable[[Engine, Viewer, Notice], str]


def on_dashboard(engine: Engine, viewer: Viewer, notice: Notice) -> str:
    return pages.dashboard(engine, viewer, notice)


def on_run(run_id: str) -> Shown:
    def show(engine: Engine, viewer: Viewer, notice: Notice) -> str:
        view = visible_run(engine, viewer.caller, run_id)
        return pages.run_page(engine, view, viewer, notice) if view else pages.dashboard(engine, viewer, notice)

    return show


async def act(request: Request, action: Action, shown: Shown = on_dashboard, form_name: str = "") -> Response:
    """Check a form POST (session, origin, size, CSRF token), then do ``action`` in the threadpool.

    ``action`` returns where to go next (303). A refusal shows ``shown`` again with the reason
    and what was typed: 422 for a field (named), 409 for a conflict (an inactive task, a final
    run), 404 when there is no such thing (or the caller may not see it), 403 when it is not theirs.
    """
    session = await run_in_threadpool(signed_in, request)
    if not isinstance(session, Session):
        return session
    refusal = cross_site(request, engine_of(request).public_url)
    if refusal is not None:
        return message("Refused", f"Not done: {refusal}. Use the dashboard's own pages.", 403)
    try:
        form = await read_form(request)
    except InvalidInput as exc:
        return message("Refused", f"Not done: {exc.field}: {exc.reason}.", 422)
    if not csrf_valid(configured_admin_token(request) or "", session, form.get(CSRF_FIELD)):
        return message("Refused", "Not done: this form is out of date or was not sent by the dashboard "
                                  "(its CSRF token is missing or wrong). Reload the page and try again.", 403)
    engine, viewer = engine_of(request), viewer_of(request, session)
    values = {k: v for k, v in form.items() if k != CSRF_FIELD}

    def refuse(text: str, status: int, field: str | None = None) -> Response:
        notice = Notice(text, field=field, form=form_name, values=values)
        return page(shown(engine, viewer, notice), status)

    try:
        where = await run_in_threadpool(action, engine, session.caller, form)
    except InvalidInput as exc:
        return await run_in_threadpool(refuse, f"{exc.field}: {exc.reason}", 422, exc.field)
    except Conflict as exc:
        return await run_in_threadpool(refuse, str(exc), 409)
    except NotFound as exc:
        return await run_in_threadpool(refuse, str(exc), 404)
    except Forbidden as exc:
        return await run_in_threadpool(refuse, str(exc), 403)
    return RedirectResponse(where, status_code=303)


def check(caller: Caller, action: str, owner: str | None, what: str) -> None:
    if not may(caller, action, owner):
        raise Forbidden(f"Not done: {what} is not yours (you may act only on the tasks you own).")


def task_owner(engine: Engine, caller: Caller, task_id: str) -> str | None:
    """The task's owner; a task the caller may not see is one that does not exist (404, as on the API)."""
    owner = engine.store.get_definition(task_id).owner
    if not may(caller, "see", owner):
        raise NotFound("task", task_id)
    return owner


def run_owner(engine: Engine, caller: Caller, run_id: str) -> str | None:
    owner = engine.store.run_fields(run_id).get("owner")
    if not may(caller, "see", owner):
        raise NotFound("run", run_id)
    return owner


def schedule_owner(engine: Engine, caller: Caller, schedule_id: str) -> str | None:
    owner = engine.schedules.owner(schedule_id)
    if not may(caller, "see", owner):
        raise NotFound("schedule", schedule_id)
    return owner


@dashboard.post("/tasks/{task_id}/runs")
async def trigger_task(task_id: str, request: Request) -> Response:
    """Run a task now, with ``data`` (a JSON object, as the API's ``data``); then its run's page."""

    def run(engine: Engine, caller: Caller, form: dict[str, str]) -> str:
        check(caller, "run", task_owner(engine, caller, task_id), f"task {task_id!r}")
        data = data_field(form.get("data"))
        return f"/runs/{engine.runs.trigger(task_id, data, kind='manual', by=caller.id)}"

    return await act(request, run, form_name=f"run:{task_id}")


def switch_task(active: bool) -> Callable[[str, Request], Any]:
    async def switch(task_id: str, request: Request) -> Response:
        def do(engine: Engine, caller: Caller, form: dict[str, str]) -> str:
            action = "activate" if active else "deactivate"
            check(caller, action, task_owner(engine, caller, task_id), f"task {task_id!r}")
            engine.runs.set_active(task_id, active)
            return "/#tasks"

        return await act(request, do)

    return switch


dashboard.post("/tasks/{task_id}/activate")(switch_task(True))
dashboard.post("/tasks/{task_id}/deactivate")(switch_task(False))


def run_action(action: str) -> Callable[[str, Request], Any]:
    """The form behind a run's ``cancel`` or ``approve`` button: the owner's (or the admin's) call to Runs."""
    async def on(run_id: str, request: Request) -> Response:
        def do(engine: Engine, caller: Caller, form: dict[str, str]) -> str:
            check(caller, action, run_owner(engine, caller, run_id), f"run {run_id}")
            getattr(engine.runs, action)(run_id)
            return f"/runs/{run_id}"

        return await act(request, do, on_run(run_id))

    return on


dashboard.post("/runs/{run_id}/cancel")(run_action("cancel"))
dashboard.post("/runs/{run_id}/approve")(run_action("approve"))


@dashboard.post("/schedules")
async def add_schedule(request: Request) -> Response:
    """A schedule from a cron (``kind=cron``) or from "every N minutes/hours" or "every day at HH:MM"."""

    def do(engine: Engine, caller: Caller, form: dict[str, str]) -> str:
        task_id = form.get("task_id", "").strip()
        if not task_id:
            raise InvalidInput("task_id", "pick a task")
        check(caller, "schedule", task_owner(engine, caller, task_id), f"task {task_id!r}")
        kind = form.get("kind", "cron")
        if kind not in ("cron", "every"):
            raise InvalidInput("kind", "must be cron or every")
        cron = form.get("cron", "").strip() if kind == "cron" else every_cron(form.get("every"), form.get("unit"),
                                                                               form.get("at"))
        timezone = form.get("timezone", "").strip() or "UTC"
        engine.schedules.create(task_id, cron, timezone, data_field(form.get("data")))
        return "/#schedules"

    return await act(request, do, form_name="schedule")


def schedule_action(name: str) -> Callable[[str, Request], Any]:
    async def handle(schedule_id: str, request: Request) -> Response:
        def do(engine: Engine, caller: Caller, form: dict[str, str]) -> str:
            owner = schedule_owner(engine, caller, schedule_id)
            check(caller, "unschedule" if name == "delete" else "schedule", owner, f"schedule {schedule_id}")
            if name == "delete":
                engine.schedules.delete(schedule_id)
            else:
                engine.schedules.set_enabled(schedule_id, name == "enable")
            return "/#schedules"

        return await act(request, do)

    return handle


for _name in ("delete", "enable", "disable"):
    dashboard.post(f"/schedules/{{schedule_id}}/{_name}")(schedule_action(_name))


# -- signing in and out ----------------------------------------------------------------------------
@dashboard.post("/signin")
async def sign_in_form(request: Request) -> Response:
    """The sign-in form: the token in the body (it never enters a URL or a log); then the dashboard."""
    admin_token = configured_admin_token(request)
    if admin_token is None:
        return page(pages.signin_page("Dashboard off", "Set TASKBOT_API_TOKEN first.", form=False), 401)
    if (refusal := cross_site(request, engine_of(request).public_url)) is not None:
        return message("Refused", f"Not signed in: {refusal}.", 403)
    try:
        form = await read_form(request)
    except InvalidInput as exc:
        return message("Refused", f"Not signed in: {exc.field}: {exc.reason}.", 422)
    cookie = await run_in_threadpool(sign_in, engine_of(request), admin_token, form.get("token", ""))
    if cookie is None:
        return page(pages.signin_page("Sign in needed", "That token opens nothing. " + SIGN_IN_TEXT), 401)
    response = RedirectResponse("/", status_code=303)
    set_session(response, request, cookie)
    return response


def same_person(one: Session, other: Session) -> bool:
    """Whether two sessions are the same visitor: both the admin, or both the same person's (by contact)."""
    return (one.caller.admin, one.caller.contact_id, one.caller.ids) == \
        (other.caller.admin, other.caller.contact_id, other.caller.ids)


def local(path: str | None) -> str:
    """``path`` when it is a path of this site, else ``/``: a ``next`` may not lead elsewhere."""
    return path if path and path.startswith("/") and not path.startswith(("//", "/\\")) else "/"


@dashboard.get("/signin/switch")
def switch_page(request: Request, next: str = "/") -> Response:  # noqa: A002 - the query's name
    """Ask whether to switch to the session a ``?token=`` link of someone else's would start."""
    if not isinstance(session := signed_in(request), Session):
        return session
    engine, admin_token = engine_of(request), configured_admin_token(request) or ""
    other = session_of(engine, admin_token, request.cookies.get(SWITCH_COOKIE))
    if other is None or same_person(session, other):
        return RedirectResponse(local(next), status_code=303)  # nothing (left) to ask
    return page(pages.switch_page(viewer_of(request, session), other.label, local(next)))


@dashboard.post("/signin/switch")
async def switch_session(request: Request) -> Response:
    """Sign in as the link's person after all: the session it made waits in a short-lived cookie (the token
    itself is in no page), and this form is a dashboard form like any other (session, origin, CSRF)."""
    pending = request.cookies.get(SWITCH_COOKIE)
    admin_token = configured_admin_token(request) or ""

    def do(engine: Engine, caller: Caller, form: dict[str, str]) -> str:
        if session_of(engine, admin_token, pending) is None:
            raise Conflict("Not switched: that sign-in link has expired or opens nothing now. Open it again.")
        return local(form.get("next"))

    response = await act(request, do)
    if response.status_code == 303 and pending:
        set_session(response, request, pending)
        response.delete_cookie(SWITCH_COOKIE, httponly=True, samesite="lax", secure=request.url.scheme == "https")
    return response


@dashboard.post("/signout")
async def sign_out(request: Request) -> Response:
    def do(engine: Engine, caller: Caller, form: dict[str, str]) -> str:
        return "/"

    response = await act(request, do)
    if response.status_code == 303:
        response.delete_cookie(COOKIE, httponly=True, samesite="lax", secure=request.url.scheme == "https")
    return response
