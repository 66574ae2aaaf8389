"""Slack's markup read back as the person saw it, attachments and files listed, bots told from people."""

from __future__ import annotations

import pytest

from channels.slack_text import attachments_text, files_of, is_bot, references, render

NAMES = {"U1": "Ana Lima", "W2": "Wil"}
CHANNELS = {"C9": "design"}


@pytest.mark.parametrize(("markup", "seen"), [
    ("<@U1> and <@W2|wil.p>", "@Ana Lima and @Wil"),  # the name Slack shows, not the handle in the label
    ("<@U404> <@U405|pat>", "@U404 @pat"),  # unknown: the label, else the id
    ("<#C9> <#C1|general> <#C404>", "#design #general #C404"),
    ("<!here> <!channel> <!everyone> <!subteam^S1|ops> <!subteam^S2>", "@here @channel @everyone @ops @S2"),
    ("<!date^1700000000^{date_short}^https://x.example|Nov 14, 2023>", "Nov 14, 2023"),
    ("<https://example.com/a?b=1&amp;c=2|the doc>", "the doc (https://example.com/a?b=1&c=2)"),
    ("<https://example.com>", "https://example.com"),
    ("<http://example.com|example.com>", "example.com"),  # a link Slack made of what was typed: as typed
    ("<mailto:ana@example.com|ana@example.com>", "ana@example.com"),
    ("<mailto:ana@example.com|Ana>", "Ana (ana@example.com)"),
    ("5 &lt; 7 &amp;&amp; 8 &gt; 2", "5 < 7 && 8 > 2"),
    ("&lt;@U1&gt; is not a mention", "<@U1> is not a mention"),
    ("no markup at all", "no markup at all"),
])
def test_references_read_back(markup, seen):
    assert render(markup, NAMES.get, CHANNELS.get) == seen


def test_without_look_ups_a_reference_is_written_from_itself():
    assert render("<@U1> <@W2|wil.p> <#C9> <#C1|general>") == "@U1 @wil.p #C9 #general"
    assert references("<@U1> <@W2|wil.p> <#C9> <#C1|general> <!here>") == ({"U1", "W2"}, {"C9"})


def test_a_forward_is_its_attachments_text():
    shared = [{"is_share": True, "author_name": "Bo", "text": "Ship it <@U1>", "fallback": "[...] Bo: Ship it",
               "fields": [{"title": "Due", "value": "Friday"}]},
              {"fallback": "only a fallback"}, "not an attachment", {"color": "#fff"}]
    assert attachments_text(shared, lambda t: render(t, NAMES.get)) == (
        "Forwarded from Bo:\nShip it @Ana Lima\nDue: Friday\n\nonly a fallback")
    assert attachments_text(None) == ""


def test_files_keep_their_name_and_a_file_slack_no_longer_serves_has_no_url():
    event = {"files": [{"id": "F1", "name": "plan.pdf", "mimetype": "application/pdf", "size": 10,
                        "url_private": "https://files.slack.com/files-pri/T-F1/plan.pdf"},
                       {"id": "F2", "mode": "tombstone"}, {"id": "F3", "title": "Notes", "size": "big"}, 7]}
    assert files_of(event) == [
        {"id": "F1", "name": "plan.pdf", "content_type": "application/pdf", "size": 10,
         "url": "https://files.slack.com/files-pri/T-F1/plan.pdf"},
        {"id": "F2", "name": "F2", "content_type": None, "size": None},
        {"id": "F3", "name": "Notes", "content_type": None, "size": None}]


@pytest.mark.parametrize(("event", "bot"), [
    ({"user": "U1", "text": "hi"}, False),
    ({"user": "USLACKBOT", "text": "hi"}, True),
    ({"user": "U1", "bot_id": "B1"}, True),
    ({"user": "U1", "bot_profile": {"id": "B1"}}, True),
    ({"user": "U1", "app_id": "A1"}, True),
    ({"subtype": "bot_message", "username": "classic"}, True),
])
def test_bots_apps_and_slackbot_are_no_person(event, bot):
    assert is_bot(event) is bot
