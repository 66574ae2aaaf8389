"""What Telegram updates of the shapes Telegram really sends become (issue 15): media kept with their caption,
what cannot answer answered with what can, updates missing optional fields kept, a blocked bot noticed at once
and the person's sub-tasks moved to their next channel (an email hard bounce likewise).

Updates posted to the real webhook over HTTP, the fake Bot API (getFile and its file URL), a local SMTP
server for the email channel, real RQ jobs. The updates are written here after the Bot API reference.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from channels.telegram_updates import ALLOWED_UPDATES
from tests.conftest import turn_on
from tests.fakes.mail import SmtpServer
from tests.fakes.telegram_api import message_update
from tests.integration.test_email import bounce_of
from tests.integration.test_telegram import fake_telegram, snapshot, subtasks, telegram, user_texts

FIXTURES = (fake_telegram, telegram)
ALICE, BOB = 2001, 2002
STANDUP = {"id": "standup", "name": "Standup", "owner": "lead@example.com", "template": {
    "instructions": "Three questions.",
    "fields": [{"key": "shipped", "prompt": "What did you ship?"},
               {"key": "hours", "prompt": "How many hours did it take?", "type": "number"},
               {"key": "notes", "prompt": "Anything else?"}],
    "participants": ["alice@example.com"], "chase": {"interval": "1h"}}}


@pytest.fixture(autouse=True)
def smtp(fake_telegram, env, monkeypatch, tmp_path) -> Iterator[SmtpServer]:
    """Email on as well (the channel a blocked Telegram chat falls back to), files in this test's folder."""
    server = SmtpServer(users={"taskbot": "smtp-secret"}).start()
    values = {"TASKBOT_SMTP_HOST": "127.0.0.1", "TASKBOT_SMTP_PORT": str(server.port), "TASKBOT_SMTP_USER": "taskbot",
              "TASKBOT_SMTP_PASSWORD": "smtp-secret", "TASKBOT_EMAIL_FROM": "taskbot <taskbot@example.com>",
              "TASKBOT_DATA_DIR": str(tmp_path / "data")}
    turn_on(env, monkeypatch, values)
    yield server
    server.stop()


def begin(engine, drain, people=("alice@example.com",), contacts=None) -> str:
    engine.import_contacts(contacts or [{"email": "alice@example.com", "name": "Alice",
                                         "telegram_chat_id": str(ALICE)}])
    engine.apply_definition({**STANDUP, "template": {**STANDUP["template"], "participants": list(people)}})
    rid = engine.runs.trigger("standup")
    drain()
    return rid


def update_with(update_id: int, chat: int, **content) -> dict:
    """A person's message in their private chat carrying ``content`` (photo, voice, sticker, ...) and no text."""
    update = message_update(update_id, chat, "")
    del update["message"]["text"]
    update["message"].update(content)
    return update


def test_media_are_downloaded_with_get_file_and_the_caption_is_the_text(engine, telegram, fake_telegram, drain,
                                                                        tmp_path):
    rid = begin(engine, drain)
    small = {**fake_telegram.add_file("ph-s", b"small", "photos/file_1.jpg"), "width": 90, "height": 60}
    large = {**fake_telegram.add_file("ph-l", b"the large photo", "photos/file_2.jpg"), "width": 1280,
             "height": 853}
    photo = update_with(700001, ALICE, photo=[small, large], caption="The new dashboard")
    assert telegram.post(photo).json() == {"ok": True, "result": "stored"}
    drain()
    sub = subtasks(engine, rid)["alice@example.com"]
    assert sub["data"] == {"shipped": "The new dashboard"}
    [kept] = sub["conversation"][-2]["attachments"]
    assert (kept["name"], kept["size"]) == ("photo.jpg", 15)
    assert Path(kept["path"]).read_bytes() == b"the large photo"
    assert Path(kept["path"]).resolve().is_relative_to((tmp_path / "data").resolve())
    assert [c.args["file_id"] for c in fake_telegram.calls_to("getFile")] == ["ph-l"]

    # a voice message alone cannot answer the number question: kept, and the person is told
    voice = {**fake_telegram.add_file("vo-1", b"OggS...", "voice/file_3.oga"), "duration": 3, "mime_type": "audio/ogg"}
    assert telegram.post(update_with(700002, ALICE, voice=voice)).json()["result"] == "stored"
    drain()
    told = fake_telegram.texts(ALICE)[-1]
    assert "I kept voice.ogg" in told
    assert "needs a typed answer (number)" in told
    sub = subtasks(engine, rid)["alice@example.com"]
    assert sub["data"] == {"shipped": "The new dashboard"}
    assert user_texts(sub)[-1] == "[attached: voice.ogg]"

    assert telegram.says(ALICE, "3").json()["result"] == "stored"
    document = {**fake_telegram.add_file("doc-1", b"%PDF-1.7", "documents/file_4.pdf"), "file_name": "report.pdf",
                "mime_type": "application/pdf"}
    assert telegram.post(update_with(700003, ALICE, document=document)).json()["result"] == "stored"
    drain()
    sub = subtasks(engine, rid)["alice@example.com"]
    assert sub["status"] == "completed"
    assert sub["data"] == {"shipped": "The new dashboard", "hours": 3, "notes": "[attached: report.pdf]"}
    [pdf] = [m for m in sub["conversation"] if m["role"] == "user"][-1]["attachments"]
    assert (pdf["name"], pdf["content_type"], Path(pdf["path"]).read_bytes()) == ("report.pdf", "application/pdf",
                                                                                  b"%PDF-1.7")


