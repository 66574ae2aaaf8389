"""The Telegram channel: private chats through python-telegram-bot's ``Bot``, and updates turned into ``Inbound``.

A message's ``Delivery.ref`` is ``{chat id}:{message id}``, the form ``inbound`` gives a reply's
``reply_to``, so a reply to any message the bot sent routes to that message's sub-task. A text
over Telegram's 4,096-character limit goes out in parts; its ref is the *last* part's, the one
that ends with the question. Every send first takes a slot from a limiter in Redis that all
processes share: 36 ms between two messages of the bot and 1.25 s between two to one chat,
under Telegram's flood limits (about 30 a second, 1 a second per chat).

The engine is synchronous; the Bot API calls are async, so each send runs them on its own
short-lived event loop (``asyncio.run``) and closes the HTTP client before returning.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import time
import weakref
from collections.abc import AsyncIterator, Coroutine
from datetime import timedelta
from typing import Any, TypeVar

import httpx
import redis
from telegram import Bot, LinkPreviewOptions, ReplyParameters, Update, User
from telegram.error import BadRequest, ChatMigrated, Forbidden, InvalidToken, RetryAfter, TelegramError
from telegram.request import HTTPXRequest

from engine import keys
from engine.model import Contact
from engine.ports import Delivery, DeliveryFailed, Inbound, Outbound

log = logging.getLogger("taskbot.telegram")

T = TypeVar("T")
MAX_LENGTH = 4096
#: 36 ms between two sends of the bot (under 28 a second) and 1.25 s between two to one chat: Telegram
#: allows about 30 a second and 1 a second per chat; the margin absorbs the network's jitter.
BOT_GAP_MS = 36
CHAT_GAP_MS = 1250
PARTS_TTL = 86400
COMMAND = re.compile(r"^/([A-Za-z0-9_]+)(?:@[A-Za-z0-9_]+)?(?:\s+(.*))?$", re.DOTALL)

#: Take a send slot: 0 when taken, else the milliseconds to wait. Each limit is a minimum gap between two
#: sends, kept as a key that expires when the gap is over: evenly spaced sends, never a burst.
LIMIT = """
local chat_wait = redis.call('PTTL', KEYS[2])
if chat_wait > 0 then return chat_wait end
local bot_wait = redis.call('PTTL', KEYS[1])
if bot_wait > 0 then return bot_wait end
redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
return 0
"""


def utf16_units(char: str) -> int:
    """Telegram counts text length in UTF-16 code units: a character beyond the BMP counts twice."""
    return 2 if ord(char) > 0xFFFF else 1


def fitting(text: str, limit: int) -> int:
    """How many leading characters of ``text`` fit in ``limit`` UTF-16 units."""
    units = 0
    for index, char in enumerate(text):
        units += utf16_units(char)
        if units > limit:
            return index
    return len(text)


def split_text(text: str, limit: int = MAX_LENGTH) -> list[str]:
    """``text`` in parts of at most ``limit`` units, cut at a paragraph, line or word break when one is near."""
    parts: list[str] = []
    rest = text
    while (fits := fitting(rest, limit)) < len(rest):
        window = rest[:fits]
        cut = next((i + len(sep) for sep in ("\n\n", "\n", " ") if (i := window.rfind(sep)) >= fits // 2), fits)
        parts.append(rest[:cut].rstrip() or rest[:cut])
        rest = rest[cut:].lstrip()
    if rest or not parts:
        parts.append(rest)
    return parts


def retry_seconds(exc: RetryAfter) -> float:
    """``RetryAfter``'s wait in seconds (read without PTB's deprecation warning about its type)."""
    raw = getattr(exc, "_retry_after", None)
    if isinstance(raw, timedelta):
        return raw.total_seconds()
    value = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def failure(exc: TelegramError) -> DeliveryFailed:
    """Permanent when no retry can reach this person (blocked the bot, chat gone); anything else is retried."""
    if isinstance(exc, RetryAfter):
        seconds = retry_seconds(exc)
        return DeliveryFailed(f"Telegram rate limit: retry after {seconds:g}s", permanent=False, retry_after=seconds)
    if isinstance(exc, Forbidden | BadRequest | ChatMigrated):
        return DeliveryFailed(f"Telegram refused: {exc.message}", permanent=True)
    if isinstance(exc, InvalidToken):  # the operator's to fix; the people are still reachable afterwards
        return DeliveryFailed(f"Telegram refused the bot token: {exc.message}", permanent=False)
    return DeliveryFailed(f"Telegram unreachable: {exc.message}", permanent=False)


class TelegramChannel:
    """Implements the engine's ``Channel`` on the Bot API; a contact's address is their private chat id.

    Args:
        token: the bot token (TELEGRAM_BOT_TOKEN).
        api_url: python-telegram-bot's ``base_url`` (TASKBOT_TELEGRAM_API_URL).
        r: Redis, shared by every process, for the send limiter.
        max_wait: the longest a send waits for a slot; beyond it the send is deferred (DeliveryFailed).
    """

    name = "telegram"

    def __init__(self, token: str, api_url: str, r: redis.Redis, *, max_wait: float = 10.0) -> None:
        self.token = token
        self.api_url = api_url
        self.r = r
        self.max_wait = max_wait
        self._limit = r.register_script(LIMIT)
        self._ssl = httpx.create_ssl_context()  # httpx's own default, made once: it costs ~20 ms

    @classmethod
    def from_settings(cls, token: str, api_url: str, redis_url: str, lease_seconds: float = 60.0) -> TelegramChannel:
        r = redis.Redis.from_url(redis_url)
        # A send must not wait so long that its claim (a lease long) runs out under it.
        channel = cls(token, api_url, r, max_wait=min(10.0, lease_seconds / 2))
        # Its own connections close with it: left to the garbage collector, a socket may go first (ResourceWarning).
        weakref.finalize(channel, r.close)
        return channel

    def resolve(self, contact: Contact) -> str | None:
        return contact.telegram_chat_id or None

    # -- the Bot API ------------------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def bot(self) -> AsyncIterator[Bot]:
        """A ``Bot`` for calls on the running loop; its HTTP client is closed on the way out."""
        request = HTTPXRequest(connection_pool_size=2, httpx_kwargs={"verify": self._ssl})
        try:
            yield Bot(self.token, base_url=self.api_url, request=request, get_updates_request=request)
        finally:
            await request.shutdown()

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run one async Bot API exchange from sync code (a job, the CLI) on a loop of its own."""
        return asyncio.run(coro)

    def me(self) -> User:
        """The bot's own user (``getMe``): its ``username`` makes the deep links.

        Raises:
            DeliveryFailed: Telegram did not answer or refused the token.
        """

        async def get_me() -> User:
            async with self.bot() as bot:
                return await bot.get_me()

        try:
            return self.call(get_me())
        except TelegramError as exc:
            raise failure(exc) from None

    # -- sending ----------------------------------------------------------------------------------------
    def send(self, message: Outbound) -> Delivery:
        chat = message.address.id
        parts = split_text(message.text)
        # A chase quotes the opening, so the person sees what it is about; other messages stand alone.
        quote = message.thread if message.kind == "chase" else None
        quoted = int(quote.split(":", 1)[1]) if quote and quote.startswith(f"{chat}:") else None
        done = {k.decode(): v.decode() for k, v in self.r.hgetall(keys.telegram_parts(message.key)).items()} \
            if len(parts) > 1 else {}
        ref: str | None = None
        for index, part in enumerate(parts):
            if str(index) in done:  # sent before a failure of a later part; the retry goes on from there
                ref = done[str(index)]
                continue
            ref = self._send_part(chat, part, quoted if index == 0 else None)
            if len(parts) > 1:
                with self.r.pipeline() as p:
                    p.hset(keys.telegram_parts(message.key), str(index), ref)
                    p.expire(keys.telegram_parts(message.key), PARTS_TTL)
                    p.execute()
        return Delivery(ref=ref)

    def _send_part(self, chat: str, text: str, quoted: int | None) -> str:
        async def post() -> str:
            reply = ReplyParameters(quoted, allow_sending_without_reply=True) if quoted else None
            async with self.bot() as bot:
                # The slot is taken with everything ready, so the message leaves right after it.
                await asyncio.to_thread(self._take_slot, chat)
                sent = await bot.send_message(chat, text, reply_parameters=reply,
                                              link_preview_options=LinkPreviewOptions(is_disabled=True))
            return f"{sent.chat.id}:{sent.message_id}"

        try:
            return self.call(post())
        except RetryAfter as exc:  # no one sends to this chat until Telegram allows it again
            self.r.set(keys.telegram_rate_chat(chat), "1", px=max(1, int(retry_seconds(exc) * 1000)))
            raise failure(exc) from None
        except TelegramError as exc:
            raise failure(exc) from None

    def _take_slot(self, chat: str) -> None:
        """Wait until both the bot and the chat may send one more message, across every process.

        Raises:
            DeliveryFailed: the wait would be longer than ``max_wait``; the engine tries again later.
        """
        deadline = time.monotonic() + self.max_wait
        while True:
            wait_ms = int(self._limit(keys=[keys.TELEGRAM_RATE_BOT, keys.telegram_rate_chat(chat)],
                                      args=[BOT_GAP_MS, CHAT_GAP_MS]))
            if wait_ms <= 0:
                return
            wait = wait_ms / 1000
            if time.monotonic() + wait > deadline:
                raise DeliveryFailed(f"Telegram send limit: chat {chat} must wait {wait:.1f}s", permanent=False,
                                     retry_after=wait)
            time.sleep(wait + secrets.randbelow(10) / 1000)  # a little jitter so waiters do not move in step

    # -- receiving --------------------------------------------------------------------------------------
    @staticmethod
    def inbound(update: dict[str, Any]) -> Inbound | None:
        """A person's text in a private chat with the bot (an Update as JSON), as an ``Inbound``; else None.

        Group chats, edits, the bot's own and other bots' messages and messages with no text are not
        answers. ``reply_to`` is the replied-to message as ``{chat id}:{message id}``, like ``Delivery.ref``.
        """
        raw = update.get("message")
        chat = raw.get("chat") if isinstance(raw, dict) else None
        if not (isinstance(chat, dict) and _integer(chat.get("id")) and _integer(raw.get("message_id"))
                and _integer(raw.get("date")) and 0 <= raw["date"] < 2**40):
            return None  # no message of a chat (another kind of update), or not in the Bot API's shape
        try:
            parsed = Update.de_json(update, None)
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError):
            log.warning("an update that is not a Bot API Update was ignored")
            return None
        message = parsed.message
        if message is None or message.chat.type != "private" or (message.from_user and message.from_user.is_bot):
            return None
        text = message.text or message.caption or ""
        if not isinstance(text, str) or not text.strip():
            return None
        chat = message.chat.id
        reply = message.reply_to_message
        return Inbound("telegram", str(chat), text, provider_id=str(parsed.update_id),
                       reply_to=f"{chat}:{reply.message_id}" if reply else None, at=message.date.timestamp(),
                       meta={"chat_id": chat, "message_id": message.message_id})

    @staticmethod
    def command(text: str) -> tuple[str, str] | None:
        """``/task run x`` -> ``("task", "run x")``, ``/start@bot t`` -> ``("start", "t")``; None: not a command."""
        found = COMMAND.match(text.strip())
        return (found.group(1).lower(), (found.group(2) or "").strip()) if found else None


def _integer(value: Any) -> bool:
    """An int as JSON gives it (``True`` is an int to Python, not to the Bot API)."""
    return isinstance(value, int) and not isinstance(value, bool)
