"""Email end to end: a real SMTP server (aiosmtpd) takes the bot's mail, a real IMAP server (Dovecot) holds the replies.

Participants answer as mail clients do (top-posted text over the quoted history, a signature, an
HTML alternative); the IMAP poll runs as the scheduler's job in an RQ worker, or is called directly.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from email.message import EmailMessage
from email.utils import make_msgid
from html.parser import HTMLParser
from pathlib import Path

import pytest

from bot import mailbox as poller
from bot.workers import TaskbotScheduler
from channels.email import EmailChannel
from tests.conftest import turn_on
from tests.fakes.mail import Dovecot, SmtpServer, dovecot_binary, self_signed

BOT = "tasks@example.com"
WEEKLY = """
id: weekly-status
name: Weekly status
output_type: report
description: Compile the team's answers into a one-page status report.
owner: lead@example.com
template:
  instructions: Hi! Two quick questions for this week's status report.
  fields:
    - {key: shipped, prompt: What did you ship this week?}
    - {key: blockers, prompt: Anything blocking you?, required: false}
  participants: PEOPLE
  chase: {interval: CHASE, max_chases: 1, message: "Reminder: the weekly status closes soon."}
"""


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    if dovecot_binary() is None:
        pytest.skip("dovecot is not installed (Debian: apt-get install dovecot-imapd; .ci/run installs it)")
    server = Dovecot(user=BOT)
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    yield server
    server.stop()


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer(users={"taskbot": "smtp-secret"}).start()
    yield server
    server.stop()


@pytest.fixture
def mailbox(dovecot: Dovecot) -> Dovecot:
    """The bot's mailbox, emptied for this test."""
    dovecot.clear()
    return dovecot


@pytest.fixture(autouse=True)
def mail_env(env, monkeypatch, smtp, tmp_path, request) -> dict[str, str]:
    """Email on, against this test's SMTP server (and the Dovecot mailbox when Dovecot is installed)."""
    values = {"TASKBOT_SMTP_HOST": "127.0.0.1", "TASKBOT_SMTP_PORT": str(smtp.port), "TASKBOT_SMTP_USER": "taskbot",
              "TASKBOT_SMTP_PASSWORD": "smtp-secret", "TASKBOT_EMAIL_FROM": f"taskbot <{BOT}>",
              "TASKBOT_DATA_DIR": str(tmp_path / "data")}
    if dovecot_binary() is not None:
        box = request.getfixturevalue("mailbox")
        values.update({"TASKBOT_IMAP_HOST": "127.0.0.1", "TASKBOT_IMAP_PORT": str(box.port), "TASKBOT_IMAP_USER": BOT,
                       "TASKBOT_IMAP_PASSWORD": box.password, "TASKBOT_IMAP_SSL": "false", "TASKBOT_IMAP_POLL": "0.2"})
    turn_on(env, monkeypatch, values)
    return values


# -- helpers ----------------------------------------------------------------------------
def start(engine, drain, people, chase="2s") -> str:
    engine.import_contacts([{"email": p} for p in people])
    engine.apply_definition(WEEKLY.replace("PEOPLE", f"[{', '.join(people)}]").replace("CHASE", chase))
    rid = engine.runs.trigger("weekly-status")
    drain()
    return rid


def subtasks(engine, rid) -> dict[str, dict]:
    return {s["participant_id"]: s for s in engine.run_view(rid)["subtasks"]}


def raw_sub(engine, rid, participant) -> dict[str, str]:
    return engine.store.sub_fields(subtasks(engine, rid)[participant]["id"])


def only(messages: list[EmailMessage]) -> EmailMessage:
    assert len(messages) == 1, [m["Subject"] for m in messages]
    return messages[0]


def plain(mail: EmailMessage) -> str:
    return mail.get_body(("plain",)).get_content()


def user_texts(sub: dict) -> list[str]:
    return [m["text"] for m in sub["conversation"] if m["role"] == "user"]