def test_photos_sent_together_answer_once(engine, telegram, fake_telegram, drain):
    rid = begin(engine, drain)
    for n, caption in enumerate(("The dashboard, three views", None, None)):
        size = {**fake_telegram.add_file(f"al-{n}", b"jpeg %d" % n, f"photos/album_{n}.jpg"), "width": 800,
                "height": 600}
        content = {"photo": [size], "media_group_id": "13579", **({"caption": caption} if caption else {})}
        assert telegram.post(update_with(705000 + n, ALICE, **content)).json()["result"] == "stored"
    drain()
    sub = subtasks(engine, rid)["alice@example.com"]
    assert sub["data"] == {"shipped": "The dashboard, three views"}  # the later photos answered nothing
    assert [len(m.get("attachments") or []) for m in sub["conversation"] if m["role"] == "user"] == [1, 1, 1]
    assert len(fake_telegram.texts(ALICE)) == 2  # the opening, and the next question once


def test_stickers_locations_and_polls_get_a_short_reply_and_nothing_is_recorded(engine, telegram, fake_telegram,
                                                                                drain):
    rid = begin(engine, drain)
    before = subtasks(engine, rid)["alice@example.com"]["conversation"]
    kinds = {"sticker": {"file_id": "st-1", "file_unique_id": "u-st", "type": "regular", "width": 512,
                         "height": 512, "is_animated": False, "is_video": False, "emoji": "👍"},
             "location": {"latitude": 48.8584, "longitude": 2.2945},
             "poll": {"id": "p1", "question": "Lunch?", "options": [{"text": "yes", "voter_count": 0}],
                      "total_voter_count": 0, "is_closed": False, "is_anonymous": True, "type": "regular",
                      "allows_multiple_answers": False},
             "contact": {"phone_number": "+33100000000", "first_name": "Bob"},
             "dice": {"emoji": "🎲", "value": 4}}
    for n, (kind, content) in enumerate(kinds.items()):
        update = update_with(710000 + n, ALICE, **{kind: content})
        assert telegram.post(update).json()["result"] == "answered"
        assert telegram.post(update).json()["result"] == "duplicate"  # Telegram delivering it again
    drain()
    replies = fake_telegram.texts(ALICE)[1:]
    assert [r.split(" as an answer")[0] for r in replies] == [
        "I cannot record a sticker", "I cannot record a location", "I cannot record a poll",
        "I cannot record a contact", "I cannot record a dice"]
    assert "I can read text, photos, documents, voice, video and audio messages" in replies[0]
    assert subtasks(engine, rid)["alice@example.com"]["conversation"] == before


def test_an_update_missing_optional_fields_is_still_recorded(engine, telegram, fake_telegram, drain, r):
    rid = begin(engine, drain)
    bare = {"update_id": 720001, "message": {"chat": {"id": ALICE}, "text": "The parser"}}  # no from, type, date, id
    assert telegram.post(bare).json()["result"] == "stored"
    edited_bare = {"update_id": 720002, "edited_message": {"message_id": 5, "chat": {"id": ALICE, "type": "private"},
                                                          "from": {"id": ALICE}, "text": "x"}}
    assert telegram.post(edited_bare).json()["result"] == "stored"  # no first_name, no date, no edit_date
    drain()
    assert subtasks(engine, rid)["alice@example.com"]["data"] == {"shipped": "The parser"}
    # only what is truly needed drops it: no chat id, or a group
    before = snapshot(r)
    for update in ({"update_id": 720003, "message": {"chat": {}, "text": "hi"}},
                   {"update_id": 720004, "message": {"chat": {"id": -100123}, "text": "hi"}}):
        assert telegram.post(update).json()["result"] == "ignored"
    assert snapshot(r) == before


def test_the_bot_asks_telegram_for_exactly_the_updates_it_handles(engine, telegram, fake_telegram, wait_for):
    wait_for(lambda: fake_telegram.webhook)
    assert fake_telegram.webhook["allowed_updates"] == ALLOWED_UPDATES
    assert set(ALLOWED_UPDATES) == {"message", "edited_message", "callback_query", "my_chat_member"}


