"""Typed questions on Slack: buttons, a select, a date picker, clicks stored once, edits, /task away (signed requests
to the real app over HTTP, the fake Slack Web API, real RQ jobs)."""

from __future__ import annotations

import json

from tests.fakes.slack_api import block_actions, edit_event
from tests.integration.test_slack import fake_slack, slack, subtasks

FIXTURES = (fake_slack, slack)  # the Slack of test_slack.py's stories: its fake Web API and the app over HTTP

RETRO = {"id": "retro", "name": "Sprint retro", "owner": "lead@example.com", "template": {
    "instructions": "Six questions about the sprint.",
    "fields": [{"key": "shipped", "prompt": "What did you ship?"},
               {"key": "mood", "prompt": "How did the sprint feel?", "type": "choice",
                "choices": ["great", "fine", "rough"]},
               {"key": "score", "prompt": "How well did we plan?", "type": "scale"},
               {"key": "nps", "prompt": "Would you recommend the process?", "type": "scale", "min": 0, "max": 10},
               {"key": "due", "prompt": "When is the demo?", "type": "date"},
               {"key": "wins", "prompt": "What went well?", "type": "list"}],
    "participants": ["alice@example.com"], "chase": {"interval": "1h"}}}


def actions_of(message):
    return [b for b in message.get("blocks") or [] if b["type"] == "actions"]


def element(message, n=0):
    [actions] = actions_of(message)
    return actions["elements"][n]


