"""Pure rules: chase timing, the scripted conversation, channel selection, durations, definitions."""

import pytest

from channels.web import WebChannel
from engine.chase import decide
from engine.definitions import load_definition_text
from engine.durations import format_duration, parse_duration
from engine.errors import InvalidInput
from engine.model import ChaseSpec, Contact, FieldSpec
from engine.ports import Delivery
from engine.scripted import opening, scripted_turn
from engine.selection import select_channel

SPEC = ChaseSpec(interval="1h", max_chases=2)
H = 3600.0


def check(now, sent=0, activity=0.0, chased=0.0, open_=True):
    return decide(open_=open_, chases_sent=sent, last_activity_at=activity, last_chase_at=chased, spec=SPEC, now=now)


def test_silence_for_an_interval_earns_a_chase_then_another_then_a_time_out():
    assert check(H - 1).action == "wait"
    assert check(H - 1).at == H
    assert check(H).action == "chase"
    assert check(H + 10, sent=1, chased=H).action == "wait"
    assert check(2 * H, sent=1, chased=H).action == "chase"
    assert check(3 * H - 1, sent=2, chased=2 * H).action == "wait"
    assert check(3 * H, sent=2, chased=2 * H).action == "time_out"


def test_a_participant_who_talks_resets_the_silence():
    decision = check(H + 100, sent=1, activity=H + 50, chased=H)
    assert decision.action == "wait"
    assert decision.at == 2 * H + 50


def test_nothing_to_do_for_a_closed_subtask():
    assert check(10 * H, open_=False).action == "none"


def test_no_chases_means_time_out_after_one_interval():
    spec = ChaseSpec(interval="30m", max_chases=0)
    assert decide(open_=True, chases_sent=0, last_activity_at=0, last_chase_at=0, spec=spec, now=1800).action == \
        "time_out"


FIELDS = [FieldSpec(key="shipped", prompt="What did you ship?"),
          FieldSpec(key="blockers", prompt="Blockers?", required=False),
          FieldSpec(key="mood", prompt="Mood?", type="choice", choices=["good", "meh", "bad"])]


def test_scripted_conversation_asks_each_field_in_turn():
    assert opening("Hi!", FIELDS) == "Hi!\n\nWhat did you ship?"
    turn = scripted_turn(FIELDS, 0, "  the parser ")
    assert turn.record == {"shipped": "the parser"}
    assert turn.cursor == 1
    assert turn.reply.startswith("Blockers?")
    assert "skip" in turn.reply
    turn = scripted_turn(FIELDS, 1, "skip")
    assert turn.record == {}
    assert turn.cursor == 2
    assert "1. good" in turn.reply
    turn = scripted_turn(FIELDS, 2, "2")
    assert turn.record == {"mood": "meh"}
    assert turn.done


def test_a_required_field_cannot_be_skipped_and_a_bad_choice_is_asked_again():
    turn = scripted_turn(FIELDS, 0, "skip")
    assert turn.cursor == 0
    assert "required" in turn.reply
    assert not turn.done
    turn = scripted_turn(FIELDS, 2, "terrible")
    assert turn.cursor == 2
    assert "one of: good, meh, bad" in turn.reply


def test_channel_selection_prefers_the_preferred_then_falls_back():
    class Linked:
        def __init__(self, name, attr):
            self.name, self.attr = name, attr

        def resolve(self, contact):
            return getattr(contact, self.attr)

        def send(self, message):
            return Delivery()

    channels = {"slack": Linked("slack", "slack_user_id"), "telegram": Linked("telegram", "telegram_chat_id"),
                "email": Linked("email", "email"), "web": WebChannel()}
    everything = ["slack", "telegram", "email", "web"]
    ann = Contact(email="ann@example.com", slack_user_id="U1", telegram_chat_id="42", preferred_channel="telegram")
    assert select_channel(ann, everything, channels).channel == "telegram"
    assert select_channel(ann, ["slack", "email"], channels).channel == "slack"
    ann_unlinked = ann.model_copy(update={"telegram_chat_id": None})
    assert select_channel(ann_unlinked, everything, channels).channel == "slack"
    assert select_channel(Contact(email="b@example.com"), everything, channels).id == "b@example.com"
    assert select_channel(Contact(email="b@example.com", preferred_channel="web"), everything, channels).channel == \
        "web"
    reason = select_channel(Contact(id="carl"), ["web", "email"], channels)
    assert isinstance(reason, str)
    assert reason.startswith("no usable channel for carl")


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30), ("15m", 900), ("24h", 86400), ("2d", 172800), (45, 45)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "24", "1w", "-5m", "0s", "5 minutes", True])
def test_bad_durations(text):
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_format_duration():
    assert [format_duration(s) for s in (86400, 7200, 90, 45)] == ["1d", "2h", "90s", "45s"]


def test_the_spec_example_definition_loads():
    definition = load_definition_text("""
id: weekly-status
name: Weekly status
output_type: report
description: Compile the team's answers into a one-page status report.
assistant: default
allowed_tools: []
active: true
review: false
owner: lead@example.com
template:
  instructions: Hi! Two quick questions for this week's status report.
  fields:
    - {key: shipped, prompt: What did you ship this week?}
    - {key: blockers, prompt: Anything blocking you?, required: false}
  participants: [alice@example.com, bob@example.com]
  chase: {interval: 24h, max_chases: 2, message: "Reminder: the weekly status closes soon."}
""")
    task, compile_ = definition.states()
    assert task.type == "task"
    assert compile_.type == "compile"
    assert task.chase.interval == 86400
    assert [f.key for f in task.fields] == ["shipped", "blockers"]


@pytest.mark.parametrize(("change", "field"), [
    ({"template": {"fields": [{"key": "a", "prompt": "A?"}]}}, "template: give exactly one of"),
    ({"template": {"fields": [], "participants": ["a@x.io"]}}, "template.fields"),
    ({"template": {"fields": [{"key": "a", "prompt": "?"}, {"key": "a", "prompt": "?"}], "participants": ["x"]}},
     "duplicate field key a"),
    ({"id": "Not A Slug"}, "id: must be a slug"),
    ({"workflow": [{"type": "dance"}]}, "workflow[0]"),
])
def test_wrong_definitions_name_the_field(change, field):
    import json

    base = {"id": "t", "name": "T"}
    with pytest.raises(InvalidInput) as caught:
        load_definition_text(json.dumps({**base, **change}))
    assert field in str(caught.value)