def kicked(update_id: int, chat: int, status: str = "kicked") -> dict:
    user = {"id": chat, "is_bot": False, "first_name": "Pat"}
    bot = {"id": 7000001, "is_bot": True, "first_name": "taskbot", "username": "taskbot_test_bot"}
    return {"update_id": update_id, "my_chat_member": {
        "chat": {"id": chat, "type": "private", "first_name": "Pat"}, "from": user, "date": int(time.time()),
        "old_chat_member": {"user": bot, "status": "member" if status == "kicked" else "kicked"},
        "new_chat_member": {"user": bot, "status": status, **({"until_date": 0} if status == "kicked" else {})}}}


def test_blocking_the_bot_moves_open_telegram_sub_tasks_to_the_next_channel_or_fails_them(
        engine, telegram, fake_telegram, smtp, drain):
    contacts = [{"email": "alice@example.com", "name": "Alice", "telegram_chat_id": str(ALICE)},
                {"id": "bob", "name": "Bob", "telegram_chat_id": str(BOB)}]  # no email: Telegram is all he has
    rid = begin(engine, drain, people=("alice@example.com", "bob"), contacts=contacts)
    assert telegram.says(ALICE, "The parser").json()["result"] == "stored"
    drain()
    for chat in (ALICE, BOB):
        assert telegram.post(kicked(730000 + chat, chat)).json()["result"] == "blocked"
    assert telegram.post(kicked(730000 + ALICE, ALICE)).json()["result"] == "duplicate"
    drain()
    subs = subtasks(engine, rid)
    alice, bob = subs["alice@example.com"], subs["bob"]
    assert (alice["status"], alice["channel"]) == ("running", "email")
    assert alice["reason"] == f"the Telegram chat {ALICE} blocked the bot; moved to email"  # what the owner sees
    assert alice["data"] == {"shipped": "The parser"}  # kept; the questions go on from where they were
    opening, resumed = smtp.to("alice@example.com")  # the opening asks the first question; then where she is
    assert "What did you ship?" in opening.get_body(("plain",)).get_content()
    assert "here is the next question.\r\n\r\nHow many hours did it take?" in resumed.get_body(("plain",)).get_content()
    assert (bob["status"], bob["reason"]) == ("failed", f"the Telegram chat {BOB} blocked the bot")
    assert len(fake_telegram.sent(ALICE)) == 2  # the opening and one reply: nothing since the block

    # a new task goes to her email at once; once she unblocks the bot, to Telegram again
    engine.apply_definition({**STANDUP, "id": "later", "name": "Later"})
    engine.runs.trigger("later")
    drain()
    assert len(smtp.to("alice@example.com")) == 3
    assert telegram.post(kicked(739999, ALICE, status="member")).json()["result"] == "unblocked"
    drain()
    engine.apply_definition({**STANDUP, "id": "again", "name": "Again"})
    engine.runs.trigger("again")
    drain()
    assert len(fake_telegram.sent(ALICE)) == 3


def test_a_send_refused_because_the_bot_is_blocked_moves_the_sub_task_to_email_and_marks_the_chat(
        engine, telegram, fake_telegram, smtp, drain):
    fake_telegram.block(ALICE)  # blocked before the my_chat_member update came (or it was never delivered)
    rid = begin(engine, drain)
    alice = subtasks(engine, rid)["alice@example.com"]
    assert (alice["status"], alice["channel"]) == ("running", "email")
    assert alice["reason"] == "Telegram refused: Forbidden: bot was blocked by the user; moved to email"
    [opening] = smtp.to("alice@example.com")
    assert "What did you ship?" in opening.get_body(("plain",)).get_content()
    engine.apply_definition({**STANDUP, "id": "later", "name": "Later"})
    rid = engine.runs.trigger("later")
    drain()
    assert subtasks(engine, rid)["alice@example.com"]["channel"] == "email"  # Telegram is not tried again
    assert len(smtp.to("alice@example.com")) == 2
    tries = [c.status for c in fake_telegram.calls_to("sendMessage") if str(c.args.get("chat_id")) == str(ALICE)]
    assert tries == [403]  # the refused send was the only try


