"""Slack's side of the wire, for tests: a fake Web API on 127.0.0.1, and a sender of signed requests.

``FakeSlack`` answers the Web API methods taskbot uses with Slack's JSON shapes, records every
call (and every POST to a ``response_url``), and can be told to fail the next call of a method
(an error, or a 429 with ``Retry-After``). Like Slack, it rate-limits: each method to its tier's
calls in any minute (Tier 2: 20, Tier 3: 50, Tier 4: 100), ``chat.postMessage`` to ``channel_rate``
a second per channel (1) and ``post_rate`` a second in all (the workspace's limit, 5 unless set),
answering HTTP 429 with ``Retry-After`` beyond them and counting those (``limited``).
``users.list`` pages with ``limit`` and ``cursor``; ``users.info`` and ``conversations.info`` answer from
the users and channels added. Files added with ``add_file`` are served at their ``url_private``, as
files.slack.com does: to the bot token only (anything else gets Slack's HTML sign-in page).
``SlackSender`` posts to the app what Slack would: events, slash commands and modal submissions,
signed with the signing secret.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import itertools
import json
import math
import queue
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx

from tests.fakes import serve, shut

BOT_USER = "U_BOT"
BOT_ID = "B_BOT"
TEAM = "T_TEST"
#: Each method's tier, from its "Rate limits" fact in Slack's reference (the fake's own table, not taskbot's).
TIERS = {"users.list": 2, "users.lookupByEmail": 3, "conversations.open": 3, "chat.update": 3, "users.info": 4,
         "conversations.info": 3, "views.open": 4, "views.update": 4, "views.push": 4, "chat.postEphemeral": 4}


@dataclass
class Call:
    method: str
    args: dict[str, Any]
    at: float
    status: int = 200


@dataclass
class Scripted:
    status: int = 200
    error: str | None = None
    retry_after: int | None = None


@dataclass
class FakeSlack:
    token: str = "xoxb-test-token"
    app_token: str = "xapp-test-token"
    #: Slack's limits: calls a minute per tier; chat.postMessage a second in the workspace and per channel.
    tiers: dict[int, float] = field(default_factory=lambda: {2: 20, 3: 50, 4: 100})
    post_rate: float = 5
    channel_rate: float = 1
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: public channels by name (without '#') -> id; a post may name a channel by either
    channels: dict[str, str] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    limited: int = 0
    responses: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    _script: dict[str, list[Scripted | None]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ts: itertools.count = field(default_factory=lambda: itertools.count(1))
    _server: ThreadingHTTPServer | None = None
    _socket: Any = None
    _outbox: queue.Queue[str] = field(default_factory=queue.Queue)
    acks: dict[str, dict[str, Any]] = field(default_factory=dict)
    _windows: defaultdict[str, deque[float]] = field(default_factory=lambda: defaultdict(deque))
    #: files served at /files-pri/{team}-{id}/{name}: path -> (bytes, mimetype)
    files: dict[str, tuple[bytes, str]] = field(default_factory=dict)

    # -- set-up ----------------------------------------------------------------------------
    def start(self) -> FakeSlack:
        self._server = serve(self._handle, "fake-slack")
        return self

    def stop(self) -> None:
        shut(self._server)
        if self._socket is not None:
            self._socket.shutdown()

    # -- Socket Mode: apps.connections.open hands out this WebSocket ---------------------------------
    def start_socket_mode(self) -> None:
        from websockets.exceptions import ConnectionClosed
        from websockets.sync.server import serve

        def session(ws: Any) -> None:
            ws.send(json.dumps({"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A_TEST"}}))
            try:
                while True:
                    with contextlib.suppress(queue.Empty):
                        ws.send(self._outbox.get_nowait())
                    with contextlib.suppress(TimeoutError):
                        ack = json.loads(ws.recv(timeout=0.02))
                        with self._lock:
                            self.acks[ack["envelope_id"]] = ack
            except ConnectionClosed:
                return

        self._socket = serve(session, "127.0.0.1", 0, compression=None)
        threading.Thread(target=self._socket.serve_forever, name="fake-slack-socket", daemon=True).start()

    def push(self, kind: str, payload: dict[str, Any]) -> str:
        """Send an envelope (``events_api``, ``slash_commands``, ``interactive``) down the socket; its id."""
        envelope_id = f"env-{next(self._ts)}"
        self._outbox.put(json.dumps({"envelope_id": envelope_id, "type": kind, "payload": payload,
                                     "accepts_response_payload": kind != "events_api", "retry_attempt": 0}))
        return envelope_id

    def ack_of(self, envelope_id: str, timeout: float = 10) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if envelope_id in self.acks:
                    return self.acks[envelope_id]
            time.sleep(0.02)
        raise AssertionError(f"no ack for {envelope_id}")

    @property
    def base(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def api_url(self) -> str:
        """What TASKBOT_SLACK_API_URL points at (slack_sdk's ``base_url``)."""
        return f"{self.base}/api/"

    def response_url(self, name: str) -> str:
        return f"{self.base}/response/{name}"

    def add_user(self, uid: str, email: str | None = None, name: str | None = None) -> None:
        real = name or uid
        self.users[uid] = {"id": uid, "team_id": TEAM, "name": real.lower().replace(" ", "."), "real_name": real,
                           "deleted": False, "is_bot": False,
                           "profile": {"real_name": real, "display_name": real, **({"email": email} if email else {})}}

    def add_channel(self, name: str, channel_id: str) -> None:
        self.channels[name] = channel_id

    def add_file(self, fid: str, name: str, data: bytes, mimetype: str = "application/octet-stream",
                 *, user: str = "U111") -> dict[str, Any]:
        """Serve ``data`` as file ``fid``; the ``files[]`` object a message event carries for it."""
        path = f"/files-pri/{TEAM}-{fid}/{name}"
        self.files[path] = (data, mimetype)
        return {"id": fid, "created": int(time.time()), "timestamp": int(time.time()), "name": name, "title": name,
                "mimetype": mimetype, "filetype": name.rpartition(".")[2], "user": user, "editable": False,
                "size": len(data), "mode": "hosted", "is_external": False, "external_type": "", "is_public": False,
                "public_url_shared": False, "display_as_bot": False, "username": "",
                "url_private": f"{self.base}{path}",
                "url_private_download": f"{self.base}/files-pri/{TEAM}-{fid}/download/{name}",
                "permalink": f"https://test.slack.com/files/{user}/{fid}/{name}", "has_rich_preview": False}

    def fail_next(self, method: str, *, error: str | None = None, status: int = 200,
                  retry_after: int | None = None, times: int = 1, after: int = 0) -> None:
        """Make the next ``times`` calls of ``method`` fail (once ``after`` more have gone through): ``error``
        (ok: false) or HTTP ``status``."""
        self._script.setdefault(method, []).extend([None] * after + [Scripted(status, error, retry_after)] * times)

    # -- what was received ----------------------------------------------------------------------
    def calls_to(self, method: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method]

    def posts(self, channel: str | None = None) -> list[dict[str, Any]]:
        """The chat.postMessage calls that went through, optionally to one channel."""
        return [c.args for c in self.calls_to("chat.postMessage")
                if c.status == 200 and "ts" in c.args and (channel is None or c.args["channel"] == channel)]

    def updates(self, channel: str | None = None) -> list[dict[str, Any]]:
        """The chat.update calls that went through (a clicked message redrawn)."""
        return [c.args for c in self.calls_to("chat.update")
                if c.status == 200 and (channel is None or c.args["channel"] == channel)]

    def replies(self, name: str) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.responses.get(name, []))

    # -- the server ----------------------------------------------------------------------------------
    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        url = urlsplit(request.path)
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length).decode() if length else ""
        if url.path.startswith("/response/"):
            with self._lock:
                self.responses.setdefault(url.path.rsplit("/", 1)[-1], []).append(json.loads(raw))
            return self._send(request, 200, "ok", content_type="text/plain")
        if url.path.startswith("/files-pri/"):
            return self._file(request, url.path)
        method = url.path.removeprefix("/api/")
        args: dict[str, Any] = dict(parse_qsl(url.query))
        if "json" in (request.headers.get("Content-Type") or ""):
            args.update(json.loads(raw or "{}"))
        elif raw:
            args.update(parse_qsl(raw))
        call = Call(method, args, time.time())
        with self._lock:
            self.calls.append(call)
            scripted = self._script.get(method, [])
            step = scripted.pop(0) if scripted else None
        token = self.app_token if method == "apps.connections.open" else self.token
        if request.headers.get("Authorization") != f"Bearer {token}":
            return self._send(request, 200, {"ok": False, "error": "invalid_auth"})
        if step is not None:
            call.status = step.status
            headers = {"Retry-After": str(step.retry_after)} if step.retry_after is not None else {}
            body = {"ok": False, "error": step.error or ("ratelimited" if step.status == 429 else "internal_error")}
            return self._send(request, step.status, body, headers=headers)
        wait = self._rate_limit(method, args, call.at)
        if wait > 0:
            call.status = 429
            return self._send(request, 429, {"ok": False, "error": "ratelimited"},
                              headers={"Retry-After": str(max(1, math.ceil(wait)))})
        self._send(request, 200, self._answer(method, args))

    def _file(self, request: BaseHTTPRequestHandler, path: str) -> None:
        with self._lock:
            self.calls.append(Call("files.download", {"path": path}, time.time()))
        found = self.files.get(path.replace("/download/", "/"))
        if request.headers.get("Authorization") != f"Bearer {self.token}":  # files.slack.com's sign-in page
            return self._send(request, 200, "<!DOCTYPE html><html>Sign in</html>", content_type="text/html")
        if found is None:
            return self._send(request, 404, "Not found", content_type="text/plain")
        data, mimetype = found
        request.send_response(200)
        request.send_header("Content-Type", mimetype)
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)
        return None

    def _rate_limit(self, method: str, a: dict[str, Any], now: float) -> float:
        """0 when the call is within Slack's limits (it is counted), else the seconds until it would be."""
        windows: list[tuple[str, int, float]] = []
        if method == "chat.postMessage":
            channel = str(a.get("channel", ""))
            channel = f"D{channel}" if channel in self.users else channel
            for name, rate in ((method, self.post_rate), (f"{method}:{channel}", self.channel_rate)):
                limit = max(1, math.floor(rate))
                windows.append((name, limit, limit / rate))
        elif method in TIERS:
            windows.append((method, max(1, int(self.tiers[TIERS[method]])), 60.0))
        with self._lock:
            wait = 0.0
            for name, limit, window in windows:
                times = self._windows[name]
                while times and times[0] <= now - window:
                    times.popleft()
                if len(times) >= limit:
                    wait = max(wait, times[len(times) - limit] + window - now)
            if wait > 0:
                self.limited += 1
                return wait
            for name, _, _ in windows:
                self._windows[name].append(now)
        return 0.0

    def _answer(self, method: str, a: dict[str, Any]) -> dict[str, Any]:
        ok: dict[str, Any] = {"ok": True}
        if method == "auth.test":
            return {**ok, "url": "https://test.slack.com/", "team": "Test", "user": "taskbot", "team_id": TEAM,
                    "user_id": BOT_USER, "bot_id": BOT_ID}
        if method == "apps.connections.open":
            if self._socket is None:
                return {"ok": False, "error": "not_allowed_token_type"}
            return {**ok, "url": f"ws://127.0.0.1:{self._socket.socket.getsockname()[1]}/link/?ticket=t"}
        if method == "conversations.open":
            uid = str(a.get("users", "")).split(",")[0]
            if uid not in self.users:
                return {"ok": False, "error": "user_not_found"}
            return {**ok, "channel": {"id": f"D{uid}"}}
        if method == "chat.postMessage":
            channel = str(a.get("channel", ""))
            channel = f"D{channel}" if channel in self.users else channel
            channel = self.channels.get(channel.removeprefix("#"), channel)
            if channel[1:] not in self.users and channel not in self.channels.values():
                return {"ok": False, "error": "channel_not_found"}
            if isinstance(a.get("blocks"), str):  # slack_sdk sends blocks as a JSON string in a form body
                a["blocks"] = json.loads(a["blocks"])
            ts = f"{1700000000 + next(self._ts)}.000100"
            a["ts"], a["channel"] = ts, channel
            message = {"type": "message", "user": BOT_USER, "bot_id": BOT_ID, "text": a.get("text"), "ts": ts}
            return {**ok, "channel": channel, "ts": ts, "message": message}
        if method == "chat.update":
            channel, ts = str(a.get("channel", "")), str(a.get("ts", ""))
            posted = [c.args for c in self.calls if c.method == "chat.postMessage" and c.args.get("ts") == ts
                      and c.args.get("channel") == channel]
            if not posted:
                return {"ok": False, "error": "message_not_found"}
            return {**ok, "channel": channel, "ts": ts, "text": a.get("text"),
                    "message": {"type": "message", "user": BOT_USER, "bot_id": BOT_ID, "text": a.get("text"),
                                "blocks": a.get("blocks") or []}}
        if method == "users.lookupByEmail":
            found = [u for u in self.users.values() if u["profile"].get("email") == a.get("email")]
            return {**ok, "user": found[0]} if found else {"ok": False, "error": "users_not_found"}
        if method == "users.list":
            return self._users_page(a)
        if method == "users.info":
            user = self.users.get(str(a.get("user")))
            return {**ok, "user": user} if user else {"ok": False, "error": "user_not_found"}
        if method == "conversations.info":
            names = {cid: name for name, cid in self.channels.items()}
            cid = str(a.get("channel"))
            return {**ok, "channel": {"id": cid, "name": names[cid], "is_channel": True}} if cid in names \
                else {"ok": False, "error": "channel_not_found"}
        if method == "views.open":
            view = json.loads(a["view"]) if isinstance(a.get("view"), str) else a.get("view")
            return {**ok, "view": {**(view or {}), "id": "V_TEST", "state": {"values": {}}}}
        return {"ok": False, "error": "unknown_method"}

    def _users_page(self, a: dict[str, Any]) -> dict[str, Any]:
        """One page of the members, by id: ``limit`` of them from the one ``cursor`` names."""
        members = sorted(self.users.values(), key=lambda u: u["id"])
        start = 0
        if a.get("cursor"):
            try:
                after = base64.b64decode(str(a["cursor"])).decode().removeprefix("user:")
            except ValueError:
                return {"ok": False, "error": "invalid_cursor"}
            start = next((i for i, u in enumerate(members) if u["id"] == after), -1)
            if start < 0:
                return {"ok": False, "error": "invalid_cursor"}
        limit = int(a.get("limit") or 0) or len(members)
        page = members[start:start + limit]
        rest = members[start + limit:]
        cursor = base64.b64encode(f"user:{rest[0]['id']}".encode()).decode() if rest else ""
        return {"ok": True, "members": page, "cache_ts": int(time.time()), "response_metadata": {"next_cursor": cursor}}

    @staticmethod
    def _send(request: BaseHTTPRequestHandler, status: int, body: Any, *, headers: dict[str, str] | None = None,
              content_type: str = "application/json") -> None:
        data = (body if isinstance(body, str) else json.dumps(body)).encode()
        request.send_response(status)
        request.send_header("Content-Type", content_type)
        request.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            request.send_header(k, v)
        request.end_headers()
        request.wfile.write(data)


