"""No open doors (SPEC §10): tokens never reach a log, webhooks without a secret go out unsigned rather
than signed with an empty key. (The dashboard closed without TASKBOT_API_TOKEN: tests/integration/test_http.py.)"""

from __future__ import annotations

import json
import secrets
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import httpx
import pytest

from bot.redis_server import free_port
from tests.conftest import ROOT, answer, people
from tests.fakes.telegram_api import FakeTelegram

TASK = """
id: poll
name: Poll
owner: lead@example.com
template:
  fields: [{key: vote, prompt: Your vote?}, {key: why, prompt: Why?}]
  participants: [ann@example.com]
"""


def wait_until_up(base: str, proc: subprocess.Popen[bytes], log) -> None:
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None, log.read_text()
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)


def test_the_access_log_of_taskbot_serve_holds_no_api_token_and_no_chat_link(engine, env, tmp_path, drain):
    api_token = secrets.token_urlsafe(16)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    served_env = {**env, "TASKBOT_API_TOKEN": api_token, "TASKBOT_HTTP_PORT": str(port), "TASKBOT_PUBLIC_URL": base}
    people(engine, "ann@example.com")
    engine.apply_definition(TASK)
    rid = engine.runs.trigger("poll")
    drain()
    (sub,) = engine.run_view(rid)["subtasks"]
    chat = urlsplit(sub["chat_url"]).path
    chat_token = chat.rsplit("/", 1)[-1]
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "bot", "serve"], cwd=ROOT, env=served_env, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        wait_until_up(base, proc, log)
        with httpx.Client(base_url=base, timeout=10) as browser:
            # the dashboard's sign-in link, once right and once wrong, then the pages it leads to
            assert browser.get("/", params={"token": "not-the-token"}).status_code == 401
            signed_in = browser.get("/", params={"token": api_token})
            assert signed_in.status_code == 303
            assert browser.get("/").status_code == 200
            assert browser.get(f"/runs/{rid}").status_code == 200
            # the participant's chat link: the page, an answer by the script and one by the form, the JSON
            assert browser.get(chat).status_code == 200
            assert browser.post(f"{chat}/messages", json={"text": "yes", "id": "m-1"}).status_code == 202
            assert browser.post(chat, data={"text": "because", "id": "m-2"}).status_code == 303
            assert browser.get(f"{chat}/messages").status_code == 200
            assert browser.get(f"/chat/{chat_token[:-2]}xx").status_code == 404
        with httpx.Client(base_url=base, timeout=10, headers={"Authorization": f"Bearer {api_token}"}) as api:
            assert api.get(f"/api/runs/{rid}").status_code == 200
            assert api.get("/api/tasks", params={"token": api_token}).status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
    text = log.read_text()
    assert '"GET /?token=<redacted> HTTP/1.1" 303' in text  # the access log was written, and redacted
    assert '"POST /chat/<redacted>/messages HTTP/1.1" 202' in text
    assert f'"GET /runs/{rid} HTTP/1.1" 200' in text
    assert api_token not in text
    assert chat_token not in text
    assert chat_token[:-2] not in text


def test_a_workers_log_holds_no_telegram_bot_token(engine, env, workers, wait_for, tmp_path, monkeypatch):
    """python-telegram-bot calls ``{api}/bot<token>/sendMessage``, and httpx logs every request URL."""
    fake = FakeTelegram().start()
    try:
        values = {"TELEGRAM_BOT_TOKEN": fake.token, "TASKBOT_TELEGRAM_API_URL": fake.api_url}
        env.update(values)
        for k, v in values.items():
            monkeypatch.setenv(k, v)
        engine.import_contacts([{"email": "ann@example.com", "telegram_chat_id": "1001",
                                 "preferred_channel": "telegram"}])
        engine.apply_definition(TASK)
        engine.runs.trigger("poll")
        workers(1)
        wait_for(lambda: fake.texts(1001), timeout=30)
        time.sleep(0.5)  # the log line follows the response
    finally:
        fake.stop()
    text = (tmp_path / "worker-0.log").read_text()
    assert "/bot<redacted>/sendMessage" in text  # httpx logged the request ...
    assert fake.token not in text  # ... without the token
    assert fake.token.split(":")[1] not in text


@pytest.fixture
def receiver():
    """A real HTTP endpoint that records the headers and bodies it gets."""
    got: list[tuple[dict[str, str], bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            got.append((dict(self.headers), self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", got
    server.shutdown()
    server.server_close()


def test_without_a_webhook_secret_events_go_out_with_no_signature(monkeypatch, receiver, env, r, wait_for):
    url, got = receiver
    monkeypatch.setenv("TASKBOT_WEBHOOK_URLS", url)
    monkeypatch.delenv("TASKBOT_WEBHOOK_SECRET", raising=False)
    from rq import SimpleWorker

    from bot import bootstrap
    from bot.workers import TaskbotScheduler

    bootstrap.engine.cache_clear()
    engine = bootstrap.engine()
    scheduler = TaskbotScheduler(engine)

    def drain():
        scheduler.one_pass()
        SimpleWorker([engine.jobs.queue], connection=engine.r).work(burst=True, logging_level="CRITICAL")

    try:
        people(engine, "ann@example.com")
        engine.apply_definition(TASK)
        rid = engine.runs.trigger("poll")
        drain()
        (sub,) = engine.run_view(rid)["subtasks"]
        answer(engine, sub, "yes", "v1")
        answer(engine, sub, "why not", "v2")
        wait_for(lambda: any(json.loads(b)["event"] == "run.completed" for _, b in got), timeout=15, between=drain)
    finally:
        scheduler.retries.connection.close()
    assert {json.loads(body)["event"] for _, body in got} >= {"run.running", "subtask.completed", "run.completed"}
    for headers, body in got:
        assert headers["X-Taskbot-Event"] == json.loads(body)["event"]
        assert "X-Taskbot-Signature" not in headers
