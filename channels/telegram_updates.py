"""Telegram updates read leniently: what a person sent, whatever optional fields the update lacks.

The Bot API documents many fields as optional, and real updates (older clients, forwarded
messages, channels' posts, anonymous admins) go without some of them; python-telegram-bot's
``Update.de_json`` fails on an update missing one it treats as required (a chat's ``type``, a
user's ``first_name``), which dropped the whole message. So updates are read here as the JSON
they are, needing only what taskbot cannot do without: the chat's id and a sender (the ``from``
user, or in a private chat the chat itself, whose id is the person's). A field that is there with
another type than the Bot API's is no Telegram update (:func:`malformed`): that one is ignored.

- text, or a caption with media: the text;
- ``photo`` (the largest size), ``document``, ``voice``, ``video``, ``video_note``, ``audio``,
  ``animation``: files, downloaded by the worker with ``getFile`` (``meta.pending``);
- ``sticker``, ``location``, ``poll``, ``contact``, ``dice``… cannot answer: :func:`unreadable` names
  them, and the bot says what it can read;
- ``my_chat_member``: the bot blocked (``kicked``) or unblocked in a private chat (:func:`membership`).
"""

from __future__ import annotations

import time
from typing import Any

#: Media a message may carry that taskbot keeps, and the name a file of it gets without one of its own.
MEDIA = {"photo": "photo.jpg", "document": "document", "voice": "voice.ogg", "video": "video.mp4",
         "video_note": "video_note.mp4", "audio": "audio.mp3", "animation": "animation.mp4"}
#: What a message may be instead of text that cannot answer a question, as the reply names it.
UNREADABLE = {"sticker": "a sticker", "location": "a location", "venue": "a venue", "poll": "a poll",
              "contact": "a contact", "dice": "a dice", "game": "a game", "story": "a story",
              "invoice": "an invoice", "paid_media": "paid media", "checklist": "a checklist"}
#: The update kinds taskbot handles: what it asks Telegram for (``allowed_updates``), and nothing else.
ALLOWED_UPDATES = ["message", "edited_message", "callback_query", "my_chat_member"]


def integer(value: Any) -> bool:
    """An int as JSON gives it (``True`` is an int to Python, not to the Bot API)."""
    return isinstance(value, int) and not isinstance(value, bool)


def private_chat(raw: Any) -> int | None:
    """The id of the private chat a message is in; None for a group, a channel or no chat at all.

    A chat without its ``type`` counts as private when its id is positive (groups' and channels'
    ids are negative)."""
    chat = raw.get("chat") if isinstance(raw, dict) else None
    if not isinstance(chat, dict) or not integer(chat.get("id")):
        return None
    kind = chat.get("type")
    if isinstance(kind, str):
        return chat["id"] if kind == "private" else None
    return chat["id"] if chat["id"] > 0 else None


def sender_of(raw: dict[str, Any], chat: int) -> int | None:
    """Who wrote it: the ``from`` user (None when it is a bot), else the private chat's own id."""
    user = raw.get("from")
    if isinstance(user, dict):
        if user.get("is_bot") is True:
            return None
        if integer(user.get("id")):
            return int(user["id"])
    return chat


def files_of(raw: dict[str, Any]) -> list[dict[str, Any]]:
    """The files of a message as kept until the worker downloads them: file_id, name, type, size."""
    out: list[dict[str, Any]] = []
    for kind, default in MEDIA.items():
        item = raw.get(kind)
        if kind == "photo":  # sizes of one photo, smallest first: the largest is the photo
            sizes = [p for p in item if isinstance(p, dict) and isinstance(p.get("file_id"), str)] \
                if isinstance(item, list) else []
            item = max(sizes, key=lambda p: (_int(p.get("width")) * _int(p.get("height")), _int(p.get("file_size"))),
                       default=None)
        if not isinstance(item, dict) or not isinstance(item.get("file_id"), str) or not item["file_id"]:
            continue
        name = item.get("file_name") if isinstance(item.get("file_name"), str) and item["file_name"] else default
        out.append({"file_id": item["file_id"], "name": name, "kind": kind,
                    "content_type": item.get("mime_type") if isinstance(item.get("mime_type"), str) else
                    ("image/jpeg" if kind == "photo" else None),
                    "size": item["file_size"] if integer(item.get("file_size")) else None})
    return out


def message_of(update: dict[str, Any]) -> tuple[dict[str, Any], bool] | None:
    """The update's message and whether it is an edit; None for another kind of update."""
    for name, edited in (("message", False), ("edited_message", True)):
        raw = update.get(name)
        if isinstance(raw, dict):
            return raw, edited
    return None


