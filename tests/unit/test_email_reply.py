"""What a person wrote in a reply, as taskbot records it: this project's own fixtures, per client and language.

Whole messages as the clients send them are in ``tests/fixtures/email/`` (MIME parts, quoted-printable,
base64, format=flowed); shorter plain-text bodies are written inline below, one per quote style.
"""

from __future__ import annotations

from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest

from channels.email_html import html_to_text
from channels.email_parse import Ours, new_text, parse
from channels.email_reply import reply_text

FIXTURES = Path(__file__).parents[1] / "fixtures" / "email"
OURS = Ours(local="tasks", domain="example.com")

CLIENTS = {
    "gmail.eml": "The new importer shipped on Thursday; the CSV export is half done and goes out next week.\n\n"
                 "Cheers,\nAlice",
    "gmail_attribution_only_markup.eml": "Migrasi database selesai hari Jumat.",
    "gmail_bottom_post.eml": "Billing retries, and the audit log page.",
    "outlook_desktop_fr.eml": "Le nouveau tableau de bord est en production depuis mercredi.\n\nJean",
    "outlook_web.eml": "Search indexing is live for all customers.",
    "apple_mail.eml": "Onboarding emails are translated into German and Spanish; the Italian ones are with the "
                      "reviewer.",
    "thunderbird_de.eml": "Die Rechnungsvorlagen sind fertig, der PDF-Export hängt noch an der Schriftart.\n\n"
                          "Gruß, Frank",
    "yahoo.eml": "Nothing shipped, I was on the security review all week.",
    "outlook_de_original_message.eml": "Die Übersetzungen für das Kundenportal sind abgeschlossen; größere "
                                       "Baustellen gibt es keine.\n\nViele Grüße\nJürgen Müller",
    "forward_fyi.eml": "FYI\n\n---------- Forwarded message ---------\nFrom: Release Bot <releases@example.jp>\n"
                       "Date: Fri, Feb 28, 2025 at 6:00 PM\nSubject: Release notes 4.2\nTo: <team@example.jp>\n\n"
                       "Shipped in 4.2: single sign-on for the admin console, faster search.",
    "base64_ru.eml": "Обновление приложения вышло в пятницу.",
}


def message(name: str):
    return BytesParser(policy=policy.default).parsebytes((FIXTURES / name).read_bytes())


@pytest.mark.parametrize("name", sorted(CLIENTS))
def test_a_reply_from_each_client_is_recorded_as_the_person_wrote_it(name, tmp_path):
    inbound = parse((FIXTURES / name).read_bytes(), OURS, tmp_path)
    assert inbound is not None
    assert inbound.text == CLIENTS[name]
    assert "auto_reply" not in inbound.meta
    assert "bounce" not in inbound.meta
    assert inbound.reply_to == "6f1c2a9be04d"  # the plus-address token


@pytest.mark.parametrize("name", ["gmail.eml", "outlook_desktop_fr.eml", "thunderbird_de.eml", "yahoo.eml",
                                  "apple_mail.eml"])
def test_the_html_alternative_of_a_reply_reads_the_same(name):
    """The HTML part is cut by its quote structure (gmail_quote, border-top div, moz-cite-prefix,
    yahoo_quoted, blockquote type=cite), not by its text: same answer as the plain part."""
    html = message(name).get_body(("html",))
    assert html is not None
    assert html.get_content_subtype() == "html"
    assert " ".join(new_text(html).split()) == " ".join(CLIENTS[name].split())


def test_the_quote_structure_is_read_whatever_the_attribution_says():
    """An attribution in a language no rule knows ("Taskbot menulis:") is still Gmail's gmail_attr."""
    assert reply_text("Migrasi database selesai hari Jumat.\n\nTaskbot menulis:\n> Apa yang Anda kirim?") == (
        "Migrasi database selesai hari Jumat.\n\nTaskbot menulis:")  # as text alone it is kept
    html = message("gmail_attribution_only_markup.eml").get_body(("html",))
    assert new_text(html) == "Migrasi database selesai hari Jumat."


