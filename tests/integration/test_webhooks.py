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


FAN_IN = """
id: standup
name: Standup
owner: lead@example.com
report_to: [slack:#team]
template:
  fields: [{key: done, prompt: What did you do?}]
  participants: [ann@example.com, ben@example.com]
  chase: {interval: 4s, max_chases: 0, escalate_to: owner}
  close: {after: 3s}
  accept_late: true
"""


def test_fan_in_events_escalated_closed_posted_and_versioned_are_posted(monkeypatch, receiver, env, r, wait_for):
    from tests.fakes.slack_api import FakeSlack

    url, got, _ = receiver
    slack = FakeSlack().start()
    slack.add_channel("team", "C_TEAM")
    for k, v in {"TASKBOT_WEBHOOK_URLS": url, "TASKBOT_WEBHOOK_SECRET": "s3cret", "SLACK_BOT_TOKEN": slack.token,
                 "TASKBOT_SLACK_API_URL": slack.api_url}.items():
        monkeypatch.setenv(k, v)
    from rq import SimpleWorker

    from bot import bootstrap
    from bot.workers import TaskbotScheduler

    bootstrap.engine.cache_clear()
    engine = bootstrap.engine()
    scheduler = TaskbotScheduler(engine)

    def drain():
        scheduler.one_pass()
        SimpleWorker([engine.jobs.queue], connection=engine.r).work(burst=True, logging_level="CRITICAL")

    def events():
        return [json.loads(body) for _, body in got]

    try:
        people(engine, "ann@example.com", "ben@example.com")
        engine.apply_definition(FAN_IN)
        rid = engine.runs.trigger("standup")
        drain()
        ann, ben = engine.run_view(rid)["subtasks"]
        answer(engine, ann, "the parser", "a1")
        # Ben is escalated to the owner half way to his time-out; the deadline (3 s) closes the fan-out first
        wait_for(lambda: engine.store.run_fields(rid)["status"] == "completed", timeout=15, between=drain)
        answer(engine, ben, "the docs", "b1")  # late: version 2
        wait_for(lambda: sum(e["event"] == "report.posted" for e in events()) == 2, timeout=20, between=drain)

        found = {e["event"]: e for e in events()}
        assert found["subtask.escalated"]["subtask_id"] == ben["id"]
        assert found["subtask.escalated"]["escalated_to"] == "lead@example.com"
        closed = found["run.closed"]
        assert (closed["run_id"], closed["closed_by"], closed["reason"]) == (rid, "deadline", "closed at deadline")
        versioned = found["deliverable.versioned"]
        assert (versioned["version"], versioned["participant_id"], versioned["fields"]) == (2, "ben@example.com",
                                                                                             ["done"])
        posted = [e for e in events() if e["event"] == "report.posted"]
        assert sorted((e["target"], e["version"]) for e in posted) == [("slack:#team", 1), ("slack:#team", 2)]
        late = [e for e in events() if e["event"] == "subtask.completed" and e.get("late")]
        assert [e["subtask_id"] for e in late] == [ben["id"]]
    finally:
        slack.stop()
