"""The email channel: task messages out over SMTP (aiosmtplib), received mail turned into ``Inbound``.

Every message gets its own ``Message-ID``, returned as ``Delivery.ref``; chases and replies carry
``In-Reply-To``/``References`` set to the opening's, so mail clients show one thread, and their
``Reply-To`` is a plus-address of ``TASKBOT_EMAIL_FROM`` carrying the sub-task's token
(``tasks+<token>@example.com``), so a reply names its sub-task whatever the client does with
threading headers. Mail goes out over an SMTP session each process keeps open for the next
message (:mod:`.smtp`). Fetching mail (IMAP polling) lives in ``bot.mailbox``; reading a
received message in :mod:`.email_parse`.
"""

from __future__ import annotations

import hashlib
import logging
import re
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, parseaddr
from pathlib import Path
from typing import Any

import aiosmtplib
import redis
from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from engine.keys import PREFIX
from engine.model import Contact
from engine.ports import Delivery, DeliveryFailed, Inbound, Outbound

from .email_parse import Ours, parse
from .markdown import html as markdown_html
from .smtp import SmtpConfig, SmtpSessions

__all__ = ["EmailChannel", "MailboxConfig", "SmtpConfig", "failure"]

log = logging.getLogger("taskbot.email")

#: How long the subject of an opening is kept, so chases and replies can say ``Re:`` to it.
SUBJECT_TTL = 90 * 86400
#: RFC 3834: a message the bot writes by itself; well-behaved auto-responders do not answer these.
AUTO_SUBMITTED = {"chase": "auto-generated", "notification": "auto-generated", "reply": "auto-replied",
                  "direct": "auto-replied", "escalation": "auto-generated", "report": "auto-generated"}
#: RFC 3834 §2: no automatic answer to these senders (bounces, lists, robots), lest two robots loop.
NO_AUTO_ANSWER = re.compile(r"^(mailer-daemon|postmaster|listserv|majordomo|no-?reply|do-?not-?reply|"
                            r"bounces?|owner-.*|.*-request)$", re.IGNORECASE)
FOOTER = {"opening": "Just reply to this email to answer.", "chase": "Just reply to this email to answer."}
#: Mail bodies (``channels/templates/``), autoescaped: a task's or a participant's words are text in the HTML part.
TEMPLATES = Environment(loader=PackageLoader("channels", "templates"), autoescape=True, undefined=StrictUndefined,
                        trim_blocks=True, lstrip_blocks=True)


def key(kind: str, ident: str) -> str:
    """Adapter keys: ``email:subject:{message id}`` -> subject of an opening (TTL)."""
    return f"{PREFIX}email:{kind}:{ident}"


@dataclass(frozen=True)
class MailboxConfig:
    """Where replies are read from (IMAP) and where their attachments are kept."""

    host: str
    port: int | None
    user: str
    password: str
    ssl: bool
    poll: float
    attachments: Path
    folder: str = "INBOX"


