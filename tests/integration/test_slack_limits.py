"""Slack at its rate limits: the fake Web API answers 429 past Slack's tiers and post rates; taskbot gets none.

People are found by email in the member list (users.list, read in pages), DMs are posted to the
user id without conversations.open, every call keeps to its limit across worker processes, and
a slot too far off defers the message instead of holding the worker.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator

import pytest

from channels.slack import SlackChannel
from channels.slack_directory import READY
from engine.ports import DeliveryFailed
from tests.conftest import turn_on
from tests.fakes.slack_api import FakeSlack

TASK = """
id: {id}
name: Poll {id}
owner: lead@example.com
template:
  fields: [{{key: answer, prompt: "{id}: your answer?"}}]
  participants: [{people}]
  chase: {{interval: 1h}}
"""


@pytest.fixture
def rates(request) -> dict[str, float]:
    """Slack's limits for a test, on both sides: ``{"post": 10, "tier3": 2, ...}`` (indirect parametrize)."""
    return getattr(request, "param", {})


@pytest.fixture(autouse=True)
def fake_slack(env, monkeypatch, rates) -> Iterator[FakeSlack]:
    tiers = {2: rates.get("tier2", 20), 3: rates.get("tier3", 50), 4: rates.get("tier4", 100)}
    fake = FakeSlack(tiers=tiers, post_rate=rates.get("post", 5)).start()
    values = {"SLACK_BOT_TOKEN": fake.token, "SLACK_SIGNING_SECRET": "s", "TASKBOT_SLACK_API_URL": fake.api_url}
    values |= {f"TASKBOT_SLACK_{name.upper()}_RATE": str(value) for name, value in rates.items()}
    turn_on(env, monkeypatch, values)
    yield fake
    fake.stop()


def people(fake: FakeSlack, n: int, start: int = 0) -> list[str]:
    emails = [f"p{i:04}@example.com" for i in range(start, start + n)]
    for i, email in enumerate(emails, start):
        fake.add_user(f"U{i:04}", email)
    return emails


def statuses(engine, rid) -> list[str]:
    return [s["status"] for s in engine.run_view(rid, conversations=False)["subtasks"]]


@pytest.mark.parametrize("rates", [{"post": 10}], indirect=True)
def test_sixty_people_found_by_email_are_opened_by_two_workers_with_no_429(engine, fake_slack, workers, wait_for):
    emails = people(fake_slack, 450)  # a workspace of 450: three pages of users.list
    fake_slack.add_user("U_GONE", "gone@example.com")
    fake_slack.users["U_GONE"]["deleted"] = True
    participants = emails[:60]
    engine.import_contacts([{"email": e, "preferred_channel": "slack"} for e in participants])
    engine.apply_definition(TASK.format(id="survey", people=", ".join(participants)))
    engine.apply_definition(TASK.format(id="again", people=", ".join(participants[:10])))  # two DMs at once
    runs = [engine.runs.trigger("survey"), engine.runs.trigger("again")]
    workers(2)
    wait_for(lambda: all(statuses(engine, rid) == ["running"] * n for rid, n in zip(runs, (60, 10), strict=True)),
             timeout=90, step=0.5)

    assert fake_slack.limited == 0
    posts = fake_slack.calls_to("chat.postMessage")
    assert [c.status for c in posts] == [200] * 70
    assert {c.args["channel"] for c in posts} == {f"DU{i:04}" for i in range(60)}
    assert fake_slack.calls_to("users.lookupByEmail") == []
    assert fake_slack.calls_to("conversations.open") == []
    pages = fake_slack.calls_to("users.list")
    assert len(pages) == 3  # read once, in pages that follow one another's cursors
    assert pages[0].args.get("cursor") is None
    assert pages[1].args["cursor"] != pages[2].args["cursor"]
    by_channel: dict[str, list[float]] = defaultdict(list)
    for c in posts:
        by_channel[c.args["channel"]].append(c.at)
    closest = min(b - a for ats in by_channel.values() if len(ats) > 1 for a, b in zip(ats, ats[1:], strict=False))
    assert closest >= 1.0, f"two posts to one DM {closest:.3f}s apart"


@pytest.mark.parametrize("rates", [{"post": 0.25}], indirect=True)
def test_a_post_slot_too_far_off_defers_the_opening_instead_of_holding_the_worker(engine, fake_slack, drain,
                                                                                  wait_for):
    engine.import_contacts([{"email": e, "slack_user_id": f"U{i:04}"} for i, e in enumerate(people(fake_slack, 3))])
    engine.apply_definition(TASK.format(id="slow", people="p0000@example.com, p0001@example.com, p0002@example.com"))
    started = time.monotonic()
    rid = engine.runs.trigger("slow")
    drain()
    assert time.monotonic() - started < 3  # one a 4 s: the worker waited at most half a lease, then moved on
    assert sorted(statuses(engine, rid)) == ["pending", "pending", "running"]
    wait_for(lambda: statuses(engine, rid) == ["running"] * 3, timeout=30, between=drain)
    ats = [c.at for c in fake_slack.calls_to("chat.postMessage")]
    assert fake_slack.limited == 0
    assert len(ats) == 3
    assert min(b - a for a, b in zip(ats, ats[1:], strict=False)) >= 4.0


