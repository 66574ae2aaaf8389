"""Typed questions by email: a numbered list in the mail, the number or the words answer; a reply that does not fit
is asked again (a real SMTP server takes the bot's mail, the replies come from a real IMAP server, Dovecot)."""

from __future__ import annotations

from tests.integration.test_email import dovecot, mail_env, mailbox, plain, reply, smtp, subtasks

FIXTURES = (dovecot, mail_env, mailbox, smtp)  # the mail servers of test_email.py's stories
ALICE = "alice@example.com"
RETRO = {"id": "retro", "name": "Sprint retro", "owner": "lead@example.com", "template": {
    "fields": [{"key": "mood", "prompt": "How did the sprint feel?", "type": "choice",
                "choices": ["great", "fine", "rough"]},
               {"key": "score", "prompt": "How well did we plan?", "type": "scale"},
               {"key": "due", "prompt": "When is the demo?", "type": "date"},
               {"key": "wins", "prompt": "What went well?", "type": "list"}],
    "participants": [ALICE], "chase": {"interval": "1h"}}}


def text(mail) -> str:
    return plain(mail).replace("\r\n", "\n")


def test_every_question_type_by_email_the_number_or_the_words_answer(engine, smtp, mailbox, drain, wait_for):
    engine.import_contacts([{"email": ALICE, "name": "Alice"}])
    engine.apply_definition(RETRO)
    rid = engine.runs.trigger("retro")
    drain()
    [opening] = smtp.to(ALICE)
    assert "How did the sprint feel?\n1. great\n2. fine\n3. rough" in text(opening)
    html = opening.get_body(("html",)).get_content()
    assert "1. great<br>2. fine<br>3. rough" in html

    def answers(words):
        """Alice replies to the latest mail; returns the bot's next one."""
        sent = smtp.to(ALICE)
        mailbox.deliver(reply(sent[-1], ALICE, words))
        wait_for(lambda: len(smtp.to(ALICE)) > len(sent), between=drain)
        return text(smtp.to(ALICE)[-1])

    assert "the answer should be one of: great, fine, rough (or its number)" in answers("terrible")
    assert answers("3").startswith("How well did we plan?\n(a whole number from 1 to 5)")  # the number answers
    assert "a whole number from 1 to 5" in answers("ninety-nine")
    assert answers("4").startswith("When is the demo?")
    assert "a date such as 2027-01-10" in answers("not a date at all")
    assert answers("2027-02-05").startswith("What went well?")
    assert "Changed your answer to “How did the sprint feel?” from rough to great." in answers("change mood: Great")
    assert answers("pairing, retro notes").startswith("Thank you! Your answers are recorded.")
    alice = subtasks(engine, rid)[ALICE]
    assert alice["status"] == "completed"
    assert alice["data"] == {"mood": "great", "score": 4, "due": "2027-02-05", "wins": ["pairing", "retro notes"]}
    assert [h["value"] for h in alice["data_history"]["mood"]] == ["rough"]
