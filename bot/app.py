"""The one ASGI app (SPEC §8): health check, web chat, the REST API under /api, and the dashboard.

The engine is synchronous (redis-py), so every route that touches Redis is a plain ``def``:
FastAPI runs those in its threadpool and the event loop never waits on Redis.
"""

import hashlib
import hmac
import re
import secrets
import uuid
from typing import Annotated, Any
from urllib.parse import parse_qs

import redis
from fastapi import APIRouter, Body, Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator

from engine.engine import Engine
from engine.errors import Conflict, InvalidInput, NotFound
from engine.views import chat_view

from . import pages
from .reconnect import UNAVAILABLE
from .settings import Settings
from .slack import mount_slack
from .telegram import mount_telegram

DASHBOARD_COOKIE = "taskbot_dashboard"
MAX_FORM_BYTES = 256 * 1024
# Pages load their script and styles from /static only (bot/static/), so the policy forbids inline
# script and style: a value that slipped past the templates' escaping still could not run.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
HTML_HEADERS = {"Cache-Control": "no-store", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
                "Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff"}


class BadParameter(InvalidInput):
    """An ``InvalidInput`` about a path or query parameter, so the 422's ``loc`` points there."""

    def __init__(self, where: str, field: str, reason: str) -> None:
        super().__init__(field, reason)
        self.where = where


