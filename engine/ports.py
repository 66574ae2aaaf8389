"""The neutral types and the small protocols the engine talks through; adapters implement them."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from .model import Contact


@dataclass(frozen=True)
class Address:
    """Where a person is reached: a channel name and that channel's id for them."""

    channel: str
    id: str


@dataclass(frozen=True)
class Question:
    """A typed question a channel may show as buttons or a menu (``choice``, ``scale``: ``options``) or a
    date picker (``date``); typing the answer works as well. ``key`` is the field it asks."""

    key: str
    type: str
    options: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "type": self.type, "options": list(self.options)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Question:
        return cls(str(data["key"]), str(data["type"]), tuple(str(o) for o in data.get("options") or ()))


@dataclass(frozen=True)
class Settle:
    """The message whose button was pressed: its channel shows ``answer`` there and takes the buttons
    away. ``data`` is what the channel's own translation of the click kept to find that message."""

    answer: str
    data: dict[str, Any]


@dataclass(frozen=True)
class Outbound:
    """A message the engine wants delivered.

    ``key`` is unique per logical message (e.g. ``<sid>:chase:2``): an adapter that can
    deduplicate uses it, and the engine never sends the same key twice once delivered.
    ``thread`` is the provider ref of an earlier message to reply under (Slack ts, ...).
    ``reply_token`` is the sub-task's unguessable token (web chat link, email plus-address).
    ``question`` lets a channel add buttons, a menu or a date picker for the field the text asks;
    ``settle`` (a reply to a click) updates the clicked message first; a reply with no ``text``
    only settles.
    """

    address: Address
    text: str
    key: str
    kind: str = "reply"
    thread: str | None = None
    subtask_id: str | None = None
    reply_token: str | None = None
    subject: str | None = None
    question: Question | None = None
    settle: Settle | None = None


@dataclass(frozen=True)
class Delivery:
    """What the provider said back: ``ref`` lets later replies be routed to the sub-task."""

    ref: str | None = None


class DeliveryFailed(Exception):  # noqa: N818 - it reads as a fact about the delivery
    """A send that did not go through. ``permanent`` ones fail the sub-task; others are retried,
    not before ``retry_after`` seconds when the provider said how long to wait (Slack, Telegram 429).

    ``unreachable`` (permanent too): this channel cannot reach the person at this address any more
    (they blocked the bot, the user or mailbox does not exist), though another channel of theirs
    may; the sub-task moves to their next channel (SPEC §4's order) instead of failing.
    """

    def __init__(self, reason: str, *, permanent: bool, retry_after: float | None = None,
                 unreachable: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent or unreachable
        self.retry_after = retry_after
        self.unreachable = unreachable
        self.channel: str | None = None  # which channel refused (Outbox.send sets it)


@dataclass(frozen=True)
class Inbound:
    """A message from a person, as every channel adapter hands it to the engine.

    ``provider_id`` is the provider's own id for this delivery (Slack event_id, Telegram
    update_id, email Message-ID); the engine processes each one once. ``reply_to`` is the
    provider ref the message answers (thread ts, replied-to message id, web chat token).
    ``meta`` may carry ``auto_reply: True`` (kept, never taken as an answer),
    ``attachments``: a list of ``{name, path, size, content_type}`` the adapter saved,
    ``ref``: the provider's id of this very message (``{channel}:{ts}``, ``{chat}:{message id}``),
    so a later edit of it can change the answer it gave; ``edit_of``: the ``ref`` of the message
    this one is an edit of; and for a click, ``answers`` (the field key the button belongs to)
    and ``settle`` (what the channel needs to update the clicked message, see :class:`Settle`).
    ``file_only``: the message is files and nothing else (its text names them): an answer to a
    ``text`` field only. ``album``: files sent together (Telegram's ``media_group_id``) come as one
    message each; the first is the answer, the later ones of the same album are kept with it.
    ``pending``: what the adapter still has to do in a worker (look a name up, download a file),
    which must not hold up the provider's acknowledgement (:class:`Completes`).
    """

    channel: str
    sender: str
    text: str
    provider_id: str
    reply_to: str | None = None
    at: float = field(default_factory=time.time)
    meta: dict[str, Any] = field(default_factory=dict)


class Channel(Protocol):
    """One chat channel. Adapters translate; they never decide."""

    name: str

    def resolve(self, contact: Contact) -> str | None:
        """The contact's address on this channel, or None when they are not linked."""
        ...

    def send(self, message: Outbound) -> Delivery:
        """Deliver one message; raise :class:`DeliveryFailed` when it cannot be."""
        ...


class Completes(Protocol):
    """An adapter whose messages may need work after the ack (``meta.pending``): done in the worker
    that applies the message, before it is applied, once."""

    def complete_inbound(self, text: str, meta: dict[str, Any], ident: str) -> tuple[str, dict[str, Any]]:
        """The message's final text and meta (``pending`` gone); ``ident`` names it (its provider id).
        Never raises: what cannot be done leaves the message as it was received."""
        ...


class Clock(Protocol):
    def now(self) -> float: ...


class SystemClock:
    def now(self) -> float:
        return time.time()


class Jobs(Protocol):
    """The job queue as the engine needs it: run a job soon, at a time, or not at all."""

    def enqueue(self, func: str, *args: Any) -> None: ...

    def enqueue_many(self, calls: list[tuple[str, tuple[Any, ...]]]) -> None: ...

    def enqueue_at(self, when: datetime, func: str, *args: Any, job_id: str) -> None: ...

    def cancel(self, job_id: str) -> None: ...


# -- the model port: what the agent loop needs of an LLM provider -------------------------------
@dataclass(frozen=True)
class ToolCall:
    """A tool the model asked for: ``arguments`` is the model's JSON text, parsed by the tool."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class Usage:
    """Tokens of model calls; ``cached_tokens`` is the part of ``prompt_tokens`` the provider read from its
    prompt cache (OpenAI's ``prompt_tokens_details.cached_tokens``, Anthropic's cache reads), billed at a
    fraction of the rest."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.prompt_tokens + other.prompt_tokens, self.completion_tokens + other.completion_tokens,
                     self.cached_tokens + other.cached_tokens)


@dataclass(frozen=True)
class Completion:
    text: str
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Usage = Usage()


class ModelError(Exception):
    """A model call that failed. ``retryable`` ones (rate limits, provider errors, time-outs) are
    tried again with backoff, not before ``retry_after`` seconds when the provider said so."""

    def __init__(self, reason: str, *, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.retry_after = retry_after


class Model(Protocol):
    """An LLM provider (the litellm adapter in production). ``opts`` carry ``api_base``,
    ``api_key_env`` and ``timeout`` from the assistant and the settings."""

    def complete(self, model: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]],
                 **opts: Any) -> Completion:
        """One chat completion; raise :class:`ModelError` when it fails."""
        ...

    def image(self, model: str, prompt: str, **opts: Any) -> bytes:
        """Generate one image (PNG bytes); raise :class:`ModelError` when the model cannot."""
        ...


class Poster(Protocol):
    """Delivers a signed JSON ``POST`` (a Web Trigger callback) to a URL."""

    def post(self, url: str, body: str, event: str) -> None:
        """POST ``body`` with the event name and signature headers; raise :class:`DeliveryFailed` unless 2xx."""
        ...
