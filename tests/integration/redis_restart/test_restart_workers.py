"""Real worker processes (with their scheduler loops) while redis-server is killed with -9 and restarted from its AOF:
the processes stay, the scheduler goes on, and no acknowledged answer is lost."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import httpx
import pytest

from bot.app import create_app
from bot.bootstrap import build_engine
from bot.settings import Settings
from tests.conftest import people, served
from tests.fakes.openai_api import FakeOpenAI, Reply
from tests.integration.redis_restart.conftest import OUTAGE, chat_token, crash, user_texts, worker_logs

VOTE = """
id: vote
name: Vote
owner: lead@example.com
template:
  fields: [{key: vote, prompt: Your vote?}]
  participants: [PEOPLE]
  chase: {interval: 2s, max_chases: 20}
"""


def at(message: dict) -> float:
    """When a message was sent, to the second as the run view shows it (rounded down: later than a
    moment when shown later than it)."""
    return datetime.fromisoformat(message["at"]).timestamp()


def chases(sub: dict) -> list[dict]:
    return [m for m in sub["conversation"] if m.get("kind") == "chase"]


class Participants:
    """People answering on their web chat as a browser does: a POST with a client-made id, and
    on a 503 (or no answer at all) the same POST again until it gets its 202."""

    def __init__(self, base: str) -> None:
        self.http = httpx.Client(base_url=base, timeout=30)
        self.statuses: dict[str, list[int | str]] = {}

    def answer(self, token: str, text: str, *, patience: float = 60.0) -> None:
        codes = self.statuses.setdefault(text, [])
        deadline = time.monotonic() + patience
        while time.monotonic() < deadline:
            try:
                res = self.http.post(f"/chat/{token}/messages", json={"text": text, "id": f"id-{text}"})
            except httpx.TransportError as exc:
                codes.append(type(exc).__name__)
            else:
                codes.append(res.status_code)
                if res.status_code == 202:
                    return
                assert res.status_code == 503, res.text
                assert res.headers["Retry-After"] == "1"
            time.sleep(0.2)  # what a page does before it tries again
        raise AssertionError(f"{text!r} was never acknowledged: {codes}")

    def acknowledged(self) -> set[str]:
        return {text for text, codes in self.statuses.items() if codes and codes[-1] == 202}


def test_workers_and_scheduler_ride_out_a_redis_restart_and_no_acknowledged_answer_is_lost(
        engine, redis_server, workers, wait_for, tmp_path):
    # the durability the docs ask for in production: every write in the append-only file, fsync each second
    config = engine.r.config_get("append*")
    assert (config["appendonly"], config["appendfsync"]) == ("yes", "everysec")
    names = [f"p{i:02}@example.com" for i in range(30)]
    people(engine, *names)
    engine.apply_definition(VOTE.replace("PEOPLE", ", ".join(names)))
    rid = engine.runs.trigger("vote")
    procs = workers(2)
    wait_for(lambda: [s["status"] for s in engine.run_view(rid)["subtasks"]] == ["running"] * 30, timeout=30)
    tokens = {s["participant_id"]: chat_token(s) for s in engine.run_view(rid)["subtasks"]}
    talkers, silent = names[:20], names[20:]

    with served(create_app(build_engine(Settings()), Settings())) as base:
        web = Participants(base)
        # Answers keep coming while Redis dies: the workers are busy with them when it goes.
        with ThreadPoolExecutor(1) as pool:
            def answer_all() -> None:
                for p in talkers:  # people answer over a few seconds, not all in the same instant
                    web.answer(tokens[p], f"vote of {p}")
                    time.sleep(0.15)

            posting = pool.submit(answer_all)
            wait_for(lambda: len(web.acknowledged()) >= 5 or posting.done(), timeout=30)
            crash(redis_server)
            with httpx.Client(base_url=base, timeout=30) as probe:
                assert probe.get("/healthz").status_code == 503
                time.sleep(OUTAGE)  # the outage itself
                redis_server.start()  # the same folder, the same port: what its supervisor does
                restarted_at = time.time()
                wait_for(lambda: probe.get("/healthz").status_code == 200, timeout=10)
            posting.result(timeout=90)

        assert all(p.poll() is None for p in procs), "a worker process exited"
        assert any(503 in codes for codes in web.statuses.values()), "no answer met the outage"
        assert web.acknowledged() == {f"vote of {p}" for p in talkers}

        # The scheduler still runs: the silent ones get a reminder after the restart.
        def chased_since_restart() -> bool:
            subs = {s["participant_id"]: s for s in engine.run_view(rid)["subtasks"]}
            return all(any(at(c) > restarted_at for c in chases(subs[p])) for p in silent)

        wait_for(chased_since_restart, timeout=30)
        for p in silent:
            web.answer(tokens[p], f"vote of {p}")
        wait_for(lambda: engine.store.run_fields(rid)["status"] == "completed", timeout=60)
        web.http.close()

    subs = {s["participant_id"]: s for s in engine.run_view(rid)["subtasks"]}
    for p in names:  # every acknowledged answer, under its field, once (a retried POST counts once)
        assert subs[p]["status"] == "completed", (p, subs[p]["status"])
        assert subs[p]["data"] == {"vote": f"vote of {p}"}, p
        assert user_texts(subs[p]) == [f"vote of {p}"], p
    assert all(p.poll() is None for p in procs)
    assert engine.r.zcard("taskbot:leases") == 0  # nothing left to re-drive


KEY_ENV = "FAKE_OPENAI_KEY"
ONE_FIELD = """
id: shipped
name: Shipped
assistant: helper
owner: lead@example.com
template:
  fields: [{key: shipped, prompt: What did you ship this week?}]
  participants: [alice@example.com]
  chase: {interval: 1h}
