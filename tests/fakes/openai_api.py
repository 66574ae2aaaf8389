"""An OpenAI-compatible API on 127.0.0.1, for tests: real HTTP, OpenAI's JSON, scripted per test.

``FakeOpenAI`` answers ``POST /v1/chat/completions`` from a queue of scripted replies (text,
tool calls, an HTTP error such as 429 or 500), falling back to a ``responder`` function (or a
plain "OK") when the queue is empty, and ``POST /v1/images/generations`` when images are on.
It records every request with its start and end time and how many were in flight at once, so
a test can check concurrency limits from the provider's side.

Usage figures follow OpenAI's shape; ``prompt_tokens`` is the request's messages and tool
definitions at four characters a token (the usual rule of thumb), so history bounds show up.
Prompt caching works as OpenAI's automatic one does: the longest prefix of a request (its tool
definitions, then its messages, whole) sent before in an earlier request is read from the cache
when it is at least ``cache_min_tokens`` (1,024, OpenAI's minimum) and counted in steps of 128
tokens past it, reported as ``usage.prompt_tokens_details.cached_tokens``.
"""

from __future__ import annotations

import base64
import itertools
import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.fakes import serve, shut

#: A 1x1 transparent PNG: what the fake "generates" for an image request.
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=")


@dataclass
class Reply:
    """One scripted answer: text, tool calls ``[(name, arguments)]``, or an HTTP error ``status``."""

    text: str | None = None
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    status: int = 200
    retry_after: float | None = None
    delay: float = 0.0


@dataclass
class Request:
    path: str
    body: dict[str, Any]
    started: float
    ended: float = 0.0
    in_flight: int = 1
    status: int = 200
    cached_tokens: int = 0  # what the reply reported as read from the prompt cache

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages", []))

    @property
    def tool_names(self) -> list[str]:
        return [t["function"]["name"] for t in self.body.get("tools", [])]

    @property
    def system(self) -> str:
        return "\n".join(str(m.get("content")) for m in self.messages if m["role"] == "system")

    @property
    def last(self) -> dict[str, Any]:
        return self.messages[-1]


def text(value: str) -> Reply:
    return Reply(text=value)


def call(name: str, **arguments: Any) -> Reply:
    return Reply(tool_calls=[(name, arguments)])


def calls(*pairs: tuple[str, dict[str, Any]]) -> Reply:
    return Reply(tool_calls=list(pairs))


def error(status: int, retry_after: float | None = None) -> Reply:
    return Reply(status=status, retry_after=retry_after)


def tokens(value: Any) -> int:
    return math.ceil(len(json.dumps(value, ensure_ascii=False)) / 4)


