"""The one ASGI app (SPEC §8): health check, web chat, the REST API under /api, and the dashboard.

The engine is synchronous (redis-py), so every route that touches Redis is a plain ``def``:
FastAPI runs those in its threadpool and the event loop never waits on Redis.
"""

import hashlib
import hmac
import json
import re
import uuid
from typing import Annotated, Any
from urllib.parse import parse_qs

import redis
from fastapi import APIRouter, Body, Depends, FastAPI, Header, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, ValidationError, field_validator
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp

from engine.bounds import check_value, printable
from engine.engine import Engine
from engine.errors import Conflict, InvalidInput, NotFound
from engine.idempotency import KEY as IDEMPOTENCY_KEY
from engine.idempotency import trigger_once
from engine.views import chat_view

from . import pages
from .guards import (
    CHALLENGE,
    ApiTokenGate,
    CloseWhenUnread,
    bearer_refusal,
    configured_token,
    on_http_error,
    on_request_invalid,
    same_secret,
)
from .logs import redact_uvicorn_logs
from .settings import Settings
from .slack import mount_slack
from .telegram import mount_telegram

DASHBOARD_COOKIE = "taskbot_dashboard"
MAX_FORM_BYTES = 256 * 1024
HTML_HEADERS = {"Cache-Control": "no-store", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"}


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


async def require_token(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> None:
    """Every /api route: the bearer token must match; with no token configured the API stays closed.

    :class:`~bot.guards.ApiTokenGate` refuses first, before any body is read; this dependency
    documents the scheme in the OpenAPI schema and holds for an app mounted without the gate.
    """
    given = f"Bearer {credentials.credentials}" if credentials is not None else None
    refusal = bearer_refusal(request.app.state.settings, given)
    if refusal is not None:
        raise HTTPException(401, refusal, headers=CHALLENGE)


async def storable_body(request: Request) -> None:
    """Every /api route: a JSON body with a lone surrogate or nested deeper than 32 is a 422 naming the place.

    Checked on the body FastAPI parsed (Starlette keeps it), before any route sees it: a str field
    of a request model takes a lone surrogate as it is, and Redis could not store it.
    """
    if "json" not in request.headers.get("content-type", "") or not await request.body():
        return
    try:
        data = await request.json()
    except (ValueError, RecursionError):
        return  # FastAPI itself answers this one (422 or 400)
    check_value(data)


async def known_chat(token: str, request: Request) -> bool:
    """Whether ``token`` names a chat; asked before a chat's body is read, so a wrong link reads nothing."""
    try:
        await run_in_threadpool(request.app.state.engine.inbox.subtask_for_token, token)
    except NotFound:
        return False
    return True


async def form_fields(token: str, request: Request) -> dict[str, str] | None:
    """The no-JS chat form, read without python-multipart (two urlencoded fields need no library).

    None when the link names no chat; its body is then never read.
    """
    if not await known_chat(token, request):
        return None
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
    field, reason = printable(exc.field), printable(exc.reason)  # a refusal must be sendable itself
    loc = [getattr(exc, "where", "body"), *field_loc(field)]
    detail = [{"type": "value_error", "loc": loc, "msg": reason}]
    return JSONResponse({"detail": detail, "field": field}, status_code=422)


async def on_not_found(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=404)


async def on_conflict(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=409)


async def on_redis_down(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": "Redis is not answering; try again shortly"}, status_code=503)


def html(body: str, status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status_code, headers=HTML_HEADERS)


def not_found_page(text: str) -> HTMLResponse:
    return html(pages.message_page("Not found", text), 404)


# -- health -------------------------------------------------------------------------
health = APIRouter(tags=["health"])


@health.get("/healthz")
def healthz(engine: EngineDep) -> JSONResponse:
    """200 while Redis answers a PING; 503 otherwise, so a load balancer can take us out."""
    try:
        up = bool(engine.r.ping())
    except redis.RedisError:
        up = False
    body = {"status": "ok" if up else "unavailable", "redis": up}
    return JSONResponse(body, status_code=200 if up else 503)


# -- web chat: the token in the path is the participant's credential ------------------
chat = APIRouter(tags=["web chat"])


class ChatMessage(BaseModel):
    text: str = Field(description="the participant's message")
    id: str | None = Field(None, max_length=128, description="client-made: a retried POST is stored once")

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value


class ChatAccepted(BaseModel):
    id: str
    duplicate: bool


async def chat_message(token: str, request: Request) -> ChatMessage:
    """A JSON chat message, read once the token names a chat (404 otherwise, the body unread)."""
    if not await known_chat(token, request):
        raise NotFound("chat", token[:6] + "…")
    try:
        data = json.loads(await request.body())
    except (ValueError, RecursionError):  # not UTF-8, not JSON, or nested past what json reads
        raise RequestValidationError([{"type": "json_invalid", "loc": ("body",),
                                       "msg": "the body is not a JSON object in UTF-8"}]) from None
    check_value(data)  # a lone surrogate in "text" is named as such, not as pydantic's "invalid string"
    try:
        return ChatMessage.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from None


@chat.get("/chat/{token}", include_in_schema=False)
def chat_page(token: str, engine: EngineDep) -> Response:
    try:
        sid = engine.inbox.subtask_for_token(token)
        sub = engine.store.sub_fields(sid)
        run = engine.store.run_fields(sub["run_id"])
    except NotFound:
        return not_found_page("This chat link is not valid. Check that you copied the whole link.")
    messages = chat_view(engine, sid)
    title = engine.definition_of(run).name
    name = sub.get("name") or sub["participant_id"]
    return html(pages.chat_page(token, title, name, sub["status"], messages, form_id=uuid.uuid4().hex))


@chat.post("/chat/{token}", include_in_schema=False)
def chat_form(token: str, engine: EngineDep, form: Annotated[dict[str, str] | None, Depends(form_fields)]
              ) -> Response:
    """The form works without JavaScript; its hidden ``id`` makes a re-submitted form count once."""
    if form is None:
        return not_found_page("This chat link is not valid. Check that you copied the whole link.")
    text = form.get("text", "")
    try:
        if text.strip():
            engine.inbox.post_web(token, text, (form.get("id") or "")[:128] or None)
    except NotFound:
        return not_found_page("This chat link is not valid. Check that you copied the whole link.")
    return RedirectResponse(f"/chat/{token}", status_code=303)


@chat.get("/chat/{token}/messages")
def chat_messages(token: str, engine: EngineDep, response: Response) -> list[dict[str, Any]]:
    """The conversation as ``{role, text, at}`` (roles: user, assistant, system)."""
    sid = engine.inbox.subtask_for_token(token)
    response.headers["Cache-Control"] = "no-store"
    return chat_view(engine, sid)


@chat.post("/chat/{token}/messages", status_code=202, responses={404: {"description": "no such chat"}},
           openapi_extra={"requestBody": {"required": True, "content": {
               "application/json": {"schema": ChatMessage.model_json_schema()}}}})
def post_chat_message(token: str, body: Annotated[ChatMessage, Depends(chat_message)], engine: EngineDep
                      ) -> ChatAccepted:
    """Stored (and queued) before the 202 goes back; the bot's reply follows in the conversation.

    Retrying safely: send the same ``id`` again (the chat page makes one per message and re-uses
    it when it sends again). A message whose 202 was lost (a timeout, a 503 while Redis was away
    after it was stored) is then recorded once; the answer says ``duplicate: true``.
    """
    iid, new = engine.inbox.post_web(token, body.text, body.id)
    return ChatAccepted(id=iid, duplicate=not new)


# -- REST API -------------------------------------------------------------------------
api = APIRouter(prefix="/api", dependencies=[Depends(require_token), Depends(storable_body)],
                responses={401: {"description": "missing or wrong bearer token"}})

DefinitionBody = Annotated[dict[str, Any], Body(description="a task definition (SPEC §3), as JSON")]
ObjectBody = Annotated[dict[str, Any], Body()]
RowsBody = Annotated[list[Any] | dict[str, Any], Body(description='row objects, or {"rows": [...]}')]


class RunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    data: dict[str, Any] = Field(default_factory=dict, description="gathered data the run starts with")


class TriggerRequest(RunRequest):
    task_definition_id: str
    callback_url: HttpUrl | None = Field(None, description="gets the run's result when it ends (SPEC §11)")


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


IdempotencyKey = Annotated[str | None, Header(
    alias="Idempotency-Key", description="a key of your own (1-255 visible ASCII characters): a request sent "
    "again with the same key starts no second run, it answers the first run's id (kept for a day)")]


def trigger(engine: Engine, response: Response, task_id: str, data: dict[str, Any] | None, kind: str,
            key: str | None) -> RunStarted:
    if key is None:
        return started(engine.runs.trigger(task_id, data, kind=kind), response)
    if not IDEMPOTENCY_KEY.match(key):
        raise BadParameter("header", "Idempotency-Key", "must be 1 to 255 visible ASCII characters")
    rid, new = trigger_once(engine, key, task_id, data, kind=kind)
    if not new:
        response.headers["Idempotent-Replayed"] = "true"
    return started(rid, response)


@api.post("/tasks/{task_id}/runs", status_code=202, tags=["runs"],
          responses={409: {"description": "the task is inactive, or the Idempotency-Key started another task"}})
def start_run(task_id: str, engine: EngineDep, response: Response,
              body: Annotated[RunRequest | None, Body()] = None, idempotency_key: IdempotencyKey = None
              ) -> RunStarted:
    """Start a run of the task; retry safely with the same ``Idempotency-Key``."""
    return trigger(engine, response, task_id, body.data if body else None, "api", idempotency_key)


@api.post("/trigger", status_code=202, tags=["runs"],
          responses={409: {"description": "the task is inactive, or the Idempotency-Key started another task"}})
def web_trigger(body: TriggerRequest, engine: EngineDep, response: Response,
                idempotency_key: IdempotencyKey = None) -> RunStarted:
    """The Web Trigger: start a run of ``task_definition_id`` with ``data``.

    Retrying safely: a caller that got no answer (a timeout, a 503) sends the request again
    with the same ``Idempotency-Key`` header; it gets the same ``run_id`` and no second run.
    """
    return trigger(engine, response, body.task_definition_id, body.data, "web", idempotency_key)


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


class ScheduleRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    task_id: str
    cron: str = Field(description='five fields: minute hour day-of-month month day-of-week, e.g. "0 9 * * MON"')
    timezone: str = Field("UTC", description="an IANA time zone, e.g. Europe/Paris")
    data: dict[str, Any] = Field(default_factory=dict, description="gathered data each run starts with")


@api.get("/schedules", tags=["schedules"])
def list_schedules(engine: EngineDep) -> list[dict[str, Any]]:
    return engine.schedules.all()


@api.post("/schedules", status_code=201, tags=["schedules"],
          responses={409: {"description": "the task is inactive"}})
def create_schedule(body: ScheduleRequest, engine: EngineDep) -> dict[str, Any]:
    """A cron schedule for a task: refused (422, ``cron`` named) unless five fields that fire some day."""
    return engine.schedules.create(body.task_id, body.cron, body.timezone, body.data)


@api.delete("/schedules/{schedule_id}", status_code=204, tags=["schedules"])
def delete_schedule(schedule_id: str, engine: EngineDep) -> Response:
    engine.schedules.delete(schedule_id)
    return Response(status_code=204)


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

    ``?token=`` (the API token) is asked for once: it sets an HttpOnly cookie and redirects to
    the same page without the token, so it does not linger in history (the access log redacts
    it). With no API token configured the dashboard is closed.
    """
    expected = configured_token(request.app.state.settings)
    if expected is None:  # closed like the API: the dashboard lists chat links, each a participant's credential
        return html(pages.message_page("Dashboard off", "Set TASKBOT_API_TOKEN, then open the dashboard once "
                                                        "with ?token=<API token>."), status_code=401)
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
class TaskbotApp(FastAPI):
    """FastAPI with one more layer outside all others: a refused body is not received to its end."""

    def build_middleware_stack(self) -> ASGIApp:
        return CloseWhenUnread(super().build_middleware_stack())


def create_app(engine: Engine | None = None, settings: Settings | None = None) -> FastAPI:
    """Build the app around an engine (tests pass theirs; ``taskbot serve`` builds one from settings)."""
    settings = settings or Settings()
    if engine is None:
        from .bootstrap import build_engine

        engine = build_engine(settings, announce=True)
    # Bodies over TASKBOT_MAX_BODY get 413 before they are parsed: FastAPI checks Content-Length first and
    # counts a chunked body as it arrives. The API gate answers 401 before any body is read.
    app = TaskbotApp(title="taskbot", description="Tasks that fan out to people, chase them and fan in.",
                     max_body_size=settings.max_body)
    app.state.engine = engine
    app.state.settings = settings
    for router in (health, chat, api, dashboard):
        app.include_router(router)
    mount_slack(app, engine, settings)
    mount_telegram(app, engine, settings)
    app.add_middleware(ApiTokenGate, settings=settings)
    redact_uvicorn_logs(settings)
    app.add_exception_handler(RequestValidationError, on_request_invalid)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(InvalidInput, on_invalid_input)
    app.add_exception_handler(NotFound, on_not_found)
    app.add_exception_handler(Conflict, on_conflict)
    app.add_exception_handler(redis.RedisError, on_redis_down)
    return app