def signature(secret: str, timestamp: str, body: str) -> str:
    digest = hmac.new(secret.encode(), f"v0:{timestamp}:{body}".encode(), hashlib.sha256).hexdigest()
    return f"v0={digest}"


def envelope(event: dict[str, Any], event_id: str) -> dict[str, Any]:
    """An Events API body, as Slack POSTs it (or sends it as a Socket Mode envelope's payload)."""
    return {"token": "legacy", "team_id": TEAM, "api_app_id": "A_TEST", "type": "event_callback", "event": event,
            "event_id": event_id, "event_time": int(time.time()),
            "authorizations": [{"team_id": TEAM, "user_id": BOT_USER, "is_bot": True}]}


def dm_event(user: str, text: str, *, ts: str, thread_ts: str | None = None) -> dict[str, Any]:
    event = {"type": "message", "channel": f"D{user}", "channel_type": "im", "user": user, "text": text, "ts": ts}
    return {**event, "thread_ts": thread_ts} if thread_ts else event


def edit_event(user: str, ts: str, old: str, new: str, *, thread_ts: str | None = None) -> dict[str, Any]:
    """``message_changed``: ``user`` edited their DM ``ts`` from ``old`` to ``new``, as Slack reports it."""
    edited = {"type": "message", "user": user, "text": new, "ts": ts, "edited": {"user": user, "ts": f"{ts}9"},
              **({"thread_ts": thread_ts} if thread_ts else {})}
    before = {"type": "message", "user": user, "text": old, "ts": ts, **({"thread_ts": thread_ts} if thread_ts else {})}
    return {"type": "message", "subtype": "message_changed", "hidden": True, "channel": f"D{user}",
            "channel_type": "im", "message": edited, "previous_message": before, "event_ts": f"{time.time():.6f}",
            "ts": f"{time.time():.6f}"}


