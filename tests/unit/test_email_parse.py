"""Reading received mail: the new text only, the sub-task it answers, auto-replies, attachments; SMTP errors."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import pytest

from channels.email import failure
from channels.email_html import ATTRIBUTION, html_to_text
from channels.email_parse import Ours, parse
from channels.email_reply import reply_text

OURS = Ours(local="tasks", domain="example.com")
SENT = "<0123abcd.taskbot@example.com>"


def mail(text: str = "Docs", **headers: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Bob <Bob@Example.COM>"
    message["To"] = "tasks@example.com"
    message["Subject"] = "Re: Weekly status"
    message["Message-ID"] = "<m1@mail.example.net>"
    for key, value in headers.items():
        message[key.replace("_", "-")] = value
    message.set_content(text)
    return message


def read(message: EmailMessage, tmp_path):
    inbound = parse(message.as_bytes(), OURS, tmp_path)
    assert inbound is not None
    return inbound


@pytest.mark.parametrize(("body", "expected"), [
    ("The parser\n\n-- \nAlice\n\nOn Mon, 3 Mar 2025 at 09:00, taskbot <tasks@example.com> wrote:\n> Hi!\n> What?",
     "The parser"),
    ("Docs and tests\n\nFrom: taskbot <tasks@example.com>\nSent: Monday, March 3, 2025 9:00 AM\nTo: Bob\n"
     "Subject: Weekly status\n\nHi! What did you ship?", "Docs and tests"),
    ("none\n\nSent from my iPhone\n\n> On 3 Mar 2025, at 09:00, taskbot <tasks@example.com> wrote:\n>\n> Hi!", "none"),
    ("Fertig: der Parser.\n\nAm Mo., 3. März 2025 um 09:00 Uhr schrieb taskbot <tasks@example.com>:\n> Hallo",
     "Fertig: der Parser."),
    ("On Mon, 3 Mar 2025 at 09:00, taskbot <tasks@example.com> wrote:\n> What did you ship?\n\nThe parser",
     "The parser"),  # bottom-posted
    ("Thanks! Nothing is blocking me.", "Thanks! Nothing is blocking me."),
    ("- the parser\n- the docs", "- the parser\n- the docs"),  # a list is not a signature
], ids=["gmail", "outlook", "phone", "german", "bottom-post", "thanks", "list"])
def test_only_the_new_text_of_a_reply_is_kept(body, expected):
    assert reply_text(body) == expected


def test_html_becomes_text_with_blockquotes_as_quotes():
    markup = ('<html><head><style>p {margin:0}</style></head><body><p>Docs&nbsp;and <b>tests</b></p>'
              '<ul><li>one</li><li>two</li></ul><div class="gmail_quote">On Mon, taskbot &lt;tasks@example.com&gt; '
              'wrote:<blockquote>Hi!<br>What did you ship?</blockquote></div></body></html>')
    assert html_to_text(markup) == ("Docs and tests\n- one\n- two\n" + ATTRIBUTION +
                                    "On Mon, taskbot <tasks@example.com> wrote:\n> Hi!\n> What did you ship?")
    assert reply_text(html_to_text(markup)) == "Docs and tests\n- one\n- two"


def test_format_flowed_lines_are_joined(tmp_path):
    message = mail("A long answer that the client wrapped \nat seventy-two columns.\n\n-- \nBob\n")
    message.set_param("format", "flowed")
    assert read(message, tmp_path).text == "A long answer that the client wrapped at seventy-two columns."


def test_the_sender_is_the_bare_lower_case_address_and_the_message_id_the_provider_id(tmp_path):
    inbound = read(mail(), tmp_path)
    assert (inbound.channel, inbound.sender, inbound.provider_id) == ("email", "bob@example.com",
                                                                      "<m1@mail.example.net>")
    assert inbound.meta["subject"] == "Re: Weekly status"


def test_a_message_without_message_id_gets_a_stable_one(tmp_path):
    message = mail()
    del message["Message-ID"]
    first, second = read(message, tmp_path), read(message, tmp_path)
    assert first.provider_id == second.provider_id
    assert first.provider_id.endswith("@taskbot.invalid>")


def test_no_sender_no_inbound(tmp_path):
    message = mail()
    del message["From"]
    assert parse(message.as_bytes(), OURS, tmp_path) is None


@pytest.mark.parametrize(("headers", "reply_to"), [
    ({"To": "taskbot <tasks+Tok-3n_X@EXAMPLE.com>", "In_Reply_To": SENT}, "Tok-3n_X"),  # the token wins
    ({"Delivered_To": "tasks+Tok@example.com"}, "Tok"),
    ({"Cc": "someone@example.org, tasks+Tok@example.com"}, "Tok"),
    ({"In_Reply_To": SENT, "References": "<other@x>"}, SENT),
    ({"In_Reply_To": "<bobs-own@mail.example.net>", "References": f"{SENT} <1.taskbot@example.com> <bobs-own@x>"},
     "<1.taskbot@example.com>"),  # the latest of ours in References
    ({"In_Reply_To": "<foreign@example.org>"}, "<foreign@example.org>"),
    ({"To": "tasks+Tok@example.org"}, None),  # another domain's plus-address is not ours
    ({}, None),
], ids=["token", "delivered-to", "cc", "in-reply-to", "references", "foreign", "other-domain", "none"])
def test_routing(tmp_path, headers, reply_to):
    message = mail()
    if "To" in headers:
        del message["To"]
    for key, value in headers.items():
        message[key.replace("_", "-")] = value
    assert read(message, tmp_path).reply_to == reply_to


@pytest.mark.parametrize(("headers", "auto"), [
    ({"Auto_Submitted": "auto-replied"}, True),
    ({"Auto_Submitted": "auto-generated"}, True),
    ({"Auto_Submitted": "no"}, False),
    ({"X_Autoreply": "yes"}, True),
    ({"Precedence": "bulk"}, True),
    ({"Precedence": "auto_reply"}, True),
    ({"Subject": "Out of Office: Weekly status"}, True),
    ({"Subject": "Automatic reply: Weekly status"}, True),
    ({"Subject": "Re: Out of office plans"}, False),
    ({}, False),
])
def test_auto_replies_are_flagged(tmp_path, headers, auto):
    message = mail()
    if "Subject" in headers:
        del message["Subject"]
    for key, value in headers.items():
        message[key.replace("_", "-")] = value
    assert read(message, tmp_path).meta.get("auto_reply", False) is auto


def test_attachments_are_saved_with_safe_names_one_folder_per_message(tmp_path):
    message = mail("See attached")
    message.add_attachment(b"one", maintype="application", subtype="pdf", filename="../../etc/passwd")
    message.add_attachment(b"two", maintype="application", subtype="pdf", filename="passwd")
    message.add_attachment(b"\x89PNG", maintype="image", subtype="png")
    forwarded = mail("the original")
    message.add_attachment(forwarded)
    inbound = read(message, tmp_path)
    saved = inbound.meta["attachments"]
    assert [(a["name"], a["content_type"]) for a in saved] == [
        ("passwd", "application/pdf"), ("passwd-2", "application/pdf"), ("attachment-3.png", "image/png"),
        ("attachment-4.eml", "message/rfc822")]
    files = [Path(a["path"]) for a in saved]
    assert [f.read_bytes() for f in files[:3]] == [b"one", b"two", b"\x89PNG"]
    assert [a["size"] for a in saved] == [f.stat().st_size for f in files]
    assert b"the original" in files[3].read_bytes()
    assert len({f.parent for f in files}) == 1  # one folder for the message
    assert files[0].parent.parent == tmp_path
    assert inbound.text == "See attached"


def test_an_attachment_only_reply_says_what_is_attached(tmp_path):
    message = mail("")
    message.add_attachment(b"%PDF", maintype="application", subtype="pdf", filename="report.pdf")
    assert read(message, tmp_path).text == "[attached: report.pdf]"


def refused(code: int) -> aiosmtplib.SMTPRecipientsRefused:
    return aiosmtplib.SMTPRecipientsRefused([aiosmtplib.SMTPRecipientRefused(code, "no", "bob@example.com")])


@pytest.mark.parametrize(("exc", "permanent"), [
    (refused(550), True),
    (refused(552), True),
    (refused(450), False),
    (aiosmtplib.SMTPDataError(554, "rejected as spam"), True),
    (aiosmtplib.SMTPDataError(451, "try later"), False),
    (aiosmtplib.SMTPAuthenticationError(535, "bad credentials"), False),
    (aiosmtplib.SMTPSenderRefused(553, "not yours", "tasks@example.com"), False),
    (aiosmtplib.SMTPConnectError("connection refused"), False),
    (ConnectionRefusedError(111, "refused"), False),
])
def test_only_a_5xx_about_the_recipient_or_message_is_permanent(exc, permanent):
    assert failure(exc, "bob@example.com").permanent is permanent
