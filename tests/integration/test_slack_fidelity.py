"""What Slack payloads of the shapes Slack really sends become (issue 15): Slackbot, bots and apps ignored;
mentions, channels and links read back as the person saw them; forwarded messages and files kept.

Signed requests to the real app over HTTP, the fake Slack Web API (users.info, conversations.info, file
downloads with the bot token), real RQ jobs. The payloads are written here after the Events API
reference's shapes (bot_profile, attachments with share fields, files[] with url_private).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes.slack_api import FakeSlack, edit_event
from tests.integration.test_slack import fake_slack, queued, slack, snapshot, subtasks

FIXTURES = (fake_slack, slack)

STANDUP = {"id": "standup", "name": "Standup", "owner": "lead@example.com", "template": {
    "instructions": "Two questions.",
    "fields": [{"key": "shipped", "prompt": "What did you ship?"},
               {"key": "hours", "prompt": "How many hours did it take?", "type": "number"},
               {"key": "notes", "prompt": "Anything else?"}],
    "participants": ["alice@example.com"], "chase": {"interval": "1h"}}}


@pytest.fixture(autouse=True)
def files_dir(fake_slack, env, monkeypatch, tmp_path) -> Path:
    """Files the worker downloads go to this test's own folder."""
    monkeypatch.setenv("TASKBOT_DATA_DIR", str(tmp_path / "data"))
    env["TASKBOT_DATA_DIR"] = str(tmp_path / "data")
    from bot import bootstrap

    bootstrap.engine.cache_clear()
    return tmp_path / "data"


def begin(engine, fake: FakeSlack, drain) -> tuple[str, str]:
    engine.import_contacts([{"email": "alice@example.com", "slack_user_id": "U_ALICE"}])
    engine.apply_definition(STANDUP)
    rid = engine.runs.trigger("standup")
    drain()
    [opening] = fake.posts("DU_ALICE")
    return rid, opening["ts"]


def dm(text: str, ts: str, thread: str, **extra) -> dict:
    return {"type": "message", "channel": "DU_ALICE", "channel_type": "im", "user": "U_ALICE", "text": text,
            "ts": ts, "thread_ts": thread, "team": "T_TEST", "event_ts": ts, **extra}


def said(engine, rid) -> list[dict]:
    return [m for m in subtasks(engine, rid)["alice@example.com"]["conversation"] if m["role"] == "user"]


def test_slackbot_bots_and_apps_are_never_recorded_nor_answered(engine, slack, fake_slack, drain, r):
    rid, root = begin(engine, fake_slack, drain)
    before, posts = snapshot(r), len(fake_slack.posts())
    slackbot = {"type": "message", "channel": "DU_ALICE", "channel_type": "im", "user": "USLACKBOT",
                "text": "To start, what is your first name?", "ts": "1800000000.000001"}
    app_bot = {"type": "message", "channel": "DU_ALICE", "channel_type": "im", "user": "UB111", "bot_id": "B999",
               "text": "Hi there! Thanks for sharing the info!", "ts": "1800000000.000002",
               "bot_profile": {"id": "B999", "name": "other-app", "app_id": "A222", "deleted": False}}
    classic = {"type": "message", "subtype": "bot_message", "channel": "DU_ALICE", "channel_type": "im",
               "username": "classic-bot", "text": "beep", "ts": "1800000000.000003"}
    workflow = {"type": "message", "channel": "DU_ALICE", "channel_type": "im", "user": "U_ALICE",
                "app_id": "A333", "text": "Posted by a workflow", "ts": "1800000000.000004"}
    for event in (slackbot, app_bot, classic, workflow, dm("", "1800000000.000005", root)):
        assert slack.event(event).status_code == 200
    assert snapshot(r) == before
    assert queued(engine) == 0
    drain()
    assert len(fake_slack.posts()) == posts
    assert said(engine, rid) == []