HEADERS = {
    "en-gmail": "On Mon, 3 Mar 2025 at 09:14, taskbot <tasks@example.com> wrote:",
    "en-apple": "On 3 Mar 2025, at 09:14, taskbot <tasks@example.com> wrote:",
    "nl": "Op ma 3 mrt 2025 om 09:14 schreef taskbot <tasks@example.com>:",
    "nl-apple": "Op 3 mrt. 2025, om 09:14 heeft taskbot <tasks@example.com> het volgende geschreven:",
    "fr": "Le lun. 3 mars 2025 à 09:14, taskbot <tasks@example.com> a écrit :",
    "it": "Il giorno lun 3 mar 2025 alle ore 09:14 taskbot <tasks@example.com> ha scritto:",
    "pt": "Em seg., 3 de mar. de 2025 às 09:14, taskbot <tasks@example.com> escreveu:",
    "pl-gmail": "pon., 3 mar 2025 o 09:14 taskbot <tasks@example.com> napisał(a):",
    "pl-thunderbird": "W dniu 3.03.2025 o 09:14, taskbot pisze:",
    "sv": "Den mån 3 mars 2025 kl 09:14 skrev taskbot <tasks@example.com>:",
    "ru-gmail": "пн, 3 мар. 2025 г. в 09:14, taskbot <tasks@example.com>:",
    "ru-thunderbird": "03.03.2025 09:14, taskbot пишет:",
    "de": "Am Mo., 3. März 2025 um 09:14 Uhr schrieb taskbot <tasks@example.com>:",
    "es": "El lun, 3 mar 2025 a las 9:14, taskbot (<tasks@example.com>) escribió:",
    "da": "man. 3. mar. 2025 kl. 09.14 skrev taskbot <tasks@example.com>:",
    "no": "man. 3. mar. 2025 kl. 09:14 skrev taskbot <tasks@example.com>:",
    "fi": "ma 3.3.2025 klo 9.14 taskbot (tasks@example.com) kirjoitti:",
    "cs-gmail": "po 3. 3. 2025 v 9:14 odesílatel taskbot <tasks@example.com> napsal:",
    "cs-thunderbird": "Dne 03. 03. 25 v 9:14 taskbot napsal(a):",
    "ja": "2025年3月3日(月) 9:14 taskbot <tasks@example.com>:",
    "vi": "Vào Th 2, 3 thg 3, 2025 vào lúc 09:14 taskbot <tasks@example.com> đã viết:",
    "zh": "taskbot <tasks@example.com> 于2025年3月3日周一 09:14写道：",
    "ko": "2025년 3월 3일 (월) 오전 9:14, taskbot <tasks@example.com>님이 작성:",
    "ja-apple": "2025/03/03 9:14、taskbot <tasks@example.com>のメール:",
    "tr": "3 Mar 2025 Pzt, 09:14 tarihinde taskbot <tasks@example.com> şunu yazdı:",
    "hu": "taskbot <tasks@example.com> ezt írta (időpont: 2025. márc. 3., H, 9:14):",
    "el": "Στις Δευ 3 Μαρ 2025 στις 9:14 π.μ., ο/η taskbot <tasks@example.com> έγραψε:",
    "uk": "пн, 3 бер. 2025 р. о 09:14 taskbot <tasks@example.com> пише:",
    "ro": "Pe lun., 3 mar. 2025 la 09:14, taskbot <tasks@example.com> a scris:",
    "zoho": "---- On Mon, 03 Mar 2025 09:14:00 +0100 taskbot <tasks@example.com> wrote ----",
    "android": "---- taskbot wrote ----",
}


@pytest.mark.parametrize("header", list(HEADERS.values()), ids=list(HEADERS))
def test_a_reply_header_in_each_language_starts_the_history(header):
    body = f"Shipped the parser.\n\n{header}\n\n> What did you ship this week?\n>\n> taskbot\n"
    assert reply_text(body) == "Shipped the parser."
    unquoted = f"Shipped the parser.\n\n{header}\n\nWhat did you ship this week?\n"  # clients that do not quote
    assert reply_text(unquoted) == "Shipped the parser."


@pytest.mark.parametrize("wrapped", [
    "On Mon, 3 Mar 2025 at 09:14, taskbot <\ntasks@example.com> wrote:",
    "On Mon, 3 Mar 2025 at 09:14, a-rather-long-display-name\n<tasks@example.com>\nwrote:",
    "Le lun. 3 mars 2025 à 09:14, taskbot <tasks@example.com>\na écrit :",
    "tir. 4. mar. 2025 kl. 09:14 skrev taskbot <tasks@example.com\n>:",
], ids=["address", "three-lines", "fr", "closing-bracket"])
def test_a_header_wrapped_over_lines_is_found_whole(wrapped):
    assert reply_text(f"Two bugs fixed.\n\n{wrapped}\n\n> What did you ship?") == "Two bugs fixed."


