"""The fake Slack and Telegram APIs refuse what the real ones would: past their limits, a 429 saying how long to wait.

The channel tests' "no 429" means something only because of this: an unpaced client does get them.
"""

from __future__ import annotations

import base64

import httpx

from tests.fakes.slack_api import FakeSlack
from tests.fakes.telegram_api import FakeTelegram


def test_the_fake_slack_refuses_a_second_post_to_one_channel_within_a_second_and_a_tier_past_its_minute():
    fake = FakeSlack(tiers={2: 20, 3: 3, 4: 100}).start()
    fake.add_user("U1", "a@example.com")
    auth = {"Authorization": f"Bearer {fake.token}"}
    try:
        with httpx.Client(base_url=fake.api_url, headers=auth) as slack:
            first = slack.post("chat.postMessage", json={"channel": "U1", "text": "hi"})
            second = slack.post("chat.postMessage", json={"channel": "DU1", "text": "again"})  # the same DM
            lookups = [slack.post("users.lookupByEmail", data={"email": "a@example.com"}) for _ in range(4)]
    finally:
        fake.stop()
    assert first.json()["ok"] is True
    assert (second.status_code, second.json()["error"], second.headers["Retry-After"]) == (429, "ratelimited", "1")
    assert [x.status_code for x in lookups] == [200, 200, 200, 429]
    assert 58 <= int(lookups[-1].headers["Retry-After"]) <= 60
    assert fake.limited == 2


def test_the_fake_slack_lists_members_in_pages():
    fake = FakeSlack().start()
    for i in range(5):
        fake.add_user(f"U{i}", f"p{i}@example.com")
    auth = {"Authorization": f"Bearer {fake.token}"}
    try:
        with httpx.Client(base_url=fake.api_url, headers=auth) as slack:
            pages, cursor = [], ""
            while True:
                page = slack.get("users.list", params={"limit": 2, **({"cursor": cursor} if cursor else {})}).json()
                pages.append([m["id"] for m in page["members"]])
                cursor = page["response_metadata"]["next_cursor"]
                if not cursor:
                    break
            wrong = slack.get("users.list", params={"cursor": base64.b64encode(b"user:U9").decode()}).json()
    finally:
        fake.stop()
    assert pages == [["U0", "U1"], ["U2", "U3"], ["U4"]]
    assert wrong == {"ok": False, "error": "invalid_cursor"}


def test_the_fake_telegram_refuses_past_30_a_second_and_a_second_message_to_a_chat():
    fake = FakeTelegram().start()
    try:
        with httpx.Client(base_url=f"{fake.api_url}{fake.token}/") as bot:
            answers = [bot.post("sendMessage", json={"chat_id": 100 + i, "text": "hi"}) for i in range(31)]
            again = bot.post("sendMessage", json={"chat_id": 200, "text": "hi"})
    finally:
        fake.stop()
    assert [a.status_code for a in answers[:30]] == [200] * 30
    refused = answers[30].json()
    assert (answers[30].status_code, refused["error_code"], refused["parameters"]["retry_after"]) == (429, 429, 1)
    assert again.status_code == 429  # still within the same second
    assert fake.flood_refusals == 2
    assert len(fake.sent()) == 30


def test_the_fake_telegram_refuses_a_second_message_to_one_chat_within_a_second():
    fake = FakeTelegram().start()
    try:
        with httpx.Client(base_url=f"{fake.api_url}{fake.token}/") as bot:
            first = bot.post("sendMessage", json={"chat_id": 100, "text": "hi"})
            second = bot.post("sendMessage", json={"chat_id": 100, "text": "again"})
            other = bot.post("sendMessage", json={"chat_id": 101, "text": "hi"})
    finally:
        fake.stop()
    assert [first.status_code, second.status_code, other.status_code] == [200, 429, 200]
    assert second.json()["parameters"]["retry_after"] == 1
