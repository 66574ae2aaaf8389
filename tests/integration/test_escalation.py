"""Escalation and message templates (SPEC §11), with real worker processes and the fake Slack Web API: after the
last chase, one message to the participant's manager (or the run's owner) on their own channel, before the time-out."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import answer, turn_on
from tests.fakes.slack_api import FakeSlack

TASK = """
id: weekly-status
name: Weekly status
owner: lead@example.com
template:
  fields: [{key: shipped, prompt: What did you ship this week?}]
  participants: [alice@example.com, bob@example.com, cat@example.com]
  chase:
    interval: 2s
    max_chases: 1
    escalate_to: manager
    message: "Hi {name}, still to answer: {missing} ({task} closes {deadline})"
"""
CONTACTS = [
    {"email": "alice@example.com", "name": "Alice", "preferred_channel": "web", "manager": "mia@example.com"},
    {"email": "bob@example.com", "name": "Bob", "preferred_channel": "web"},  # no manager: the owner is told
    {"email": "cat@example.com", "name": "Cat", "preferred_channel": "web", "manager": "mia@example.com"},
    {"email": "mia@example.com", "name": "Mia", "slack_user_id": "U_MIA", "timezone": "Europe/Paris"},
    {"email": "lead@example.com", "name": "Lena", "slack_user_id": "U_LEAD"},
]


@pytest.fixture(autouse=True)
def fake_slack(env, monkeypatch) -> Iterator[FakeSlack]:
    fake = FakeSlack().start()
    fake.add_user("U_MIA", "mia@example.com", "Mia")
    fake.add_user("U_LEAD", "lead@example.com", "Lena")
    values = {"SLACK_BOT_TOKEN": fake.token, "SLACK_SIGNING_SECRET": "s", "TASKBOT_SLACK_API_URL": fake.api_url}
    turn_on(env, monkeypatch, values)
    yield fake
    fake.stop()


def test_after_the_last_chase_the_manager_gets_one_message_before_the_time_out(engine, workers, wait_for,
                                                                             fake_slack):
    engine.import_contacts(CONTACTS)
    engine.apply_definition(TASK)
    rid = engine.runs.trigger("weekly-status")
    workers(2)  # two workers and two scheduler loops race on every check
    wait_for(lambda: len(engine.run_view(rid)["subtasks"]) == 3 and all(
        s["status"] == "running" for s in engine.run_view(rid)["subtasks"]), timeout=30)
    cat = next(s for s in engine.run_view(rid)["subtasks"] if s["participant_id"] == "cat@example.com")
    answer(engine, cat, "the docs", "c1")
    wait_for(lambda: engine.store.run_fields(rid)["status"] == "completed", timeout=40)

    view = engine.run_view(rid)
    by = {s["participant_id"]: s for s in view["subtasks"]}
    alice, bob = by["alice@example.com"], by["bob@example.com"]
    # the chase text is the template, filled in for Alice
    [chase] = [m["text"] for m in alice["conversation"] if m.get("kind") == "chase"]
    assert chase.startswith("Hi Alice, still to answer: What did you ship this week? (Weekly status closes ")

    to_mia = fake_slack.posts("DU_MIA")
    assert len(to_mia) == 1, to_mia  # once, though two workers checked
    assert "Alice" in to_mia[0]["text"]
    assert "Weekly status" in to_mia[0]["text"]
    assert "Cat" not in to_mia[0]["text"]
    escalated_at = next(c.at for c in fake_slack.calls_to("chat.postMessage") if c.args.get("channel") == "DU_MIA")
    raw = engine.store.sub_fields(alice["id"])
    # half way from the last chase to the time-out: after the chase, before the time-out
    assert float(raw["last_chase_at"]) + 1.0 <= escalated_at < float(raw["completed_at"])
    assert (alice["status"], alice["escalated_to"]) == ("timed_out", "mia@example.com")
    assert by["cat@example.com"]["escalated_to"] is None  # she answered

    # Bob has no manager: the owner was told instead, on Slack too
    to_lead = [p for p in fake_slack.posts("DU_LEAD") if "Bob" in p["text"]]
    assert len(to_lead) == 1
    assert bob["escalated_to"] == "lead@example.com"
    [note] = [n for n in engine.store.notifications("mia@example.com") if n["kind"] == "escalation"]
    assert "Alice" in note["text"]

    report = view["deliverables"][0]["content"]
    assert "**Escalated:** Alice (to Mia), Bob (to Lena)" in report


def test_an_unknown_placeholder_is_refused_at_tasks_apply_naming_the_field(engine, taskbot_cli, tmp_path):
    path = tmp_path / "task.yaml"
    path.write_text(TASK.replace("{missing}", "{missing_fields}"))
    result = taskbot_cli("tasks", "apply", str(path))
    assert result.returncode == 2
    assert "template.chase.message: unknown placeholder {missing_fields}" in result.stderr
    assert engine.store.list_definitions() == []
