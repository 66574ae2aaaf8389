"""Mail over kept SMTP sessions, against a real aiosmtpd server: one session for a batch, none lost or doubled.

The server hangs up on a session after a few messages, or stops and starts again mid-batch; every
person still gets their opening exactly once (counted by Message-ID at the server).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator

import pytest

from tests.conftest import turn_on
from tests.fakes.mail import SmtpServer

TASK = """
id: survey
name: Survey
owner: lead@example.com
template:
  fields: [{key: answer, prompt: Your answer?}]
  participants: [PEOPLE]
  chase: {interval: 1h}
"""


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def idle() -> float:
    return 30.0


@pytest.fixture(autouse=True)
def mail_env(env, monkeypatch, smtp, idle) -> None:
    values = {"TASKBOT_SMTP_HOST": "127.0.0.1", "TASKBOT_SMTP_PORT": str(smtp.port),
              "TASKBOT_EMAIL_FROM": "taskbot <tasks@example.com>", "TASKBOT_SMTP_IDLE": str(idle)}
    turn_on(env, monkeypatch, values)


def run_to(engine, n: int, start: int = 0) -> tuple[str, list[str]]:
    people = [f"p{i}@example.com" for i in range(start, start + n)]
    engine.import_contacts([{"email": p} for p in people])
    engine.apply_definition(TASK.replace("PEOPLE", ", ".join(people)))
    return engine.runs.trigger("survey"), people


def statuses(engine, rid) -> list[str]:
    return [s["status"] for s in engine.run_view(rid, conversations=False)["subtasks"]]


def exactly_once(smtp: SmtpServer, people: list[str]) -> None:
    """Each of ``people`` got one opening, and no Message-ID came twice."""
    ids = Counter(str(m.message["Message-ID"]) for m in smtp.messages)
    assert max(ids.values()) == 1, "a message was delivered twice"
    assert {p: len(smtp.to(p)) for p in people} == dict.fromkeys(people, 1)


def test_a_fan_out_goes_over_one_session(engine, smtp, drain):
    rid, people = run_to(engine, 8)
    drain()
    assert statuses(engine, rid) == ["running"] * 8
    exactly_once(smtp, people)
    assert smtp.sessions_used == 1


def test_a_session_the_server_hangs_up_on_is_opened_again_and_the_message_goes_once(engine, smtp, drain):
    smtp.hang_up_after = 3  # as a server that limits messages per connection
    rid, people = run_to(engine, 8)
    drain()
    assert statuses(engine, rid) == ["running"] * 8  # none had to wait for a retry
    exactly_once(smtp, people)
    assert smtp.sessions_used == 3  # 3 + 3 + 2


def test_the_server_stopped_mid_batch_and_started_again_loses_and_doubles_nothing(engine, smtp, drain, wait_for):
    smtp.stop_after = 3
    rid, people = run_to(engine, 8)
    drain()
    wait_for(lambda: not smtp.running)
    assert sorted(statuses(engine, rid)).count("running") == 3  # the rest wait for the server
    smtp.start()
    wait_for(lambda: statuses(engine, rid) == ["running"] * 8, timeout=30, between=drain)
    exactly_once(smtp, people)
    assert smtp.sessions_used == 2  # one before the outage, one after


@pytest.mark.parametrize("idle", [0.3])
def test_an_idle_session_is_closed_and_the_next_mail_opens_a_new_one(engine, smtp, drain, wait_for):
    rid, people = run_to(engine, 2)
    drain()
    controller = smtp._controller
    assert controller is not None
    wait_for(lambda: all(s.transport is None or s.transport.is_closing() for s in controller.sessions),
             timeout=5)  # the client said QUIT after 0.3 s idle
    time.sleep(0.1)
    second, others = run_to(engine, 2, start=10)
    drain()
    exactly_once(smtp, people + others)
    assert smtp.sessions_used == 2


@pytest.mark.parametrize("idle", [0])
def test_with_no_idle_time_every_message_has_its_own_session(engine, smtp, drain):
    rid, people = run_to(engine, 3)
    drain()
    exactly_once(smtp, people)
    assert smtp.sessions_used == 3


def test_a_refused_recipient_fails_alone_and_the_session_carries_the_others(engine, smtp, drain):
    smtp.refuse["p1@example.com"] = "550 5.1.1 no such user"
    rid, people = run_to(engine, 4)
    drain()
    subs = {s["participant_id"]: s for s in engine.run_view(rid, conversations=False)["subtasks"]}
    assert subs["p1@example.com"]["status"] == "failed"
    assert "550" in subs["p1@example.com"]["reason"]
    assert [subs[p]["status"] for p in people if p != "p1@example.com"] == ["running"] * 3
    exactly_once(smtp, [p for p in people if p != "p1@example.com"])
    assert smtp.sessions_used == 1