def reply(to: EmailMessage, sender: str, text: str, *, name: str = "Alice", to_plus: bool = True,
          html_only: bool = False, message_id: str | None = None, subject: str | None = None,
          **headers: str) -> EmailMessage:
    """What a mail client sends when someone answers ``to``: new text on top, signature, quoted history."""
    quoted = "\n".join(f"> {line}" for line in plain(to).splitlines())
    wrote = f"On Mon, 3 Mar 2025 at 09:00, taskbot <{BOT}> wrote:"
    mail = EmailMessage()
    mail["From"] = f"{name} <{sender}>"
    mail["To"] = str(to["Reply-To"]) if to_plus else f"taskbot <{BOT}>"
    mail["Subject"] = subject or f"Re: {to['Subject'].removeprefix('Re: ')}"
    mail["Message-ID"] = message_id or make_msgid(domain="mail.example.net")
    mail["In-Reply-To"] = to["Message-ID"]
    mail["References"] = " ".join(filter(None, [str(to.get("References") or ""), to["Message-ID"]]))
    for key, value in headers.items():
        mail[key.replace("_", "-")] = value
    html = (f'<div dir="ltr">{text}</div><br><div class="gmail_quote"><div dir="ltr" class="gmail_attr">'
            f'{wrote.replace("<", "&lt;").replace(">", "&gt;")}<br></div><blockquote class="gmail_quote" '
            f'style="margin:0px 0px 0px 0.8ex;border-left:1px solid rgb(204,204,204)">'
            f'{plain(to).replace(chr(10), "<br>")}</blockquote></div>')
    if html_only:
        mail.set_content(f"<html><head><style>p {{margin:0}}</style></head><body>{html}</body></html>",
                         subtype="html")
    else:
        mail.set_content(f"{text}\n\n-- \n{name}\n\n{wrote}\n{quoted}\n")
        mail.add_alternative(f"<html><body>{html}<div>-- <br>{name}</div></body></html>", subtype="html")
    return mail


# -- the story ----------------------------------------------------------------------------
def test_the_task_goes_out_by_mail_answers_come_back_and_the_silent_one_is_chased_then_times_out(
        engine, smtp, mailbox, drain, wait_for):
    people = ["alice@example.com", "bob@example.com", "carol@example.com"]
    rid = start(engine, drain, people, chase="3s")

    def asked_next(person: str) -> EmailMessage | None:
        return next((m for m in smtp.to(person) if "Anything blocking you?" in plain(m)), None)

    # one mail per participant: multipart text + HTML, its own Message-ID, replies to a plus-address
    openings = {p: only(smtp.to(p)) for p in people}
    for person, mail in openings.items():
        sub = raw_sub(engine, rid, person)
        assert str(mail["From"]) == f"taskbot <{BOT}>"
        assert mail["Reply-To"].addresses[0].addr_spec == f"tasks+{sub['token']}@example.com"
        assert mail["Subject"] == "Weekly status"
        assert mail["Message-ID"] == sub["thread"]  # Delivery.ref: what replies are routed by
        assert mail.get_content_type() == "multipart/alternative"
        assert "What did you ship this week?" in plain(mail)
        assert "What did you ship this week?" in mail.get_body(("html",)).get_content()
    assert len({m["Message-ID"] for m in openings.values()}) == 3
    assert smtp.logins == ["taskbot"]  # logged in as configured, once: the three went over one session
    assert {s["status"] for s in subtasks(engine, rid).values()} == {"running"}

    # alice answers from a mail client; bob from one that sends HTML only
    mailbox.deliver(reply(openings["alice@example.com"], "Alice@Example.com", "The parser"))
    mailbox.deliver(reply(openings["bob@example.com"], "bob@example.com", "Docs", name="Bob", html_only=True))
    wait_for(lambda: asked_next("alice@example.com") and asked_next("bob@example.com"), between=drain)
    subs = subtasks(engine, rid)
    assert subs["alice@example.com"]["data"] == {"shipped": "The parser"}  # no quote, no signature
    assert subs["bob@example.com"]["data"] == {"shipped": "Docs"}
    assert user_texts(subs["alice@example.com"]) == ["The parser"]

    # the next question comes in the same thread
    follow_up = asked_next("alice@example.com")
    opening_id = openings["alice@example.com"]["Message-ID"]
    assert (follow_up["In-Reply-To"], follow_up["References"]) == (opening_id, opening_id)
    assert follow_up["Subject"] == "Re: Weekly status"
    assert "Anything blocking you?" in plain(follow_up)

    # alice answers the follow-up (threaded under it, not the opening); bob skips the optional one
    mailbox.deliver(reply(follow_up, "alice@example.com", "Waiting on review"))
    mailbox.deliver(reply(asked_next("bob@example.com"), "bob@example.com", "skip", name="Bob"))
    wait_for(lambda: engine.store.run_fields(rid)["status"] == "completed", timeout=30, between=drain)

    subs = subtasks(engine, rid)
    assert subs["alice@example.com"]["data"] == {"shipped": "The parser", "blockers": "Waiting on review"}
    assert subs["bob@example.com"]["data"] == {"shipped": "Docs"}
    carol = subs["carol@example.com"]
    assert (carol["status"], carol["chases_sent"]) == ("timed_out", 1)
    chase = smtp.to("carol@example.com")[1]
    carol_opening = openings["carol@example.com"]["Message-ID"]
    assert (chase["In-Reply-To"], chase["References"]) == (carol_opening, carol_opening)
    assert chase["Subject"] == "Re: Weekly status"
    assert "Reminder: the weekly status closes soon." in plain(chase)
    assert chase["Reply-To"] == openings["carol@example.com"]["Reply-To"]

    gathered = engine.run_view(rid)["gathered"]  # fan-in
    assert gathered["task_status"] == {"alice@example.com": "completed", "bob@example.com": "completed",
                                       "carol@example.com": "timed_out"}
    assert gathered["tasks"]["alice@example.com"]["shipped"] == "The parser"

    # the owner is told by mail: no sub-task, so no plus-address and no thread
    wait_for(lambda: smtp.to("lead@example.com"), between=drain)
    told = only(smtp.to("lead@example.com"))
    assert told["Subject"].startswith(f"taskbot: Run {rid} of weekly-status completed")
    assert told["Reply-To"] is None
    assert told["In-Reply-To"] is None
    assert f"Run {rid} of weekly-status completed." in plain(told)
    assert mailbox.unseen() == 0  # every reply was flagged seen once stored


