"""Telegram's side of the wire, for tests: a fake Bot API on 127.0.0.1, and a sender of webhook updates.

``FakeTelegram`` answers the Bot API methods taskbot uses (``getMe``, ``sendMessage``,
``FakeTelegram`` answers the Bot API methods taskbot uses (``getMe``, ``sendMessage``,
``answerCallbackQuery``, ``editMessageReplyMarkup``, ``setWebhook``, ``deleteWebhook``, ``getUpdates``,
``getFile``) with the Bot API's JSON shapes at ``/bot<token>/<method>``, serves the files added with
``add_file`` at ``/file/bot<token>/<file_path>`` as Telegram does, reads form-encoded (python-telegram-bot's
way) and JSON bodies, and records every call with the time it arrived. Like Telegram, it answers
``sendMessage`` with a 429 and ``parameters.retry_after`` past its flood limits: more than ``rate``
messages in any second (30) or ``chat_rate`` to one chat (1); it counts those refusals
(``flood_refusals``). A test can also make it refuse one chat (403, as when the person blocked the
bot) or rate-limit it, and can queue updates for ``getUpdates`` (long polling). ``TelegramSender``
posts updates to the app's webhook; ``edited_update`` and ``callback_update`` make the updates of an
edit and of a button pressed.
"""

from __future__ import annotations

import itertools
import json
import math
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from tests.fakes import serve, shut

BOT = {"id": 7000001, "is_bot": True, "first_name": "taskbot", "username": "taskbot_test_bot",
       "can_join_groups": False, "can_read_all_group_messages": False, "supports_inline_queries": False}
#: Fields python-telegram-bot JSON-encodes inside its form bodies.
JSON_FIELDS = frozenset({"reply_parameters", "allowed_updates", "reply_markup", "entities", "link_preview_options"})


@dataclass
class Call:
    method: str
    args: dict[str, Any]
    at: float
    status: int = 200


@dataclass
class Refusal:
    status: int
    description: str
    retry_after: int | None = None