BLOCKS = {
    "outlook-en": "From: taskbot <tasks@example.com>\nSent: Monday, March 3, 2025 9:14 AM\nTo: Alice\n"
                  "Subject: Weekly status",
    "outlook-bold": " *From:* taskbot [mailto:tasks@example.com]\n *Sent:* Monday, March 3, 2025 9:14 AM\n *To:* Alice",
    "outlook-fr": "De : taskbot <tasks@example.com>\nEnvoyé : lundi 3 mars 2025 09:14\nÀ : Alice\nObjet : Weekly",
    "outlook-de": "Von: taskbot <tasks@example.com>\nGesendet: Montag, 3. März 2025 09:14\nAn: Alice\nBetreff: Weekly",
    "outlook-es": "De: taskbot <tasks@example.com>\nEnviado: lunes, 3 de marzo de 2025 9:14\nPara: Alice\nAsunto: x",
    "outlook-da": "Fra: taskbot <tasks@example.com>\nSendt: 3. marts 2025 09:14\nTil: Alice\nEmne: Weekly status",
    "outlook-split-from": "From: taskbot, the weekly status robot of the platform team\n<tasks@example.com>\n"
                          "Sent: Monday, March 3, 2025 9:14 AM",
    "original-en": "-----Original Message-----\nFrom: taskbot [mailto:tasks@example.com]",
    "original-de": "-----Ursprüngliche Nachricht-----\nVon: taskbot [mailto:tasks@example.com]",
    "original-fr": "-------- Message d'origine --------\nDe : taskbot <tasks@example.com>",
    "rule-then-block": "________________________________\nFrom: taskbot <tasks@example.com>\nSent: Monday 09:14",
}


@pytest.mark.parametrize("block", list(BLOCKS.values()), ids=list(BLOCKS))
def test_an_outlook_header_block_or_original_message_rule_starts_the_history(block):
    body = f"The release is out.\n\nRegards\nAlice\n\n{block}\n\nHi! What did you ship this week?\n"
    assert reply_text(body) == "The release is out.\n\nRegards\nAlice"


@pytest.mark.parametrize(("body", "expected"), [
    ("On Mon, 3 Mar 2025 at 09:14, taskbot <tasks@example.com> wrote:\n> What did you ship?\n\nThe parser.",
     "The parser."),
    ("Hi,\n\nOn Mon, 3 Mar 2025 at 09:14, taskbot <tasks@example.com> wrote:\n> What did you ship?\n\n"
     "The parser and its docs.\n\n> Anything blocking you?\n\nThe review queue.\n",
     "Hi,\n\nThe parser and its docs.\n\nThe review queue."),
    ("> What did you ship?\n\nThe parser.\n\n_______________________________________________\n"
     "team mailing list\nteam@lists.example.com", "The parser."),
    ("Top reply.\n\nOn Mon, 3 Mar 2025 at 09:14, taskbot <tasks@example.com> wrote:\n> quoted\n\n"
     "quoted history the client left unmarked\n\nOn Sun, 2 Mar 2025 at 08:00, Bob <bob@example.com> wrote:\n"
     "older history\n", "Top reply."),
], ids=["bottom-post", "inline-answers", "list-footer", "history-below-the-quote"])
def test_text_written_below_or_between_quotes_is_kept(body, expected):
    assert reply_text(body) == expected


@pytest.mark.parametrize(("body", "expected"), [
    ("Done.\n\n-- \nAlice Martin\nPlatform team", "Done."),
    ("Done.\n\nSent from my iPhone", "Done."),
    ("Done.\n\nVon meinem iPhone gesendet\n\nOld thread that the phone pasted unmarked", "Done."),
    ("Done.\n\nSent from my desk, which is faster than my phone.",
     "Done.\n\nSent from my desk, which is faster than my phone."),
    ("Fixed it -- the cache was stale.\n\nAlice", "Fixed it -- the cache was stale.\n\nAlice"),
], ids=["sig-dashes", "device", "device-above-history", "sent-from-is-content", "dashes-in-a-line"])
def test_signatures_go_but_text_that_looks_like_one_stays(body, expected):
    assert reply_text(body) == expected


@pytest.mark.parametrize("body", [
    "On Monday I wrote the tests:\n- parser\n- exporter",
    "On the whole, a quiet week.\nOn Friday the release went out.",
    "Date: Friday\nTime: 10:00\nPlace: room 4",
    "Visit the status page:\n>>> https://status.example.com <<<\nfor details.",
    "One more thing: nothing is blocking me.",
], ids=["on-line", "on-sentences", "date-lines", "arrows", "one"])
def test_lines_that_only_look_like_quotes_or_headers_are_the_reply(body):
    assert reply_text(body) == body


@pytest.mark.parametrize(("body", "expected"), [
    ("Shipped! On Mon, 3 Mar 2025 at 09:14, taskbot <tasks@example.com> wrote:\n> What?", "Shipped!"),
    ("Shipped!--- On Mon, 3 Mar 2025 at 09:14, taskbot <tasks@example.com> wrote:\n> What?", "Shipped!"),
], ids=["same-line", "dashes"])
def test_a_reply_and_its_header_on_one_line_are_split(body, expected):
    assert reply_text(body) == expected


