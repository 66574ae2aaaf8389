"""Pure parts of fan-in for real teams: escalation timing, message templates, close and report_to keys,
the callback URL guard, and how a report reads on Slack, Telegram and in email."""

from __future__ import annotations

import socket

import pytest

from channels.markdown import html, plain_text, slack_messages
from engine.callbacks import check_url
from engine.chase import decide
from engine.definitions import load_definition
from engine.errors import InvalidInput
from engine.messages import render, template_problem
from engine.model import ChaseSpec, FieldSpec
from engine.report import markdown_report


def spec(**kw):
    return ChaseSpec(interval=100, max_chases=1, **kw)


def test_an_escalation_falls_half_way_between_the_last_chase_and_the_time_out():
    esc = spec(escalate_to="manager")
    before = decide(open_=True, chases_sent=0, last_activity_at=0, last_chase_at=0, spec=esc, now=100)
    assert before.action == "chase"  # reminders first
    waiting = decide(open_=True, chases_sent=1, last_activity_at=0, last_chase_at=100, spec=esc, now=120)
    assert (waiting.action, waiting.at) == ("wait", 150)
    last = {"open_": True, "chases_sent": 1, "last_activity_at": 0, "last_chase_at": 100}
    assert decide(**last, spec=esc, now=150).action == "escalate"
    # once escalated, the time-out comes one interval after the last chase
    after = decide(open_=True, chases_sent=1, last_activity_at=0, last_chase_at=100, spec=esc, now=160, escalated=True)
    assert (after.action, after.at) == ("wait", 200)
    assert decide(open_=True, chases_sent=1, last_activity_at=0, last_chase_at=100, spec=esc, now=200,
                  escalated=True).action == "time_out"
    # an escalation still to send is never overtaken by the time-out
    assert decide(**last, spec=esc, now=500).action == "escalate"
    # without escalate_to nothing changes
    assert decide(**last, spec=spec(), now=150).action == "wait"


@pytest.mark.parametrize(("text", "problem"), [
    ("Hi {name}, {task} closes {deadline}; still to answer: {missing}", None),
    ("Braces are written {{like this}}", None),
    ("Hi {who}", "unknown placeholder {who}"),
    ("{0}", "unknown placeholder {0}"),
    ("{name!r}", "unknown placeholder {name!r}"),
    ("{deadline:%H}", "unknown placeholder {deadline:%H}"),
    ("a lone { brace", "expected '}' before end of string"),
])
def test_message_templates_take_four_placeholders_and_nothing_else(text, problem):
    found = template_problem(text)
    assert (found is None) if problem is None else (found is not None and found.startswith(problem))


def test_a_template_is_filled_with_what_it_names():
    assert render("Hi {name}: {missing} {{ok}}", {"name": "Mia", "missing": "Bob"}) == "Hi Mia: Bob {ok}"


def definition(**template):
    return {"id": "t", "name": "T", "template": {"fields": [{"key": "a", "prompt": "A?"}],
                                                    "participants": ["a@example.com"], **template}}


@pytest.mark.parametrize(("template", "field", "reason"), [
    ({"chase": {"message": "Hi {nme}"}}, "template.chase.message", "unknown placeholder {nme}"),
    ({"chase": {"escalation_message": "{boss}"}}, "template.chase.escalation_message", "unknown placeholder {boss}"),
    ({"chase": {"escalate_to": "boss"}}, "template.chase.escalate_to", "Input should be 'manager' or 'owner'"),
    ({"close": {"at": "2024-05-17T17:00:00"}}, "template.close.at", "must be an ISO date-time with an offset"),
    ({"close": {"at": "2024-05-17T17:00:00+02:00", "after": "1h"}}, "template.close", "give at or after, not both"),
    ({"close": {"quorum": 0}}, "template.close.quorum", "must be a fraction more than 0 and at most 1"),
    ({"close": {"quorum": 1.5}}, "template.close.quorum", "must be a fraction more than 0 and at most 1"),
    ({"close": {"after": "soon"}}, "template.close.after", "'soon' is not a duration"),
    ({"close": {}}, "template.close", "give at, after or quorum"),
])
def test_wrong_fan_in_keys_are_refused_naming_the_field(template, field, reason):
    with pytest.raises(InvalidInput) as refused:
        load_definition(definition(**template))
    assert refused.value.field == field
    assert refused.value.reason.startswith(reason)