def block_actions(user: str, message: dict[str, Any], action: dict[str, Any], *, thread_ts: str | None = None,
                  action_ts: str | None = None) -> dict[str, Any]:
    """The ``block_actions`` payload of ``user`` pressing ``action`` (an element of ``message``'s blocks, with
    what was chosen filled in) in a message the bot posted to their DM."""
    channel = message["channel"]
    posted = {"type": "message", "user": BOT_USER, "bot_id": BOT_ID, "text": message.get("text"), "ts": message["ts"],
              "blocks": message.get("blocks") or [], **({"thread_ts": thread_ts} if thread_ts else {})}
    return {"type": "block_actions", "user": {"id": user, "username": user.lower(), "team_id": TEAM},
            "api_app_id": "A_TEST", "token": "legacy", "trigger_id": "trigger-3", "team": {"id": TEAM},
            "container": {"type": "message", "message_ts": message["ts"], "channel_id": channel, "is_ephemeral": False,
                          **({"thread_ts": thread_ts} if thread_ts else {})},
            "channel": {"id": channel, "name": "directmessage"}, "message": posted,
            "response_url": "https://hooks.slack.invalid/actions/1",
            "actions": [{**action, "action_ts": action_ts or f"{time.time():.6f}"}]}


def command_form(user: str, text: str, response_url: str, trigger_id: str = "trigger-1") -> dict[str, str]:
    return {"token": "legacy", "team_id": TEAM, "channel_id": f"D{user}", "user_id": user, "user_name": user,
            "command": "/task", "text": text, "api_app_id": "A_TEST", "response_url": response_url,
            "trigger_id": trigger_id}


