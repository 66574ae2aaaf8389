"""Bounces and automatic replies: recognised, never an answer, and for a bounce what it says about whom.

The bounces in ``tests/fixtures/email/`` are this project's own, written in the shapes mail systems
send (Postfix and Gmail RFC 3464 reports, a sendmail delay warning, qmail, Exim and Exchange
plain-text notices, sendmail without a domain); each returns the bot's mail with token
``6f1c2a9be04d``.
"""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

import pytest

from channels.email_parse import Ours, parse

FIXTURES = Path(__file__).parents[1] / "fixtures" / "email"
OURS = Ours(local="tasks", domain="example.com")

BOUNCES = {
    "bounce_postfix_dsn.eml": {"recipient": "bob@example.org", "status": "5.1.1", "hard": True,
                               "reason": "550 5.1.1 <bob@example.org>: Recipient address rejected: User unknown in "
                                         "virtual mailbox table"},
    "bounce_gmail_headers_only.eml": {"recipient": "bob.typo@gmail.com", "status": "5.1.1", "hard": True,
                                      "reason": "550-5.1.1 The email account that you tried to reach does not "
                                                "exist."},
    "bounce_delay_dsn.eml": {"recipient": "bob@example.org", "status": "4.4.7", "hard": False,
                             "reason": "421 4.4.7 mail.example.org: connection timed out"},
    "bounce_qmail.eml": {"recipient": "carol@example.net", "status": "5.1.1", "hard": True,
                         "reason": "Sorry, no mailbox here by that name. (#5.1.1)"},
    "bounce_exim.eml": {"recipient": "dave@example.net", "status": "5.2.1", "hard": True,
                        "reason": "550 5.2.1 Mailbox disabled for this recipient"},
    "bounce_exchange_ndr.eml": {"recipient": "erin@contoso.example", "status": "5.1.10", "hard": True,
                                "reason": "Remote Server returned '550 5.1.10 RESOLVER.ADR.RecipientNotFound; "
                                          "Recipient not found by SMTP address lookup'"},
    "bounce_sendmail_no_domain.eml": {"recipient": "frank@example.com", "status": "5.2.2", "hard": True,
                                      "reason": "(reason: 552 5.2.2 Mailbox full)"},
}


def read(name: str, tmp_path):
    inbound = parse((FIXTURES / name).read_bytes(), OURS, tmp_path)
    assert inbound is not None
    return inbound


@pytest.mark.parametrize("name", sorted(BOUNCES))
def test_a_bounce_says_for_whom_why_and_whether_for_good(name, tmp_path):
    inbound = read(name, tmp_path)
    assert inbound.meta["auto_reply"] is True  # never an answer, never answered
    assert inbound.meta["bounce"] == BOUNCES[name]
    assert inbound.reply_to == "6f1c2a9be04d"  # routed by the copy of the bot's own mail it returns


def test_a_bounce_without_a_copy_routes_by_the_message_id_it_names(tmp_path):
    raw = (FIXTURES / "bounce_exchange_ndr.eml").read_bytes().replace(
        b"Reply-To: taskbot <tasks+6f1c2a9be04d@example.com>\n", b"")
    assert read_raw(raw, tmp_path).reply_to == "<0f5a9c1e2b7d4e8f9a0b1c2d3e4f5a6b.taskbot@example.com>"


def read_raw(raw: bytes, tmp_path):
    inbound = parse(raw, OURS, tmp_path)
    assert inbound is not None
    return inbound


def test_a_bounce_from_a_sender_without_domain_is_still_read(tmp_path):
    inbound = read("bounce_sendmail_no_domain.eml", tmp_path)
    assert inbound.sender == "mailer-daemon"


@pytest.mark.parametrize("name", ["dsn_relayed.eml", "read_receipt.eml"])
def test_a_delivery_or_read_report_is_automatic_but_no_bounce(name, tmp_path):
    inbound = read(name, tmp_path)
    assert inbound.meta["auto_reply"] is True
    assert "bounce" not in inbound.meta


def mail(subject: str = "Re: Weekly status", sender: str = "Alice <alice@example.com>", **headers: str):
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, "tasks+6f1c2a9be04d@example.com", subject
    for key, value in headers.items():
        message[key.replace("_", "-")] = value
    message.set_content("I am out until Monday.")
    return message.as_bytes()


