"""What the web app checks before a route reads a request, and how refusals are worded (SPEC §8, §10).

FastAPI reads and parses a JSON body before it runs a route's dependencies, so a bearer-token
dependency alone would let an unauthenticated client make the server read (and parse) a large
body first. The API gate here answers 401 from the headers alone; the body size itself is
bounded by FastAPI's ``max_body_size`` (Content-Length checked first, chunked bodies counted as
they arrive), which sits outside this gate.
"""

from __future__ import annotations

import secrets
from typing import Any

import redis
from fastapi import Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine.access import Caller, admin
from engine.bounds import MAX_DEPTH, printable
from engine.tokens import PREFIX

from .reconnect import UNAVAILABLE
from .settings import Settings

CHALLENGE = {"WWW-Authenticate": "Bearer"}


def configured_token(settings: Settings) -> str | None:
    """An empty TASKBOT_API_TOKEN counts as none: an empty secret must never open the API."""
    token = settings.api_token.get_secret_value() if settings.api_token is not None else ""
    return token or None


def same_secret(given: str, expected: str) -> bool:
    return secrets.compare_digest(given.encode(), expected.encode())


def bearer_refusal(settings: Settings, authorization: str | None) -> str | None:
    """Why a request with this ``Authorization`` header may not use the API; None when it may."""
    expected = configured_token(settings)
    if expected is None:
        return "the API is off: set TASKBOT_API_TOKEN to use it"
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not same_secret(given.strip(), expected):
        return "missing or wrong bearer token"
    return None


#: Where :class:`ApiTokenGate` leaves who called, for the routes (``request.state.caller``).
CALLER_STATE = "caller"


def api_caller(settings: Settings, tokens: Any, authorization: str | None) -> Caller | str:
    """Who a request with this ``Authorization`` header is: the admin, a person, or why neither (a refusal).

    The admin's ``TASKBOT_API_TOKEN`` is compared in constant time; a person's token (``taskbot tokens
    create``) is looked up by its prefix and checked against its stored hash (``tokens``: the engine's
    :class:`~engine.tokens.Tokens`; it talks to Redis, so call this from a thread, never the loop).
    With no admin token configured the API is off for everyone, people's tokens included.
    """
    if configured_token(settings) is None:
        return "the API is off: set TASKBOT_API_TOKEN to use it"
    if bearer_refusal(settings, authorization) is None:
        return admin()
    scheme, _, given = (authorization or "").partition(" ")
    given = given.strip()
    if scheme.lower() == "bearer" and given.startswith(PREFIX):
        caller: Caller | None = tokens.caller(given)
        if caller is not None:
            return caller
    return "missing or wrong bearer token"


class ApiTokenGate:
    """ASGI middleware: ``/api/*`` without a token that opens it gets 401 before its body is read.

    The admin's token or a person's; who it is goes to ``request.state.caller`` for the routes.
    """

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path == "/api" or path.startswith("/api/"):
            headers = dict(scope.get("headers") or [])
            raw = headers.get(b"authorization")
            authorization = raw.decode("latin-1") if raw is not None else None
            caller: Caller | str = admin()  # the admin's token is compared here; a person's is looked up in Redis
            if bearer_refusal(self.settings, authorization) is not None:
                try:
                    caller = await run_in_threadpool(api_caller, self.settings, scope["app"].state.engine.tokens,
                                                     authorization)
                except redis.RedisError:  # the look-up needs Redis: a 503 to retry, as every route answers, not a 500
                    response = JSONResponse({"detail": UNAVAILABLE}, status_code=503, headers={"Retry-After": "1"})
                    await response(scope, receive, send)
                    return
            if isinstance(caller, str):
                response = JSONResponse({"detail": caller}, status_code=401, headers=CHALLENGE)
                await response(scope, receive, send)
                return
            scope.setdefault("state", {})[CALLER_STATE] = caller
        await self.app(scope, receive, send)


class CloseWhenUnread:
    """ASGI middleware: a response sent before the request body was read closes the connection.

    Otherwise the server reads the rest of a refused body (a 401, a 413) to its end, only to keep
    the connection for a next request: 300 MB would still be received. ``Connection: close``
    makes uvicorn close it once the answer is sent, so the client's upload stops there.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length", b"0")
        unread = b"transfer-encoding" in headers or not (length.isdigit() and int(length) == 0)

        async def receiving() -> Message:
            nonlocal unread
            message = await receive()
            if message["type"] == "http.request" and not message.get("more_body", False):
                unread = False
            return message

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start" and unread:
                message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        await self.app(scope, receiving, sending)


def _detail(error: dict[str, Any]) -> dict[str, Any]:
    """One of pydantic's errors without ``input`` (never echo a body back) and safe to encode."""
    return {"type": error.get("type", "value_error"), "loc": [printable(str(p)) if isinstance(p, str) else p
                                                              for p in error.get("loc", ())],
            "msg": printable(str(error.get("msg", "")))}


def field_of(loc: list[Any]) -> str:
    """``["body", "template", "fields", 0, "key"]`` → ``template.fields[0].key`` (what InvalidInput names)."""
    out = ""
    for part in loc[1:] if loc and loc[0] in ("body", "query", "path", "header") else loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or (str(loc[0]) if loc else "body")


async def on_request_invalid(request: Request, exc: Exception) -> JSONResponse:
    """422 naming the field, like FastAPI's own, but without the ``input`` it would echo back."""
    assert isinstance(exc, RequestValidationError)
    detail = [_detail(e) for e in exc.errors()]
    return JSONResponse({"detail": detail, "field": field_of(detail[0]["loc"]) if detail else "body"},
                        status_code=422)


METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route of the app takes at this path (what ``Allow`` on a 405 must list).

    Starlette's own 405 lists the methods of the first route whose path matched, so a path with
    one route per method (``GET``, ``PUT`` and ``DELETE /api/tasks/{id}``) got ``Allow: GET, HEAD``.
    """
    routes = request.app.router.routes
    return [m for m in METHODS
            if any(route.matches({**request.scope, "method": m})[0] == Match.FULL for route in routes)]


async def on_http_error(request: Request, exc: Exception) -> Response:
    """FastAPI's 400 "error parsing the body" said plainly when we know why (too deep, not UTF-8); a 405's
    ``Allow`` listing every method the path takes."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        allowed = allowed_methods(request)
        return await http_exception_handler(request, HTTPException(405, exc.detail, headers={
            **(exc.headers or {}), "Allow": ", ".join(allowed)}))
    cause = exc.__cause__
    if exc.status_code == 400 and isinstance(cause, RecursionError):
        reason = f"JSON nested deeper than {MAX_DEPTH} levels"
        return JSONResponse({"detail": [{"type": "value_error", "loc": ["body"], "msg": reason}], "field": "body"},
                            status_code=422)
    if exc.status_code == 400 and isinstance(cause, ValueError):  # e.g. UnicodeDecodeError
        return JSONResponse({"detail": [{"type": "value_error", "loc": ["body"],
                                         "msg": "the body cannot be read as JSON (is it UTF-8?)"}], "field": "body"},
                            status_code=400)
    return await http_exception_handler(request, exc)