def unreadable(update: dict[str, Any]) -> tuple[int, str] | None:
    """(chat id, what it is) for a person's new message in a private chat that cannot be an answer:
    a sticker, a location, a poll… (no text, no caption, no file). None for anything else."""
    found = message_of(update)
    if found is None or found[1]:
        return None
    raw = found[0]
    chat = private_chat(raw)
    if chat is None or malformed(raw) or sender_of(raw, chat) is None or _text(raw).strip() or files_of(raw):
        return None
    what = next((label for kind, label in UNREADABLE.items() if kind in raw), None)
    return (chat, what) if what else None


def membership(update: dict[str, Any]) -> tuple[int, str] | None:
    """(chat id, the bot's new status) of a ``my_chat_member`` update in a private chat: ``kicked``
    when the person blocked the bot, ``member`` when they unblocked or restarted it."""
    change = update.get("my_chat_member")
    if not isinstance(change, dict):
        return None
    chat = private_chat(change)
    new = change.get("new_chat_member")
    status = new.get("status") if isinstance(new, dict) else None
    if chat is None or not isinstance(status, str):
        return None
    return chat, status


def malformed(raw: dict[str, Any]) -> bool:
    """A field that is there but of another type than the Bot API's (a date that is text, ``from`` a
    number): not an update from Telegram, ignored. Only fields that are absent are forgiven."""
    checks = {"message_id": integer, "text": lambda v: isinstance(v, str), "caption": lambda v: isinstance(v, str),
              "from": lambda v: isinstance(v, dict) and ("id" not in v or integer(v["id"])),
              "reply_to_message": lambda v: isinstance(v, dict),
              "date": lambda v: integer(v) and 0 <= v < 2**40, "edit_date": lambda v: integer(v) and 0 <= v < 2**40}
    return any(name in raw and raw[name] is not None and not ok(raw[name]) for name, ok in checks.items())


def _text(raw: dict[str, Any]) -> str:
    for name in ("text", "caption"):
        if isinstance(raw.get(name), str):
            return str(raw[name])
    return ""


def _int(value: Any) -> int:
    return int(value) if integer(value) else 0


def read_message(update: dict[str, Any]) -> dict[str, Any] | None:
    """A person's message or edit in a private chat: chat, sender, text, files, ids and when; None when
    it is not one (a group, a bot, another kind of update) or has nothing to read."""
    found = message_of(update)
    if found is None:
        return None
    raw, edited = found
    chat = private_chat(raw)
    if chat is None or malformed(raw):
        return None
    sender = sender_of(raw, chat)
    if sender is None:
        return None
    text, files = _text(raw), files_of(raw)
    if not text.strip() and not files:
        return None
    message_id = raw["message_id"] if integer(raw.get("message_id")) else None
    date = raw["date"] if integer(raw.get("date")) and 0 <= raw["date"] < 2**40 else None
    edit_date = raw["edit_date"] if integer(raw.get("edit_date")) and 0 <= raw["edit_date"] < 2**40 else None
    replied = raw.get("reply_to_message")
    reply_id = replied["message_id"] if isinstance(replied, dict) and integer(replied.get("message_id")) else None
    album = raw.get("media_group_id") if isinstance(raw.get("media_group_id"), str) else None
    return {"chat": chat, "sender": sender, "text": text, "files": files, "edited": edited, "album": album,
            "message_id": message_id, "reply_to": reply_id,
            "at": float((edit_date if edited and edit_date else date) or time.time())}


def read_press(query: dict[str, Any]) -> dict[str, Any] | None:
    """A keyboard button pressed in a private chat: the query's id and data, the chat, the message it sits
    on (optional: it may be too old to come with the query) and the button's own label."""
    sender = query.get("from")
    data = query.get("data")
    if not (isinstance(query.get("id"), str) and isinstance(sender, dict) and integer(sender.get("id"))
            and isinstance(data, str) and data) or sender.get("is_bot") is True:
        return None
    message = query.get("message") if isinstance(query.get("message"), dict) else None
    chat: int | None = sender["id"]
    message_id = None
    label = None
    if message is not None:
        chat = private_chat(message)
        if chat is None:
            return None
        message_id = message["message_id"] if integer(message.get("message_id")) else None
        markup = message.get("reply_markup")
        rows = markup.get("inline_keyboard") if isinstance(markup, dict) else None
        for row in rows if isinstance(rows, list) else []:
            for button in row if isinstance(row, list) else []:
                if isinstance(button, dict) and button.get("callback_data") == data and isinstance(button.get("text"),
                                                                                                   str):
                    label = button["text"]
    return {"id": query["id"], "data": data, "chat": chat, "message_id": message_id, "label": label}