"""


@pytest.fixture
def fake_llm(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAI]:
    server = FakeOpenAI().start()
    monkeypatch.setenv(KEY_ENV, server.api_key)
    env[KEY_ENV] = server.api_key
    yield server
    server.stop()


class HeldTurn:
    """A one-field run on an assistant whose model call for alice's answer waits for ``gate``:
    the job that computes her turn is in the middle of its work for as long as the test wants."""

    def __init__(self, engine, fake: FakeOpenAI) -> None:
        from engine.model import Assistant

        self.engine, self.gate, self.turns = engine, threading.Event(), []
        fake.responder = self.respond
        engine.store.put_assistant(Assistant(id="helper", model="openai/helper-model", api_base=fake.api_base,
                                             api_key_env=KEY_ENV, system_prompt="You are helper."))
        people(engine, "alice@example.com", "lead@example.com")
        engine.apply_definition(ONE_FIELD)
        self.rid = engine.runs.trigger("shipped")

    def respond(self, request) -> Reply:
        if request.last["role"] == "tool":
            return Reply(text="Thanks, recorded!")
        if not request.tool_names:
            return Reply(text="# Shipped\n\nAlice shipped the parser.")
        self.turns.append(request.last["content"])
        self.gate.wait(60)  # the first turn waits here; once the gate is open, a turn goes straight on
        return Reply(tool_calls=[("record_data", {"key": "shipped", "value": request.last["content"]}),
                                 ("complete_subtask", {})])

    def alice(self) -> dict:
        return self.engine.run_view(self.rid)["subtasks"][0]

    def answer_and_hold(self, wait_for) -> None:
        wait_for(lambda: [s["status"] for s in self.engine.run_view(self.rid)["subtasks"]] == ["running"],
                 timeout=30)
        self.engine.inbox.post_web(chat_token(self.alice()), "The parser", "m1")
        wait_for(lambda: self.turns, timeout=30)  # the turn is in the model call


@pytest.fixture
def held(engine, fake_llm) -> HeldTurn:
    return HeldTurn(engine, fake_llm)


def test_a_job_running_when_redis_dies_is_done_after_the_restart(engine, redis_server, workers, wait_for, held,
                                                                 tmp_path):
    """The worker meets the outage in the middle of the job: the process stays, and the turn is re-driven
    by its lease once Redis is back."""
    procs = workers(2)
    held.answer_and_hold(wait_for)
    crash(redis_server)
    held.gate.set()  # the model answers; the job's next write finds Redis gone
    # RQ's work loop ended on the lost connection, and the supervisor waits for Redis
    wait_for(lambda: "a fresh worker starts once Redis answers" in worker_logs(tmp_path), timeout=30)
    redis_server.start()

    wait_for(lambda: engine.store.run_fields(held.rid)["status"] == "completed", timeout=60)
    alice = held.alice()
    assert alice["data"] == {"shipped": "The parser"}
    assert user_texts(alice) == ["The parser"]
    assert [m["text"] for m in alice["conversation"] if m.get("kind") == "reply"] == ["Thanks, recorded!"]
    assert held.turns == ["The parser", "The parser"]  # computed again after the restart, applied once
    assert all(p.poll() is None for p in procs), worker_logs(tmp_path)


def test_sigterm_lets_the_current_job_finish_then_the_worker_exits(engine, workers, wait_for, held):
    """How an upgrade stops workers (systemd sends SIGTERM): the job in hand is finished, not cut off, and
    what is queued waits for the next worker."""
    [old] = workers(1)
    held.answer_and_hold(wait_for)
    old.send_signal(signal.SIGTERM)
    held.gate.set()
    assert old.wait(timeout=30) == 0
    alice = held.alice()
    assert (alice["status"], alice["data"]) == ("completed", {"shipped": "The parser"})  # the job was finished
    assert held.turns == ["The parser"]  # and not cut off to be computed again
    assert len(engine.jobs.queue) == 1  # the next job (telling the owner) is left queued

    workers(1)  # the new version's worker takes it
    wait_for(lambda: not len(engine.jobs.queue) and not engine.r.zcard("taskbot:leases"), timeout=30)


def test_a_worker_started_before_redis_waits_for_it_and_stops_on_sigterm_meanwhile(engine, redis_server, workers,
                                                                                   wait_for, tmp_path):
    people(engine, "alice@example.com")
    engine.apply_definition(VOTE.replace("PEOPLE", "alice@example.com"))
    crash(redis_server)
    first, second = workers(2)
    wait_for(lambda: worker_logs(tmp_path).count("worker: Redis is not answering") == 2, timeout=30)
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=10) == 0

    redis_server.start()
    rid = engine.runs.trigger("vote")
    wait_for(lambda: [s["status"] for s in engine.run_view(rid)["subtasks"]] == ["running"], timeout=30)
    assert second.poll() is None