@dataclass
class FakeOpenAI:
    api_key: str = "sk-test-key"
    responder: Callable[[Request], Reply] | None = None
    delay: float = 0.0
    images: bool = False
    requests: list[Request] = field(default_factory=list)
    max_in_flight: int = 0
    cache_min_tokens: int = 1024
    _prefixes: set[str] = field(default_factory=set)
    _queue: list[Reply] = field(default_factory=list)
    _in_flight: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))
    _server: ThreadingHTTPServer | None = None

    # -- set-up -----------------------------------------------------------------------------
    def start(self) -> FakeOpenAI:
        self._server = serve(self._handle, "fake-openai", protocol_version="HTTP/1.1")
        return self

    def stop(self) -> None:
        shut(self._server)

    @property
    def api_base(self) -> str:
        """What an assistant's ``api_base`` (or ``OPENAI_API_BASE``) points at."""
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def script(self, *replies: Reply) -> None:
        """Queue replies, answered in order by the next chat completion requests."""
        with self._lock:
            self._queue.extend(replies)

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    def chats(self) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.path.endswith("/chat/completions")]

    # -- the server ---------------------------------------------------------------------------
    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        if request.command == "GET" and request.path.startswith("/files/"):
            # where an image's `url` points (OpenAI's default response format): the PNG itself
            request.send_response(200)
            request.send_header("Content-Type", "image/png")
            request.send_header("Content-Length", str(len(PNG)))
            request.end_headers()
            request.wfile.write(PNG)
            return
        length = int(request.headers.get("Content-Length") or 0)
        body = json.loads(request.rfile.read(length) or b"{}")
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            record = Request(request.path, body, time.time(), in_flight=self._in_flight)
            self.requests.append(record)
        try:
            status, payload, headers = self._answer(record)
            record.status = status
            self._send(request, status, payload, headers)
        finally:
            with self._lock:
                self._in_flight -= 1
                record.ended = time.time()

    def _answer(self, record: Request) -> tuple[int, dict[str, Any], dict[str, str]]:
        if record.path.rstrip("/").endswith("/images/generations"):
            if not self.images:
                return 404, {"error": {"message": "images are not supported by this model",
                                       "type": "invalid_request_error", "code": "not_found"}}, {}
            # OpenAI answers with a short-lived URL unless `response_format: b64_json` is asked for
            if record.body.get("response_format") == "b64_json":
                item = {"b64_json": base64.b64encode(PNG).decode()}
            else:
                assert self._server is not None
                item = {"url": f"http://127.0.0.1:{self._server.server_address[1]}/files/{next(self._ids)}.png"}
            return 200, {"created": int(time.time()), "data": [{**item, "revised_prompt": "an image"}]}, {}
        if not record.path.rstrip("/").endswith("/chat/completions"):
            return 404, {"error": {"message": f"no route {record.path}", "type": "invalid_request_error"}}, {}
        with self._lock:
            reply = self._queue.pop(0) if self._queue else None
        if reply is None:
            reply = self.responder(record) if self.responder else Reply(text="OK")
        time.sleep(reply.delay or self.delay)
        if reply.status != 200:
            headers = {"Retry-After": f"{reply.retry_after:g}"} if reply.retry_after is not None else {}
            kind = "rate_limit_exceeded" if reply.status == 429 else "server_error"
            return reply.status, {"error": {"message": f"fake {reply.status}", "type": kind, "code": kind}}, headers
        n = next(self._ids)
        message: dict[str, Any] = {"role": "assistant", "content": reply.text}
        if reply.tool_calls:
            message["tool_calls"] = [
                {"id": f"call_{n}_{i}", "type": "function",
                 "function": {"name": name, "arguments": json.dumps(args)}}
                for i, (name, args) in enumerate(reply.tool_calls)]
        prompt = tokens(record.body.get("messages", [])) + tokens(record.body.get("tools", []))
        cached = record.cached_tokens = self._cached(record.body)
        completion = tokens(message)
        return 200, {
            "id": f"chatcmpl-{n}", "object": "chat.completion", "created": int(time.time()),
            "model": record.body.get("model", "fake"),
            "choices": [{"index": 0, "message": message,
                         "finish_reason": "tool_calls" if reply.tool_calls else "stop"}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                      "total_tokens": prompt + completion, "prompt_tokens_details": {"cached_tokens": cached}},
        }, {}

    def _cached(self, body: dict[str, Any]) -> int:
        """The tokens of the longest whole-item prefix an earlier request sent, as OpenAI counts cache hits."""
        items = [body.get("tools", []), *body.get("messages", [])]
        hit, size = 0, 0
        with self._lock:
            for i, item in enumerate(items):
                size += tokens(item)
                key = json.dumps(items[:i + 1], sort_keys=True)
                if key in self._prefixes:
                    hit = size
                self._prefixes.add(key)
        if hit < self.cache_min_tokens:
            return 0
        return self.cache_min_tokens + (hit - self.cache_min_tokens) // 128 * 128

    @staticmethod
    def _send(request: BaseHTTPRequestHandler, status: int, payload: dict[str, Any],
              headers: dict[str, str]) -> None:
        data = json.dumps(payload).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        for k, v in headers.items():
            request.send_header(k, v)
        request.end_headers()
        request.wfile.write(data)
