"""What a person wrote in Slack, as plain text: Slack's markup read back, attachments and files.

Slack sends a message's text in its own markup (https://docs.slack.dev/messaging/formatting-message-text):
``<@U123>`` a mention, ``<#C123|general>`` a channel, ``<!here>`` a special mention, ``<url|text>``
a link, ``&amp; &lt; &gt;`` escaped. Recorded raw, an answer reads ``<@W222>``; so each reference
becomes what the person saw: ``@Display Name``, ``#general``, ``@here``, ``text (url)``.

Reading happens twice. On the ack path (:func:`render` without look-ups) every reference is
written from what the text itself says (a mention's label, else its id): nothing there may wait
on Slack. The worker then renders the kept raw text again with ``users.info`` and
``conversations.info`` answers (cached, paced), before the message is applied.

A forwarded or shared message carries its content in ``attachments`` only; its text is built
from them (:func:`attachments_text`). Files are listed (:func:`files_of`) for the worker to
download with the bot token.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from typing import Any

#: One reference: everything between ``<`` and ``>`` (Slack escapes a literal ``<`` as ``&lt;``).
REFERENCE = re.compile(r"<([^<>]*)>")
#: Users, bots and apps that write in DMs without being a person (Slackbot's id is fixed).
SLACKBOT = "USLACKBOT"

Lookup = Callable[[str], str | None]


def _none(_: str) -> str | None:
    return None


def references(text: str) -> tuple[set[str], set[str]]:
    """The user ids mentioned (a label is a handle, not the name Slack shows) and the channel ids linked
    without a name: what a look-up could improve."""
    users, channels = set(), set()
    for found in REFERENCE.finditer(text):
        body = found.group(1).strip()
        if body.startswith("@"):
            users.add(body[1:].partition("|")[0].strip())
        elif body.startswith("#") and "|" not in body:
            channels.add(body[1:].strip())
    return users, channels


def render(text: str, users: Lookup = _none, channels: Lookup = _none) -> str:
    """Slack markup to plain text. ``users(id)`` and ``channels(id)`` give a display name (or None);
    without them a reference is written from its own label, else its id."""
    out: list[str] = []
    last = 0
    for found in REFERENCE.finditer(text):
        out.append(html.unescape(text[last:found.start()]))
        out.append(_reference(found.group(1), users, channels))
        last = found.end()
    out.append(html.unescape(text[last:]))
    return "".join(out)


def _reference(body: str, users: Lookup, channels: Lookup) -> str:
    target, _, label = body.partition("|")
    target, label = target.strip(), html.unescape(label.strip())
    if target.startswith("@"):  # a user, bot or app: @Display Name
        uid = target[1:].strip()
        return "@" + (users(uid) or label or uid)
    if target.startswith("#"):  # a channel
        cid = target[1:].strip()
        return "#" + (label or channels(cid) or cid)
    if target.startswith("!"):
        kind = target[1:]
        if kind.startswith("subteam^"):  # a user group
            return "@" + (label or kind.split("^", 1)[1])
        if kind.startswith("date^"):  # a date Slack shows in the reader's zone: its fallback is the text
            return label or kind.split("^")[-1]
        if kind in ("here", "channel", "everyone"):
            return "@" + kind
        return label or f"@{kind}"
    url = html.unescape(target)
    shown = url.removeprefix("mailto:")
    if not label or label in (url, shown) or label == re.sub(r"^[a-z][a-z0-9+.-]*://", "", url):
        return label or shown  # a link Slack made of what the person typed: the text they typed
    return f"{label} ({shown})"


def attachments_text(attachments: Any, render_one: Callable[[str], str] = render) -> str:
    """The readable text of legacy ``attachments`` (a forwarded or shared message, an unfurl a person
    sent): pretext, author, title and link, text and fields of each, else its ``fallback``."""
    if not isinstance(attachments, list):
        return ""
    parts: list[str] = []
    for item in attachments:
        if not isinstance(item, dict):
            continue
        lines: list[str] = []
        pretext, author, title, link, body = (_string(item.get(k)) for k in
                                              ("pretext", "author_name", "title", "title_link", "text"))
        if pretext:
            lines.append(render_one(pretext))
        if author and (item.get("is_share") or item.get("is_msg_unfurl")):
            lines.append(f"Forwarded from {render_one(author)}:")
        elif author:
            lines.append(render_one(author))
        if title:
            lines.append(f"{render_one(title)} ({link})" if link and link != title else render_one(title))
        if body:
            lines.append(render_one(body))
        for field in item.get("fields") or []:
            if isinstance(field, dict) and (_string(field.get("title")) or _string(field.get("value"))):
                name, value = render_one(_string(field.get("title"))), render_one(_string(field.get("value")))
                lines.append(f"{name}: {value}" if name else value)
        if not lines and _string(item.get("fallback")):
            lines.append(render_one(_string(item["fallback"])))
        if lines:
            parts.append("\n".join(lines))
    return "\n\n".join(parts)


def files_of(event: dict[str, Any]) -> list[dict[str, Any]]:
    """The files of a message, as kept until they are downloaded: id, name, type, size, private URL.

    A file Slack no longer serves (``mode`` tombstone or hidden_by_limit) keeps its name only."""
    files = event.get("files")
    if not isinstance(files, list):
        return []
    out: list[dict[str, Any]] = []
    for item in files:
        if not isinstance(item, dict):
            continue
        name = _string(item.get("name")) or _string(item.get("title")) or _string(item.get("id")) or "file"
        url = _string(item.get("url_private_download")) or _string(item.get("url_private"))
        size = item.get("size") if isinstance(item.get("size"), int) else None
        entry: dict[str, Any] = {"name": name, "content_type": _string(item.get("mimetype")) or None, "size": size}
        if item.get("id"):
            entry["id"] = _string(item.get("id"))
        if url and item.get("mode") not in ("tombstone", "hidden_by_limit"):
            entry["url"] = url
        out.append(entry)
    return out


def is_bot(event: dict[str, Any]) -> bool:
    """Written by Slackbot, a bot or an app (a workflow, an integration), not by a person."""
    return bool(event.get("user") == SLACKBOT or event.get("bot_id") or event.get("bot_profile")
                or event.get("app_id") or event.get("subtype") == "bot_message")


def _string(value: Any) -> str:
    return value if isinstance(value, str) else ""