def test_a_listing_cut_short_goes_on_from_its_cursor_and_lookups_see_the_last_whole_one(engine, fake_slack, r):
    people(fake_slack, 450)
    fake_slack.add_user("U_BOT2", "robot@example.com")
    fake_slack.users["U_BOT2"]["is_bot"] = True
    slack = engine.channels["slack"]
    assert isinstance(slack, SlackChannel)
    slack.directory.refresh()
    assert slack.directory.user_id("p0001@example.com") == "U0001"
    assert slack.directory.user_id("robot@example.com") is None
    assert len(fake_slack.calls_to("users.list")) == 3

    del fake_slack.users["U0001"]
    people(fake_slack, 1, start=9999)
    fake_slack.fail_next("users.list", status=500, after=1)  # the second page fails
    r.set(READY, str(time.time() - 7200))  # read two hours ago: due again
    slack.directory.refresh()
    assert slack.directory.user_id("p0001@example.com") == "U0001"  # the old listing, whole, until the new one is
    assert slack.directory.user_id("p9999@example.com") is None
    slack.directory.refresh()
    cursors = [c.args.get("cursor") for c in fake_slack.calls_to("users.list")[3:]]
    assert cursors[0] is None
    assert cursors[1] == cursors[2]  # taken up again from the page that failed
    assert slack.directory.user_id("p0001@example.com") is None
    assert slack.directory.user_id("p9999@example.com") == "U9999"
    assert fake_slack.calls_to("users.lookupByEmail") == []


def test_without_a_member_list_people_are_looked_up_by_email(engine, fake_slack):
    people(fake_slack, 2)
    fake_slack.fail_next("users.list", error="missing_scope")
    slack = engine.channels["slack"]
    assert slack.user_by_email("p0000@example.com") == "U0000"
    assert slack.user_by_email("p0001@example.com") == "U0001"
    assert [c.args["email"] for c in fake_slack.calls_to("users.lookupByEmail")] == ["p0000@example.com",
                                                                                    "p0001@example.com"]
    assert len(fake_slack.calls_to("users.list")) == 1  # not asked again for each person


@pytest.mark.parametrize("rates", [{"tier3": 2}], indirect=True)
def test_lookups_beyond_their_tier_wait_for_slack_to_allow_them_instead_of_getting_429s(engine, fake_slack):
    slack = engine.channels["slack"]
    slack.directory.refresh()  # an empty workspace, listed
    emails = people(fake_slack, 3)  # they joined after the listing
    assert [slack.user_by_email(e) for e in emails[:2]] == ["U0000", "U0001"]
    started = time.monotonic()
    with pytest.raises(DeliveryFailed) as deferred:
        slack.user_by_email(emails[2])
    assert time.monotonic() - started < 3
    assert deferred.value.permanent is False
    assert 55 < deferred.value.retry_after <= 61  # a minute's two lookups are spent
    assert fake_slack.limited == 0
    assert len(fake_slack.calls_to("users.lookupByEmail")) == 2


@pytest.mark.parametrize("rates", [{"post": 20}], indirect=True)
def test_one_open_batch_run_by_two_workers_at_once_posts_every_opening_once(engine, fake_slack, workers, wait_for):
    """As when the sweeper hands a batch to a second worker while the first still sends it: the two
    leapfrog through the batch (each record of an opening claims the next), and nobody is asked twice."""
    emails = people(fake_slack, 40)
    engine.import_contacts([{"email": e, "slack_user_id": f"U{i:04}"} for i, e in enumerate(emails)])
    engine.apply_definition(TASK.format(id="twice", people=", ".join(emails)))
    rid = engine.runs.trigger("twice")
    engine.runs.advance(rid, 0)  # the fan-out, here: its open job waits in the queue
    engine.jobs.enqueue_many([("open_batch", (rid, "0", "40"))])  # and the same batch once more
    workers(2)
    wait_for(lambda: statuses(engine, rid) == ["running"] * 40, timeout=60, step=0.2)
    time.sleep(1.0)  # a second send would be under way by now

    posts = fake_slack.calls_to("chat.postMessage")
    assert fake_slack.limited == 0
    assert sorted(c.args["channel"] for c in posts) == [f"DU{i:04}" for i in range(40)]
    view = engine.run_view(rid)
    assert [sum(m["kind"] == "opening" for m in s["conversation"]) for s in view["subtasks"]] == [1] * 40