@dataclass
class FakeTelegram:
    token: str = "123456:TEST-token"
    #: Telegram's flood limits: messages of the bot in any second, and to one chat in any second.
    rate: float = 30
    chat_rate: float = 1
    calls: list[Call] = field(default_factory=list)
    flood_refusals: int = 0
    webhook: dict[str, Any] = field(default_factory=dict)
    #: set to a description to make setWebhook answer 400 with it (Telegram wants an HTTPS URL, ...)
    webhook_refusal: str | None = None
    _refusals: dict[str, list[Refusal]] = field(default_factory=dict)
    _blocked: dict[str, str] = field(default_factory=dict)
    _updates: list[dict[str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _arrived: threading.Condition = field(default_factory=threading.Condition)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))
    _sent_at: deque[float] = field(default_factory=deque)
    _chat_sent_at: defaultdict[str, deque[float]] = field(default_factory=lambda: defaultdict(deque))
    _server: ThreadingHTTPServer | None = None
    #: file_id -> (file_path, bytes): what getFile tells and the file URL serves
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)

    # -- set-up --------------------------------------------------------------------------------
    def start(self) -> FakeTelegram:
        self._server = serve(self._handle, "fake-telegram")
        return self

    def stop(self) -> None:
        shut(self._server)

    @property
    def api_url(self) -> str:
        """What TASKBOT_TELEGRAM_API_URL points at (python-telegram-bot's ``base_url``)."""
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/bot"

    def add_file(self, file_id: str, data: bytes, file_path: str) -> dict[str, Any]:
        """Serve ``data`` as ``file_id``; the file fields a message carries for it (file_id, unique id, size)."""
        self.files[file_id] = (file_path, data)
        return {"file_id": file_id, "file_unique_id": f"u-{file_id}", "file_size": len(data)}

    # -- scripting -----------------------------------------------------------------------------------
    def block(self, chat_id: int | str, description: str = "Forbidden: bot was blocked by the user") -> None:
        """Every sendMessage to ``chat_id`` gets a 403 from now on."""
        self._blocked[str(chat_id)] = description

    def rate_limit(self, chat_id: int | str, retry_after: int, times: int = 1) -> None:
        """The next ``times`` sendMessage calls to ``chat_id`` get a 429 with ``parameters.retry_after``."""
        refusal = Refusal(429, f"Too Many Requests: retry after {retry_after}", retry_after)
        self._refusals.setdefault(str(chat_id), []).extend([refusal] * times)

    def queue_update(self, update: dict[str, Any]) -> None:
        """Hand ``update`` to the next getUpdates (long polling)."""
        with self._arrived:
            self._updates.append(update)
            self._arrived.notify_all()

    # -- what was received -----------------------------------------------------------------------------
    def calls_to(self, method: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method]

    def sent(self, chat_id: int | str | None = None) -> list[dict[str, Any]]:
        """The messages that went through (as the Bot API returned them), optionally to one chat."""
        # with "result": answered, not still in flight
        return [c.args["result"] for c in self.calls_to("sendMessage") if c.status == 200 and "result" in c.args
                and (chat_id is None or str(c.args["chat_id"]) == str(chat_id))]

    def texts(self, chat_id: int | str) -> list[str]:
        return [m["text"] for m in self.sent(chat_id)]

    # -- the server -----------------------------------------------------------------------------------------
    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        arrived = time.time()
        url = urlsplit(request.path)
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length).decode() if length else ""
        args: dict[str, Any] = dict(parse_qsl(url.query))
        if "json" in (request.headers.get("Content-Type") or ""):
            args.update(json.loads(raw or "{}"))
        elif raw:
            args.update({k: json.loads(v) if k in JSON_FIELDS else v for k, v in parse_qsl(raw)})
        if url.path.startswith("/file/bot"):
            return self._file(request, url.path)
        token, _, method = url.path.removeprefix("/bot").partition("/")
        call = Call(method, args, arrived)
        with self._lock:
            self.calls.append(call)
        if token != self.token:
            call.status = 401
            return self._send(request, 401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
        refusal = self._refusal(method, args, arrived)
        if refusal is not None:
            call.status = refusal.status
            body: dict[str, Any] = {"ok": False, "error_code": refusal.status, "description": refusal.description}
            if refusal.retry_after is not None:
                body["parameters"] = {"retry_after": refusal.retry_after}
            return self._send(request, refusal.status, body)
        result = self._answer(method, args)
        if result is None:
            call.status = 404
            return self._send(request, 404, {"ok": False, "error_code": 404, "description": "Not Found"})
        if isinstance(result, Refusal):
            call.status = result.status
            return self._send(request, result.status,
                              {"ok": False, "error_code": result.status, "description": result.description})
        args["result"] = result
        self._send(request, 200, {"ok": True, "result": result})

    def _file(self, request: BaseHTTPRequestHandler, path: str) -> None:
        token, _, file_path = path.removeprefix("/file/bot").partition("/")
        with self._lock:
            self.calls.append(Call("file", {"file_path": file_path}, time.time()))
        found = [data for fp, data in self.files.values() if fp == file_path]
        if token != self.token or not found:
            return self._send(request, 404, {"ok": False, "error_code": 404, "description": "Not Found"})
        request.send_response(200)
        request.send_header("Content-Type", "application/octet-stream")
        request.send_header("Content-Length", str(len(found[0])))
        request.end_headers()
        request.wfile.write(found[0])
        return None

    def _refusal(self, method: str, args: dict[str, Any], now: float) -> Refusal | None:
        if method != "sendMessage":
            return None
        chat = str(args.get("chat_id"))
        with self._lock:
            if chat in self._blocked:
                return Refusal(403, self._blocked[chat])
            scripted = self._refusals.get(chat)
            if scripted:
                return scripted.pop(0)
            wait = max(self._window_wait(self._sent_at, self.rate, now),
                       self._window_wait(self._chat_sent_at[chat], self.chat_rate, now))
            if wait > 0:
                self.flood_refusals += 1
                seconds = max(1, math.ceil(wait))
                return Refusal(429, f"Too Many Requests: retry after {seconds}", seconds)
            self._sent_at.append(now)
            self._chat_sent_at[chat].append(now)
            return None

    @staticmethod
    def _window_wait(times: deque[float], rate: float, now: float) -> float:
        """Seconds until one more message fits ``rate`` a second (whole messages in a window, as Telegram counts)."""
        limit = max(1, math.floor(rate))
        window = limit / rate
        while times and times[0] <= now - window:
            times.popleft()
        return times[len(times) - limit] + window - now if len(times) >= limit else 0.0

    def _answer(self, method: str, a: dict[str, Any]) -> Any:
        if method == "getMe":
            return BOT
        if method == "sendMessage":
            text = str(a.get("text") or "")
            if not text:
                return Refusal(400, "Bad Request: message text is empty")
            if len(text.encode("utf-16-le")) // 2 > 4096:  # Telegram counts UTF-16 code units
                return Refusal(400, "Bad Request: message is too long")
            chat = int(a["chat_id"])
            message: dict[str, Any] = {"message_id": next(self._ids), "date": int(time.time()), "text": text,
                                       "from": {k: BOT[k] for k in ("id", "is_bot", "first_name", "username")},
                                       "chat": {"id": chat, "type": "private", "first_name": f"user{chat}"}}
            if a.get("reply_markup"):  # Telegram hands the keyboard back with the message
                message["reply_markup"] = a["reply_markup"]
            replied = a.get("reply_parameters") or ({"message_id": int(a["reply_to_message_id"])}
                                                    if a.get("reply_to_message_id") else None)
            if replied:
                message["reply_to_message"] = {"message_id": int(replied["message_id"]), "date": message["date"],
                                               "chat": message["chat"]}
            return message
        if method == "answerCallbackQuery":
            if not a.get("callback_query_id"):
                return Refusal(400, "Bad Request: query is too old and response timeout expired or query ID is invalid")
            return True
        if method == "editMessageReplyMarkup":
            sent = [m for m in self.sent(a.get("chat_id")) if str(m["message_id"]) == str(a.get("message_id"))]
            if not sent:
                return Refusal(400, "Bad Request: message to edit not found")
            edited = {k: v for k, v in sent[-1].items() if k != "reply_markup"}
            if a.get("reply_markup"):
                edited["reply_markup"] = a["reply_markup"]
            return {**edited, "edit_date": int(time.time())}
        if method == "getFile":
            if str(a.get("file_id")) not in self.files:
                return Refusal(400, "Bad Request: invalid file_id")
            file_path, data = self.files[str(a["file_id"])]
            return {"file_id": a["file_id"], "file_unique_id": f"u-{a['file_id']}", "file_size": len(data),
                    "file_path": file_path}
        if method == "setWebhook":
            if self.webhook_refusal:
                return Refusal(400, self.webhook_refusal)
            self.webhook = {k: v for k, v in a.items() if k != "result"}
            return True
        if method == "deleteWebhook":
            self.webhook = {}
            return True
        if method == "getWebhookInfo":
            return {"url": self.webhook.get("url", ""), "has_custom_certificate": False, "pending_update_count": 0}
        if method == "getUpdates":
            if self.webhook:
                return Refusal(409, "Conflict: can't use getUpdates method while webhook is active")
            offset = int(a.get("offset") or 0)
            wait = min(float(a.get("timeout") or 0), 0.5)  # Telegram may answer early; tests should not wait
            with self._arrived:
                self._updates = [u for u in self._updates if u["update_id"] >= offset]
                if not self._updates and wait:
                    self._arrived.wait(wait)
                return list(self._updates[:int(a.get("limit") or 100)])
        return None

    @staticmethod
    def _send(request: BaseHTTPRequestHandler, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)


def message_update(update_id: int, chat_id: int, text: str, *, reply_to: int | None = None,
                   first_name: str = "Pat", chat_type: str = "private", is_bot: bool = False) -> dict[str, Any]:
    """An Update carrying a person's text message, as Telegram sends it."""
    now = int(time.time())
    chat = {"id": chat_id, "type": chat_type, "first_name": first_name}
    message: dict[str, Any] = {"message_id": 100000 + update_id, "date": now, "chat": chat, "text": text,
                               "from": {"id": chat_id, "is_bot": is_bot, "first_name": first_name}}
    if text.startswith("/"):
        message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
    if reply_to is not None:
        message["reply_to_message"] = {"message_id": reply_to, "date": now, "text": "…",
                                       "chat": {"id": chat_id, "type": chat_type},
                                       "from": {k: BOT[k] for k in ("id", "is_bot", "first_name", "username")}}
    return {"update_id": update_id, "message": message}


def edited_update(update_id: int, chat_id: int, message_id: int, text: str, *,
                  first_name: str = "Pat") -> dict[str, Any]:
    """An Update telling that the person edited their message ``message_id`` to ``text``."""
    now = int(time.time())
    message = {"message_id": message_id, "date": now - 60, "edit_date": now, "text": text,
               "chat": {"id": chat_id, "type": "private", "first_name": first_name},
               "from": {"id": chat_id, "is_bot": False, "first_name": first_name}}
    return {"update_id": update_id, "edited_message": message}


def callback_update(update_id: int, chat_id: int, message: dict[str, Any], data: str, *,
                    first_name: str = "Pat") -> dict[str, Any]:
    """An Update telling that the person pressed the inline button ``data`` under the bot's ``message``."""
    return {"update_id": update_id, "callback_query": {
        "id": f"cbq-{update_id}", "chat_instance": f"ci-{chat_id}", "data": data, "message": message,
        "from": {"id": chat_id, "is_bot": False, "first_name": first_name}}}


class TelegramSender:
    """Posts updates to ``{base}/telegram/webhook`` as Telegram would, with the secret token header."""

    def __init__(self, base: str, secret: str | None) -> None:
        self.client = httpx.Client(base_url=base, timeout=30)
        self.secret = secret
        self._ids = itertools.count(500001)

    def close(self) -> None:
        self.client.close()

    def post(self, update: dict[str, Any], *, secret: str | None = None, send_secret: bool = True) -> httpx.Response:
        """POST one update; ``secret`` sends a wrong one, ``send_secret=False`` none at all."""
        headers = {"Content-Type": "application/json"}
        if send_secret:
            headers["X-Telegram-Bot-Api-Secret-Token"] = secret if secret is not None else str(self.secret)
        return self.client.post("/telegram/webhook", content=json.dumps(update).encode(), headers=headers)

    def says(self, chat_id: int, text: str, *, reply_to: int | None = None, update_id: int | None = None,
             **options: Any) -> httpx.Response:
        """The person in private chat ``chat_id`` sends ``text`` (as a reply to message ``reply_to``)."""
        update = message_update(update_id or next(self._ids), chat_id, text, reply_to=reply_to)
        return self.post(update, **options)
