"""``budget: {tokens: N}``: a run that would go past it calls the model no more; the scripted questions go on
and the owner is told once."""

from __future__ import annotations

import pytest

from engine.errors import InvalidInput
from engine.model import Assistant
from tests.conftest import answer
from tests.fakes.openai_api import text
from tests.integration.test_llm import KEY_ENV, fake, start, subtask, weekly  # noqa: F401 (fake: a fixture)


def test_past_the_budget_the_scripted_questions_go_on_and_the_owner_is_told(engine, fake, drain):  # noqa: F811
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
    turns = [c for c in fake.chats() if c.tool_names]  # the compile step offers no tools
    assert len(turns) == 1
    notes = [n for n in engine.store.notifications("lead@example.com") if n["kind"] == "budget_reached"]
    assert len(notes) == 1
    assert "budget of 1,000 model tokens" in notes[0]["text"]


def test_a_budget_of_no_tokens_is_refused_naming_the_field(engine):
    with pytest.raises(InvalidInput) as refused:
        engine.apply_definition(weekly().replace("owner: lead@example.com",
                                                 "owner: lead@example.com\nbudget: {tokens: 0}"))
    assert "budget" in str(refused.value)
