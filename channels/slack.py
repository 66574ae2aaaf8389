"""The Slack channel: DMs through the Web API, and Slack message events turned into ``Inbound``.

A sub-task's opening is a DM that starts a thread; its ``Delivery.ref`` is ``{dm channel}:{ts}``
of that root message, so chases and replies go under it and a reply in it routes back. The first
message to someone is posted with their user id as ``channel``, which Slack delivers to the bot's
DM with them (the app's Messages tab) and answers with that DM's id, kept for the next ones: no
``conversations.open`` (a Tier 3 call) per person. People are found by email in the workspace's
member list (:mod:`.slack_directory`), and every call keeps to Slack's rate limits (:mod:`.slack_web`).
"""

from __future__ import annotations

import json
import logging
import re
import weakref
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import redis
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler

from engine.model import Contact
from engine.ports import Delivery, DeliveryFailed, Inbound, Outbound, Settle

from .files import MAX_FILE, attached, download, folder_for
from .markdown import slack_messages
from .ratelimit import Limiter
from .slack_blocks import click, question_blocks, settled
from .slack_directory import Directory, NotReady
from .slack_text import attachments_text, files_of, is_bot, references, render
from .slack_web import PacedWebClient, SlackLimits, SlackRateLimited, key

log = logging.getLogger("taskbot.slack")

#: Slack errors that no retry can fix for this person: the sub-task fails (SPEC §4).
PERMANENT = frozenset({"user_not_found", "channel_not_found", "cannot_dm_bot", "account_inactive",
                       "user_disabled", "is_archived", "msg_too_long", "no_text", "not_in_channel", "invalid_blocks"})
NOT_FOUND = frozenset({"users_not_found", "user_not_found", "account_inactive"})
#: Of those, the ones that say this person cannot be reached on Slack: their next channel is tried.
UNREACHABLE = NOT_FOUND | {"channel_not_found", "cannot_dm_bot", "user_disabled"}
MAX_WAIT = 10
LOOKUP_TTL = 24 * 3600
NOT_FOUND_TTL = 3600
DM_TTL = 30 * 86400
#: Message subtypes that are a person writing; edits, deletions, joins and bot posts are not.
PERSON_SUBTYPES = frozenset({None, "thread_broadcast", "file_share", "me_message"})


def to_slack(text: str) -> str:
    """Slack reads ``& < >`` as markup; the engine's text is plain."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def from_slack(text: str) -> str:
    """Slack's markup back to what the person typed: ``<mailto:a@b.c|a@b.c>`` -> ``a@b.c``."""
    return render(text)


