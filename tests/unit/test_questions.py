"""Question types, manners and edits as pure functions: what fits each field, what the person is told."""

from datetime import date

import pytest

from engine.definitions import load_definition
from engine.errors import InvalidInput
from engine.model import FieldSpec
from engine.questions import accept, find_change, merge, parse_answer, small_talk, widget
from engine.scripted import edit_turn, opening, scripted_turn

WEDNESDAY = date(2027, 1, 13)
MOOD = FieldSpec(key="mood", prompt="How did the sprint feel?", type="choice", choices=["great", "fine", "rough"])
SCORE = FieldSpec(key="score", prompt="How well did we plan?", type="scale")
HOURS = FieldSpec(key="hours", prompt="Hours spent?", type="number", min=0, max=80)
DUE = FieldSpec(key="due", prompt="When will it ship?", type="date")
WINS = FieldSpec(key="wins", prompt="What went well?", type="list")
SHIPPED = FieldSpec(key="shipped", prompt="What did you ship this week?")
FIELDS = [SHIPPED, MOOD, SCORE, HOURS, DUE, WINS]


@pytest.mark.parametrize(("spec", "reply", "stored"), [
    (MOOD, "great", "great"), (MOOD, "  Rough! ", "rough"), (MOOD, "2", "fine"), (MOOD, "3.", "rough"),
    (SCORE, "4", 4), (SCORE, " 1 ", 1), (SCORE, "5.0", 5),
    (HOURS, "12,5", 12.5), (HOURS, "0", 0), (HOURS, "80", 80), (HOURS, "7.25", 7.25),
    (DUE, "2027-02-01", "2027-02-01"), (DUE, "today", "2027-01-13"), (DUE, "Tomorrow", "2027-01-14"),
    (DUE, "friday", "2027-01-15"), (DUE, "wed", "2027-01-13"), (DUE, "Monday", "2027-01-18"),
    (WINS, "the parser, docs; the CI", ["the parser", "docs", "the CI"]), (WINS, "- one\n- two", ["one", "two"]),
    (SHIPPED, "  the lexer ", "the lexer"),
])
def test_a_reply_that_fits_is_stored_as_its_type_says(spec, reply, stored):
    assert parse_answer(spec, reply, WEDNESDAY) == (stored, None)


@pytest.mark.parametrize(("spec", "reply", "fits"), [
    (MOOD, "terrible", "one of: great, fine, rough (or its number)"), (MOOD, "4", "one of: great, fine, rough"),
    (SCORE, "99", "a whole number from 1 to 5"), (SCORE, "0", "a whole number from 1 to 5"),
    (SCORE, "3.5", "a whole number from 1 to 5"), (SCORE, "very good", "a whole number from 1 to 5"),
    (HOURS, "-1", "a number from 0 to 80"), (HOURS, "lots", "a number from 0 to 80"), (HOURS, "nan", "a number"),
    (DUE, "not a date at all", "a date such as 2027-01-10, today, tomorrow or a weekday"),
    (DUE, "2027-02-30", "a date"), (WINS, " , ; ", "one or more items"),
])
def test_a_reply_that_does_not_fit_is_not_stored_and_says_what_fits(spec, reply, fits):
    value, problem = parse_answer(spec, reply, WEDNESDAY)
    assert value is None
    assert problem.startswith("Sorry, that does not fit here: the answer should be ")
    assert fits in problem


def test_a_models_values_are_checked_the_same_way():
    assert accept(SCORE, 4, WEDNESDAY) == (4, None)
    assert accept(HOURS, 12.5, WEDNESDAY) == (12.5, None)
    assert accept(WINS, ["a", " b ", 3], WEDNESDAY) == (["a", "b", "3"], None)
    assert accept(WINS, "a, b", WEDNESDAY) == (["a", "b"], None)
    assert accept(MOOD, "Fine", WEDNESDAY) == ("fine", None)
    assert accept(DUE, "tomorrow", WEDNESDAY) == ("2027-01-14", None)
    for spec, value in ((SCORE, 9), (SCORE, True), (MOOD, ["great"]), (HOURS, {"n": 1}), (DUE, 12),
                        (SHIPPED, None)):
        assert accept(spec, value, WEDNESDAY)[1] is not None, (spec.key, value)


def test_channels_get_buttons_for_choice_and_scale_and_a_picker_for_dates():
    assert widget(MOOD).options == ("great", "fine", "rough")
    assert widget(SCORE).options == ("1", "2", "3", "4", "5")
    assert widget(FieldSpec(key="nps", prompt="?", type="scale", min=0, max=10)).options[-1] == "10"
    assert widget(DUE).type == "date"
    assert widget(SHIPPED) is None
    assert widget(HOURS) is None


@pytest.mark.parametrize("text", ["hi", "Hello!", "hi, what is this?", "What's this?", "help", "?", "??",
                                  "hey there", "Good morning", "who are you?", "hi taskbot"])
def test_greetings_and_questions_to_the_bot_are_small_talk(text):
    assert small_talk(text)


@pytest.mark.parametrize("text", ["the parser", "hi-res renderer", "Help text for the CLI", "what is this bug about",
                                  "morning standup notes", "2"])
def test_answers_are_not_small_talk(text):
    assert not small_talk(text)


def test_a_change_names_its_field_by_key_or_prompt_words():
    assert find_change("change shipped: lexer", FIELDS) == (SHIPPED, "lexer")
    assert find_change("Change what did you ship: the lexer", FIELDS) == (SHIPPED, "the lexer")
    assert find_change("change how well did we plan: 2", FIELDS) == (SCORE, "2")
    assert find_change("change my answer to mood: rough", FIELDS) == (MOOD, "rough")
    assert find_change("change log rotation: done", FIELDS) is None  # no such field: just an answer
    assert find_change("change shipped", FIELDS) is None


