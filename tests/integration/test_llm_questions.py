"""Typed fields with a model-backed assistant (litellm against the local OpenAI-compatible server): a value that does
not fit is a tool error naming what fits, and recording a field again changes it and keeps the old value."""

from __future__ import annotations

from tests.conftest import answer
from tests.fakes.openai_api import call, text
from tests.integration.test_llm import assistant, fake, start, subtask

FIXTURES = (fake,)  # the fake provider of test_llm.py
RETRO = """
id: weekly-status
name: Sprint retro
assistant: helper
owner: lead@example.com
template:
  fields:
    - {key: score, prompt: "From 1 to 5, how well did we plan?", type: scale}
    - {key: mood, prompt: How did the sprint feel?, type: choice, choices: [great, fine, rough]}
  participants: [alice@example.com]
"""


def test_a_model_value_that_does_not_fit_is_refused_and_a_second_record_changes_the_answer(engine, fake, drain):
    assistant(engine, fake)
    rid = start(engine, drain, RETRO)
    alice = subtask(engine, rid)

    fake.script(call("record_data", key="score", value=9), text("Sorry, 1 to 5 please. How well did we plan?"))
    answer(engine, alice, "nine out of ten!", "m1")
    drain()
    first = fake.chats()[0]
    assert "score (required, scale: a whole number from 1 to 5)" in first.system
    assert "mood (required, choice: one of: great, fine, rough (or its number))" in first.system
    refused = fake.chats()[1].last
    assert refused == {"role": "tool", "tool_call_id": refused["tool_call_id"],
                       "content": "error: score: 9 does not fit; record a whole number from 1 to 5"}
    assert subtask(engine, rid)["data"] == {}

    fake.script(call("record_data", key="score", value="4"), text("Thanks! How did the sprint feel?"))
    answer(engine, alice, "4", "m2")
    drain()
    fake.script(call("record_data", key="score", value=5), text("Changed it to 5. How did the sprint feel?"))
    answer(engine, alice, "actually make that a 5", "m3")
    drain()
    assert fake.chats()[-1].last["content"] == "changed score from 4 to 5; tell the person what changed"
    alice = subtask(engine, rid)
    assert alice["data"] == {"score": 5}
    assert [h["value"] for h in alice["data_history"]["score"]] == [4]
    [refusal] = [m["text"] for m in alice["conversation"] if m["role"] == "tool" and "does not fit" in m["text"]]
    assert refusal.startswith("record_data(")  # the refused call stays in the conversation, for the owner to read
    assert refusal.endswith("→ error: score: 9 does not fit; record a whole number from 1 to 5")