# -- dependencies ---------------------------------------------------------------
def engine_of(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


EngineDep = Annotated[Engine, Depends(engine_of)]
bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer $TASKBOT_API_TOKEN")


def configured_token(settings: Settings) -> str | None:
    """An empty TASKBOT_API_TOKEN counts as none: an empty secret must never open the API."""
    token = settings.api_token.get_secret_value() if settings.api_token is not None else ""
    return token or None


def same_secret(given: str, expected: str) -> bool:
    return secrets.compare_digest(given.encode(), expected.encode())


async def require_token(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> None:
    """Every /api route: the bearer token must match; with no token configured the API stays closed."""
    expected = configured_token(request.app.state.settings)
    challenge = {"WWW-Authenticate": "Bearer"}
    if expected is None:
        raise HTTPException(401, "the API is off: set TASKBOT_API_TOKEN to use it", headers=challenge)
    if credentials is None or not same_secret(credentials.credentials, expected):
        raise HTTPException(401, "missing or wrong bearer token", headers=challenge)


async def form_fields(request: Request) -> dict[str, str]:
    """The no-JS chat form, read without python-multipart (two urlencoded fields need no library)."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise HTTPException(413, "message too large")
    parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {key: values[0] for key, values in parsed.items()}


# -- error mapping, in one place ---------------------------------------------------
def field_loc(field: str) -> list[str | int]:
    """``template.fields[0].key`` → ``["template", "fields", 0, "key"]``, as FastAPI's own 422s read."""
    return [int(p[1:-1]) if p.startswith("[") else p for p in re.findall(r"\[\d+\]|[^.\[\]]+", field)]


async def on_invalid_input(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InvalidInput)
    loc = [getattr(exc, "where", "body"), *field_loc(exc.field)]
    detail = [{"type": "value_error", "loc": loc, "msg": exc.reason}]
    return JSONResponse({"detail": detail, "field": exc.field}, status_code=422)


async def on_not_found(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=404)


async def on_conflict(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=409)


#: While Redis is away every route that needs it answers 503 with this hint (also on /healthz);
#: the app reconnects by itself, so a client only has to retry. A retried chat POST with the same
#: ``id`` is stored once, which makes the retry safe even if the first attempt did reach Redis.
UNAVAILABLE_HEADERS = {"Retry-After": "1"}


def is_page(path: str) -> bool:
    """The routes a browser opens (dashboard, chat page and its no-JS form): they get an HTML 503."""
    return path == "/" or path.startswith("/runs/") or (path.startswith("/chat/") and not path.endswith("/messages"))


async def on_redis_down(request: Request, exc: Exception) -> Response:
    if is_page(request.url.path):
        page = html(pages.message_page("Try again in a moment", "taskbot cannot reach its database right now. "
                                       "Nothing is lost: reload this page in a few seconds."), 503)
        page.headers.update(UNAVAILABLE_HEADERS)
        return page
    return JSONResponse({"detail": UNAVAILABLE}, status_code=503, headers=UNAVAILABLE_HEADERS)


def html(body: str, status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status_code, headers=HTML_HEADERS)


def not_found_page(text: str) -> HTMLResponse:
    return html(pages.message_page("Not found", text), 404)


# -- health -------------------------------------------------------------------------
health = APIRouter(tags=["health"])


@health.get("/healthz")
def healthz(engine: EngineDep) -> JSONResponse:
    """200 while Redis answers a PING; 503 otherwise, so a load balancer can take us out (and back in:
    the app reconnects by itself once Redis is back)."""
    try:
        up = bool(engine.r.ping())
    except redis.RedisError:
        up = False
    if up:
        return JSONResponse({"status": "ok", "redis": True})
    return JSONResponse({"status": "unavailable", "redis": False, "detail": UNAVAILABLE}, status_code=503,
                        headers=UNAVAILABLE_HEADERS)


# -- web chat: the token in the path is the participant's credential ------------------
chat = APIRouter(tags=["web chat"])


class ChatMessage(BaseModel):
    text: str = Field(description="the participant's message")
    id: str | None = Field(None, max_length=128, description="client-made: a retried POST is stored once")
    answers: str | None = Field(None, max_length=64, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                                description="the field key of the button pressed (the text is its option)")

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value


class ChatAccepted(BaseModel):
    id: str
    duplicate: bool


@chat.get("/chat/{token}", include_in_schema=False)
def chat_page(token: str, engine: EngineDep) -> Response:
    try:
        sid = engine.inbox.subtask_for_token(token)
        sub = engine.store.sub_fields(sid)
        run = engine.store.run_fields(sub["run_id"])
    except NotFound:
        return not_found_page("This chat link is not valid. Check that you copied the whole link.")
    messages = chat_view(engine.store, sid)
    title = engine.definition_of(run).name
    name = sub.get("name") or sub["participant_id"]
    return html(pages.chat_page(token, title, name, sub["status"], messages, form_id=uuid.uuid4().hex))


FIELD_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


@chat.post("/chat/{token}", include_in_schema=False)
def chat_form(token: str, engine: EngineDep, form: Annotated[dict[str, str], Depends(form_fields)]
              ) -> Response:
    """The form works without JavaScript; its hidden ``id`` makes a re-submitted form count once."""
    text = form.get("text", "")
    answers = form.get("answers") if FIELD_KEY.match(form.get("answers") or "") else None
    try:
        if text.strip():
            engine.inbox.post_web(token, text, (form.get("id") or "")[:128] or None, answers)
        else:
            engine.inbox.subtask_for_token(token)
    except NotFound:
        return not_found_page("This chat link is not valid. Check that you copied the whole link.")
    return RedirectResponse(f"/chat/{token}", status_code=303)


@chat.get("/chat/{token}/messages")
def chat_messages(token: str, engine: EngineDep, response: Response) -> list[dict[str, Any]]:
    """The conversation as ``{role, text, at}`` (roles: user, assistant, system); a message that asks a typed
    question has ``question`` (``{key, type, options}``), which the page shows as buttons or a date field."""
    sid = engine.inbox.subtask_for_token(token)
    response.headers["Cache-Control"] = "no-store"
    return chat_view(engine.store, sid)


@chat.post("/chat/{token}/messages", status_code=202)
def post_chat_message(token: str, body: ChatMessage, engine: EngineDep) -> ChatAccepted:
    """Stored (and queued) before the 202 goes back; the bot's reply follows in the conversation."""
    iid, new = engine.inbox.post_web(token, body.text, body.id, body.answers)
    return ChatAccepted(id=iid, duplicate=not new)


# -- REST API -------------------------------------------------------------------------
api = APIRouter(prefix="/api", dependencies=[Depends(require_token)],
                responses={401: {"description": "missing or wrong bearer token"}})

DefinitionBody = Annotated[dict[str, Any], Body(description="a task definition (SPEC §3), as JSON")]
ObjectBody = Annotated[dict[str, Any], Body()]
RowsBody = Annotated[list[Any] | dict[str, Any], Body(description='row objects, or {"rows": [...]}')]


class RunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    data: dict[str, Any] = Field(default_factory=dict, description="gathered data the run starts with")


class TriggerRequest(RunRequest):
    task_definition_id: str
    callback_url: HttpUrl | None = Field(
        None, description="gets the run object, signed, when the run ends; http(s) only, and no private, loopback or "
                          "link-local address unless TASKBOT_CALLBACK_ALLOW_PRIVATE=true (SPEC §11)")


class RunStarted(BaseModel):
    run_id: str


def definition_json(definition: Any) -> dict[str, Any]:
    data: dict[str, Any] = definition.model_dump(mode="json", exclude_none=True)
    return data


def started(rid: str, response: Response) -> RunStarted:
    response.headers["Location"] = f"/api/runs/{rid}"
    return RunStarted(run_id=rid)


@api.get("/tasks", tags=["tasks"])
def list_tasks(engine: EngineDep) -> list[dict[str, Any]]:
    return [definition_json(d) for d in engine.store.list_definitions()]


@api.post("/tasks", status_code=201, tags=["tasks"])
def create_task(body: DefinitionBody, engine: EngineDep) -> dict[str, Any]:
    """Validate and store a definition (refused whole, field named, when wrong); same id replaces."""
    return definition_json(engine.apply_definition(body))


@api.get("/tasks/{task_id}", tags=["tasks"])
def get_task(task_id: str, engine: EngineDep) -> dict[str, Any]:
    return definition_json(engine.store.get_definition(task_id))


@api.put("/tasks/{task_id}", tags=["tasks"])
def put_task(task_id: str, body: DefinitionBody, engine: EngineDep) -> dict[str, Any]:
    if "id" in body and body["id"] != task_id:
        raise InvalidInput("id", f"must match the task id in the URL ({task_id!r})")
    return definition_json(engine.apply_definition({**body, "id": task_id}))


@api.delete("/tasks/{task_id}", status_code=204, tags=["tasks"])
def delete_task(task_id: str, engine: EngineDep) -> Response:
    engine.store.delete_definition(task_id)
    return Response(status_code=204)


@api.post("/tasks/{task_id}/runs", status_code=202, tags=["runs"])
def start_run(task_id: str, engine: EngineDep, response: Response,
              body: Annotated[RunRequest | None, Body()] = None) -> RunStarted:
    return started(engine.runs.trigger(task_id, body.data if body else None, kind="api"), response)


@api.post("/trigger", status_code=202, tags=["runs"])
def web_trigger(body: TriggerRequest, engine: EngineDep, response: Response) -> RunStarted:
    """The Web Trigger: start a run of ``task_definition_id`` with ``data``; ``callback_url`` gets the run
    object when it ends (its host is resolved here, so this is a plain ``def`` run in the threadpool)."""
    callback = str(body.callback_url) if body.callback_url is not None else None
    return started(engine.runs.trigger(body.task_definition_id, body.data, kind="web", callback_url=callback), response)


@api.get("/runs", tags=["runs"])
def list_runs(engine: EngineDep, task_id: str | None = None,
              limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[dict[str, Any]]:
    """Newest first, without sub-tasks (``GET /api/runs/{id}`` has them)."""
    return engine.list_runs(task_id, limit)


@api.get("/runs/{run_id}", tags=["runs"])
def get_run(run_id: str, engine: EngineDep) -> dict[str, Any]:
    return engine.run_view(run_id)


@api.get("/deliverables/{deliverable_id}/file", tags=["runs"], response_class=Response,
         responses={200: {"content": {"application/octet-stream": {}}, "description": "the file"}})
def get_deliverable_file(deliverable_id: str, engine: EngineDep) -> Response:
    """An image or file deliverable's bytes."""
    name, media_type, data = engine.deliverable_file(deliverable_id)
    return Response(data, media_type=media_type, headers={"Content-Disposition": f'attachment; filename="{name}"'})


@api.post("/runs/{run_id}/cancel", tags=["runs"], responses={409: {"description": "the run is final"}})
def cancel_run(run_id: str, engine: EngineDep) -> dict[str, Any]:
    engine.runs.cancel(run_id)
    return engine.run_view(run_id)


@api.post("/runs/{run_id}/approve", tags=["runs"], responses={409: {"description": "not awaiting review"}})
def approve_run(run_id: str, engine: EngineDep) -> dict[str, Any]:
    engine.runs.approve(run_id)
    return engine.run_view(run_id)


@api.get("/contacts", tags=["directory"])
def list_contacts(engine: EngineDep) -> list[dict[str, Any]]:
    return [c.model_dump(mode="json", exclude_none=True) for c in engine.store.list_contacts()]


@api.put("/contacts/{contact_id}", tags=["directory"])
def put_contact(contact_id: str, body: ObjectBody, engine: EngineDep) -> dict[str, Any]:
    if "id" in body and body["id"] != contact_id:
        raise InvalidInput("id", f"must match the contact id in the URL ({contact_id!r})")
    try:
        [contact] = engine.import_contacts([{**body, "id": contact_id}])
    except InvalidInput as exc:  # the engine names the row ("[0].email"); this body is one contact
        raise InvalidInput(exc.field.removeprefix("[0]").lstrip(".") or "contact", exc.reason) from None
    return contact.model_dump(mode="json", exclude_none=True)


@api.put("/datasets/{name}", tags=["directory"])
def put_dataset(name: str, body: RowsBody, engine: EngineDep) -> dict[str, Any]:
    """Replace a dataset's rows: a list of objects, or ``{"rows": [...]}``."""
    rows = body.get("rows") if isinstance(body, dict) else body
    if not isinstance(rows, list):
        raise InvalidInput("rows", 'expected a list of row objects, or {"rows": [...]}')
    try:
        count = engine.import_dataset(name, rows)
    except InvalidInput as exc:
        if exc.field == "NAME":
            raise BadParameter("path", "name", exc.reason) from None
        raise InvalidInput(("rows" if isinstance(body, dict) else "") + exc.field, exc.reason) from None
    return {"name": name, "rows": count}


@api.get("/notifications", tags=["notifications"])
def notifications(owner: Annotated[str, Query(min_length=1, description="whose notifications")],
                  engine: EngineDep) -> list[dict[str, Any]]:
    """In-app notifications (run ended, awaiting review ...), oldest first."""
    return engine.store.notifications(owner)


# -- dashboard ----------------------------------------------------------------------------
dashboard = APIRouter(include_in_schema=False)


def cookie_value(token: str) -> str:
    """The cookie holds a digest of the API token, never the token itself."""
    return hmac.new(token.encode(), b"taskbot dashboard", hashlib.sha256).hexdigest()


def dashboard_gate(request: Request) -> Response | None:
    """None when the visitor may see the dashboard; otherwise the response to send instead.

    With an API token configured, ``?token=`` is asked for once: it sets an HttpOnly cookie and
    redirects to the same page without the token, so it does not linger in history or logs.
    """
    expected = configured_token(request.app.state.settings)
    if expected is None:
        return None
    denied = html(pages.message_page("Sign in needed", "Open the dashboard once with ?token=<API token>."),
                  status_code=401)
    given = request.query_params.get("token")
    if given is not None:
        if not same_secret(given, expected):
            return denied
        query = request.url.remove_query_params("token").query
        response = RedirectResponse(request.url.path + (f"?{query}" if query else ""), status_code=303)
        response.set_cookie(DASHBOARD_COOKIE, cookie_value(expected), httponly=True, samesite="lax",
                            secure=request.url.scheme == "https")
        return response
    cookie = request.cookies.get(DASHBOARD_COOKIE)
    return None if cookie and same_secret(cookie, cookie_value(expected)) else denied


@dashboard.get("/")
def dashboard_page(request: Request, engine: EngineDep) -> Response:
    if (denied := dashboard_gate(request)) is not None:
        return denied
    return html(pages.dashboard(engine))


@dashboard.get("/runs/{run_id}")
def run_page(run_id: str, request: Request, engine: EngineDep) -> Response:
    if (denied := dashboard_gate(request)) is not None:
        return denied
    try:
        view = engine.run_view(run_id, conversations=False)
    except NotFound:
        return not_found_page(f"There is no run {run_id!r}.")
    return html(pages.run_page(view))


# -- the app ---------------------------------------------------------------------------------
def create_app(engine: Engine | None = None, settings: Settings | None = None) -> FastAPI:
    """Build the app around an engine (tests pass theirs; ``taskbot serve`` builds one from settings)."""
    settings = settings or Settings()
    if engine is None:
        from .bootstrap import build_engine

        engine = build_engine(settings, announce=True)
    app = FastAPI(title="taskbot", description="Tasks that fan out to people, chase them and fan in.")
    app.state.engine = engine
    app.state.settings = settings
    for router in (health, chat, api, dashboard):
        app.include_router(router)
    app.mount("/static", StaticFiles(packages=[("bot", "static")]), name="static")  # the pages' CSS and JS
    mount_slack(app, engine, settings)
    mount_telegram(app, engine, settings)
    app.add_exception_handler(InvalidInput, on_invalid_input)
    app.add_exception_handler(NotFound, on_not_found)
    app.add_exception_handler(Conflict, on_conflict)
    app.add_exception_handler(redis.RedisError, on_redis_down)
    return app