def test_mentions_channels_and_links_are_recorded_as_the_person_saw_them(engine, slack, fake_slack, drain):
    fake_slack.add_channel("general", "C043YJGBY49")
    rid, root = begin(engine, fake_slack, drain)
    text = ("Paired with <@U_BOB> and <@W222|wil> on <#C043YJGBY49|general> and <#C043YJGBY49>, "
            "see <https://example.com/pr/1|the PR> and <https://example.com>, <!here> &amp; <!subteam^S1|ops>")
    assert slack.event(dm(text, "1800000001.000100", root)).status_code == 200
    drain()
    assert subtasks(engine, rid)["alice@example.com"]["data"]["shipped"] == (
        "Paired with @Bob and @wil on #general and #general, see the PR (https://example.com/pr/1) and "
        "https://example.com, @here & @ops")
    # the names came from Slack once each, in the worker; a second mention is read from the cache
    assert [c.args["user"] for c in fake_slack.calls_to("users.info")] == ["U_BOB", "W222"]
    assert len(fake_slack.calls_to("conversations.info")) == 1
    assert slack.event(dm("4, with <@U_BOB>", "1800000002.000100", root)).status_code == 200
    drain()
    assert len(fake_slack.calls_to("users.info")) == 2
    # a number field reads the number; the mention does not make it a wrong answer
    assert said(engine, rid)[-1]["text"] == "4, with @Bob"


def test_a_forwarded_message_is_recorded_as_its_text(engine, slack, fake_slack, drain):
    rid, root = begin(engine, fake_slack, drain)
    shared = {"fallback": "[May 2nd, 2026 9:12 AM] Bobby Tables: The parser is live", "is_share": True,
              "is_msg_unfurl": True, "author_name": "Bobby Tables", "author_id": "U_BOB",
              "from_url": "https://test.slack.com/archives/C1/p1", "channel_id": "C1", "channel_name": "eng",
              "text": "The parser is live for <@U_BOB>'s team", "ts": "1777712000.000100", "color": "D0D0D0",
              "mrkdwn_in": ["text"], "footer": "Posted in #eng"}
    assert slack.event(dm("", "1800000003.000100", root, attachments=[shared])).status_code == 200
    drain()
    shipped = subtasks(engine, rid)["alice@example.com"]["data"]["shipped"]
    assert shipped == "Forwarded from Bobby Tables:\nThe parser is live for @Bob's team"


def test_files_are_kept_and_a_file_alone_answers_text_questions_only(engine, slack, fake_slack, drain, files_dir):
    rid, root = begin(engine, fake_slack, drain)
    plan = fake_slack.add_file("F111", "plan.pdf", b"%PDF-1.7 the plan", "application/pdf", user="U_ALICE")
    assert slack.event(dm("", "1800000004.000100", root, subtype="file_share", files=[plan],
                          upload=False)).status_code == 200
    drain()
    sub = subtasks(engine, rid)["alice@example.com"]
    assert sub["data"] == {"shipped": "[attached: plan.pdf]"}  # a text question: the file is the answer
    [kept] = said(engine, rid)[-1]["attachments"]
    assert (kept["name"], kept["size"], kept["content_type"]) == ("plan.pdf", 17, "application/pdf")
    assert Path(kept["path"]).read_bytes() == b"%PDF-1.7 the plan"
    assert Path(kept["path"]).resolve().is_relative_to(files_dir.resolve())

    # the number question: a file alone is kept but is no answer, and the person is told
    chart = fake_slack.add_file("F222", "chart.png", b"\x89PNG...", "image/png", user="U_ALICE")
    assert slack.event(dm("", "1800000005.000100", root, subtype="file_share", files=[chart])).status_code == 200
    drain()
    reply = fake_slack.posts("DU_ALICE")[-1]["text"]
    assert "I kept chart.png" in reply
    assert "needs a typed answer (number)" in reply
    assert "How many hours did it take?" in reply
    assert subtasks(engine, rid)["alice@example.com"]["data"] == {"shipped": "[attached: plan.pdf]"}
    assert said(engine, rid)[-1]["attachments"][0]["name"] == "chart.png"

    # words with a file: the words answer, the file is kept with them; a file Slack no longer serves is named
    gone = {**fake_slack.add_file("F333", "old.txt", b"x"), "mode": "tombstone"}
    assert slack.event(dm("3", "1800000006.000100", root, files=[chart, gone])).status_code == 200
    drain()
    assert subtasks(engine, rid)["alice@example.com"]["data"]["hours"] == 3
    kept = said(engine, rid)[-1]["attachments"]
    assert [a["name"] for a in kept] == ["chart.png", "old.txt"]
    assert kept[1]["error"] == "Slack no longer serves this file"
    downloads = fake_slack.calls_to("files.download")
    assert len(downloads) == 3  # plan, chart twice (two messages); never the tombstone