def test_a_replaced_value_goes_to_the_history():
    data, history = {"shipped": "parser"}, {}
    changes = merge(data, history, {"shipped": "lexer", "mood": "fine"}, 100.0)
    assert data == {"shipped": "lexer", "mood": "fine"}
    assert history == {"shipped": [{"value": "parser", "replaced_at": 100.0}]}
    assert [(c.key, c.old, c.new) for c in changes] == [("shipped", "parser", "lexer")]
    assert merge(data, history, {"shipped": "lexer"}, 200.0) == []  # the same again is no change


def test_the_scripted_conversation_asks_each_typed_question_and_again_when_a_reply_does_not_fit():
    text = opening("Three questions.", [MOOD, SCORE])
    assert text == "Three questions.\n\nHow did the sprint feel?\n1. great\n2. fine\n3. rough"
    turn = scripted_turn([MOOD, SCORE], 0, "2", today=WEDNESDAY)
    assert (turn.record, turn.cursor, turn.asks) == ({"mood": "fine"}, 1, 1)
    assert turn.reply == "How well did we plan?\n(a whole number from 1 to 5)"
    turn = scripted_turn([MOOD, SCORE], 1, "99", today=WEDNESDAY)
    assert (turn.record, turn.cursor, turn.done) == ({}, 1, False)
    assert turn.reply == ("Sorry, that does not fit here: the answer should be a whole number from 1 to 5.\n\n"
                          "How well did we plan?\n(a whole number from 1 to 5)")
    assert scripted_turn([MOOD, SCORE], 1, "4", today=WEDNESDAY).done


def test_a_greeting_gets_an_explanation_and_the_question_again_not_an_answer():
    turn = scripted_turn([SHIPPED], 0, "hi, what is this?", about="Weekly status")
    assert turn.record == {}
    assert turn.cursor == 0
    assert "“Weekly status”" in turn.reply
    assert turn.reply.endswith("\n\nWhat did you ship this week?")


def test_change_replaces_an_earlier_answer_and_keeps_asking_the_current_question():
    fields = [SHIPPED, MOOD, SCORE]
    data = {"shipped": "parser", "mood": "fine"}
    turn = scripted_turn(fields, 2, "change shipped: lexer", data=data)
    assert (turn.record, turn.cursor) == ({"shipped": "lexer"}, 2)
    assert turn.reply.startswith("Changed your answer to “What did you ship this week?” from parser to lexer.")
    assert turn.reply.endswith("How well did we plan?\n(a whole number from 1 to 5)")
    turn = scripted_turn(fields, 2, "change mood: awful", data=data)
    assert turn.record == {}
    assert "Your answer to “How did the sprint feel?” stays fine." in turn.reply
    turn = scripted_turn(fields, 1, "change score: 3", data=data)  # not asked yet
    assert turn.record == {}
    assert "We have not got to “How well did we plan?” yet" in turn.reply
    turn = scripted_turn(fields, 2, "change score: 3", data=data)  # the current one: simply the answer
    assert (turn.record, turn.done) == ({"score": 3}, True)


def test_a_click_answers_the_field_of_its_button_and_a_second_click_changes_nothing():
    fields = [MOOD, SCORE]
    turn = scripted_turn(fields, 0, "rough", answers="mood")
    assert (turn.record, turn.cursor) == ({"mood": "rough"}, 1)
    again = scripted_turn(fields, 1, "rough", data={"mood": "rough"}, answers="mood")
    assert (again.record, again.cursor, again.reply) == ({}, 1, "")
    other = scripted_turn(fields, 1, "great", data={"mood": "rough"}, answers="mood")
    assert (other.record, other.cursor) == ({"mood": "great"}, 1)
    assert scripted_turn(fields, 0, "help", answers="mood").record == {}  # "help" fits no choice, asked again


def test_an_edited_message_changes_the_answer_it_gave():
    fields = [SHIPPED, MOOD]
    turn = edit_turn(fields, 1, "shipped", "the lexer", data={"shipped": "the parser"}, today=WEDNESDAY)
    assert turn.record == {"shipped": "the lexer"}
    assert turn.reply.startswith("Changed your answer to “What did you ship this week?” from the parser to the lexer.")
    assert edit_turn(fields, 1, None, "anything", data={}, today=WEDNESDAY).reply == ""  # it answered nothing
    bad = edit_turn(fields, 2, "mood", "awful", data={"mood": "fine"}, today=WEDNESDAY)
    assert bad.record == {}
    assert "stays fine" in bad.reply


@pytest.mark.parametrize(("field", "reason"), [
    ({"key": "x", "prompt": "?", "type": "text", "min": 1}, "min and max are for number and scale fields"),
    ({"key": "x", "prompt": "?", "type": "scale", "min": 5, "max": 1}, "min (5) must be below max (1)"),
    ({"key": "x", "prompt": "?", "type": "scale", "max": 4.5}, "a scale's min and max are whole numbers"),
    ({"key": "x", "prompt": "?", "type": "choice", "choices": ["Yes", "yes"]}, "choices must differ"),
    ({"key": "x", "prompt": "?", "type": "rating"}, "template.fields[0].type"),
])
def test_wrong_fields_are_refused_with_the_field_named(field, reason):
    with pytest.raises(InvalidInput, match="template.fields") as refused:
        load_definition({"id": "t", "name": "T", "template": {"fields": [field], "participants": ["a@x.io"]}})
    assert reason in str(refused.value)