def test_a_reminder_refused_because_the_bot_was_blocked_moves_the_sub_task_to_email(engine, telegram, fake_telegram,
                                                                                      smtp, drain, wait_for):
    engine.import_contacts([{"email": "alice@example.com", "name": "Alice", "telegram_chat_id": str(ALICE)}])
    engine.apply_definition({**STANDUP, "template": {**STANDUP["template"], "chase": {"interval": "1s"}}})
    rid = engine.runs.trigger("standup")
    drain()
    assert telegram.says(ALICE, "The parser").json()["result"] == "stored"
    drain()
    fake_telegram.block(ALICE)  # then the reminder is due, and Telegram refuses it
    wait_for(lambda: subtasks(engine, rid)["alice@example.com"]["channel"] == "email", timeout=10, between=drain)
    alice = subtasks(engine, rid)["alice@example.com"]
    assert alice["status"] == "running"
    assert alice["reason"] == "Telegram refused: Forbidden: bot was blocked by the user; moved to email"
    assert alice["data"] == {"shipped": "The parser"}
    opening, resumed = smtp.to("alice@example.com")[:2]
    assert "What did you ship?" in opening.get_body(("plain",)).get_content()
    assert "How many hours did it take?" in resumed.get_body(("plain",)).get_content()
    refused = [c for c in fake_telegram.calls_to("sendMessage")
               if str(c.args.get("chat_id")) == str(ALICE) and c.status == 403]
    assert len(refused) == 1  # the reminder; Telegram is not tried again


def test_a_mailbox_the_mail_server_refuses_moves_the_sub_task_to_telegram(engine, telegram, fake_telegram, smtp,
                                                                            drain):
    smtp.refuse["bob@example.com"] = "550 5.1.1 <bob@example.com>: Recipient address rejected: User unknown"
    contacts = [{"email": "bob@example.com", "name": "Bob", "telegram_chat_id": str(BOB),
                 "preferred_channel": "email"}]
    rid = begin(engine, drain, people=("bob@example.com",), contacts=contacts)
    bob = subtasks(engine, rid)["bob@example.com"]
    assert (bob["status"], bob["channel"]) == ("running", "telegram")
    assert bob["reason"].startswith("mail server refused bob@example.com: 550 5.1.1")
    assert bob["reason"].endswith("; moved to telegram")
    [opening] = fake_telegram.texts(BOB)
    assert "What did you ship?" in opening
    assert smtp.to("bob@example.com") == []


def test_a_refusal_from_telegram_after_the_sub_task_moved_to_email_changes_nothing(engine, telegram, fake_telegram,
                                                                                    smtp, drain):
    """A reminder was in flight on Telegram when the block came in and moved the sub-task: its 403 is stale."""
    from engine.ports import DeliveryFailed

    rid = begin(engine, drain)
    assert telegram.post(kicked(740001, ALICE)).json()["result"] == "blocked"
    drain()
    alice = subtasks(engine, rid)["alice@example.com"]
    assert (alice["status"], alice["channel"]) == ("running", "email")
    late = DeliveryFailed("Telegram refused: Forbidden: bot was blocked by the user", permanent=True, unreachable=True)
    late.channel = "telegram"  # as Outbox.send marks it
    engine.subtasks.refused(alice["id"], late)
    drain()
    after = subtasks(engine, rid)["alice@example.com"]
    assert (after["status"], after["channel"], after["reason"]) == ("running", "email", alice["reason"])
    assert len(smtp.to("alice@example.com")) == 1  # not opened a second time


def test_a_participant_telegram_refuses_and_who_has_no_other_channel_fails_with_the_reason(
        engine, telegram, fake_telegram, smtp, drain):
    fake_telegram.block(BOB)
    rid = begin(engine, drain, people=("bob",), contacts=[{"id": "bob", "name": "Bob", "telegram_chat_id": str(BOB)}])
    bob = subtasks(engine, rid)["bob"]
    assert (bob["status"], bob["reason"]) == ("failed", "Telegram refused: Forbidden: bot was blocked by the user")


def test_an_email_hard_bounce_moves_the_sub_task_to_telegram(engine, telegram, fake_telegram, smtp, drain,
                                                             monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # without a mailbox the email channel keeps a bounce's parts under ./.taskbot
    contacts = [{"email": "bob@example.com", "name": "Bob", "telegram_chat_id": str(BOB),
                 "preferred_channel": "email"}]
    rid = begin(engine, drain, people=("bob@example.com",), contacts=contacts)
    [opening] = smtp.to("bob@example.com")
    bounce = engine.channels["email"].inbound(bounce_of("bounce_postfix_dsn.eml", opening, "bob@example.com"))
    engine.inbox.receive(bounce)  # what the mailbox poller does with each message it reads
    drain()
    bob = subtasks(engine, rid)["bob@example.com"]
    assert (bob["status"], bob["channel"]) == ("running", "telegram")
    assert bob["reason"].startswith("email to bob@example.com bounced (5.")
    assert bob["reason"].endswith("; moved to telegram")
    [moved] = fake_telegram.texts(BOB)
    assert "What did you ship?" in moved
    assert len(smtp.to("bob@example.com")) == 1  # the bounce was never answered
