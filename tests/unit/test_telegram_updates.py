"""Telegram updates read leniently: only a chat id and a sender are needed; media, unreadable kinds, blocks."""

from __future__ import annotations

from channels.telegram_updates import membership, read_message, read_press, unreadable


def test_a_message_needs_only_a_chat_id():
    read = read_message({"update_id": 1, "message": {"chat": {"id": 42}, "text": "hello"}})
    assert read is not None
    assert (read["chat"], read["sender"], read["text"], read["message_id"]) == (42, 42, "hello", None)


def test_groups_bots_and_wrong_types_are_not_a_persons_message():
    for update in ({"message": {"chat": {"id": -100, "type": "supergroup"}, "text": "x"}},
                   {"message": {"chat": {"id": -5}, "text": "x"}},  # no type: a negative id is a group
                   {"message": {"chat": {"id": 42}, "from": {"id": 9, "is_bot": True}, "text": "x"}},
                   {"message": {"chat": {"id": 42}, "text": "x", "date": "today"}},
                   {"message": {"chat": {"id": 42}, "text": 5}},
                   {"message": {"chat": {"id": 42}}},
                   {"channel_post": {"chat": {"id": 42}, "text": "x"}}):
        assert read_message(update) is None, update


def test_the_largest_photo_and_other_media_are_listed_with_the_caption_as_text():
    photo = [{"file_id": "s", "width": 90, "height": 90, "file_size": 1},
             {"file_id": "l", "width": 1280, "height": 960, "file_size": 99}, {"width": 1}]
    read = read_message({"message": {"chat": {"id": 42, "type": "private"}, "photo": photo, "caption": "cap",
                                     "document": {"file_id": "d", "file_name": "a.pdf", "mime_type": "application/pdf"},
                                     "voice": {"file_id": "v", "duration": 2}}})
    assert read is not None
    assert read["text"] == "cap"
    assert [(f["file_id"], f["name"], f["content_type"]) for f in read["files"]] == [
        ("l", "photo.jpg", "image/jpeg"), ("d", "a.pdf", "application/pdf"), ("v", "voice.ogg", None)]


def test_what_cannot_answer_is_named_and_a_block_is_seen():
    assert unreadable({"message": {"chat": {"id": 42}, "sticker": {"file_id": "x"}}}) == (42, "a sticker")
    assert unreadable({"message": {"chat": {"id": 42}, "location": {"latitude": 1, "longitude": 2}}}) == (
        42, "a location")
    assert unreadable({"message": {"chat": {"id": 42}, "text": "hi"}}) is None
    assert unreadable({"edited_message": {"chat": {"id": 42}, "location": {}}}) is None
    change = {"my_chat_member": {"chat": {"id": 42, "type": "private"}, "new_chat_member": {"status": "kicked"}}}
    assert membership(change) == (42, "kicked")
    assert membership({"my_chat_member": {"chat": {"id": -42, "type": "group"},
                                          "new_chat_member": {"status": "left"}}}) is None


def test_a_button_press_needs_no_message():
    assert read_press({"id": "q", "from": {"id": 42}, "data": "1|k"}) == {
        "id": "q", "data": "1|k", "chat": 42, "message_id": None, "label": None}
    keyboard = {"inline_keyboard": [[{"text": "great", "callback_data": "1|k"}]]}
    pressed = read_press({"id": "q", "from": {"id": 42}, "data": "1|k",
                          "message": {"message_id": 7, "chat": {"id": 42, "type": "private"},
                                      "reply_markup": keyboard}})
    assert pressed is not None
    assert (pressed["message_id"], pressed["label"]) == (7, "great")
    assert read_press({"id": "q", "from": {"id": 42, "is_bot": True}, "data": "1|k"}) is None
