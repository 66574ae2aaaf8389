"""Typed questions in the web chat, over real HTTP: buttons that post without JavaScript, the numbered list typed,
the JSON API with the button's field, a wrong answer asked again, a change with its history."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urlsplit

import httpx
import pytest

from bot.app import create_app
from bot.settings import Settings
from tests.conftest import people, served

RETRO = {"id": "retro", "name": "Sprint retro", "owner": "lead@example.com", "template": {
    "fields": [{"key": "shipped", "prompt": "What did you ship?"},
               {"key": "mood", "prompt": "How did the sprint feel?", "type": "choice",
                "choices": ["great", "fine", "rough"]},
               {"key": "score", "prompt": "How well did we plan?", "type": "scale"},
               {"key": "hours", "prompt": "Hours spent on reviews?", "type": "number", "min": 0, "max": 40},
               {"key": "due", "prompt": "When is the demo?", "type": "date"},
               {"key": "wins", "prompt": "What went well?", "type": "list"}],
    "participants": ["alice@example.com"]}}


class Choices(HTMLParser):
    """The buttons and inputs of the page's ``choices`` form, as a browser without JavaScript sees them."""

    def __init__(self) -> None:
        super().__init__()
        self.inside, self.hidden, self.buttons, self.inputs = False, None, [], {}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form" and a.get("id") == "choices":
            self.inside, self.hidden = True, "hidden" in a
        elif self.inside and tag == "button":
            self.buttons.append(a.get("value"))
        elif self.inside and tag == "input":
            self.inputs[a.get("name")] = (a.get("type"), a.get("value"))

    def handle_endtag(self, tag):
        if tag == "form":
            self.inside = False


def choices(page: str) -> Choices:
    parsed = Choices()
    parsed.feed(page)
    return parsed


@pytest.fixture
def chat(engine, drain):
    """Alice's chat over HTTP: (client, her chat path, the run id)."""
    people(engine, "alice@example.com")
    engine.apply_definition(RETRO)
    rid = engine.runs.trigger("retro")
    drain()
    path = urlsplit(engine.run_view(rid)["subtasks"][0]["chat_url"]).path
    with served(create_app(engine, Settings())) as base, httpx.Client(base_url=base, timeout=30) as client:
        yield client, path, rid


def test_every_question_type_in_the_web_chat_with_and_without_javascript(engine, drain, chat):
    client, path, rid = chat

    def page():
        return client.get(path).text

    def post_form(**fields):  # what a browser without JavaScript sends
        assert client.post(path, data=fields).status_code == 303
        drain()

    def post_json(**body):
        assert client.post(f"{path}/messages", json=body).status_code == 202
        drain()
        return client.get(f"{path}/messages").json()[-1]

    assert choices(page()).hidden  # a text question: no buttons
    post_form(text="hi", id="f1")
    assert "I am taskbot" in client.get(f"{path}/messages").json()[-1]["text"]
    post_form(text="the parser", id="f2")
    form = choices(page())
    assert (form.hidden, form.buttons, form.inputs["answers"]) == (False, ["great", "fine", "rough"],
                                                                   ("hidden", "mood"))
    last = client.get(f"{path}/messages").json()[-1]
    assert last["question"] == {"key": "mood", "type": "choice", "options": ["great", "fine", "rough"]}
    assert "1. great\n2. fine\n3. rough" in last["text"]  # the no-button fallback: the number typed works

    post_form(text="rough", answers="mood", id="f3")  # a button pressed without JavaScript
    post_form(text="rough", answers="mood", id="f3")  # the same form sent again: one answer
    assert choices(page()).buttons == ["1", "2", "3", "4", "5"]
    assert "a whole number from 1 to 5" in post_json(text="99", id="j1")["text"]
    assert post_json(text="4", answers="score", id="j2")["text"].startswith("Hours spent on reviews?")
    assert choices(page()).hidden  # a number: typed
    assert "a number from 0 to 40" in post_json(text="lots", id="j3")["text"]
    post_json(text="12,5", id="j4")
    form = choices(page())
    assert form.inputs["text"] == ("date", None)  # a date field
    assert "a date such as" in post_json(text="not a date at all", id="j5")["text"]
    post_json(text="2027-02-05", answers="due", id="j6")
    changed = post_json(text="change mood: 1", id="j7")
    assert changed["text"].startswith("Changed your answer to “How did the sprint feel?” from rough to great.")
    assert post_json(text="pairing, retro notes", id="j8")["text"] == "Thank you! Your answers are recorded."
    assert choices(page()).hidden  # closed: no buttons

    [alice] = engine.run_view(rid)["subtasks"]
    assert alice["data"] == {"shipped": "the parser", "mood": "great", "score": 4, "hours": 12.5,
                             "due": "2027-02-05", "wins": ["pairing", "retro notes"]}
    assert [h["value"] for h in alice["data_history"]["mood"]] == ["rough"]
    assert [m["text"] for m in alice["conversation"] if m["role"] == "user"].count("rough") == 1
    assert [m.get("field") for m in alice["conversation"] if m["role"] == "user" and m["text"] == "rough"] == ["mood"]


def test_a_button_key_that_is_no_field_key_is_refused(chat):
    client, path, _ = chat
    refused = client.post(f"{path}/messages", json={"text": "great", "answers": "no such key!"})
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"] == ["body", "answers"]