def test_a_forward_inside_the_history_is_history():
    body = ("See below.\n\n-----Original Message-----\nFrom: Bob\n\nFYI\n\n---------- Forwarded message ----------\n"
            "From: Carol\n\nold text")
    assert reply_text(body) == "See below."


def test_crlf_line_ends_are_read_like_lf():
    assert reply_text("Done.\r\n\r\nOn Mon, 3 Mar 2025 at 09:14, taskbot <tasks@example.com> wrote:\r\n> What?\r\n"
                      ) == "Done."


# -- HTML --------------------------------------------------------------------------------------
def html(body: str) -> str:
    return f"<html><head><style>p {{margin:0}}</style><title>x</title></head><body>{body}</body></html>"


@pytest.mark.parametrize(("markup", "expected"), [
    ('<div>Done.</div><hr id="stopSpelling"><div>From: taskbot<br>Sent: Monday</div><div>What?</div>', "Done."),
    ('<p>Done.</p><span id="OLK_SRC_BODY_SECTION"><div>Od: taskbot<br>Wysłano: poniedziałek</div>What?</span>',
     "Done."),
    ('<p>Done.</p><div style="border:none;border-top:solid #B5C4DF 1.0pt;padding:3.0pt 0cm 0cm 0cm">'
     '<p><b>От:</b> taskbot<br><b>Отправлено:</b> 3 марта 2025 г. 9:14</p></div><p>What?</p>', "Done."),
    ('<div>Done.</div><div class="yahoo_quoted"><div>taskbot schrieb am Montag:</div><div>What?</div></div>',
     "Done."),
    ('<div>Done.</div><div id="divRplyFwdMsg"><b>From:</b> taskbot</div><div>What?</div>', "Done."),
    ('<div>Done.</div><div><br><blockquote type="cite"><div>What?</div></blockquote></div>', "Done."),
], ids=["hotmail-hr", "outlook-mac", "outlook-desktop-ru", "yahoo", "outlook-web", "apple"])
def test_html_history_is_found_by_its_markup(markup, expected):
    assert reply_text(html_to_text(html(markup))) == expected


def test_gmail_indent_is_no_quote():
    markup = html('<div>My plan:</div><blockquote style="margin:0 0 0 40px;border:none;padding:0px">'
                  '<div>1. finish the parser</div></blockquote>')
    assert reply_text(html_to_text(markup)) == "My plan:\n1. finish the parser"


def test_a_whole_message_in_an_unmarked_blockquote_is_the_message(tmp_path):
    from email.message import EmailMessage

    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = "bob@example.com", "tasks@example.com", "Re: status"
    mail.set_content(html("<blockquote><p>The exporter.</p><p>Bob</p></blockquote>"), subtype="html")
    assert parse(mail.as_bytes(), OURS, tmp_path).text == "The exporter.\nBob"


def test_html_entities_lists_and_hidden_parts():
    markup = html("<p>Docs&nbsp;and <b>tests</b> &amp; more</p><ul><li>one</li><li>two</li></ul>"
                  "<script>alert(1)</script>")
    assert reply_text(html_to_text(markup)) == "Docs and tests & more\n- one\n- two"


def test_a_megabyte_of_quote_is_read_in_one_pass():
    """The 1 MB bound is measured in bench/ (bench/corpus.py); here: a long quote line is no header."""
    body = "Short answer.\n\nOn Mon, 3 Mar 2025 at 09:14, taskbot <tasks@example.com> wrote:\n" + ">" * 1_000_000
    assert reply_text(body) == "Short answer."
    assert reply_text("Short answer.\n" + "-" * 1_000_000 + ":") == "Short answer.\n" + "-" * 1_000_000 + ":"


def test_a_refused_recipient_moves_on_only_when_the_mailbox_is_not_there():
    import aiosmtplib

    from channels.email import failure

    def refused(code: int, message: str):
        return failure(aiosmtplib.SMTPRecipientsRefused([aiosmtplib.SMTPRecipientRefused(code, message, "x@y.z")]),
                       "x@y.z")

    gone = refused(550, "5.1.1 <x@y.z>: Recipient address rejected: User unknown")
    assert (gone.permanent, gone.unreachable) == (True, True)
    relay = refused(554, "5.7.1 <x@y.z>: Relay access denied")  # about taskbot's server: not the person
    assert (relay.permanent, relay.unreachable) == (True, False)
    later = refused(450, "4.2.0 mailbox busy")
    assert (later.permanent, later.unreachable) == (False, False)