def failure(exc: SlackApiError | SlackRateLimited) -> DeliveryFailed:
    """Permanent for errors about the person (they cannot be DMed); anything else is worth retrying."""
    if isinstance(exc, SlackRateLimited):  # our own pacing: no slot soon enough
        return DeliveryFailed(f"Slack rate limit: {exc}", permanent=False, retry_after=exc.retry_after)
    status = exc.response.status_code
    if status == 429:
        wait = exc.response.headers.get("Retry-After", "?")
        seconds = float(wait) if str(wait).replace(".", "", 1).isdigit() else None
        return DeliveryFailed(f"Slack rate limit (still limited after retrying; Retry-After {wait}s)", permanent=False,
                              retry_after=seconds)
    error = str(exc.response.get("error") or f"HTTP {status}")
    return DeliveryFailed(f"Slack refused: {error}", permanent=error in PERMANENT, unreachable=error in UNREACHABLE)


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

    def __init__(self, client: PacedWebClient, r: redis.Redis, *, directory_refresh: float = 3600.0,
                 files: Path = Path(".taskbot/attachments"), max_file: int = MAX_FILE) -> None:
        self.client = client
        self.r = r
        self.directory = Directory(client, r, refresh=directory_refresh, max_wait=client.limits.max_wait)
        self.files = files
        self.max_file = max_file

    @classmethod
    def from_settings(cls, token: str, settings: Any) -> SlackChannel:
        handlers = [ConnectionErrorRetryHandler(max_retry_count=2), ShortRateLimitRetry(max_retry_count=2)]
        r = redis.Redis.from_url(settings.redis_url)
        client = PacedWebClient(token=token, base_url=settings.slack_api_url, timeout=15, retry_handlers=handlers,
                                limiter=Limiter(r), limits=SlackLimits.from_settings(settings))
        channel = cls(client, r, directory_refresh=settings.slack_directory_refresh,
                      files=Path(settings.data_dir).expanduser() / "attachments",
                      max_file=getattr(settings, "max_file", MAX_FILE))
        weakref.finalize(channel, r.close)  # its connections close with it, not at the collector's whim
        return channel

    def resolve(self, contact: Contact) -> str | None:
        if contact.slack_user_id:
            return contact.slack_user_id
        return self.user_by_email(contact.email) if contact.email else None

    def user_by_email(self, email: str) -> str | None:
        """The member list's user id for ``email``; else ``users.lookupByEmail``, cached (a miss too, so
        fallback does not ask Slack each time).

        Raises:
            DeliveryFailed: Slack did not answer (rate limit, network); the caller retries later.
        """
        try:
            listed = self.directory.user_id(email)
        except NotReady as exc:
            raise DeliveryFailed(f"Slack: {exc}", permanent=False, retry_after=exc.retry_after) from None
        if listed:
            return listed
        cached = self.r.get(key("user", email))
        if cached is not None:
            return cached.decode() or None
        try:
            uid = str(self.client.users_lookupByEmail(email=email)["user"]["id"])
        except SlackRateLimited as exc:
            raise failure(exc) from None
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
        if message.kind == "report":
            return self._report(message)
        if message.settle is not None:
            self.settle(message.settle)
        if not message.text:
            return Delivery()
        user = message.address.id
        if message.thread and ":" in message.thread:
            channel, thread_ts = message.thread.split(":", 1)
        else:
            cached = self.r.get(key("dm", user))
            channel, thread_ts = (cached.decode() if cached else user), None
        text = to_slack(message.text)
        post: dict[str, Any] = {"text": text, "thread_ts": thread_ts, "unfurl_links": False, "unfurl_media": False}
        if message.question:
            post["blocks"] = question_blocks(text, message.question)
        try:
            posted = self.client.chat_postMessage(channel=channel, **post)
        except SlackApiError as exc:
            if channel != user or exc.response.get("error") != "channel_not_found":
                raise failure(exc) from None
            # Slack did not take the user id as a channel: open the DM the old way (user_not_found is theirs)
            channel = str(self._call("conversations_open", users=user)["channel"]["id"])
            posted = self._call("chat_postMessage", channel=channel, **post)
        except SlackRateLimited as exc:
            raise failure(exc) from None
        except (SlackClientError, OSError) as exc:
            raise DeliveryFailed(f"Slack unreachable: {exc}", permanent=False) from None
        dm = str(posted["channel"])
        if dm != channel:  # posted by user id: the DM is known from now on, and this post counts against it
            self.r.set(key("dm", user), dm, ex=DM_TTL)
            self.client.record_post(dm)
        return Delivery(ref=f"{dm}:{thread_ts or posted['ts']}")

    def _report(self, message: Outbound) -> Delivery:
        """A deliverable to a channel (``#name`` or an id) as Block Kit; more than one table or block limit's
        worth goes on in the first message's thread."""
        fallback = message.subject or message.text.strip().splitlines()[0][:200]
        posts = slack_messages(message.text, message.subject)
        first = self._call("chat_postMessage", channel=message.address.id, text=to_slack(fallback), blocks=posts[0],
                           unfurl_links=False, unfurl_media=False)
        channel, ts = str(first["channel"]), str(first["ts"])
        for blocks in posts[1:]:
            self._call("chat_postMessage", channel=channel, thread_ts=ts, text=to_slack(fallback), blocks=blocks,
                       unfurl_links=False, unfurl_media=False)
        return Delivery(ref=f"{channel}:{ts}")

    def settle(self, settle: Settle) -> None:
        """Show the answer in the clicked message and take its buttons away (``chat.update``).

        Cosmetic: a failure is logged, never fails the reply (the answer is recorded already).
        """
        try:
            self._call("chat_update", **settled(settle.data, settle.answer, to_slack))
        except (DeliveryFailed, KeyError) as exc:
            log.warning("could not update the clicked message: %s", exc)

    def _call(self, method: str, **kwargs: Any) -> Any:
        """One Web API call; Slack's refusals and network faults become :class:`DeliveryFailed`."""
        try:
            return getattr(self.client, method)(**kwargs)
        except (SlackApiError, SlackRateLimited) as exc:
            raise failure(exc) from None
        except (SlackClientError, OSError) as exc:
            raise DeliveryFailed(f"Slack unreachable: {exc}", permanent=False) from None

    @staticmethod
    def inbound(body: dict[str, Any]) -> Inbound | None:
        """A person's DM (Events API envelope) as an ``Inbound``, or their edit of one; None for anything else.

        ``meta.ref`` is the message's own ``{channel}:{ts}``; an edit (``message_changed``) carries the
        edited message's as ``meta.edit_of`` and as ``reply_to``, which finds the sub-task it answered.
        Slackbot, bots and apps are no one's answer (:func:`.slack_text.is_bot`). The text is Slack's
        markup read back without asking Slack anything (this runs before the ack); what a look-up or a
        download would add is kept in ``meta.pending`` for :meth:`complete_inbound`, in the worker.
        Fields of another type than Slack sends (no channel, a ``ts`` that is no timestamp) make it no
        message: it is ignored, never an error that would make Slack deliver it again.
        """
        event = body.get("event")
        if not isinstance(event, dict):
            return None
        if event.get("subtype") == "message_changed":
            return SlackChannel._edit(body, event)
        user, channel, ts = (event.get(k) for k in ("user", "channel", "ts"))
        subtype = event.get("subtype")
        if (event.get("type") != "message" or event.get("channel_type") != "im" or is_bot(event)
                or not (subtype is None or isinstance(subtype, str)) or subtype not in PERSON_SUBTYPES
                or not (isinstance(user, str) and user) or not (isinstance(channel, str) and channel)
                or timestamp(ts) is None):
            return None
        read = readable(event)
        if read is None:
            return None
        text, meta = read
        thread = event.get("thread_ts")
        reply_to = f"{channel}:{thread}" if isinstance(thread, str) and thread and thread != ts else None
        event_id = body.get("event_id")
        return Inbound("slack", user, text,
                       provider_id=event_id if isinstance(event_id, str) and event_id else f"{channel}:{ts}",
                       reply_to=reply_to, meta={"channel": channel, "ts": ts, "ref": f"{channel}:{ts}", **meta},
                       at=timestamp(ts))

    @staticmethod
    def _edit(body: dict[str, Any], event: dict[str, Any]) -> Inbound | None:
        new, old = event.get("message"), event.get("previous_message") or {}
        channel = event.get("channel")
        if not isinstance(new, dict) or not isinstance(old, dict) or not isinstance(channel, str) or not channel:
            return None
        in_dm = event.get("channel_type") == "im" or channel.startswith("D")
        ts = new.get("ts") if timestamp(new.get("ts")) is not None else old.get("ts")  # the edited message's own
        if not in_dm or is_bot(new) or not isinstance(new.get("user"), str) or not new.get("user") \
                or timestamp(ts) is None:
            return None  # the bot's own update of a clicked message: no edit by a person
        read = readable(new)
        before, after = (render(m.get("text") if isinstance(m.get("text"), str) else "").strip() for m in (old, new))
        if read is None or not read[0].strip() or (after and after == before):
            return None  # a link unfurled, a file's preview added: nothing the person changed
        text, extra = read
        ref = f"{channel}:{ts}"
        at = timestamp(event.get("event_ts")) or timestamp(event.get("ts"))
        event_id = body.get("event_id")
        return Inbound("slack", str(new["user"]), text,
                       provider_id=event_id if isinstance(event_id, str) and event_id
                       else f"edit:{ref}:{event.get('event_ts')}", reply_to=ref,
                       meta={"channel": channel, "edit_of": ref, **extra}, **({"at": at} if at else {}))

    # -- completing a received message in the worker ------------------------------------------------
    def complete_inbound(self, text: str, meta: dict[str, Any], ident: str) -> tuple[str, dict[str, Any]]:
        """``meta.pending`` done: mentions and channels named as Slack names them (``users.info``,
        ``conversations.info``, cached), files downloaded with the bot token. Never raises: what Slack
        does not answer stays as read on the ack path (an id, a file's name)."""
        pending = meta.get("pending")
        rest = {k: v for k, v in meta.items() if k != "pending"}
        if not isinstance(pending, dict):
            return text, rest
        raw = pending.get("text") if isinstance(pending.get("text"), str) else ""

        def shown(part: str) -> str:
            return render(part, self.display_name, self.channel_name)

        written = joined(shown(raw), attachments_text(pending.get("attachments"), shown))
        files = [f for f in pending.get("files") or [] if isinstance(f, dict)]
        if files:
            rest["attachments"] = self._download(files, folder_for(self.files, "slack", ident))
        if not written.strip() and files:
            written = attached([str(a["name"]) for a in rest.get("attachments") or files])
        return (written if written.strip() else text), rest

    def display_name(self, user_id: str) -> str | None:
        """How Slack shows a person: their display name, else their full name, else their handle."""
        user = self.user_info(user_id)
        profile = user.get("profile") or {}
        for name in (profile.get("display_name"), profile.get("real_name"), user.get("real_name"), user.get("name")):
            if isinstance(name, str) and name.strip():
                return name.strip()
        return None

    def channel_name(self, channel_id: str) -> str | None:
        """A channel's name (``conversations.info``, cached a day); None when Slack does not say."""
        cached = self.r.get(key("channel", channel_id))
        if cached is not None:
            return cached.decode() or None
        try:
            name = self._call("conversations_info", channel=channel_id)["channel"].get("name")
        except (DeliveryFailed, KeyError, TypeError):
            return None
        name = name if isinstance(name, str) else ""
        self.r.set(key("channel", channel_id), name, ex=LOOKUP_TTL)
        return name or None

    def _download(self, files: list[dict[str, Any]], folder: Path) -> list[dict[str, Any]]:
        """Each file fetched from its ``url_private`` with the bot token, which goes to Slack only."""
        allowed = {urlsplit(self.client.base_url).hostname}
        headers = {"Authorization": f"Bearer {self.client.token}"}
        used: set[str] = set()
        saved: list[dict[str, Any]] = []
        for item in files:
            name, url = str(item.get("name") or "file"), str(item.get("url") or "")
            host = urlsplit(url).hostname or ""
            if not url:
                saved.append({"name": name, "error": "Slack no longer serves this file"})
            elif not (host == "files.slack.com" or host.endswith(".slack.com") or host in allowed):
                saved.append({"name": name, "error": "not a Slack file URL: not downloaded"})
            elif isinstance(item.get("size"), int) and item["size"] > self.max_file:
                saved.append({"name": name, "error": f"larger than {self.max_file:,} bytes: not kept"})
            else:
                saved.append(download(url, folder, name, item.get("content_type"), used, limit=self.max_file,
                                      headers=headers))
        return saved

    @staticmethod
    def click(body: dict[str, Any]) -> Inbound | None:
        """A click on a question's button, select or date picker (``block_actions``), as an ``Inbound``."""
        return click(body)


