"""``budget: {tokens: N}``: a run that would go past it calls the model no more; the scripted questions go on
and the owner is told once, in-app and on their channel (email here, a real SMTP server)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from engine.errors import InvalidInput
from engine.model import Assistant
from tests.conftest import answer, turn_on
from tests.fakes.mail import SmtpServer
from tests.fakes.openai_api import text
from tests.integration.test_llm import KEY_ENV, fake, start, subtask, weekly  # noqa: F401 (fake: a fixture)


@pytest.fixture
def owner_mail(env, monkeypatch) -> Iterator[SmtpServer]:
    """Email on (the owner, lead@example.com, is reached by it), against this test's SMTP server."""
    server = SmtpServer().start()
    values = {"TASKBOT_SMTP_HOST": "127.0.0.1", "TASKBOT_SMTP_PORT": str(server.port),
              "TASKBOT_EMAIL_FROM": "taskbot <tasks@example.com>"}
    turn_on(env, monkeypatch, values)
    yield server
    server.stop()


def test_past_the_budget_the_scripted_questions_go_on_and_the_owner_is_told(owner_mail, engine, fake,  # noqa: F811
                                                                            drain):
    engine.store.put_assistant(Assistant(id="helper", model="openai/helper-model", api_base=fake.api_base,
                                         api_key_env=KEY_ENV))
    budgeted = weekly().replace("owner: lead@example.com", "owner: lead@example.com\nbudget: {tokens: 1000}")
    rid = start(engine, drain, budgeted)
    fake.script(text("It is for the weekly status. What did you ship this week?"))
    answer(engine, subtask(engine, rid), "What is this about?", "m1")
    drain()
    spent = engine.run_view(rid)["usage"]["total_tokens"]
    assert 500 < spent <= 1000  # one call: a second like it would go past the budget

    answer(engine, subtask(engine, rid), "The new parser", "m2")
    drain()
    answer(engine, subtask(engine, rid), "Waiting on review", "m3")
    drain()

    alice = subtask(engine, rid)
    assert alice["status"] == "completed"
    assert alice["data"] == {"shipped": "The new parser", "blockers": "Waiting on review"}
    said = [m["text"] for m in alice["conversation"] if m["role"] == "assistant"]
    assert any("Anything blocking you?" in s for s in said)  # the scripted question, not the model's
    assert len(fake.chats()) == 1  # one turn; neither the later answers nor the compile called the model
    view = engine.run_view(rid)
    assert view["status"] == "completed"
    report = view["deliverables"][-1]["content"]
    assert "The new parser" in report
    assert "Waiting on review" in report
    assert report.rstrip().endswith("_Written without the model: this run reached its budget of 1,000 model tokens._")
    notes = [n for n in engine.store.notifications("lead@example.com") if n["kind"] == "budget_reached"]
    assert len(notes) == 1
    assert "budget of 1,000 model tokens" in notes[0]["text"]
    mails = [m.message for m in owner_mail.messages if m.rcpt_tos == ["lead@example.com"]]
    told = [m for m in mails if "budget" in m["Subject"]]
    assert len(told) == 1  # once, though two answers came past it
    assert "scripted questions" in told[0].get_body(("plain",)).get_content()
    assert mails.index(told[0]) == 0  # before the run's completion mail, which came too
    assert any("completed" in m["Subject"] for m in mails)


def test_a_budget_of_no_tokens_is_refused_naming_the_field(engine):
    with pytest.raises(InvalidInput) as refused:
        engine.apply_definition(weekly().replace("owner: lead@example.com",
                                                 "owner: lead@example.com\nbudget: {tokens: 0}"))
    assert "budget" in str(refused.value)


def test_an_image_the_budget_leaves_no_model_for_fails_the_run_saying_why(engine, fake, drain):  # noqa: F811
    engine.store.put_assistant(Assistant(id="helper", model="openai/helper-model", api_base=fake.api_base,
                                         api_key_env=KEY_ENV))
    budgeted = weekly(output="image").replace("owner: lead@example.com",
                                              "owner: lead@example.com\nbudget: {tokens: 1000}")
    rid = start(engine, drain, budgeted)
    fake.script(text("It is for the weekly status. What did you ship this week?"))
    answer(engine, subtask(engine, rid), "What is this about?", "m1")
    drain()
    for i, said in enumerate(("The new parser", "Waiting on review")):
        answer(engine, subtask(engine, rid), said, f"m{i + 2}")
        drain()
    view = engine.run_view(rid)
    assert view["status"] == "failed"
    assert "token budget, and an image needs the model" in view["error_message"]
    assert [r.path for r in fake.requests if "/chat/" in r.path or "/images/" in r.path] == \
        ["/v1/chat/completions"]  # the one turn; no compile call, no image asked for
