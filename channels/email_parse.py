"""A received email as an ``Inbound``: its sub-task token or thread, its new text only, auto-replies, attachments."""

from __future__ import annotations

import hashlib
import mimetypes
import re
from collections.abc import Iterator
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import parseaddr
from pathlib import Path
from typing import Any, ClassVar

from engine.ports import Inbound

from .email_bounce import HEADER_ERRORS, addresses, auto_reply, bounce, header
from .email_html import ATTRIBUTION, HISTORY, html_to_text
from .email_reply import reply_text

MSGID = re.compile(r"<[^<>\s]+>")
#: Where the plus-address may be seen: what the participant's client wrote first, then what the MTA added.
TOKEN_HEADERS = ("To", "Cc", "Delivered-To", "X-Original-To", "Envelope-To")
UNSAFE = re.compile(r"[^\w.\- ]+")


@dataclass(frozen=True)
class Ours:
    """The bot's address (``local@domain``), to recognise its plus-addresses and Message-IDs."""

    local: str
    domain: str
    MARK: ClassVar[str] = "taskbot"

    def token_in(self, address: str) -> str | None:
        local, _, domain = address.rpartition("@")
        prefix = f"{self.local}+"
        if domain.lower() == self.domain and local.lower().startswith(prefix.lower()) and len(local) > len(prefix):
            return local[len(prefix):]
        return None

    def sent(self, msgid: str) -> bool:
        return msgid.lower().endswith(f".{self.MARK}@{self.domain}>")

    def returned(self, raw: bytes) -> str | None:
        """In a bounce, the token (else the Message-ID) of the bot's mail it returns, from the copy it quotes."""
        plus = re.search(rb"(?i)\b" + re.escape(self.local.encode()) + rb"\+([\w-]{4,64})@" +
                         re.escape(self.domain.encode()) + rb"\b", raw)
        if plus:
            return plus.group(1).decode()
        sent = re.search(rb"(?i)<[^<>\s@]{1,200}\." + self.MARK.encode() + rb"@" + re.escape(self.domain.encode()) +
                         rb">", raw)
        return sent.group(0).decode() if sent else None

    @staticmethod
    def is_msgid(value: str) -> bool:
        return bool(MSGID.fullmatch(value))


def parse(raw: bytes, ours: Ours, attachments: Path) -> Inbound | None:
    """``raw`` (RFC 822 bytes) as an ``Inbound`` from the bare lower-case From address; None without one.

    ``reply_to`` is the plus-address token when the mail was sent to one, else the Message-ID
    of the bot's message it answers (``In-Reply-To``, else the latest of ours in ``References``).
    """
    msg: Any = BytesParser(policy=policy.default).parsebytes(raw)
    returned = bounce(msg)
    senders = addresses(msg, "From")
    if not senders and returned is None:
        return None
    sender = senders[0].lower() if senders else daemon(msg)
    message_id = first_msgid(header(msg, "Message-ID")) or f"<{hashlib.sha256(raw).hexdigest()[:32]}@taskbot.invalid>"
    try:
        body = msg.get_body(preferencelist=("plain", "html"))
    except HEADER_ERRORS:  # a multipart the stdlib cannot walk (a part that is text, not a message)
        body = None
    text = new_text(body) if body is not None else ""
    saved = save_attachments(msg, body, attachments / hashlib.sha256(message_id.encode()).hexdigest()[:24])
    meta: dict[str, Any] = {"message_id": message_id, "subject": header(msg, "Subject")}
    if not text and saved:
        text = "[attached: " + ", ".join(a["name"] for a in saved) + "]"
        meta["file_only"] = True  # an answer to a text field only
    if returned is not None or auto_reply(msg):
        meta["auto_reply"] = True  # never an answer, never answered
    if returned is not None:
        meta["bounce"] = returned
    if saved:
        meta["attachments"] = saved
    thread = (ours.returned(raw) if returned is not None else None) or reply_to(msg, ours)
    return Inbound("email", sender, text, provider_id=message_id, reply_to=thread, meta=meta)


def daemon(msg: Message) -> str:
    """A bounce's sender without a domain (``<MAILER-DAEMON>``, ``MAILER-DAEMON <>``), as it names itself."""
    name, address = parseaddr(header(msg, "From"))
    return (address or name or "mailer-daemon").strip("<> ").lower()


