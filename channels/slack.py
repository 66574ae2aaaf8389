"""The Slack channel: DMs through the Web API, and Slack message events turned into ``Inbound``.

A sub-task's opening is a DM that starts a thread; its ``Delivery.ref`` is ``{dm channel}:{ts}``
of that root message, so chases and replies go under it and a reply in it routes back.
"""

from __future__ import annotations

import html
import json
import logging
import re
import weakref
from typing import Any

import redis
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler

from engine.keys import PREFIX
from engine.model import Contact
from engine.ports import Delivery, DeliveryFailed, Inbound, Outbound

log = logging.getLogger("taskbot.slack")

#: Slack errors that no retry can fix for this person: the sub-task fails (SPEC §4).
PERMANENT = frozenset({"user_not_found", "channel_not_found", "cannot_dm_bot", "account_inactive",
                       "user_disabled", "is_archived", "msg_too_long", "no_text"})
NOT_FOUND = frozenset({"users_not_found", "user_not_found", "account_inactive"})
MAX_WAIT = 10
LOOKUP_TTL = 24 * 3600
NOT_FOUND_TTL = 3600
#: Message subtypes that are a person writing; edits, deletions, joins and bot posts are not.
PERSON_SUBTYPES = frozenset({None, "thread_broadcast", "file_share"})
LINK = re.compile(r"<(?:mailto:)?([^<>|]+)\|([^<>]*)>|<(?:mailto:)?([^<>|@#!][^<>|]*)>")


def key(kind: str, ident: str) -> str:
    """Adapter caches: ``slack:user:{email}`` -> user id ('' = not in Slack), ``slack:dm:{user}`` -> DM channel,
    ``slack:info:{user}`` -> users.info JSON."""
    return f"{PREFIX}slack:{kind}:{ident}"


def to_slack(text: str) -> str:
    """Slack reads ``& < >`` as markup; the engine's text is plain."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def from_slack(text: str) -> str:
    """Slack's markup back to what the person typed: ``<mailto:a@b.c|a@b.c>`` -> ``a@b.c``."""
    return html.unescape(LINK.sub(lambda m: m.group(2) or m.group(3) or m.group(1), text))


def failure(exc: SlackApiError) -> DeliveryFailed:
    """Permanent for errors about the person (they cannot be DMed); anything else is worth retrying."""
    status = exc.response.status_code
    if status == 429:
        wait = exc.response.headers.get("Retry-After", "?")
        seconds = float(wait) if str(wait).replace(".", "", 1).isdigit() else None
        return DeliveryFailed(f"Slack rate limit (still limited after retrying; Retry-After {wait}s)", permanent=False,
                              retry_after=seconds)
    error = str(exc.response.get("error") or f"HTTP {status}")
    return DeliveryFailed(f"Slack refused: {error}", permanent=error in PERMANENT)


class ShortRateLimitRetry(RateLimitErrorRetryHandler):
    """Wait out a short ``Retry-After`` in place; a long one fails the call, and the job is retried later."""

    def _can_retry(self, *, state: Any, request: Any, response: Any = None, error: Any = None) -> bool:
        if not super()._can_retry(state=state, request=request, response=response, error=error):
            return False
        wait = next((v[0] for k, v in response.headers.items() if k.lower() == "retry-after"), "1")
        return int(wait) <= MAX_WAIT


