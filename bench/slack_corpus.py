"""Inbound fidelity on the public Slack payloads: what each becomes when a participant's DM brings it.

Reads ``../shared/corpora/slack`` beside the repository (never copied into it; see its README):
``events.json`` (Events API payloads from bolt-python's tests) and ``extras.json`` (message texts
with every kind of Slack reference, a sample attachment, a Slackbot IM message, users[] in
``users.info``'s shape). Each is re-addressed as that README says: to the participant's DM
(channel ``D…``, ``channel_type`` im, fresh ``ts`` and ``event_id``; the person who wrote it stays
its author), a file's ``url_private`` pointed at the fake Web API that serves it, a forward built
as an empty DM carrying the attachment with Slack's share fields.

Each then goes the way a DM goes in taskbot: ``SlackChannel.inbound`` (the ack path, no Slack
call), then ``SlackChannel.complete_inbound`` (the worker: ``users.info``, ``conversations.info``
and file downloads against ``tests/fakes``' Slack Web API, Redis for the caches). The outcome is
graded against what a person would check: *ignored* (bots, Slackbot), or the exact text recorded
(and the files kept). The expectations are this module's, written from Slack's formatting
reference; upstream asserts nothing about taskbot.

``python -m bench.slack_corpus`` prints the table alone; ``python -m bench`` runs it with the rest.
"""

from __future__ import annotations

import copy
import itertools
import json
import tempfile
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

CORPORA = Path(__file__).resolve().parents[1] / ".." / "shared" / "corpora"
ME = "U0PARTICIPANT"
DM = f"D{ME}"

#: What each events.json case must become: None = ignored, else (recorded text, names of files kept).
EVENTS: dict[str, tuple[str, list[str]] | None] = {
    "plain_dm": ("We've received 103 messages from you!", []),
    "rich_text_dm": ("Hello World!", []),
    "answer_to_edit": ("Please fix JIRA-1234, SCM-567 and BUG-169 as soon as you can!", []),
    "user_mention": ("@Wil Person", []),
    "file_share": ("Hi there!", ["file.png"]),
    "bot_message_with_user": None,
    "classic_bot_message": None,
    "message_changed": ("updated message", []),
}
#: The reference texts of extras.json, in order, as recorded (users.info knows W222 and the users[] below).
REFERENCES = [
    "Hi @some_user, join #general, ping @ops, @here, see docs (https://example.com), email Email Perihelion "
    "(perihelion@example.com), and note Feb 18, 2014 PST.",
    "@W123 #G123 @S123 https://example.com",
    "@U111 @Wil Person #general @ops https://example.com",
    "@bot label fallback",
    "Feb 18, 2014 PST",
    "<@U111> @U222 @U333",
]
FORWARD = ("Optional text that appears above the attachment block\nForwarded from Bobby Tables:\n"
           "Slack API Documentation (https://api.slack.com/)\nOptional text that appears within the attachment\n"
           "Priority: High")


def available(corpora: Path = CORPORA) -> bool:
    return (corpora / "slack" / "events.json").is_file()


def cases(corpora: Path, fake: Any) -> list[tuple[str, str, dict[str, Any], Any]]:
    """(kind, name, the body as a participant's DM would bring it, expected outcome)."""
    events = json.loads((corpora / "slack" / "events.json").read_text(encoding="utf-8"))
    extras = json.loads((corpora / "slack" / "extras.json").read_text(encoding="utf-8"))
    ts = (f"{1800000000 + n}.000100" for n in itertools.count(1))
    out: list[tuple[str, str, dict[str, Any], Any]] = []
    for name, case in events.items():
        body = copy.deepcopy(case["payload"])
        event = body["event"]
        event.update(channel=DM, channel_type="im")
        if "user" in event and not event.get("bot_id"):
            event["user"] = ME
        if event.get("subtype") == "message_changed":
            for part in ("message", "previous_message"):
                event[part]["user"] = ME
        else:
            event["ts"] = event["event_ts"] = next(ts)
        for item in event.get("files") or []:  # served by the fake, with the bot token, as files.slack.com does
            served = fake.add_file(item["id"], item["name"], b"\x89PNG" + b"0" * 64, item["mimetype"], user=ME)
            item["url_private"], item["url_private_download"] = served["url_private"], served["url_private_download"]
        body["event_id"] = f"Ev{name}"
        out.append(("event", name, body, EVENTS.get(name, "unknown")))
    for n, text in enumerate(extras["reference_texts"]["texts"]):
        out.append(("reference", f"reference_{n + 1}", dm(text, next(ts)), (REFERENCES[n], [])))
    forward = [{**a, "is_share": True, "is_msg_unfurl": True, "from_url": "https://test.slack.com/archives/C1/p1",
                "channel_id": "C1", "author_id": "U222"} for a in extras["forward_attachments"]["attachments"]]
    out.append(("forward", "forward_attachments", dm("", next(ts), attachments=forward), (FORWARD, [])))
    latest = extras["slackbot_im"]["im"]["latest"]
    slackbot = {**latest, "channel": DM, "channel_type": "im", "ts": next(ts)}
    out.append(("slackbot", "slackbot_im", envelope(slackbot, "Evslackbot"), None))
    for user in extras["users"]["users"]:
        if user["id"] == "USLACKBOT":
            continue
        out.append(("users.info", f"mention_{user['name']}", dm(f"<@{user['id']}>", next(ts)),
                    (f"@{user['name']}", [])))
    return out