def joined(*parts: str) -> str:
    return "\n\n".join(p.strip() for p in parts if p and p.strip())


def readable(event: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """A person's message as text and meta: their words, then what they forwarded or shared
    (``attachments``), else their files' names. None when there is nothing to read at all."""
    raw = event.get("text") if isinstance(event.get("text"), str) else ""
    attachments = event.get("attachments") if isinstance(event.get("attachments"), list) else []
    if raw.strip():  # their words come first; of the attachments only what they shared, not a link's preview
        attachments = [a for a in attachments if isinstance(a, dict) and (a.get("is_share") or a.get("is_msg_unfurl"))]
    shared = attachments_text(attachments)
    files = files_of(event)
    text = joined(render(raw), shared)
    if not text and not files:
        return None
    meta: dict[str, Any] = {}
    if not text:
        text = attached([f["name"] for f in files])
        meta["file_only"] = True
    users, channels = references(raw + "\n" + "\n".join(_texts(attachments)))
    if files or users or channels:
        pending: dict[str, Any] = {"text": raw}
        if shared:
            pending["attachments"] = attachments
        if files:
            pending["files"] = files
        meta["pending"] = pending
    return text, meta


def _texts(attachments: Any) -> list[str]:
    if not isinstance(attachments, list):
        return []
    return [v for a in attachments if isinstance(a, dict) for v in (a.get("pretext"), a.get("text"))
            if isinstance(v, str)]


def timestamp(value: Any) -> float | None:
    """A Slack ``ts`` (``"1700000000.000100"``) as unix seconds; None when it is none."""
    if not isinstance(value, str) or not re.fullmatch(r"\d{1,12}(\.\d{1,9})?", value):
        return None
    return float(value)