class SlackChannel:
    """Implements the engine's ``Channel`` on the Slack Web API (slack_sdk waits out short 429s)."""

    name = "slack"

    def __init__(self, client: WebClient, r: redis.Redis) -> None:
        self.client = client
        self.r = r

    @classmethod
    def from_settings(cls, token: str, api_url: str, redis_url: str) -> SlackChannel:
        handlers = [ConnectionErrorRetryHandler(max_retry_count=2), ShortRateLimitRetry(max_retry_count=2)]
        client = WebClient(token=token, base_url=api_url, timeout=15, retry_handlers=handlers)
        r = redis.Redis.from_url(redis_url)
        channel = cls(client, r)
        weakref.finalize(channel, r.close)  # its connections close with it, not at the collector's whim
        return channel

    def resolve(self, contact: Contact) -> str | None:
        if contact.slack_user_id:
            return contact.slack_user_id
        return self.user_by_email(contact.email) if contact.email else None

    def user_by_email(self, email: str) -> str | None:
        """``users.lookupByEmail``, cached (a miss too, so fallback does not ask Slack each time).

        Raises:
            DeliveryFailed: Slack did not answer (rate limit, network); the caller retries later.
        """
        cached = self.r.get(key("user", email))
        if cached is not None:
            return cached.decode() or None
        try:
            uid = str(self.client.users_lookupByEmail(email=email)["user"]["id"])
        except SlackApiError as exc:
            if exc.response.status_code == 429 or exc.response.status_code >= 500:
                raise failure(exc) from None
            error = exc.response.get("error")
            if error not in NOT_FOUND:  # e.g. missing_scope: the operator must fix the app, people fall back
                log.warning("users.lookupByEmail refused (%s); %s is treated as not on Slack", error, email)
            self.r.set(key("user", email), "", ex=NOT_FOUND_TTL)
            return None
        except (SlackClientError, OSError) as exc:
            raise DeliveryFailed(f"Slack unreachable: {exc}", permanent=False) from None
        self.r.set(key("user", email), uid, ex=LOOKUP_TTL)
        return uid

    def user_info(self, user_id: str) -> dict[str, Any]:
        """``users.info``'s user object (name, profile.email), cached; {} when Slack does not give it."""
        cached = self.r.get(key("info", user_id))
        if cached is not None:
            return dict(json.loads(cached))
        try:
            user = dict(self._call("users_info", user=user_id)["user"])
        except DeliveryFailed:
            return {}
        self.r.set(key("info", user_id), json.dumps(user), ex=LOOKUP_TTL)
        return user

    def send(self, message: Outbound) -> Delivery:
        if message.thread and ":" in message.thread:
            channel, thread_ts = message.thread.split(":", 1)
        else:
            channel, thread_ts = self._dm(message.address.id), None
        posted = self._call("chat_postMessage", channel=channel, text=to_slack(message.text), thread_ts=thread_ts,
                            unfurl_links=False, unfurl_media=False)
        return Delivery(ref=f"{posted['channel']}:{thread_ts or posted['ts']}")

    def _dm(self, user_id: str) -> str:
        cached = self.r.get(key("dm", user_id))
        if cached is not None:
            return str(cached.decode())
        channel = str(self._call("conversations_open", users=user_id)["channel"]["id"])
        self.r.set(key("dm", user_id), channel, ex=30 * 86400)
        return channel

    def _call(self, method: str, **kwargs: Any) -> Any:
        """One Web API call; Slack's refusals and network faults become :class:`DeliveryFailed`."""
        try:
            return getattr(self.client, method)(**kwargs)
        except SlackApiError as exc:
            raise failure(exc) from None
        except (SlackClientError, OSError) as exc:
            raise DeliveryFailed(f"Slack unreachable: {exc}", permanent=False) from None

    @staticmethod
    def inbound(body: dict[str, Any]) -> Inbound | None:
        """A person's DM (Events API envelope) as an ``Inbound``; None for anything else.

        Fields of another type than Slack sends (no channel, a ``ts`` that is no timestamp) make
        it no message: it is ignored, never an error that would make Slack deliver it again.
        """
        event = body.get("event")
        if not isinstance(event, dict):
            return None
        user, channel, text, ts = (event.get(k) for k in ("user", "channel", "text", "ts"))
        subtype = event.get("subtype")
        if (event.get("type") != "message" or event.get("channel_type") != "im" or event.get("bot_id")
                or not (subtype is None or isinstance(subtype, str)) or subtype not in PERSON_SUBTYPES
                or not (isinstance(user, str) and user) or not (isinstance(channel, str) and channel)
                or not (isinstance(text, str) and text.strip()) or timestamp(ts) is None):
            return None
        thread = event.get("thread_ts")
        reply_to = f"{channel}:{thread}" if isinstance(thread, str) and thread and thread != ts else None
        event_id = body.get("event_id")
        return Inbound("slack", user, from_slack(text),
                       provider_id=event_id if isinstance(event_id, str) and event_id else f"{channel}:{ts}",
                       reply_to=reply_to, meta={"channel": channel, "ts": ts}, at=timestamp(ts))


def timestamp(value: Any) -> float | None:
    """A Slack ``ts`` (``"1700000000.000100"``) as unix seconds; None when it is none."""
    if not isinstance(value, str) or not re.fullmatch(r"\d{1,12}(\.\d{1,9})?", value):
        return None
    return float(value)
