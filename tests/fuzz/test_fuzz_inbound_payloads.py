"""Slack events and Telegram updates mutated at any depth: read into a message or ignored, never an exception.

The adapters' readers run before the provider's acknowledgement; an exception there would answer 500
and make the provider deliver the same payload again, forever.
"""

from __future__ import annotations

from typing import Any

from hypothesis import event, given

from channels.slack import SlackChannel
from channels.telegram import TelegramChannel
from tests.fuzz.conftest import FUZZ
from tests.fuzz.strategies import mutated

SLACK = {"type": "event_callback", "event_id": "Ev1", "event": {
    "type": "message", "channel": "DU1", "channel_type": "im", "user": "U1", "ts": "1800000000.000100",
    "text": "hi <@U2> <#C1|general> <https://x.example|x>",
    "attachments": [{"is_share": True, "author_name": "Bo", "text": "shared",
                     "fields": [{"title": "a", "value": "b"}]}],
    "files": [{"id": "F1", "name": "a.png", "mimetype": "image/png", "size": 3,
               "url_private": "https://files.slack.com/files-pri/T-F1/a.png"}]}}
SLACK_EDIT = {"type": "event_callback", "event_id": "Ev2", "event": {
    "type": "message", "subtype": "message_changed", "channel": "DU1", "channel_type": "im",
    "message": {"user": "U1", "text": "new", "ts": "1800000000.000100"},
    "previous_message": {"user": "U1", "text": "old", "ts": "1800000000.000100"}, "event_ts": "1800000001.1"}}
TELEGRAM = {"update_id": 1, "message": {
    "message_id": 5, "date": 1800000000, "chat": {"id": 42, "type": "private"}, "from": {"id": 42, "is_bot": False},
    "caption": "cap", "photo": [{"file_id": "p", "width": 1, "height": 1}], "media_group_id": "m",
    "document": {"file_id": "d", "file_name": "a.pdf"}, "reply_to_message": {"message_id": 4}}}
TELEGRAM_OTHER = {"update_id": 2, "my_chat_member": {"chat": {"id": 42, "type": "private"},
                                                    "new_chat_member": {"status": "kicked"}},
                  "callback_query": {"id": "q", "from": {"id": 42}, "data": "1|k",
                                     "message": {"message_id": 5, "chat": {"id": 42}}}}


@FUZZ
@given(mutated(SLACK, edits=4) | mutated(SLACK_EDIT, edits=4))
def test_a_slack_event_is_read_or_ignored(body: Any) -> None:
    if not isinstance(body, dict):
        return
    message = SlackChannel.inbound(body)
    event("read" if message is not None else "ignored")
    if message is not None:
        assert isinstance(message.text, str)
        assert message.text.strip()


@FUZZ
@given(mutated(TELEGRAM, edits=4) | mutated(TELEGRAM_OTHER, edits=4))
def test_a_telegram_update_is_read_answered_or_ignored(update: Any) -> None:
    if not isinstance(update, dict):
        return
    message = TelegramChannel.inbound(update)
    other = TelegramChannel.unreadable(update) or TelegramChannel.membership(update)
    event("read" if message is not None else "other" if other else "ignored")
    if message is not None:
        assert isinstance(message.text, str)
        assert message.sender
