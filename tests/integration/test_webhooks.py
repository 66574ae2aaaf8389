"""System webhooks: every run and sub-task event, signed, retried when the receiver fails."""

import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.conftest import answer, people

TASK = """
id: poll
name: Poll
owner: lead@example.com
template:
  fields: [{key: vote, prompt: Your vote?}]
  participants: [ann@example.com, ben@example.com]
  chase: {interval: 1s, max_chases: 1}
"""


@pytest.fixture
def receiver():
    """A real HTTP endpoint that records what it gets and fails the first request."""
    got = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            first = not got and not getattr(server, "failed", False)
            if first:
                server.failed = True
                server.failed_body = body
                self.send_response(503)
            else:
                got.append((dict(self.headers), body))
                self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", got, server
    server.shutdown()
    server.server_close()


def test_every_event_is_posted_signed_and_a_failed_delivery_is_retried(monkeypatch, receiver, env, r, wait_for):
    url, got, server = receiver
    monkeypatch.setenv("TASKBOT_WEBHOOK_URLS", url)
    monkeypatch.setenv("TASKBOT_WEBHOOK_SECRET", "s3cret")
    from bot import bootstrap

    bootstrap.engine.cache_clear()
    engine = bootstrap.engine()
    from rq import SimpleWorker

    from bot.workers import TaskbotScheduler

    scheduler = TaskbotScheduler(engine)

    def drain():
        scheduler.one_pass()
        SimpleWorker([engine.jobs.queue], connection=engine.r).work(burst=True, logging_level="CRITICAL")

    people(engine, "ann@example.com", "ben@example.com")
    engine.apply_definition(TASK)
    rid = engine.runs.trigger("poll")
    drain()
    ann = next(s for s in engine.run_view(rid)["subtasks"] if s["participant_id"] == "ann@example.com")
    answer(engine, ann, "yes", "v1")
    wait_for(lambda: engine.store.run_fields(rid)["status"] == "completed", timeout=15, between=drain)
    wait_for(lambda: any(json.loads(b)["event"] == "run.completed" for _, b in got), timeout=15, between=drain)

    events = [json.loads(body) for _, body in got]
    names = [e["event"] for e in events]
    for expected in ("run.running", "subtask.running", "subtask.completed", "subtask.chased",
                     "subtask.timed_out", "run.completed"):
        assert expected in names
    assert names.count("subtask.running") == 2
    assert len({e["id"] for e in events}) == len(events)
    for headers, body in got:
        assert headers["X-Taskbot-Event"] == json.loads(body)["event"]
        expected = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
        assert headers["X-Taskbot-Signature"] == f"sha256={expected}"
    # the first POST got a 503; the same event arrived again, on a retry
    assert json.loads(server.failed_body)["id"] in {e["id"] for e in events}