class EmailChannel:
    """Implements the engine's ``Channel`` on SMTP; ``inbound`` reads one received message."""

    name = "email"

    def __init__(self, smtp: SmtpConfig, sender: str, r: redis.Redis, mailbox: MailboxConfig | None = None, *,
                 idle: float = 10.0, session_messages: int = 100, files: Path | None = None) -> None:
        display, address = parseaddr(sender)
        if "@" not in address:
            raise ValueError(f"TASKBOT_EMAIL_FROM is not an email address: {sender!r}")
        self.smtp = smtp
        self.address = address.lower()
        self.sender = formataddr((display, address)) if display else address
        local, _, self.domain = address.rpartition("@")
        self.ours = Ours(local=local.split("+", 1)[0], domain=self.domain.lower())
        self.r = r
        self.mailbox = mailbox
        # where a received message's attachments go when no mailbox is set (mail posted by a test or a relay)
        self.files = files or (mailbox.attachments if mailbox else Path(".taskbot/attachments"))
        self.sessions = SmtpSessions(smtp, idle=idle, max_messages=session_messages)

    @classmethod
    def from_settings(cls, settings: Any) -> EmailChannel:
        def secret(value: Any) -> str | None:
            return value.get_secret_value() if value is not None else None

        smtp = SmtpConfig(settings.smtp_host, settings.smtp_port, settings.smtp_user, secret(settings.smtp_password),
                          settings.smtp_starttls, settings.smtp_tls)
        mailbox = None
        if settings.imap_host:
            user = settings.imap_user or settings.smtp_user or ""
            password = secret(settings.imap_password) or secret(settings.smtp_password) or ""
            mailbox = MailboxConfig(settings.imap_host, settings.imap_port, user, password, settings.imap_ssl,
                                    settings.imap_poll, Path(settings.data_dir).expanduser() / "attachments")
        r = redis.Redis.from_url(settings.redis_url)
        channel = cls(smtp, settings.email_from, r, mailbox, idle=settings.smtp_idle,
                      session_messages=settings.smtp_session_messages,
                      files=Path(settings.data_dir).expanduser() / "attachments")
        weakref.finalize(channel, r.close)  # its connections close with it, not at the collector's whim
        return channel

    def resolve(self, contact: Contact) -> str | None:
        return contact.email.strip().lower() if contact.email else None

    # -- out ------------------------------------------------------------------------
    def plus_address(self, token: str) -> str:
        return f"{self.ours.local}+{token}@{self.domain}"

    def message_id(self, out_key: str) -> str:
        """The same logical message always gets the same id: a re-send after a crash is one mail to clients."""
        digest = hashlib.sha256(out_key.encode()).hexdigest()[:32]
        return f"<{digest}.{Ours.MARK}@{self.domain}>"

    def subject(self, message: Outbound, thread: str | None) -> str:
        subject = " ".join((message.subject or "").split())[:200]
        if thread:
            if not subject:
                cached = self.r.get(key("subject", thread))
                subject = cached.decode() if cached else "your task"
            return subject if subject.lower().startswith("re:") else f"Re: {subject}"
        return subject or "taskbot"

    def build(self, message: Outbound) -> EmailMessage:
        """The MIME message for ``message``: plain text and the same as HTML."""
        thread = message.thread if message.thread and Ours.is_msgid(message.thread) else None
        mail = EmailMessage()
        mail["From"] = self.sender
        mail["To"] = message.address.id
        if message.reply_token:
            mail["Reply-To"] = formataddr((parseaddr(self.sender)[0], self.plus_address(message.reply_token)))
        mail["Subject"] = self.subject(message, thread)
        mail["Date"] = format_datetime(datetime.now(UTC))
        mail["Message-ID"] = self.message_id(message.key)
        if thread:
            mail["In-Reply-To"] = thread
            mail["References"] = thread
        if message.kind in AUTO_SUBMITTED:
            mail["Auto-Submitted"] = AUTO_SUBMITTED[message.kind]
        footer = FOOTER.get(message.kind)
        text = message.text + (f"\n\n{footer}" if footer else "")
        mail.set_content(text)
        if message.kind == "report":  # a deliverable: its Markdown rendered, tables as tables
            clean = Markup(markdown_html(message.text))  # noqa: S704 - nh3 sanitised it (channels.markdown.html)
            body = TEMPLATES.get_template("report.html").render(content=clean)
            mail.add_alternative(body, subtype="html")
        else:
            mail.add_alternative(to_html(message.text, footer), subtype="html")
        return mail

    def send(self, message: Outbound) -> Delivery:
        if message.kind == "direct" and NO_AUTO_ANSWER.match(message.address.id.rpartition("@")[0]):
            raise DeliveryFailed(f"{message.address.id} is a robot; it gets no automatic answer", permanent=True)
        mail = self.build(message)
        try:
            self.sessions.send(mail, self.address, [message.address.id])
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise failure(exc, message.address.id) from None
        ref = str(mail["Message-ID"])
        if message.kind == "opening":
            try:
                self.r.set(key("subject", ref), str(mail["Subject"]), ex=SUBJECT_TTL)
            except redis.RedisError as exc:  # sent is sent; follow-ups then say "Re: your task"
                log.warning("could not keep the subject of %s: %s", ref, exc)
        return Delivery(ref=ref)

    # -- in -------------------------------------------------------------------------
    def inbound(self, raw: bytes) -> Inbound | None:
        """One received message (RFC 822 bytes) as an ``Inbound``; None when it names no sender.

        Attachments are written under the mailbox's attachments folder, one folder per message.
        """
        folder = self.mailbox.attachments if self.mailbox else self.files
        return parse(raw, self.ours, folder)


#: RFC 3463 enhanced status codes that say the recipient's mailbox is not there: 5.1.x (address), 5.2.1 (disabled).
MAILBOX_GONE = re.compile(r"^\s*5\.(1\.\d{1,3}|2\.1)\b")


def failure(exc: BaseException, recipient: str) -> DeliveryFailed:
    """A 5xx about this recipient or this message is permanent (about the recipient: unreachable, so their next
    channel is tried); anything else is worth retrying.

    Refusals of our own sender or login (a configuration fault) are retried, so fixing the
    settings delivers what waited instead of failing every sub-task.
    """
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused) and exc.recipients:
        refused = exc.recipients[0]
        # a 5xx for the recipient fails it; one that says the mailbox is not there (5.1.x: bad address, no such
        # user; 5.2.1: disabled) moves it to another channel. A relay or policy refusal (5.7.x) is about us.
        gone = 500 <= refused.code < 600 and bool(MAILBOX_GONE.match(refused.message))
        return DeliveryFailed(f"mail server refused {recipient}: {refused.code} {refused.message}",
                              permanent=500 <= refused.code < 600, unreachable=gone)
    if isinstance(exc, aiosmtplib.SMTPDataError):
        return DeliveryFailed(f"mail server refused the message to {recipient}: {exc.code} {exc.message}",
                              permanent=500 <= exc.code < 600)
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError | aiosmtplib.SMTPSenderRefused):
        log.error("the mail server refuses taskbot's login or sender (check TASKBOT_SMTP_*): %s", exc)
        return DeliveryFailed(f"mail server refused taskbot: {exc}", permanent=False)
    return DeliveryFailed(f"mail server unavailable: {exc}", permanent=False)


def to_html(text: str, footer: str | None) -> str:
    """The HTML part of a mail whose plain part is ``text`` (and ``footer``), from ``templates/email.html``."""
    paragraphs = [p.split("\n") for p in text.split("\n\n") if p.strip()]
    return TEMPLATES.get_template("email.html").render(paragraphs=paragraphs, footer=footer)