def test_report_targets_are_checked_one_by_one():
    ok = load_definition({**definition(), "report_to": ["slack:#team", "slack:C0123ABC", "telegram:-1001234",
                                                        "email:team@example.com", "slack:#team"]})
    assert ok.report_to == ["slack:#team", "slack:C0123ABC", "telegram:-1001234", "email:team@example.com"]
    for wrong in ("sms:123", "slack:team", "telegram:abc", "email:nobody", "slack:#Team Room"):
        with pytest.raises(InvalidInput) as refused:
            load_definition({**definition(), "report_to": ["slack:#ok", wrong]})
        assert refused.value.field == "report_to[1]"


def resolver(*addresses):
    def resolve(host, port, **_):
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
                for a in addresses]
    return resolve


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "192.168.0.10", "172.16.5.5", "169.254.169.254",
                                     "100.64.0.1", "0.0.0.0", "::1", "fe80::1", "fc00::5", "::ffff:10.0.0.1"])
def test_a_callback_to_a_private_loopback_or_link_local_address_is_refused(address):
    with pytest.raises(InvalidInput) as refused:
        check_url("https://hooks.example.com/x", allow_private=False, resolve=resolver("93.184.216.34", address))
    assert refused.value.field == "callback_url"
    assert "TASKBOT_CALLBACK_ALLOW_PRIVATE" in refused.value.reason


def test_a_callback_to_public_addresses_or_with_private_allowed_passes():
    check_url("https://hooks.example.com/x", allow_private=False, resolve=resolver("93.184.216.34", "2606:4700::1"))
    check_url("http://127.0.0.1:9/x", allow_private=True, resolve=resolver("127.0.0.1"))
    with pytest.raises(InvalidInput, match="http or https"):
        check_url("ftp://files.example.com/x", allow_private=True)


REPORT = markdown_report(
    "Weekly status", "What the team shipped.",
    [FieldSpec(key="shipped", prompt="?"), FieldSpec(key="blockers", prompt="?")],
    [{"id": "a", "name": "Alice", "status": "completed", "data": {"shipped": "the parser <v2>", "blockers": "none"}},
     {"id": "b", "name": "Bob", "status": "completed", "data": {"shipped": "docs"}, "late": True},
     {"id": "c", "name": "Carol", "status": "timed_out", "data": {}, "reason": "no answer after 1 reminder",
      "escalated_to": "Mia"}])


def test_on_slack_a_report_is_block_kit_with_a_real_table_and_no_code_block():
    [blocks] = slack_messages(REPORT)
    assert blocks[0] == {"type": "header", "text": {"type": "plain_text", "text": "Weekly status", "emoji": True}}
    [table] = [b for b in blocks if b["type"] == "table"]
    rows = [[c["text"] for c in row] for row in table["rows"]]
    assert rows == [["Participant", "shipped", "blockers", "Status"],
                    ["Alice", "the parser <v2>", "none", "completed"],
                    ["Bob", "docs", "—", "completed (late)"],
                    ["Carol", "—", "—", "timed_out"]]
    texts = [b["text"]["text"] for b in blocks if b["type"] == "section"]
    assert "*Escalated:* Carol (to Mia)" in texts
    assert not any("```" in t or "|---" in t for t in texts)


def test_slack_gets_one_table_per_message_and_at_most_100_rows_in_it():
    big = "# Big\n\n| who | n |\n|---|---|\n" + "".join(f"| p{i} | {i} |\n" for i in range(150)) + \
          "\nbetween\n\n| x |\n|---|\n| y |\n"
    messages = slack_messages(big)
    tables = [[b for b in m if b["type"] == "table"] for m in messages]
    assert [len(t) for t in tables] == [1, 1, 1]
    assert [len(t[0]["rows"]) for t in tables] == [100, 52, 2]  # the header repeated in each
    assert tables[1][0]["rows"][0][0]["text"] == "who"


def test_on_telegram_a_table_row_reads_as_one_line_and_in_email_as_an_html_table():
    text = plain_text(REPORT)
    assert "• Alice: shipped: the parser <v2>; blockers: none; Status: completed" in text
    assert "|" not in text
    page = html(REPORT)
    assert "<table>" in page
    assert "<td>the parser &lt;v2&gt;</td>" in page