@pytest.mark.parametrize(("subject", "headers"), [
    ("Automatic reply: Weekly status", {"Auto_Submitted": "auto-replied"}),
    ("Re: Weekly status", {"X_Auto_Response_Suppress": "All"}),
    ("Re: Weekly status", {"X_Autoreply": "yes"}),
    ("Re: Weekly status", {"X_Autorespond": "Out of office"}),
    ("Re: Weekly status", {"Precedence": "bulk"}),
    ("Re: Weekly status", {"Precedence": "list"}),
    ("Re: Weekly status", {"Return_Path": "<>"}),
    ("Out of Office: Weekly status", {}),
    ("Abwesenheitsnotiz: Weekly status", {}),
    ("Réponse automatique : Weekly status", {}),
    ("Respuesta automática: Weekly status", {}),
    ("Autosvar: Weekly status", {}),
    ("Automatisch antwoord: Weekly status", {}),
    ("Автоответ: Weekly status", {}),
    ("自動応答: Weekly status", {}),
], ids=["auto-submitted", "x-auto-response-suppress", "x-autoreply", "x-autorespond", "precedence-bulk",
        "precedence-list", "null-return-path", "en", "de", "fr", "es", "sv", "nl", "ru", "ja"])
def test_an_automatic_reply_is_recognised_and_is_no_bounce(tmp_path, subject, headers):
    inbound = read_raw(mail(subject, **headers), tmp_path)
    assert inbound.meta["auto_reply"] is True
    assert "bounce" not in inbound.meta


@pytest.mark.parametrize(("subject", "sender"), [
    ("Re: Delivery failed?", "Alice <alice@example.com>"),
    ("Re: Out of office plans", "Alice <alice@example.com>"),
    ("Fwd: failure notice", "Alice <alice@example.com>"),
    ("Re: Weekly status", "Auto Parts Team <team@autoparts.example>"),
], ids=["delivery-question", "ooo-plans", "forwarded-bounce", "auto-in-name"])
def test_a_persons_mail_that_mentions_such_words_is_a_persons_mail(tmp_path, subject, sender):
    inbound = read_raw(mail(subject, sender), tmp_path)
    assert "auto_reply" not in inbound.meta
    assert "bounce" not in inbound.meta


@pytest.mark.parametrize(("sender", "subject"), [
    ("MAILER-DAEMON@mx.example.org", "Hello"),
    ("postmaster@example.org", "Hello"),
    ("Mail Delivery Subsystem <robot@example.org>", "Hello"),
    ("robot@example.org", "Undeliverable: Weekly status"),
    ("robot@example.org", "Delivery Status Notification (Failure)"),
    ("robot@example.org", "Mail delivery failed: returning message to sender"),
    ("robot@example.org", "Non recapitabile: Weekly status"),
    ("robot@example.org", "Unzustellbar: Weekly status"),
], ids=["mailer-daemon", "postmaster", "daemon-name", "undeliverable", "dsn-subject", "exim-subject", "it", "de"])
def test_a_mail_system_notice_is_a_bounce_even_when_it_reads_nothing(tmp_path, sender, subject):
    inbound = read_raw(mail(subject, sender), tmp_path)
    assert inbound.meta["auto_reply"] is True
    assert inbound.meta["bounce"]["hard"] is (subject != "Hello")  # no status, no verdict: a failure subject


@pytest.mark.parametrize("sender", ['"', "a@", "MAILER-DAEMON <", '"Mail Delivery System"<'])
def test_a_from_header_the_mail_parser_cannot_read_is_read_as_written(tmp_path, sender):
    # the stdlib's address parser raises IndexError on these instead of noting a defect (found by the fuzz test)
    raw = (f"From: {sender}\r\nTo: tasks@example.com\r\nSubject: Undeliverable: Weekly status\r\n"
           "X-Failed-Recipients: bob@example.org\r\n\r\nThis message could not be delivered.\r\n").encode()
    inbound = parse(raw, OURS, tmp_path)
    assert inbound is None or inbound.meta["auto_reply"] is True
    if inbound is not None:
        assert inbound.meta["bounce"]["recipient"] == "bob@example.org"
