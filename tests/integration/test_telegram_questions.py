"""Typed questions on Telegram: inline keyboards, presses answered once, edited messages, /task away (updates posted
to the real webhook over HTTP, the fake Bot API, real RQ jobs)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from tests.fakes.telegram_api import callback_update, edited_update
from tests.integration.test_telegram import fake_telegram, subtasks, telegram

FIXTURES = (fake_telegram, telegram)  # the Telegram of test_telegram.py's stories: its fake Bot API, the app
ALICE, LEAD = 1001, 1000
RETRO = {"id": "retro", "name": "Sprint retro", "owner": "lead@example.com", "template": {
    "fields": [{"key": "shipped", "prompt": "What did you ship?"},
               {"key": "mood", "prompt": "How did the sprint feel?", "type": "choice",
                "choices": ["great", "fine", "rough"]},
               {"key": "score", "prompt": "How well did we plan?", "type": "scale"},
               {"key": "nps", "prompt": "Would you recommend the process?", "type": "scale", "min": 0, "max": 10},
               {"key": "due", "prompt": "When is the demo?", "type": "date"},
               {"key": "wins", "prompt": "What went well?", "type": "list"}],
    "participants": ["alice@example.com"], "chase": {"interval": "1h"}}}


def buttons(message):
    return [[(b["text"], b["callback_data"]) for b in row]
            for row in (message.get("reply_markup") or {}).get("inline_keyboard", [])]


def test_every_question_type_on_telegram_right_and_wrong_a_press_once_and_an_edit_with_its_history(
        engine, telegram, fake_telegram, drain):
    engine.import_contacts([{"email": "alice@example.com", "telegram_chat_id": str(ALICE),
                             "timezone": "Asia/Kolkata"}])
    engine.apply_definition(RETRO)
    rid = engine.runs.trigger("retro")
    drain()
    [opening] = fake_telegram.sent(ALICE)
    assert opening["text"] == "What did you ship?"
    assert buttons(opening) == []

    def says(text, update_id):
        assert telegram.says(ALICE, text, update_id=update_id).json() == {"ok": True, "result": "stored"}
        drain()
        return fake_telegram.sent(ALICE)[-1]

    def presses(message, data, update_id):
        update = callback_update(update_id, ALICE, message, data)
        assert telegram.post(update).json() == {"ok": True, "result": "stored"}
        return update

    assert "collecting a few answers for “Sprint retro”" in says("hello", 1)["text"]
    mood = says("the parser", 2)  # message 100002
    assert buttons(mood) == [[("great", "1|mood"), ("fine", "2|mood"), ("rough", "3|mood")]]
    again = says("terrible", 3)
    assert "the answer should be one of: great, fine, rough (or its number)" in again["text"]
    assert buttons(again)
    update = presses(again, "3|mood", 4)
    assert telegram.post(update).json() == {"ok": True, "result": "duplicate"}  # Telegram delivers it again
    drain()
    sub = subtasks(engine, rid)["alice@example.com"]
    assert sub["data"] == {"shipped": "the parser", "mood": "rough"}
    assert [m["text"] for m in sub["conversation"] if m["role"] == "user"].count("rough") == 1
    [answered] = fake_telegram.calls_to("answerCallbackQuery")
    assert (answered.args["callback_query_id"], answered.args["text"]) == ("cbq-4", "✓ rough")
    [unkeyed] = fake_telegram.calls_to("editMessageReplyMarkup")
    assert (int(unkeyed.args["chat_id"]), int(unkeyed.args["message_id"])) == (ALICE, again["message_id"])
    assert "reply_markup" not in unkeyed.args  # the keyboard is taken away

    scale = fake_telegram.sent(ALICE)[-1]
    assert buttons(scale) == [[(str(n), f"{n}|score") for n in range(1, 6)]]
    wrong = says("99", 5)
    assert "a whole number from 1 to 5" in wrong["text"]
    presses(wrong, "4|score", 6)
    drain()
    nps = fake_telegram.sent(ALICE)[-1]
    assert [label for row in buttons(nps) for label, _ in row] == [str(n) for n in range(11)]
    presses(nps, "10|nps", 7)  # the tenth button is 9
    drain()

    date = fake_telegram.sent(ALICE)[-1]
    assert date["text"] == "When is the demo?\n(a date such as 2027-01-10, today, tomorrow or a weekday)"
    assert buttons(date) == []  # no date picker on Telegram: typed
    assert "a date such as" in says("not a date at all", 8)["text"]
    before = datetime.now(ZoneInfo("Asia/Kolkata")).date()
    says("tomorrow", 9)
    after = datetime.now(ZoneInfo("Asia/Kolkata")).date()

    # alice edits her first answer: it changes, the old one is kept, she is told
    assert telegram.post(edited_update(10, ALICE, 100002, "the lexer")).json() == {"ok": True, "result": "stored"}
    drain()
    told = fake_telegram.sent(ALICE)[-1]
    assert told["text"].startswith("Changed your answer to “What did you ship?” from the parser to the lexer.")
    says("retro notes; pairing", 11)
    sub = subtasks(engine, rid)["alice@example.com"]
    assert sub["status"] == "completed"
    assert sub["data"]["due"] in {(d + timedelta(days=1)).isoformat() for d in (before, after)}  # her tomorrow
    assert {k: v for k, v in sub["data"].items() if k != "due"} == {
        "shipped": "the lexer", "mood": "rough", "score": 4, "nps": 9, "wins": ["retro notes", "pairing"]}
    assert [h["value"] for h in sub["data_history"]["shipped"]] == ["the parser"]
    edit = [m for m in sub["conversation"] if m.get("edited")]
    assert [(m["text"], m["field"]) for m in edit] == [("the lexer", "shipped")]


def test_task_away_from_telegram_and_back(engine, telegram, fake_telegram, drain):
    engine.import_contacts([{"email": "alice@example.com", "telegram_chat_id": str(ALICE)},
                            {"email": "lead@example.com", "telegram_chat_id": str(LEAD)}])
    engine.apply_definition(RETRO)
    telegram.says(ALICE, "/task away until 2999-01-10")
    drain()
    assert fake_telegram.texts(ALICE)[-1].startswith("You are away until 2999-01-10 (UTC)")
    rid = engine.runs.trigger("retro")
    drain()
    assert len(fake_telegram.texts(ALICE)) == 1  # only the answer to the command: the task did not reach her
    [alice] = engine.run_view(rid)["subtasks"]
    assert alice["status"] == "excused"
    telegram.says(ALICE, "/task away until yesterday")
    telegram.says(ALICE, "/task away off")
    drain()
    assert fake_telegram.texts(ALICE)[-2].startswith("DATE: 'yesterday' is not an ISO date")
    assert fake_telegram.texts(ALICE)[-1] == "You are back: tasks reach you again."
    rid = engine.runs.trigger("retro")
    drain()
    assert fake_telegram.texts(ALICE)[-1] == "What did you ship?"