def test_the_html_part_shows_what_the_task_says_as_text_and_the_plain_part_as_written(engine, smtp, drain):
    evil = """<script>alert('x')</script><img src=x onerror="alert(1)">&amp;"""
    engine.import_contacts([{"email": "alice@example.com"}])
    engine.apply_definition({"id": "evil", "name": "Evil", "template": {
        "instructions": f"Hi!\n{evil}", "participants": ["alice@example.com"],
        "fields": [{"key": "shipped", "prompt": evil}]}})
    engine.runs.trigger("evil")
    drain()
    mail = only(smtp.to("alice@example.com"))
    assert evil in plain(mail)  # the text part is plain text: nothing to escape
    markup = mail.get_body(("html",)).get_content()
    assert evil not in markup
    page = HtmlPart(markup)
    assert page.text.count(evil) == 2  # the instructions and the question, as words
    assert [tag for tag, _ in page.tags] == ["html", "body", "p", "br", "p", "p"]  # none from the task
    assert "<p>Hi!<br>&lt;script&gt;" in markup  # a line break in the text is a <br>


class HtmlPart(HTMLParser):
    """A mail's HTML as a mail client reads it: the elements, and the text shown."""

    def __init__(self, markup: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text = ""
        self.feed(markup)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text += data


def test_the_scheduler_queues_one_poll_per_interval(engine, mailbox, monkeypatch):
    scheduler = TaskbotScheduler(engine)
    queued = []
    monkeypatch.setattr(engine.jobs, "enqueue", lambda func, *args: queued.append(func))
    scheduler.enqueue_jobs()
    scheduler.enqueue_jobs()
    assert queued.count("poll_mailbox") == 1
    engine.r.delete(poller.POLL_DUE)  # as if TASKBOT_IMAP_POLL seconds had passed
    scheduler.enqueue_jobs()
    assert queued.count("poll_mailbox") == 2


def test_one_poll_at_a_time(engine, mailbox):
    engine.r.set(poller.POLL_LOCK, "another worker")
    mailbox.deliver(reply_to_nothing("alice@example.com", "hello"))
    assert poller.poll(engine) == 0
    assert mailbox.unseen() == 1
    engine.r.delete(poller.POLL_LOCK)
    assert poller.poll(engine) == 1
    assert mailbox.unseen() == 0


def test_an_unreachable_mailbox_is_logged_and_polled_again_later(engine, mailbox, monkeypatch, caplog):
    channel = poller.channel_of(engine)
    monkeypatch.setattr(channel, "mailbox", channel.mailbox.__class__(**{**vars(channel.mailbox), "password": "wrong"}))
    mailbox.deliver(reply_to_nothing("alice@example.com", "hello"))
    assert poller.poll(engine) == 0
    assert any("unreachable or refused" in r.getMessage() for r in caplog.records)
    assert engine.r.get(poller.POLL_LOCK) is None  # the next poll is not blocked
    assert mailbox.unseen() == 1


def test_mail_to_nobody_gets_the_no_task_answer_but_robots_get_none(engine, smtp, mailbox, drain):
    mailbox.deliver(reply_to_nothing("dora@example.com", "hello?"))
    mailbox.deliver(reply_to_nothing("MAILER-DAEMON@mx.example.org", "Undelivered Mail Returned to Sender"))
    assert poller.poll(engine) == 2
    drain()
    assert "no open task" in plain(only(smtp.to("dora@example.com")))
    assert smtp.to("mailer-daemon@mx.example.org") == []


def reply_to_nothing(sender: str, text: str) -> EmailMessage:
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = sender, BOT, "Hello"
    mail["Message-ID"] = make_msgid(domain="mail.example.net")
    mail.set_content(text)
    return mail


# -- routing, senders, auto-replies, duplicates --------------------------------------------
def test_a_reply_with_only_in_reply_to_finds_its_sub_task(engine, smtp, mailbox, drain):
    first = start(engine, drain, ["alice@example.com"], chase="1h")
    second = engine.runs.trigger("weekly-status")  # alice now has two open sub-tasks; the newer is most recent
    drain()
    old_opening, new_opening = smtp.to("alice@example.com")
    assert raw_sub(engine, second, "alice@example.com")["thread"] == new_opening["Message-ID"]

    mailbox.deliver(reply(old_opening, "alice@example.com", "The parser", to_plus=False))
    assert poller.poll(engine) == 1
    drain()
    assert subtasks(engine, first)["alice@example.com"]["data"] == {"shipped": "The parser"}
    assert subtasks(engine, second)["alice@example.com"]["data"] == {}


def test_a_forged_sender_is_not_recorded(engine, smtp, mailbox, drain, caplog):
    rid = start(engine, drain, ["alice@example.com"], chase="1h")
    opening = only(smtp.to("alice@example.com"))
    caplog.set_level(logging.WARNING, logger="taskbot.inbound")
    mailbox.deliver(reply(opening, "mallory@example.org", "Nothing shipped", name="Mallory"))
    assert poller.poll(engine) == 1
    drain()
    alice = subtasks(engine, rid)["alice@example.com"]
    assert alice["data"] == {}
    assert user_texts(alice) == []
    assert any("not from its participant" in r.getMessage() for r in caplog.records)
    assert smtp.to("mallory@example.org") == []
    assert len(smtp.to("alice@example.com")) == 1
    assert mailbox.unseen() == 0


@pytest.mark.parametrize("headers", [
    {"Auto-Submitted": "auto-replied", "subject": "Automatic reply: Weekly status"},
    {"X-Autoreply": "yes"},
    {"Precedence": "auto_reply"},
    {"subject": "Out of Office: Weekly status"},
], ids=["auto-submitted", "x-autoreply", "precedence", "subject"])
def test_an_out_of_office_reply_is_kept_but_is_no_answer(engine, smtp, mailbox, drain, headers):
    rid = start(engine, drain, ["alice@example.com"], chase="1h")
    opening = only(smtp.to("alice@example.com"))
    mailbox.deliver(reply(opening, "alice@example.com", "I am away until Monday.", **headers))
    assert poller.poll(engine) == 1
    drain()
    alice = subtasks(engine, rid)["alice@example.com"]
    assert (alice["status"], alice["data"]) == ("running", {})
    [kept] = [m for m in alice["conversation"] if m["role"] == "user"]
    assert kept["auto_reply"] is True
    assert kept["text"] == "I am away until Monday."
    assert len(smtp.to("alice@example.com")) == 1  # no answer to an auto-reply


def test_the_same_message_delivered_twice_is_processed_once(engine, smtp, mailbox, drain):
    rid = start(engine, drain, ["alice@example.com"], chase="1h")
    mail = reply(only(smtp.to("alice@example.com")), "alice@example.com", "The parser")
    mailbox.deliver(mail)
    mailbox.deliver(mail)  # same Message-ID, e.g. delivered again after a crash, or copied
    assert poller.poll(engine) == 1
    drain()
    mailbox.deliver(mail)  # and once more later
    assert poller.poll(engine) == 0
    drain()
    alice = subtasks(engine, rid)["alice@example.com"]
    assert user_texts(alice) == ["The parser"]
    assert len(smtp.to("alice@example.com")) == 2  # the opening and one follow-up
    assert mailbox.unseen() == 0


def test_attachments_are_kept_as_files(engine, smtp, mailbox, drain, mail_env):
    rid = start(engine, drain, ["alice@example.com"], chase="1h")
    mail = reply(only(smtp.to("alice@example.com")), "alice@example.com", "The parser, report attached")
    mail.add_attachment(b"%PDF-1.4 report", maintype="application", subtype="pdf", filename="../report.pdf")
    mailbox.deliver(mail)
    assert poller.poll(engine) == 1
    drain()
    [said] = [m for m in subtasks(engine, rid)["alice@example.com"]["conversation"] if m["role"] == "user"]
    assert said["text"] == "The parser, report attached"
    [attachment] = said["attachments"]
    assert (attachment["name"], attachment["size"], attachment["content_type"]) == ("report.pdf", 15,
                                                                                  "application/pdf")
    path = Path(attachment["path"])
    assert path.read_bytes() == b"%PDF-1.4 report"
    assert path.is_relative_to(Path(mail_env["TASKBOT_DATA_DIR"]).resolve() / "attachments")


# -- delivery faults ----------------------------------------------------------------------
def test_a_550_for_one_recipient_fails_only_that_sub_task(engine, smtp, drain, wait_for):
    smtp.refuse["bob@example.com"] = "550 5.1.1 <bob@example.com>: Recipient address rejected: User unknown"
    rid = start(engine, drain, ["alice@example.com", "bob@example.com"], chase="1h")
    subs = subtasks(engine, rid)
    assert subs["bob@example.com"]["status"] == "failed"
    assert "550 5.1.1" in subs["bob@example.com"]["reason"]
    assert subs["alice@example.com"]["status"] == "running"
    assert len(smtp.to("alice@example.com")) == 1
    engine.inbox.receive(EmailChannel.from_settings(settings()).inbound(
        reply(only(smtp.to("alice@example.com")), "alice@example.com", "The parser").as_bytes()))
    drain()
    engine.inbox.receive(EmailChannel.from_settings(settings()).inbound(
        reply(smtp.to("alice@example.com")[1], "alice@example.com", "skip").as_bytes()))
    drain()
    assert engine.store.run_fields(rid)["status"] == "completed"  # the failure did not block fan-in
    assert engine.run_view(rid)["gathered"]["task_status"] == {"alice@example.com": "completed",
                                                               "bob@example.com": "failed"}


def settings():
    from bot.settings import Settings

    return Settings()


def test_while_the_mail_server_is_down_openings_wait_and_go_out_when_it_is_back(engine, smtp, drain, wait_for):
    smtp.stop()
    rid = start(engine, drain, ["alice@example.com", "bob@example.com"], chase="1h")
    assert {s["status"] for s in subtasks(engine, rid).values()} == {"pending"}
    drain()
    smtp.start()
    wait_for(lambda: {s["status"] for s in subtasks(engine, rid).values()} == {"running"}, timeout=20,
             between=drain)
    assert len(smtp.to("alice@example.com")) == 1
    assert len(smtp.to("bob@example.com")) == 1


@pytest.mark.skipif(shutil.which("openssl") is None, reason="the openssl command makes the test certificate")
@pytest.mark.parametrize("implicit", [False, True], ids=["starttls", "tls"])
def test_mail_goes_out_over_tls_with_login(engine, drain, monkeypatch, tmp_path, implicit):
    import ssl

    cert, key = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = SmtpServer(users={"taskbot": "smtp-secret"}, tls=context, implicit=implicit).start()
    try:
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # trust the test certificate
        monkeypatch.setenv("TASKBOT_SMTP_PORT", str(server.port))
        monkeypatch.setenv("TASKBOT_SMTP_STARTTLS" if not implicit else "TASKBOT_SMTP_TLS", "true")
        from bot import bootstrap

        bootstrap.engine.cache_clear()
        start(engine, drain, ["alice@example.com"], chase="1h")
        assert "What did you ship this week?" in plain(only(server.to("alice@example.com")))
        assert server.logins == ["taskbot"]
    finally:
        server.stop()


# -- bounces ------------------------------------------------------------------------------
FIXTURES = Path(__file__).parents[1] / "fixtures" / "email"
#: The project's bounce fixtures and the address each one says failed (see tests/unit/test_email_bounce.py).
BOUNCED = {"bounce_postfix_dsn.eml": "bob@example.org", "bounce_qmail.eml": "carol@example.net",
           "bounce_exchange_ndr.eml": "erin@contoso.example", "bounce_sendmail_no_domain.eml": "frank@example.com",
           "bounce_delay_dsn.eml": "bob@example.org"}


def bounce_of(fixture: str, opening: EmailMessage, participant: str) -> bytes:
    """A bounce fixture aimed at ``opening`` (its token, Message-ID, recipient), the rest as a mail system wrote it."""
    token = opening["Reply-To"].addresses[0].addr_spec.partition("+")[2].partition("@")[0]
    raw = (FIXTURES / fixture).read_bytes()
    return (raw.replace(b"6f1c2a9be04d", token.encode())
            .replace(b"<0f5a9c1e2b7d4e8f9a0b1c2d3e4f5a6b.taskbot@example.com>", str(opening["Message-ID"]).encode())
            .replace(BOUNCED[fixture].encode(), participant.encode()))


@pytest.mark.parametrize("fixture", ["bounce_postfix_dsn.eml", "bounce_qmail.eml", "bounce_exchange_ndr.eml",
                                     "bounce_sendmail_no_domain.eml"])
def test_a_hard_bounce_fails_that_participants_sub_task_with_the_reason_and_is_never_answered(
        engine, smtp, mailbox, drain, fixture):
    rid = start(engine, drain, ["alice@example.com", "bob@example.com"], chase="1h")
    sent_before = len(smtp.messages)
    mailbox.deliver(bounce_of(fixture, only(smtp.to("bob@example.com")), "bob@example.com"))
    assert poller.poll(engine) == 1
    drain()
    subs = subtasks(engine, rid)
    bob = subs["bob@example.com"]
    assert bob["status"] == "failed"
    assert bob["reason"].startswith("email to bob@example.com bounced (5.")  # what the owner sees
    assert user_texts(bob) == []  # a bounce is no answer
    assert subs["alice@example.com"]["status"] == "running"
    assert len(smtp.messages) == sent_before  # nobody was answered, least of all the mail system
    assert mailbox.unseen() == 0

    mailbox.deliver(reply(only(smtp.to("alice@example.com")), "alice@example.com", "The parser"))
    poller.poll(engine)
    drain()
    mailbox.deliver(reply(smtp.to("alice@example.com")[1], "alice@example.com", "skip"))
    poller.poll(engine)
    drain()
    assert engine.run_view(rid)["gathered"]["task_status"] == {"alice@example.com": "completed",
                                                               "bob@example.com": "failed"}


def test_a_delay_warning_changes_nothing_and_is_never_answered(engine, smtp, mailbox, drain):
    rid = start(engine, drain, ["bob@example.com"], chase="1h")
    opening = only(smtp.to("bob@example.com"))
    mailbox.deliver(bounce_of("bounce_delay_dsn.eml", opening, "bob@example.com"))
    assert poller.poll(engine) == 1
    drain()
    bob = subtasks(engine, rid)["bob@example.com"]
    assert (bob["status"], bob["data"], user_texts(bob)) == ("running", {}, [])
    assert len(smtp.messages) == 1  # the opening only

    mailbox.deliver(reply(opening, "bob@example.com", "Docs"))  # the mail got through after all
    poller.poll(engine)
    drain()
    assert subtasks(engine, rid)["bob@example.com"]["data"] == {"shipped": "Docs"}


def test_a_bounce_of_a_mail_to_nobody_in_a_task_is_dropped_unanswered(engine, smtp, mailbox, drain):
    mailbox.deliver((FIXTURES / "bounce_postfix_dsn.eml").read_bytes())
    assert poller.poll(engine) == 1
    drain()
    assert smtp.messages == []