class SlackSender:
    """Posts to ``{base}/slack/events`` what Slack would, signed unless told otherwise."""

    def __init__(self, base: str, secret: str) -> None:
        self.client = httpx.Client(base_url=base, timeout=30)
        self.secret = secret
        self._ids = itertools.count(1)
        self._ts = itertools.count(1)

    def close(self) -> None:
        self.client.close()

    def post(self, body: str, content_type: str, *, headers: dict[str, str] | None = None, sign: bool = True,
             timestamp: float | None = None, secret: str | None = None) -> httpx.Response:
        """POST ``body``; ``sign=False`` sends no signature headers, ``secret``/``timestamp`` sign it wrongly."""
        sent = {"Content-Type": content_type, **(headers or {})}
        if sign:
            ts = str(int(timestamp if timestamp is not None else time.time()))
            sent |= {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature(secret or self.secret, ts, body)}
        return self.client.post("/slack/events", content=body.encode(), headers=sent)

    def event(self, event: dict[str, Any], *, event_id: str | None = None, retry: int | None = None,
              **options: Any) -> httpx.Response:
        headers = {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"} if retry else {}
        body = envelope(event, event_id or f"Ev{next(self._ids):06d}")
        return self.post(json.dumps(body), "application/json", headers=headers, **options)

    def dm(self, user: str, text: str, *, thread_ts: str | None = None, event_id: str | None = None,
           retry: int | None = None, ts: str | None = None, **options: Any) -> httpx.Response:
        """``user`` writes ``text`` in their DM with the bot (in the thread ``thread_ts`` when given)."""
        event = dm_event(user, text, thread_ts=thread_ts, ts=ts or f"{1800000000 + next(self._ts)}.000200")
        return self.event(event, event_id=event_id, retry=retry, **options)

    def command(self, user: str, text: str, *, response_url: str, trigger_id: str = "trigger-1",
                **options: Any) -> httpx.Response:
        form = command_form(user, text, response_url, trigger_id)
        return self.post(urlencode(form), "application/x-www-form-urlencoded", **options)

    def interact(self, payload: dict[str, Any], **options: Any) -> httpx.Response:
        """An interactivity request (``block_actions``, ...), form-encoded as Slack sends it."""
        return self.post(urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded", **options)

    def submit(self, user: str, callback_id: str, values: dict[str, dict[str, Any]], **options: Any) -> httpx.Response:
        """A ``view_submission`` of a modal whose inputs (block id -> element state) are ``values``."""
        payload = {"type": "view_submission", "team": {"id": TEAM}, "user": {"id": user, "team_id": TEAM},
                   "api_app_id": "A_TEST", "trigger_id": "trigger-2",
                   "view": {"id": "V_TEST", "type": "modal", "callback_id": callback_id, "private_metadata": "",
                            "state": {"values": {b: {"value": v} for b, v in values.items()}}}}
        return self.post(urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded", **options)