def test_an_edited_answer_with_a_mention_changes_the_answer(engine, slack, fake_slack, drain):
    rid, root = begin(engine, fake_slack, drain)
    assert slack.event(dm("the parser", "1800000007.000100", root)).status_code == 200
    drain()
    edit = edit_event("U_ALICE", "1800000007.000100", "the parser", "the parser, with <@U_BOB>", thread_ts=root)
    assert slack.event(edit).status_code == 200
    drain()
    sub = subtasks(engine, rid)["alice@example.com"]
    assert sub["data"]["shipped"] == "the parser, with @Bob"
    assert [h["value"] for h in sub["data_history"]["shipped"]] == ["the parser"]


def test_a_file_too_large_or_not_on_slack_is_named_but_not_kept(engine, slack, fake_slack, drain, monkeypatch,
                                                                files_dir):
    monkeypatch.setenv("TASKBOT_MAX_FILE", "1000")
    from bot import bootstrap

    bootstrap.engine.cache_clear()  # the worker's engine reads the limit
    rid, root = begin(engine, fake_slack, drain)
    big = fake_slack.add_file("F901", "big.bin", b"x" * 5000)
    understated = {**fake_slack.add_file("F902", "liar.bin", b"y" * 5000), "size": 10}
    foreign = {**fake_slack.add_file("F903", "elsewhere.txt", b"z"), "url_private": "https://files.example.net/z",
               "url_private_download": "https://files.example.net/z"}
    files = [big, understated, foreign]
    assert slack.event(dm("the parser", "1800000008.000100", root, files=files)).status_code == 200
    drain()
    kept = said(engine, rid)[-1]["attachments"]
    assert [(a["name"], a.get("error")) for a in kept] == [
        ("big.bin", "larger than 1,000 bytes: not kept"), ("liar.bin", "larger than 1,000 bytes: not kept"),
        ("elsewhere.txt", "not a Slack file URL: not downloaded")]  # the bot token goes to Slack only
    assert [c.args["path"].rsplit("/", 1)[-1] for c in fake_slack.calls_to("files.download")] == ["liar.bin"]
    assert not any(files_dir.rglob("*.bin"))
    assert subtasks(engine, rid)["alice@example.com"]["data"] == {"shipped": "the parser"}  # the words still count


def test_a_links_preview_is_not_part_of_the_answer_nor_an_edit(engine, slack, fake_slack, drain, r):
    rid, root = begin(engine, fake_slack, drain)
    preview = {"from_url": "https://example.com/pr/1", "original_url": "https://example.com/pr/1", "id": 1,
               "service_name": "Example", "title": "PR 1: the parser", "title_link": "https://example.com/pr/1",
               "text": "Adds the parser and its tests."}
    ts = "1800000009.000100"
    assert slack.event(dm("<https://example.com/pr/1>", ts, root, attachments=[preview])).status_code == 200
    drain()
    assert subtasks(engine, rid)["alice@example.com"]["data"] == {"shipped": "https://example.com/pr/1"}
    before = snapshot(r)
    unfurled = edit_event("U_ALICE", ts, "<https://example.com/pr/1>", "<https://example.com/pr/1>", thread_ts=root)
    unfurled["message"]["attachments"] = [preview]  # Slack adds the preview later, as an edit of the message
    assert slack.event(unfurled).status_code == 200
    assert snapshot(r) == before
