"""The one ASGI app (SPEC §8): health check and web chat here; the REST API (bot/api.py); the dashboard
(bot/dashboard.py).

The engine is synchronous (redis-py), so every route that touches Redis is a plain ``def``:
FastAPI runs those in its threadpool and the event loop never waits on Redis.
"""

import json
import re
import uuid
from typing import Annotated, Any
from urllib.parse import parse_qs

import redis
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field, ValidationError, field_validator
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp

from engine.bounds import check_value, printable
from engine.engine import Engine
from engine.errors import Conflict, InvalidInput, NotFound
from engine.views import chat_view

from . import pages, plugins
from .api import EngineDep, api
from .apidocs import mount_docs
from .dashboard import dashboard, is_dashboard_page
from .guards import ApiTokenGate, CloseWhenUnread, on_http_error, on_request_invalid
from .logs import redact_uvicorn_logs
from .pages import HTML_HEADERS
from .reconnect import UNAVAILABLE
from .sessions import COOKIE
from .settings import Settings
from .slack import mount_slack
from .telegram import mount_telegram

MAX_FORM_BYTES = 256 * 1024
DASHBOARD_COOKIE = COOKIE  # the dashboard's session cookie (bot/sessions.py)


# -- dependencies ---------------------------------------------------------------
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


#: While Redis is away every route that needs it answers 503 with this hint (also on /healthz);
#: the app reconnects by itself, so a client only has to retry. A retried chat POST with the same
#: ``id`` is stored once, which makes the retry safe even if the first attempt did reach Redis.
UNAVAILABLE_HEADERS = {"Retry-After": "1"}


def is_page(path: str) -> bool:
    """The routes a browser opens (dashboard, chat page and its no-JS form): they get an HTML 503."""
    return is_dashboard_page(path) or (path.startswith("/chat/") and not path.endswith("/messages"))


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
    messages = chat_view(engine.store, sid)
    title = engine.definition_of(run).name
    name = sub.get("name") or sub["participant_id"]
    return html(pages.chat_page(token, title, name, sub["status"], messages, form_id=uuid.uuid4().hex))


FIELD_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


@chat.post("/chat/{token}", include_in_schema=False)
def chat_form(token: str, engine: EngineDep, form: Annotated[dict[str, str] | None, Depends(form_fields)]
              ) -> Response:
    """The form works without JavaScript; its hidden ``id`` makes a re-submitted form count once."""
    if form is None:
        return not_found_page("This chat link is not valid. Check that you copied the whole link.")
    text = form.get("text", "")
    answers = form.get("answers") if FIELD_KEY.match(form.get("answers") or "") else None
    try:
        if text.strip():
            engine.inbox.post_web(token, text, (form.get("id") or "")[:128] or None, answers)
    except NotFound:
        return not_found_page("This chat link is not valid. Check that you copied the whole link.")
    return RedirectResponse(f"/chat/{token}", status_code=303)


@chat.get("/chat/{token}/messages", responses={404: {"description": "no such chat"}})
def chat_messages(token: str, engine: EngineDep, response: Response) -> list[dict[str, Any]]:
    """The conversation as ``{role, text, at}`` (roles: user, assistant, system); a message that asks a typed
    question has ``question`` (``{key, type, options}``), which the page shows as buttons or a date field."""
    sid = engine.inbox.subtask_for_token(token)
    response.headers["Cache-Control"] = "no-store"
    return chat_view(engine.store, sid)


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
    iid, new = engine.inbox.post_web(token, body.text, body.id, body.answers)
    return ChatAccepted(id=iid, duplicate=not new)


# -- the app ---------------------------------------------------------------------------------
class TaskbotApp(FastAPI):
    """FastAPI with one more layer outside all others: a refused body is not received to its end."""

    def build_middleware_stack(self) -> ASGIApp:
        return CloseWhenUnread(super().build_middleware_stack())


#: Routes plugins add (:func:`add_router`): a channel's webhook, say. Included by every app built after.
PLUGIN_ROUTERS: list[APIRouter] = []


def add_router(router: APIRouter) -> None:
    """Let a plugin serve routes of its own (a channel's inbound webhook) from the one HTTP app. Like every
    route but /api/*, they check their callers themselves (a provider's signature, a secret)."""
    if router not in PLUGIN_ROUTERS:
        PLUGIN_ROUTERS.append(router)


def create_app(engine: Engine | None = None, settings: Settings | None = None) -> FastAPI:
    """Build the app around an engine (tests pass theirs; ``taskbot serve`` builds one from settings)."""
    settings = settings or Settings()
    plugins.load(settings.plugins)  # their routes, when the engine was built elsewhere
    if engine is None:
        from .bootstrap import build_engine

        engine = build_engine(settings, announce=True)
    # Bodies over TASKBOT_MAX_BODY get 413 before they are parsed: FastAPI checks Content-Length first and
    # counts a chunked body as it arrives. The API gate answers 401 before any body is read.
    app = TaskbotApp(title="taskbot", description="Tasks that fan out to people, chase them and fan in.",
                     max_body_size=settings.max_body, docs_url=None, redoc_url=None)  # bot/apidocs.py has them
    app.state.engine = engine
    app.state.settings = settings
    for router in (health, chat, api, dashboard, *PLUGIN_ROUTERS):
        app.include_router(router)
    mount_docs(app)  # before /static: its files are under /static/apidocs
    app.mount("/static", StaticFiles(packages=[("bot", "static")]), name="static")  # the pages' CSS and JS
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