def dm(text: str, ts: str, **extra: Any) -> dict[str, Any]:
    event = {"type": "message", "channel": DM, "channel_type": "im", "user": ME, "text": text, "ts": ts,
             "event_ts": ts, **extra}
    return envelope(event, f"Ev{ts}")


def envelope(event: dict[str, Any], event_id: str) -> dict[str, Any]:
    return {"type": "event_callback", "team_id": "T1", "event": event, "event_id": event_id,
            "event_time": int(time.time())}


def outcome(channel: Any, body: dict[str, Any]) -> tuple[str, list[str]] | None:
    """What taskbot keeps of ``body``: None (ignored), or the recorded text and the files kept."""
    from channels.slack import SlackChannel

    message = SlackChannel.inbound(body)
    if message is None:
        return None
    text, meta = channel.complete_inbound(message.text, message.meta, message.provider_id)
    return text, [a["name"] for a in meta.get("attachments") or [] if a.get("path")]


def score(corpora: Path = CORPORA) -> dict[str, Any]:
    from channels.slack import SlackChannel
    from tests.fakes.slack_api import FakeSlack

    from .harness import redis_server

    extras = json.loads((corpora / "slack" / "extras.json").read_text(encoding="utf-8"))
    fake = FakeSlack().start()
    for user in extras["users"]["users"]:  # users.info answers with these, as Slack shapes them
        fake.users[user["id"]] = user
    fake.add_user("W222", None, "Wil Person")
    fake.add_channel("general", "C111")
    rows: list[dict[str, Any]] = []
    try:
        with redis_server() as server, tempfile.TemporaryDirectory() as folder:
            settings = SimpleNamespace(redis_url=server.url, slack_api_url=fake.api_url, slack_tier2_rate=20,
                                       slack_tier3_rate=50, slack_tier4_rate=100, slack_post_rate=5,
                                       slack_channel_rate=1, lease_seconds=60, slack_directory_refresh=3600,
                                       data_dir=folder, max_file=20 * 1024 * 1024)
            channel = SlackChannel.from_settings(fake.token, settings)
            for kind, name, body, expected in cases(corpora, fake):
                got = outcome(channel, body)
                rows.append({"kind": kind, "case": name, "ok": got == expected,
                             "expected": "ignored" if expected is None else expected[0],
                             "got": "ignored" if got is None else got[0],
                             "files": "" if got is None else ", ".join(got[1])})
            channel.r.close()
    finally:
        fake.stop()
    by = Counter(r["kind"] for r in rows)
    good = Counter(r["kind"] for r in rows if r["ok"])
    return {"rows": rows, "by": {k: {"cases": by[k], "right": good[k]} for k in by},
            "right": sum(good.values()), "cases": len(rows)}


def run(corpora: Path = CORPORA) -> dict[str, Any] | None:
    """The table of this module; None (and a plain line) without the corpora."""
    from .__main__ import table

    if not available(corpora):
        print("\nSlack corpus: skipped: ../shared/corpora/slack not found", flush=True)
        return None
    graded = score(corpora)
    print(table("Slack payloads as a participant's DM: ignored or recorded as expected",
                [{"kind": k, "cases": v["cases"], "right": v["right"]} for k, v in graded["by"].items()]), flush=True)
    wrong = [r for r in graded["rows"] if not r["ok"]]
    listed = "; ".join(f"{r['case']}: got {r['got']!r}" for r in wrong) or "none"
    print(f"all: {graded['right']}/{graded['cases']} right; wrong: {listed}", flush=True)
    return graded


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpora", type=Path, default=CORPORA, help="where the corpora are (default: %(default)s)")
    run(corpora=parser.parse_args().corpora)
