"""Reporting (SPEC §11 ``report_to``): the deliverable posted once to each target when the run completes, with a
real worker process: a Slack channel as Block Kit with a readable table, a Telegram chat, an email address; a target
that fails is retried, one that fails for good is shown on the run (and the owner told), and the run completes."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.conftest import answer, turn_on
from tests.fakes.mail import SmtpServer
from tests.fakes.slack_api import FakeSlack
from tests.fakes.telegram_api import FakeTelegram

TASK = """
id: weekly-status
name: Weekly status
description: What the team shipped.
owner: lead@example.com
report_to: [slack:#team, slack:C0ABC, telegram:-1001234, email:team@example.com, slack:#nowhere]
template:
  fields:
    - {key: shipped, prompt: What did you ship this week?}
    - {key: blockers, prompt: Anything blocking you?, required: false}
  participants: [alice@example.com, bob@example.com]
"""


@pytest.fixture
def fakes(env, monkeypatch) -> Iterator[tuple[FakeSlack, FakeTelegram, SmtpServer]]:
    slack, telegram, smtp = FakeSlack().start(), FakeTelegram().start(), SmtpServer().start()
    slack.add_channel("team", "C_TEAM")
    slack.add_channel("general", "C0ABC")
    values = {"SLACK_BOT_TOKEN": slack.token, "SLACK_SIGNING_SECRET": "s", "TASKBOT_SLACK_API_URL": slack.api_url,
              "TELEGRAM_BOT_TOKEN": telegram.token, "TASKBOT_TELEGRAM_API_URL": telegram.api_url,
              "TASKBOT_SMTP_HOST": "127.0.0.1", "TASKBOT_SMTP_PORT": str(smtp.port),
              "TASKBOT_EMAIL_FROM": "taskbot <tasks@example.com>"}
    turn_on(env, monkeypatch, values)
    yield slack, telegram, smtp
    slack.stop()
    telegram.stop()
    smtp.stop()


def test_the_deliverable_goes_to_each_target_once_and_a_failing_one_is_retried_or_shown(engine, fakes, workers,
                                                                                      wait_for):
    slack, telegram, smtp = fakes
    engine.import_contacts([{"email": "alice@example.com", "name": "Alice", "preferred_channel": "web"},
                            {"email": "bob@example.com", "name": "Bob", "preferred_channel": "web"}])
    engine.apply_definition(TASK)
    slack.fail_next("chat.postMessage", status=500)  # the first post (to #team) fails once
    rid = engine.runs.trigger("weekly-status")
    workers(1)
    wait_for(lambda: [s["status"] for s in engine.run_view(rid)["subtasks"]] == ["running"] * 2, timeout=30)
    alice, bob = engine.run_view(rid)["subtasks"]
    for sub, words in ((alice, ("the parser", "none")), (bob, ("the docs | site", "skip"))):
        for i, text in enumerate(words):
            answer(engine, sub, text, f"{sub['id']}-{i}")
    wait_for(lambda: engine.store.run_fields(rid)["status"] == "completed", timeout=30)
    wait_for(lambda: {r["status"] for r in engine.run_view(rid)["reports"]} <= {"posted", "failed"}, timeout=30)

    view = engine.run_view(rid)
    assert view["status"] == "completed"
    assert view["error_message"] is None
    reports = {r["target"]: r for r in view["reports"]}
    assert {t: (r["status"], r["attempts"]) for t, r in reports.items()} == {
        "slack:#team": ("posted", 2), "slack:C0ABC": ("posted", 1), "telegram:-1001234": ("posted", 1),
        "email:team@example.com": ("posted", 1), "slack:#nowhere": ("failed", 1)}
    assert reports["slack:#nowhere"]["error"] == "Slack refused: channel_not_found"
    [note] = [n for n in engine.store.notifications("lead@example.com") if n["kind"] == "report_failed"]
    assert "slack:#nowhere" in note["text"]

    # Slack: one post per channel, Block Kit, the table a table block with the answers in its cells
    for channel in ("C_TEAM", "C0ABC"):
        [post] = slack.posts(channel)
        blocks = post["blocks"]
        assert blocks[0]["type"] == "header"
        assert blocks[0]["text"]["text"] == "Weekly status"
        [table] = [b for b in blocks if b["type"] == "table"]
        assert [[c["text"] for c in row] for row in table["rows"]] == [
            ["Participant", "shipped", "blockers", "Status"],
            ["Alice", "the parser", "none", "completed"],
            ["Bob", "the docs | site", "—", "completed"]]
        assert "```" not in json.dumps(blocks)
    # Telegram: the rows as lines; email: an HTML table
    [sent] = telegram.texts(-1001234)
    assert "• Alice: shipped: the parser; blockers: none; Status: completed" in sent
    [mail] = smtp.to("team@example.com")
    assert mail["Subject"] == "Weekly status"
    page = mail.get_body(("html",)).get_content()
    assert "<td>the docs | site</td>" in page
    assert "<th>shipped</th>" in page