def test_every_question_type_on_slack_right_and_wrong_a_click_once_and_an_edit_with_its_history(
        engine, slack, fake_slack, drain):
    engine.import_contacts([{"email": "alice@example.com", "slack_user_id": "U_ALICE", "timezone": "Europe/Paris"}])
    engine.apply_definition(RETRO)
    rid = engine.runs.trigger("retro")
    drain()
    [opening] = fake_slack.posts("DU_ALICE")
    assert actions_of(opening) == []  # a text question: no buttons
    root = opening["ts"]

    def says(text, *, ts):
        assert slack.dm("U_ALICE", text, thread_ts=root, ts=ts).status_code == 200
        drain()
        return fake_slack.posts("DU_ALICE")[-1]

    def clicks(message, action, **options):
        payload = block_actions("U_ALICE", message, action, thread_ts=root, **options)
        assert slack.interact(payload).status_code == 200
        return payload

    # a greeting is explained, not recorded; then the text answer
    hello = says("hi, what is this?", ts="1800000001.000100")
    assert "I am taskbot, collecting a few answers for “Sprint retro”" in hello["text"]
    assert subtasks(engine, rid)["alice@example.com"]["data"] == {}
    asked = says("the parser", ts="1800000002.000100")
    assert asked["text"].startswith("How did the sprint feel?\n1. great\n2. fine\n3. rough")
    [actions] = actions_of(asked)
    assert [(e["type"], e["value"]) for e in actions["elements"]] == [("button", "great"), ("button", "fine"),
                                                                     ("button", "rough")]

    # a wrong typed choice is asked again with what fits; then a click, which Slack delivers twice
    again = says("terrible", ts="1800000003.000100")
    assert "the answer should be one of: great, fine, rough (or its number)" in again["text"]
    assert actions_of(again)
    payload = clicks(again, element(again, 2))  # "rough"
    assert slack.interact(payload).status_code == 200  # the same delivery again
    drain()
    sub = subtasks(engine, rid)["alice@example.com"]
    assert sub["data"] == {"shipped": "the parser", "mood": "rough"}
    assert [m["text"] for m in sub["conversation"] if m["role"] == "user"].count("rough") == 1
    [update] = fake_slack.updates("DU_ALICE")
    assert update["ts"] == again["ts"]
    assert actions_of(update) == []  # no buttons left on the clicked message
    assert update["blocks"][-1]["elements"][0]["text"] == "✓ You answered: *rough*"

    # the scale: five buttons; 99 does not fit
    scale = fake_slack.posts("DU_ALICE")[-1]
    assert [e["value"] for e in actions_of(scale)[0]["elements"]] == ["1", "2", "3", "4", "5"]
    wrong = says("99", ts="1800000004.000100")
    assert "the answer should be a whole number from 1 to 5" in wrong["text"]
    clicks(wrong, element(wrong, 3))  # 4
    drain()

    # past five options, a static select; a click picks one of them
    select = fake_slack.posts("DU_ALICE")[-1]
    menu = element(select)
    assert menu["type"] == "static_select"
    assert [o["value"] for o in menu["options"]] == [str(n) for n in range(11)]
    clicks(select, {**menu, "selected_option": menu["options"][9]})
    drain()

    # the date: a date picker; words that are no date are refused; a picked date is stored
    picker = fake_slack.posts("DU_ALICE")[-1]
    assert element(picker)["type"] == "datepicker"
    no_date = says("not a date at all", ts="1800000005.000100")
    assert "a date such as 2027-01-10, today, tomorrow or a weekday" in no_date["text"]
    clicks(no_date, {**element(no_date), "selected_date": "2027-02-05"})
    drain()

    # alice edits her first answer in Slack: it changes, the old one is kept, she is told
    edited = edit_event("U_ALICE", "1800000002.000100", "the parser", "the lexer", thread_ts=root)
    assert slack.event(edited).status_code == 200
    drain()
    told = fake_slack.posts("DU_ALICE")[-1]
    assert told["text"].startswith("Changed your answer to “What did you ship?” from the parser to the lexer.")
    assert told["text"].endswith("What went well?\n(one or more items, separated by commas)")
    # an edit of a message that answered nothing ("hi, what is this?") changes nothing and says nothing
    posts = len(fake_slack.posts("DU_ALICE"))
    slack.event(edit_event("U_ALICE", "1800000001.000100", "hi, what is this?", "hello?", thread_ts=root))
    drain()
    assert len(fake_slack.posts("DU_ALICE")) == posts

    says("change score: 5", ts="1800000006.000100")
    says("retro notes, pairing", ts="1800000007.000100")
    sub = subtasks(engine, rid)["alice@example.com"]
    assert sub["status"] == "completed"
    assert sub["data"] == {"shipped": "the lexer", "mood": "rough", "score": 5, "nps": 9, "due": "2027-02-05",
                           "wins": ["retro notes", "pairing"]}
    assert {k: [h["value"] for h in v] for k, v in sub["data_history"].items()} == {"shipped": ["the parser"],
                                                                                     "score": [4]}
    assert all(h["replaced_at"] for v in sub["data_history"].values() for h in v)
    report = engine.run_view(rid)["deliverables"][0]["content"]
    assert "| alice | the lexer | rough | 5 | 9 | 2027-02-05 | retro notes, pairing | completed |" in report


def test_task_away_from_slack_sets_the_person_away_and_their_next_task_is_excused(
        engine, slack, fake_slack, drain):
    engine.import_contacts([{"email": "alice@example.com", "slack_user_id": "U_ALICE"},
                            {"email": "lead@example.com", "slack_user_id": "U_LEAD"}])
    engine.apply_definition(RETRO)
    assert slack.command("U_ALICE", "away until 2999-01-10", response_url=fake_slack.response_url("away")
                         ).status_code == 200
    drain()
    assert "away until 2999-01-10" in json.dumps(fake_slack.replies("away")[-1])
    assert engine.store.find_contacts(["alice@example.com"])["alice@example.com"].away_until == "2999-01-10"
    rid = engine.runs.trigger("retro")
    drain()
    assert fake_slack.posts("DU_ALICE") == []  # not messaged
    [alice] = engine.run_view(rid)["subtasks"]
    assert (alice["status"], alice["reason"]) == ("excused", "away until 2999-01-10")
    assert engine.store.run_fields(rid)["status"] == "completed"
    assert "**Excused:** alice (away until 2999-01-10)" in engine.run_view(rid)["deliverables"][0]["content"]