def first_msgid(value: str) -> str | None:
    found = MSGID.search(value)
    return found.group(0) if found else None


def reply_to(msg: Message, ours: Ours) -> str | None:
    for name in TOKEN_HEADERS:
        for address in addresses(msg, name):
            token = ours.token_in(address)
            if token:
                return token
    in_reply_to = MSGID.findall(header(msg, "In-Reply-To"))
    references = MSGID.findall(header(msg, "References"))[::-1]
    candidates = in_reply_to + references
    return next((m for m in candidates if ours.sent(m)), candidates[0] if candidates else None)


def body_text(part: Any) -> str:
    """A text part's content, decoded; a ``format=flowed`` one with its lines joined again."""
    try:
        content = part.get_content()
    except (LookupError, UnicodeError):  # an unknown or lying charset: keep what decodes
        content = (part.get_payload(decode=True) or b"").decode("utf-8", "replace")
    text = str(content).replace("\r\n", "\n")
    if part.get_content_subtype() != "html" and str(part.get_param("format", "")).lower() == "flowed":
        return unflow(text, str(part.get_param("delsp", "")).lower() == "yes")
    return text


def new_text(part: Any) -> str:
    """Only what the person wrote now: quoted history, reply headers and signatures dropped.

    HTML is read through its quote structure; where a whole message sits in a blockquote that
    no client marked as a citation (some indent that way), that blockquote is the message.
    """
    text = body_text(part)
    if part.get_content_subtype() == "html":
        return reply_text(html_to_text(text)) or reply_text(html_to_text(text, quotes=False))
    return reply_text(text.replace(HISTORY, "").replace(ATTRIBUTION, ""))


def unflow(text: str, delsp: bool) -> str:
    """RFC 3676 ``format=flowed``: a line ending in a space goes on in the next one."""
    lines: list[str] = []
    pending = ""
    for line in text.split("\n"):
        quoted = line.startswith(">")
        if line.startswith(" "):
            line = line[1:]  # space-stuffing
        if not quoted and line.endswith(" ") and line != "-- ":
            pending += line[:-1] if delsp else line
            continue
        lines.append(pending + line)
        pending = ""
    if pending:
        lines.append(pending)
    return "\n".join(lines)


def parts(msg: Any) -> Iterator[Any]:
    """Leaf parts; an attached message (``message/rfc822``) is one part, not opened."""
    if msg.get_content_type() == "message/rfc822":
        yield msg
    elif msg.is_multipart():
        for part in msg.get_payload():
            if isinstance(part, Message):  # a broken multipart may hold bare text among its parts
                yield from parts(part)
    else:
        yield msg


def save_attachments(msg: EmailMessage, body: Any, folder: Path) -> list[dict[str, Any]]:
    """Write every attachment (and named inline part) to ``folder``; the list the engine keeps in meta."""
    saved: list[dict[str, Any]] = []
    used: set[str] = set()
    for part in parts(msg):
        if part is body:
            continue
        name = part.get_filename()
        rfc822 = part.get_content_type() == "message/rfc822"
        if not (name or rfc822 or part.get_content_disposition() == "attachment"):
            continue
        if rfc822:
            inner = part.get_payload()
            data = (inner[0] if isinstance(inner, list) else inner).as_bytes()
        else:
            data = part.get_payload(decode=True) or b""
        filename = safe_name(name, part.get_content_type(), len(saved) + 1, used)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / filename
        path.write_bytes(data)
        saved.append({"name": filename, "path": str(path.resolve()), "size": len(data),
                      "content_type": part.get_content_type()})
    return saved


def safe_name(name: str | None, content_type: str, n: int, used: set[str]) -> str:
    """A file name that cannot leave its folder or clash with another attachment of the message."""
    base = UNSAFE.sub("_", Path((name or "").replace("\\", "/")).name).strip(" .")[:120]
    if not base:
        base = f"attachment-{n}{mimetypes.guess_extension(content_type) or '.bin'}"
    stem, dot, ext = base.rpartition(".") if "." in base else (base, "", "")
    candidate, i = base, 2
    while candidate.lower() in used:
        candidate = f"{stem}-{i}{dot}{ext}"
        i += 1
    used.add(candidate.lower())
    return candidate
