"""Slack's Web API client, paced: every call first takes a slot of its method's rate limit, shared in Redis.

Slack limits each Web API method per workspace by tier (Tier 2 about 20 calls a minute, Tier 3
about 50, Tier 4 about 100) and ``chat.postMessage`` by channel (about 1 a second) and by
workspace (a limit Slack does not publish), answering HTTP 429 with ``Retry-After`` beyond them:
https://docs.slack.dev/apis/web-api/rate-limits. Retrying after 429s gets there eventually, but
1,000 users.lookupByEmail calls at 50 a minute are 20 minutes of them; pacing first gets no 429
at all. The slots are :mod:`.ratelimit`'s sliding windows, so every worker process keeps to one
budget. A call that would wait longer than ``max_wait`` raises :class:`SlackRateLimited`
instead, and the engine tries the message again when the slot is free (``retry_after``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.slack_response import SlackResponse

from engine.keys import PREFIX

from .ratelimit import Limiter, Rule, Wait

POST = "chat.postMessage"
#: The tier of each method taskbot calls (each method's "Rate limits" fact in Slack's reference). Methods not
#: listed are not paced: auth.test and apps.connections.open (Socket Mode) belong to the connection.
TIERS = {"users.list": 2, "users.lookupByEmail": 3, "conversations.open": 3, "chat.update": 3,
         "conversations.info": 3, "users.info": 4, "views.open": 4, "views.update": 4, "views.push": 4,
         "chat.postEphemeral": 4}
#: A view opens on a trigger_id that lives 3 seconds: these never wait for a slot, they fail at once.
NO_WAIT = frozenset({"views.open", "views.push", "views.update"})


def key(kind: str, ident: str) -> str:
    """Adapter keys: ``slack:user:{email}`` -> user id ('' = not in Slack), ``slack:dm:{user}`` -> DM channel,
    ``slack:info:{user}`` -> users.info JSON, ``slack:channel:{id}`` -> conversations.info's name,
    ``slack:rate:{method}`` (and ``slack:rate:post:{channel}``) ->
    the limiter's window, ``slack:directory:*`` -> the member list (:mod:`.slack_directory`)."""
    return f"{PREFIX}slack:{kind}:{ident}"


@dataclass(frozen=True)
class SlackLimits:
    """The rates to keep to: calls a minute per tier; chat.postMessage a second, workspace-wide and per channel."""

    tiers: dict[int, Rule]
    post: Rule
    channel: Rule
    max_wait: float = 10.0

    @classmethod
    def of(cls, *, tier2: float = 20, tier3: float = 50, tier4: float = 100, post: float = 5,
           channel: float = 1, max_wait: float = 10.0) -> SlackLimits:
        # Slack counts a tier per minute, "occasional bursts" welcome: a minute's calls may go at once.
        tiers = {2: Rule.per(max(1, int(tier2)), 60), 3: Rule.per(max(1, int(tier3)), 60),
                 4: Rule.per(max(1, int(tier4)), 60)}
        return cls(tiers, Rule.rate(post), Rule.rate(channel), max_wait)

    @classmethod
    def from_settings(cls, settings: Any) -> SlackLimits:
        # A send must not wait so long that its claim (a lease long) runs out under it.
        return cls.of(tier2=settings.slack_tier2_rate, tier3=settings.slack_tier3_rate,
                      tier4=settings.slack_tier4_rate, post=settings.slack_post_rate,
                      channel=settings.slack_channel_rate, max_wait=min(10.0, settings.lease_seconds / 2))

    def of_call(self, method: str, channel: str | None) -> list[tuple[str, Rule]]:
        """The limits one call of ``method`` (to ``channel``, for chat.postMessage) must fit."""
        if method == POST:
            return [(key("rate", "post"), self.post)] + ([(key("rate", f"post:{channel}"), self.channel)]
                                                        if channel else [])
        tier = TIERS.get(method)
        return [(key("rate", method), self.tiers[tier])] if tier else []


class SlackRateLimited(SlackClientError):
    """No slot for ``method`` within the wait allowed: try again in ``retry_after`` seconds."""

    def __init__(self, method: str, retry_after: float) -> None:
        super().__init__(f"{method} must wait {retry_after:.1f}s for Slack's rate limit")
        self.method = method
        self.retry_after = retry_after


class PacedWebClient(WebClient):
    """slack_sdk's ``WebClient``, each call paced by ``limits`` (Bolt's calls through it too)."""

    def __init__(self, *args: Any, limiter: Limiter, limits: SlackLimits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limiter = limiter
        self.limits = limits

    def api_call(self, api_method: str, *, http_verb: str = "POST", files: dict[str, Any] | None = None,
                 data: dict[str, Any] | None = None, params: dict[str, Any] | None = None,
                 json: dict[str, Any] | None = None, headers: dict[str, Any] | None = None,
                 auth: dict[str, Any] | None = None) -> SlackResponse:
        args = {**(params or {}), **(data or {}), **(json or {})}
        limits = self.limits.of_call(api_method, str(args["channel"]) if args.get("channel") else None)
        member = None
        if limits:
            try:
                member = self.limiter.take(limits, 0.0 if api_method in NO_WAIT else self.limits.max_wait)
            except Wait as wait:
                raise SlackRateLimited(api_method, wait.seconds) from None
        try:
            return super().api_call(api_method, http_verb=http_verb, files=files, data=data, params=params,
                                    json=json, headers=headers, auth=auth)
        except SlackApiError as exc:
            if exc.response.status_code == 429 and limits:  # limited anyway (another app's calls?): wait it out
                self.limiter.hold(limits[-1][0], retry_after(exc) or 1.0)
            raise
        finally:
            if member is not None:  # the call counts until Slack answered, when Slack has had it for sure
                self.limiter.finish(limits, member)

    def record_post(self, channel: str) -> None:
        """A post to a user id went to their DM ``channel``: count it against that channel's limit too."""
        self.limiter.record(key("rate", f"post:{channel}"), self.limits.channel)


def retry_after(exc: SlackApiError) -> float | None:
    """A 429's ``Retry-After`` in seconds, when it says."""
    wait = next((v for k, v in exc.response.headers.items() if k.lower() == "retry-after"), None)
    value = wait[0] if isinstance(wait, list) and wait else wait
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
